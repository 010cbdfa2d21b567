"""``rcs demo``: the main job on the simulated default robots.

1. A small trained policy that ships with the repository (``policies/checkpoints/pick_cube_rcs_diffusion``,
   trained by ``rcs train`` on ``rcs record`` demonstrations) is served by ``rcs serve`` in its own process and
   drives the simulated Panda through the real-time control loop, the chunk executor and the safety filter
   (the ``rcs eval`` path, :func:`rcs.eval.evaluation.evaluate`) for ``--episodes`` seeded episodes; the success
   rate is printed.
2. The classical baseline flies the simulated Crazyflie through a figure-eight on the thrust + body-rate
   interface and reports the tracking error after the speed ramp.
Videos of the first pick episode and of the flight (seen from the ``chase`` camera, which follows the vehicle)
are written under ``--out``. Nothing is downloaded. The flight prints a progress line every
:data:`PROGRESS_EVERY_S` s of flight time (on stderr with ``--json``, whose stdout holds only the JSON object).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

import rcs.envs  # noqa: F401  (registers the env ids)
from rcs.cli.main import at_least
from rcs.envs.base import CameraConfig
from rcs.envs.quadrotor import QuadrotorConfig, QuadrotorEnv
from rcs.envs.rollout import run_episode
from rcs.errors import ConfigError
from rcs.experts.quadrotor import QuadrotorTrackingExpert
from rcs.mp4 import write_mp4

#: the checkpoint shipped with the repository (trained with `rcs train`, docs/train.md).
DEMO_CHECKPOINT = Path(__file__).resolve().parents[2] / "policies" / "checkpoints" / "pick_cube_rcs_diffusion"

#: s of flight (simulated) time between two progress lines of the figure-eight
PROGRESS_EVERY_S = 2.0

#: the flight video's camera: the Crazyflie's ``chase`` camera (MJCF ``mode="trackcom"``, 0.35 m behind and
#: 0.12 m above the vehicle), so the 9 cm vehicle fills a good part of the frame wherever it flies; a fixed
#: camera that sees the whole 2 m figure-eight shows it as a speck of a few pixels.
FLIGHT_CAMERA = CameraConfig("chase", width=640, height=480)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=at_least(1), default=5, help="pick-cube episodes (default 5)")
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed")
    parser.add_argument("--arm", default="rcs/PandaPickCube-v0", help="pick-cube env id")
    parser.add_argument(
        "--policy", type=Path, default=DEMO_CHECKPOINT, help="checkpoint to serve (default: the shipped one)"
    )
    parser.add_argument("--loops", type=int, default=2, help="figure-eight loops after the speed ramp")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="folder for the videos")
    parser.add_argument("--json", action="store_true", help="print only one JSON object")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _progress(args: argparse.Namespace, text: str) -> None:
    """A progress line: with the report on stdout, or on stderr when stdout must hold only the JSON object."""
    stream = sys.stderr if args.json else sys.stdout
    stream.write(text + "\n")
    stream.flush()


class FlightProgress:
    """Wraps the flight controller (``obs -> action``) and reports progress every ``every_s`` s of flight time.

    Args:
        policy: the controller.
        dt: s per env step.
        total_s: s of flight in the episode.
        ramp_s: s of the speed ramp at the start (laps are counted after it).
        period_s: s per figure-eight lap.
        say: called with one line of text per report.
        every_s: s of flight time between reports.
    """

    def __init__(
        self,
        policy: Callable[[dict], np.ndarray],
        dt: float,
        total_s: float,
        ramp_s: float,
        period_s: float,
        say: Callable[[str], None],
        every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self.policy, self.dt, self.total_s, self.ramp_s, self.period_s = policy, dt, total_s, ramp_s, period_s
        self.say, self.every_steps = say, max(1, int(round(every_s / dt)))
        self.steps = 0
        self._t0 = time.perf_counter()

    def reset(self) -> None:
        self.steps = 0
        self._t0 = time.perf_counter()

    def __call__(self, obs: dict) -> np.ndarray:
        if self.steps and self.steps % self.every_steps == 0:
            t = self.steps * self.dt
            error_mm = float(np.linalg.norm(np.asarray(obs["position"]) - np.asarray(obs["target_position"]))) * 1000
            laps = self.total_s - self.ramp_s
            phase = (
                "speed ramp"
                if t < self.ramp_s
                else f"lap {min(int((t - self.ramp_s) // self.period_s) + 1, round(laps / self.period_s))}"
                f"/{round(laps / self.period_s)}"
            )
            self.say(
                f"  flight {t:5.1f}/{self.total_s:.1f} s ({phase}), position error {error_mm:.1f} mm, "
                f"{time.perf_counter() - self._t0:.0f} s wall"
            )
        self.steps += 1
        return self.policy(obs)


def pick_cube(args: argparse.Namespace) -> dict:
    from rcs.eval.evaluation import EvalConfig, evaluate

    # every other setting keeps `rcs eval`'s default (EvalConfig's)
    config = EvalConfig(
        policy=args.policy, env=args.arm, episodes=args.episodes, seed=args.seed, videos=1, out=args.out
    )
    video = args.out / f"episode_{args.seed}.mp4"
    final = args.out / "pick_cube.mp4"

    def say(text: str) -> None:
        # eval names the first episode's video by its seed; the demo's name for it is pick_cube.mp4: rename it
        # as soon as it is written, so the episode line names the file that stays
        if str(video) in text and video.exists():
            video.replace(final)
            text = text.replace(str(video), str(final))
        _say(args, text)

    try:
        summary = evaluate(config, say)
    except ConfigError as e:
        raise SystemExit(f"rcs demo: {e}") from None
    if video.exists():
        video.replace(final)
    summary["video"] = str(final)
    return summary


def flight_config(loops: int) -> QuadrotorConfig:
    """The figure-eight episode of the demo: the speed ramp (one period) then ``loops`` laps, filmed by
    :data:`FLIGHT_CAMERA`."""
    base = QuadrotorConfig(task="track", action_mode="thrust_rates")
    period = base.figure_eight[2]  # the reference ramps up over one period
    steps = int(round((period + loops * period) * base.control_rate_hz))
    return QuadrotorConfig(
        task="track", action_mode="thrust_rates", max_episode_steps=steps, render_camera=FLIGHT_CAMERA
    )


def figure_eight(args: argparse.Namespace) -> dict:
    config = flight_config(args.loops)
    ramp = config.figure_eight[2]
    steps = config.max_episode_steps
    env = gym.make("rcs/QuadrotorTrack-v0", config=config, render_mode="rgb_array")
    u = env.unwrapped
    if not isinstance(u, QuadrotorEnv):  # the id's registration says otherwise: a bug, not a user error
        raise TypeError(f"rcs/QuadrotorTrack-v0 built a {type(u).__name__}, not a QuadrotorEnv")
    expert = QuadrotorTrackingExpert(u.vehicle.spec, u.reference, u.dt)
    policy = FlightProgress(
        expert, u.dt, steps * u.dt, ramp, config.figure_eight[2], lambda text: _progress(args, text)
    )

    def reset() -> None:
        expert.reset()
        policy.reset()

    every = int(round(config.control_rate_hz / 25))  # 25 fps video
    t0 = time.perf_counter()
    try:
        result = run_episode(env, policy, seed=args.seed, render_every=every, reset_policy=reset)
    finally:
        env.close()
    errors = np.array([info["position_error"] for info in result.infos])
    tracked = errors[int(ramp * config.control_rate_hz) :]
    video = write_mp4(args.out / "quadrotor_figure_eight.mp4", result.frames, fps=config.control_rate_hz / every)
    return {
        "env": "rcs/QuadrotorTrack-v0",
        "figure_eight_m": list(config.figure_eight[:2]),
        "period_s": config.figure_eight[2],
        "loops": args.loops,
        "completed": result.steps == steps,
        "tracking_error_rms_m": float(np.sqrt(np.mean(tracked**2))),
        "tracking_error_max_m": float(tracked.max()),
        "video": str(video),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def run(args: argparse.Namespace) -> int:
    _say(
        args,
        f"rcs demo: trained policy {args.policy.name} served to the simulated Panda ({args.arm}), "
        f"{args.episodes} episodes",
    )
    pick = pick_cube(args)
    lat = pick["policy_latency_ms"]
    _say(
        args,
        f"pick-cube success rate: {pick['success_rate']:.0%} over {pick['episodes']} episodes "
        f"(policy latency p50 {lat['p50']} ms); video {pick['video']}",
    )
    _say(args, "rcs demo: classical controller flying a figure-eight (sim/crazyflie, thrust + body rates)")
    quad = figure_eight(args)
    _say(
        args,
        f"figure-eight tracking error: RMS {quad['tracking_error_rms_m'] * 1000:.1f} mm, "
        f"max {quad['tracking_error_max_m'] * 1000:.1f} mm; video {quad['video']}",
    )
    if args.json:
        sys.stdout.write(json.dumps({"pick_cube": pick, "quadrotor": quad}) + "\n")
    return 0 if pick["episodes"] > 0 and quad["completed"] else 1
