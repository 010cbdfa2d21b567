"""``rcs train-flight``: train a per-motor hover policy with PPO on the batched quadrotor simulation.

    rcs train-flight --output outputs/flight/hover --max-seconds 120 --seed 0

Prints a progress line per PPO iteration (stderr), writes the checkpoint folder ``OUT/checkpoint`` (numpy-loadable
weights + ``flight_policy.json`` with the observation/action layout, frames, motor order and positions, control
rate; ``rcs_policy.json`` to serve it) every ``--checkpoint-every`` s and at the end, ``OUT/returns.csv`` and
``OUT/returns.png`` (mean episode return against environment steps), then one JSON line on stdout. The learner is
:mod:`policies.flight.ppo`; torch is imported only when this command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rcs.cli.main import at_least, greater_than, json_line
from rcs.errors import ConfigError

#: the line ``rcs --help`` shows for this command (an ``rcs.commands`` entry point)
SUMMARY = "train a per-motor quadrotor hover policy with PPO on the batched sim"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="run folder (checkpoint/, returns.csv, returns.png)")
    parser.add_argument("--robot", default="crazyflie", choices=["crazyflie"], help="vehicle spec (default crazyflie)")
    parser.add_argument(
        "--max-seconds", type=greater_than(0.0), default=120.0, help="wall-time budget (s, default 120)"
    )
    parser.add_argument("--max-steps", type=at_least(1), default=None, help="stop after this many vehicle-steps")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the env starts, randomization and torch (default 0)"
    )
    parser.add_argument("--num-envs", type=at_least(1), default=256, help="vehicles simulated together (default 256)")
    parser.add_argument("--threads", type=at_least(1), default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--checkpoint-every", type=greater_than(0.0), default=30.0, help="s between checkpoints (default 30)"
    )
    parser.add_argument(
        "--no-randomization", action="store_true", help="train on the nominal vehicle only (default: randomized)"
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"rcs train-flight: --output={out}: exists and is not a directory")

    from policies.flight.plot import curve_png
    from policies.flight.ppo import PpoConfig, train
    from rcs.spec import DomainRandomization
    from sim.mujoco.quadrotor import CRAZYFLIE_RANDOMIZATION, CRAZYFLIE_SPEC

    cfg = PpoConfig(
        seed=args.seed,
        max_seconds=args.max_seconds,
        num_envs=args.num_envs,
        threads=args.threads,
        checkpoint_every_s=args.checkpoint_every,
    )
    if args.max_steps is not None:
        cfg.max_steps = args.max_steps
    randomization = DomainRandomization() if args.no_randomization else CRAZYFLIE_RANDOMIZATION
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = train(
            CRAZYFLIE_SPEC, randomization, out / "checkpoint", cfg, progress=lambda line: print(line, file=sys.stderr)
        )
    except ConfigError as e:
        raise SystemExit(f"rcs train-flight: {e}") from None
    with open(out / "returns.csv", "w") as f:
        f.write("env_steps,mean_episode_return\n")
        f.writelines(f"{s},{r:.4f}\n" for s, r in zip(result.steps, result.returns, strict=True))
    curve_png(out / "returns.png", result.steps, result.returns, "PPO hover: mean episode return", "env steps")
    sys.stdout.write(
        json_line(
            {
                "checkpoint": str(result.checkpoint),
                "env_steps": result.env_steps,
                "wall_s": round(result.seconds, 1),
                "final_mean_return": result.returns[-1] if result.returns else None,
                "curve": str(out / "returns.png"),
            }
        )
    )
    return 0
