"""``rcs deploy``: a checkpoint onto a robot in one command (the library is :mod:`rcs.deploy.run`).

Examples::

    rcs deploy --policy policies/checkpoints/pick_cube_rcs_diffusion            # the simulated default (sim/panda)
    rcs deploy --policy CKPT --robot launch/robots/hw_so101.yaml --robot-option port=/dev/ttyACM0

Preflight (a table of what was checked), the shadow run on the robot's simulated twin, then the operator confirms
(``y``) and holds the dead-man key (space) while the policy drives the arm; ``e``/Esc or ``kill -USR1 <pid>``
latch the e-stop, ``q`` ends the run. The whole run is logged into a LeRobot dataset under ``--log-dir``. Progress
goes to stderr, the summary to stdout (``--json``: one JSON object). Exit status: 0 the run ended normally,
1 e-stop or a failure during the run, 2 refused before anything moved. Docs: docs/deploy.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from rcs.cli.main import add_view_option, at_least, greater_than, json_line, key_values

#: the robot server config deployed to when no --robot is given: the simulated Panda of the main demo
DEFAULT_ROBOT = Path(__file__).resolve().parents[2] / "launch" / "robots" / "sim_panda_deploy.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, type=Path, help="checkpoint directory (lerobot: config.json, ...)")
    parser.add_argument(
        "--robot", type=Path, default=DEFAULT_ROBOT, help="robot server config (default: the simulated Panda's)"
    )
    parser.add_argument(
        "--robot-option", action="append", default=[], metavar="KEY=VALUE", help="robot factory option (repeatable)"
    )
    parser.add_argument(
        "--speed-scale", type=greater_than(0.0), default=0.25, help="fraction of the config's velocity scale (0.25)"
    )
    parser.add_argument(
        "--shadow-s", type=at_least(0.0, float), default=5.0, help="shadow run on the twin, s (0 skips it; default 5)"
    )
    parser.add_argument(
        "--max-intervention-rate",
        type=at_least(0.0, float),
        default=0.02,
        help="shadow run: largest share of ticks with a protective safety intervention (default 0.02)",
    )
    parser.add_argument("--duration", type=greater_than(0.0), help="end this many s after the operator confirmed")
    parser.add_argument("--confirm-timeout", type=greater_than(0.0), default=30.0, help="s to confirm (default 30)")
    parser.add_argument("--keys", metavar="/dev/input/eventN", help="read the operator's keys from an input device")
    parser.add_argument("--tty", metavar="PATH", help="read the operator's keys from this terminal (default stdin)")
    parser.add_argument("--log-dir", type=Path, help="folder of the run log (default outputs/deploy/<time>)")
    parser.add_argument("--log-fps", type=at_least(1), help="run log frame rate (default the policy's)")
    parser.add_argument("--log-segment-s", type=greater_than(0.0), default=10.0, help="s per saved log segment (10)")
    add_view_option(parser)
    parser.add_argument("--policy-endpoint", help="a policy server already running (default: start rcs serve)")
    parser.add_argument("--no-realtime", action="store_true", help="do not ask for SCHED_FIFO / mlockall")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args: argparse.Namespace) -> int:
    from rcs.deploy.operator import OperatorConsole
    from rcs.deploy.run import DeployConfig, Deployment, default_log_dir
    from rcs.deploy.shadow import ShadowLimits
    from rcs.remote.config import load_mapping, resolve_paths, server_config
    from rcs.teleop.keyboard import KeySource

    started = time.monotonic()
    data = resolve_paths(load_mapping(args.robot), args.robot.parent)
    if args.robot_option:
        data["robot_config"] = {**(data.get("robot_config") or {}), **key_values(args.robot_option, "--robot-option")}
    if args.no_realtime:
        data["realtime"] = False
    config = DeployConfig(
        policy=args.policy,
        server=server_config(data),
        speed_scale=args.speed_scale,
        shadow=ShadowLimits(args.shadow_s, args.max_intervention_rate) if args.shadow_s > 0 else None,
        duration_s=args.duration,
        confirm_timeout_s=args.confirm_timeout,
        log_dir=args.log_dir or default_log_dir(),
        log_fps=args.log_fps,
        log_segment_s=args.log_segment_s,
        view=args.view,
        policy_endpoint=args.policy_endpoint,
    )
    console = OperatorConsole(KeySource(args.keys, args.tty, what="rcs deploy operator keys"))
    console.connect()
    stop, estop = threading.Event(), threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: estop.set())

    def say(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    say(f"rcs deploy (pid {os.getpid()}: kill -USR1 {os.getpid()} latches the e-stop)")
    try:
        report = Deployment(config, console, say, stop, estop, started).run()
    finally:
        console.close()
    if args.json:
        sys.stdout.write(json_line(report.as_dict()))
    else:
        sys.stdout.write(_summary(report.as_dict()) + "\n")
    return {"done": 0, "estop": 1, "failed": 1}.get(report.outcome, 2)


def _summary(r: dict) -> str:
    """The report as a few lines."""
    lines = [f"{r['outcome']}: {r['reason']}"]
    if r["shadow"]:
        lines.append(f"shadow run: {r['shadow']}")
    if r["timings_s"]:
        lines.append("timings (s since the command): " + ", ".join(f"{k} {v:g}" for k, v in r["timings_s"].items()))
    if r["outcome"] != "refused" or r["engaged_s"]:
        lines.append(f"engaged {r['engaged_s']:.1f} s; interventions {r['interventions'] or 'none'}")
        lat = r["latency_ms"]
        if lat:
            lines.append(f"policy latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms ({lat['replies']} replies)")
        if r["loop"]:
            lines.append(f"loop lateness {r['loop']['lateness_us']} us, missed ticks {r['loop']['missed_ticks']}")
    log = r["log"]
    if log.get("root"):
        lost = f", lost {log['segments_lost']}" if log.get("segments_lost") else ""
        lines.append(
            f"run log: {log['root']}: {log.get('frames', 0)} frames in {log.get('segments_saved', 0)} segments{lost}"
        )
    elif log:
        lines.append(f"run log: {log.get('error') or log}")
    return "\n".join(lines)
