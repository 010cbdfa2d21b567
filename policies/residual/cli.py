"""``rcs train-residual``: learn a residual on top of a frozen, served base policy with TD3 (or SAC).

    rcs train-residual --shift reality-a --output outputs/residual/reality-a
    rcs train-residual --robot-config outputs/sysid/calibrated.json --output outputs/residual/calibrated
    rcs train-residual --shift reality-a --scratch --learner sac --output outputs/scratch/reality-a

The base (default: the shipped diffusion checkpoint) runs unchanged behind its own ``rcs serve``; the learner
(:mod:`policies.residual.td3`) trains the residual in the simulated pick-cube task on the robot a named reality
shift (``--shift``) or a calibrated robot config (``--robot-config``, the file ``rcs sysid`` writes) describes.
Prints a line per evaluation (stderr); writes ``OUT/checkpoint`` (the composed checkpoint: serve it, evaluate it
with ``rcs eval --policy OUT/checkpoint``), ``OUT/success.csv`` and ``OUT/success.png`` (evaluation success rate
against environment steps), and the training state, from which the same command resumes; then one JSON line on
stdout. ``--workers N`` runs the training episodes on N Ray workers (``--ray-address`` for an existing cluster),
the learner here. ``--scratch`` trains the learner alone over the whole action range (no base is served; the
comparison for the residual; no checkpoint is written). ``--demos N`` mixes N expert-guided episodes into every
batch. Torch is imported only when this command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rcs.cli.main import at_least, greater_than, json_line
from rcs.errors import ConfigError

#: the line ``rcs --help`` shows for this command (an ``rcs.commands`` entry point)
SUMMARY = "learn a residual on a frozen served base with TD3 (shifted sim)"

#: the shipped base
DEFAULT_BASE = Path(__file__).resolve().parents[1] / "checkpoints" / "pick_cube_rcs_diffusion"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, type=Path, help="run folder (resumed if it holds a training state)")
    parser.add_argument(
        "--base", type=Path, default=DEFAULT_BASE, help="the base checkpoint (default: the shipped one)"
    )
    parser.add_argument("--env", default="rcs/PandaPickCube-v0", help="env id (default rcs/PandaPickCube-v0)")
    robot = parser.add_mutually_exclusive_group()
    robot.add_argument("--shift", default=None, help="train on this reality shift of the env's robot (rcs list)")
    robot.add_argument("--robot-config", type=Path, default=None, help="train on a calibrated robot (rcs sysid --out)")
    parser.add_argument("--steps", type=at_least(1), default=100_000, help="environment steps (default 100000)")
    parser.add_argument("--learning-starts", type=at_least(1), default=2_000, help="steps before updates (2000)")
    parser.add_argument("--eval-every", type=at_least(1), default=5_000, help="steps between evaluations (5000)")
    parser.add_argument("--eval-episodes", type=at_least(1), default=20, help="episodes per evaluation (default 20)")
    parser.add_argument(
        "--scale", type=greater_than(0.0), default=None, help="residual bound, normalized units (0.1; --scratch: 1)"
    )
    parser.add_argument(
        "--entry-scale",
        type=entry_scale,
        action="append",
        default=[],
        metavar="NAME=BOUND",
        help="another bound for one action entry, by the base's action name (e.g. gripper=2; up to 2: any value)",
    )
    parser.add_argument(
        "--chunk-phase",
        action="store_true",
        help="the residual also reads the step within the base's chunk (one-hot of the base's replan steps)",
    )
    parser.add_argument("--learner", choices=("td3", "sac"), default="td3", help="the off-policy learner (td3)")
    parser.add_argument(
        "--scratch",
        action="store_true",
        help="no base: the learner alone acts over the base data's whole action range (the RL-from-scratch baseline)",
    )
    parser.add_argument(
        "--demos",
        type=at_least(0),
        default=0,
        help="expert-guided episodes before training; the successful ones are mixed into every batch (default 0)",
    )
    parser.add_argument(
        "--final-episodes",
        type=at_least(0),
        default=0,
        help="episodes of an evaluation after the last step, from seed 10000 (the report seeds; default 0: none)",
    )
    parser.add_argument(
        "--latency-ms",
        type=at_least(0),
        nargs=2,
        default=[10, 20],
        metavar=("LOW", "HIGH"),
        help="simulated delay from an observation to its chunk on the robot, drawn per step (default 10 20 ms: "
        "one or two 100 Hz ticks, as on the real-time path)",
    )
    parser.add_argument(
        "--base-latency-ms",
        type=at_least(0),
        default=20,
        help="added on the steps that ask the base (its inference; default 20 ms)",
    )
    parser.add_argument("--utd", type=at_least(1), default=1, help="critic updates per environment step (default 1)")
    parser.add_argument("--n-step", type=at_least(1), default=3, help="steps of the n-step return (default 3)")
    parser.add_argument("--critics", type=at_least(2), default=2, help="critics in the ensemble (default 2)")
    parser.add_argument(
        "--actor-starts", type=at_least(0), default=5_000, help="critic updates before the actor learns (5000)"
    )
    parser.add_argument(
        "--residual-penalty",
        type=at_least(0.0, float),
        default=None,
        help="weight of mean(r^2) in the actor loss (0.1; --scratch: 0)",
    )
    parser.add_argument(
        "--average-tau",
        type=at_least(0.0, float),
        default=0.0,
        help="evaluate and save a moving average of the actor's weights, this step per actor update (e.g. 2e-4: "
        "about 5000 actor updates, 10000 env steps; default 0: the online actor)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the training episodes and the learner")
    parser.add_argument(
        "--workers",
        type=at_least(1),
        default=None,
        help="run the training episodes on N Ray workers (the learner and the evaluations stay here; default: "
        "all in this process)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="an existing Ray cluster for --workers (its head's host:port, or 'auto'; default: a local one)",
    )


def entry_scale(text: str) -> tuple[str, float]:
    """``NAME=BOUND`` of ``--entry-scale``: an action entry's name and its bound (normalized units; its range is
    checked with the base's action names, :func:`~policies.residual.features.entry_bounds`)."""
    name, sep, value = text.partition("=")
    try:
        bound = float(value)
    except ValueError:
        sep = ""
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=BOUND (e.g. gripper=2)")
    return name, bound


