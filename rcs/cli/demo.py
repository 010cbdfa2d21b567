"""``rcs demo``: the main job on the simulated default robots.

1. A small trained policy that ships with the repository (``policies/checkpoints/pick_cube_rcs_diffusion``,
   trained by ``rcs train`` on ``rcs record`` demonstrations) is served by ``rcs serve`` in its own process and
   drives the simulated Panda through the real-time control loop, the chunk executor and the safety filter
   (the ``rcs eval`` path) for ``--episodes`` seeded episodes; the success rate is printed.
2. The classical baseline flies the simulated Crazyflie through a figure-eight on the thrust + body-rate
   interface and reports the tracking error after the speed ramp.
Videos of the first pick episode and of the flight are written under ``--out``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import rcs.envs  # noqa: F401  (registers the env ids)
from rcs.envs.base import CameraConfig
from rcs.envs.quadrotor import QuadrotorConfig
from rcs.envs.rollout import run_episode
from rcs.experts.quadrotor import QuadrotorTrackingExpert
from rcs.video import write_mp4


#: the checkpoint shipped with the repository (trained with `rcs train`, docs/train.md).
DEMO_CHECKPOINT = Path(__file__).resolve().parents[2] / "policies" / "checkpoints" / "pick_cube_rcs_diffusion"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=5, help="pick-cube episodes (default 5)")
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed")
    parser.add_argument("--arm", default="rcs/PandaPickCube-v0", help="pick-cube env id")
    parser.add_argument("--policy", type=Path, default=DEMO_CHECKPOINT, help="checkpoint to serve (default: the shipped one)")
    parser.add_argument("--loops", type=int, default=2, help="figure-eight loops after the speed ramp")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="folder for the videos")
    parser.add_argument("--json", action="store_true", help="print only one JSON object")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def pick_cube(args: argparse.Namespace) -> dict:
    from rcs.cli import eval as eval_cli

    # `rcs eval`'s own parser, so every eval option keeps its default here
    parser = argparse.ArgumentParser(prog="rcs demo")
    eval_cli.add_arguments(parser)
    eval_args = parser.parse_args(["--policy", str(args.policy), "--env", args.arm, "--episodes", str(args.episodes),
                                   "--seed", str(args.seed), "--videos", "1", "--out", str(args.out)]
                                  + (["--json"] if args.json else []))
    summary = eval_cli.evaluate(eval_args, lambda text: _say(args, text))
    video = args.out / f"episode_{args.seed}.mp4"
    final = args.out / "pick_cube.mp4"
    if video.exists():
        video.replace(final)
    summary["video"] = str(final)
    return summary


def figure_eight(args: argparse.Namespace) -> dict:
    base = QuadrotorConfig(task="track", action_mode="thrust_rates")
    ramp = base.figure_eight[2]  # the reference ramps up over one period
    steps = int(round((ramp + args.loops * base.figure_eight[2]) * base.control_rate_hz))
    config = QuadrotorConfig(
        task="track", action_mode="thrust_rates", max_episode_steps=steps,
        render_camera=CameraConfig("overview", width=640, height=480),
    )
    env = gym.make("rcs/QuadrotorTrack-v0", config=config, render_mode="rgb_array")
    u = env.unwrapped
    expert = QuadrotorTrackingExpert(u.vehicle.spec, u.reference, u.dt)
    every = int(round(config.control_rate_hz / 25))  # 25 fps video
    t0 = time.perf_counter()
    try:
        result = run_episode(env, expert, seed=args.seed, render_every=every, reset_policy=expert.reset)
    finally:
        env.close()
    errors = np.array([info["position_error"] for info in result.infos])
    tracked = errors[int(ramp * config.control_rate_hz) :]
    video = write_mp4(args.out / "quadrotor_figure_eight.mp4", result.frames, fps=config.control_rate_hz / every)
    return {
        "env": "rcs/QuadrotorTrack-v0",
        "figure_eight_m": list(base.figure_eight[:2]),
        "period_s": base.figure_eight[2],
        "loops": args.loops,
        "completed": result.steps == steps,
        "tracking_error_rms_m": float(np.sqrt(np.mean(tracked**2))),
        "tracking_error_max_m": float(tracked.max()),
        "video": str(video),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def run(args: argparse.Namespace) -> int:
    _say(args, f"rcs demo: trained policy {args.policy.name} served to the simulated Panda ({args.arm}), "
         f"{args.episodes} episodes")
    pick = pick_cube(args)
    lat = pick["policy_latency_ms"]
    _say(args, f"pick-cube success rate: {pick['success_rate']:.0%} over {pick['episodes']} episodes "
         f"(policy latency p50 {lat['p50']} ms); video {pick['video']}")
    _say(args, "rcs demo: classical controller flying a figure-eight (sim/crazyflie, thrust + body rates)")
    quad = figure_eight(args)
    _say(args, f"figure-eight tracking error: RMS {quad['tracking_error_rms_m'] * 1000:.1f} mm, "
         f"max {quad['tracking_error_max_m'] * 1000:.1f} mm; video {quad['video']}")
    if args.json:
        sys.stdout.write(json.dumps({"pick_cube": pick, "quadrotor": quad}) + "\n")
    return 0 if pick["episodes"] > 0 and quad["completed"] else 1