def robot_options(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """(robot_config, label) of ``--shift`` / ``--robot-config`` (the env's own robot without either)."""
    import gymnasium as gym

    from rcs.envs.registration import register_envs
    from rcs.eval.evaluation import shifted_robot_config

    register_envs()
    try:
        robot = gym.spec(args.env).kwargs.get("robot")
    except gym.error.Error as e:
        raise ConfigError(f"--env={args.env!r}: {e}") from None
    if args.shift is not None:
        return shifted_robot_config(args.env, None, args.shift), args.shift
    if args.robot_config is not None:
        try:
            data = json.loads(args.robot_config.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"--robot-config={args.robot_config}: unreadable ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("robot_config"), dict):
            raise ConfigError(f"--robot-config={args.robot_config}: needs a 'robot_config' object (rcs sysid --out)")
        if data.get("robot", robot) != robot:
            raise ConfigError(
                f"--robot-config={args.robot_config}: calibrates {data['robot']!r}, the env runs {robot!r}"
            )
        return dict(data["robot_config"]), f"calibrated:{args.robot_config.stem}"
    return {}, "nominal"


#: loggers that report every episode's watchdog transitions and safety interventions: thousands of episodes
#: here, so only their errors are shown (rcs eval of the checkpoint reports them per episode)
EPISODE_LOGGERS = ("rcs.safety.watchdog", "rcs.safety.interventions")


def run(args: argparse.Namespace) -> int:
    import logging

    from policies.flight.plot import curve_png

    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for name in EPISODE_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    from policies.residual.sac import SacConfig
    from policies.residual.td3 import Td3Config
    from policies.residual.train import BEST_NAME, LATEST_NAME, ResidualTrainConfig, best_point, train

    learners: dict[str, type[Td3Config] | type[SacConfig]] = {"td3": Td3Config, "sac": SacConfig}
    learner = learners[args.learner]
    scale = args.scale if args.scale is not None else (1.0 if args.scratch else 0.1)
    penalty = args.residual_penalty if args.residual_penalty is not None else (0.0 if args.scratch else 0.1)
    try:
        if args.ray_address is not None and args.workers is None:
            raise ConfigError("--ray-address needs --workers N")
        robot_config, label = robot_options(args)
        cfg = ResidualTrainConfig(
            base=args.base,
            out=args.output,
            env=args.env,
            robot_config=robot_config,
            label=label,
            total_steps=args.steps,
            learning_starts=args.learning_starts,
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
            scale=scale,
            entry_scales=dict(args.entry_scale),
            chunk_phase=args.chunk_phase,
            latency_s=(args.latency_ms[0] / 1e3, args.latency_ms[1] / 1e3),
            base_latency_s=args.base_latency_ms / 1e3,
            seed=args.seed,
            learner=learner(
                utd=args.utd,
                n_step=args.n_step,
                critics=args.critics,
                actor_starts=args.actor_starts,
                residual_penalty=penalty,
                average_tau=args.average_tau,
            ),
            scratch=args.scratch,
            final_episodes=args.final_episodes,
            demo_episodes=args.demos,
        )
        state = train(
            cfg,
            progress=lambda line: print(f"rcs train-residual: {line}", file=sys.stderr),
            workers=args.workers or 0,
            ray_address=args.ray_address,
        )
    except (ConfigError, ValueError) as e:
        raise SystemExit(f"rcs train-residual: {e}") from None
    steps, rates = [s for s, _ in state.curve], [100.0 * r for _, r in state.curve]
    best = None if args.scratch else best_point(state.curve)
    what = f"{args.learner} from scratch" if args.scratch else "residual"
    curve = curve_png(args.output / "success.png", steps, rates, f"{what} on {label}: eval success (%)", "env steps")
    sys.stdout.write(
        json_line(
            {
                "checkpoint": None if args.scratch else str(args.output / LATEST_NAME),
                "learner": args.learner,
                "scratch": args.scratch,
                "robot": label,
                "workers": args.workers or 0,
                "env_steps": state.env_steps,
                "episodes": state.episodes,
                "dropped_steps": state.dropped_steps,
                "demonstrations": {"episodes": args.demos, "kept": state.demos_kept, "env_steps": state.demo_steps},
                "wall_s": round(state.wall_s, 1),
                "curve": [{"env_steps": s, "success_rate": r} for s, r in state.curve],
                "best": None
                if best is None
                else {"checkpoint": str(args.output / BEST_NAME), "env_steps": best[0], "success_rate": best[1]},
                "final": None
                if state.final is None
                else {"episodes": args.final_episodes, "first_seed": cfg.final_seed, "success_rate": state.final},
                "plot": str(curve),
            }
        )
    )
    return 0
