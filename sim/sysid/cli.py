"""``rcs sysid``: calibrate a simulated robot from a joint log of a (real or shifted) robot.

    rcs sysid --collect outputs/sysid/log --shift reality-a --episodes 20   # a log of the shifted simulator
    rcs sysid --log outputs/sysid/log --out outputs/sysid/calibrated.json   # fit the simulator to it

Fit: replays the log's commands in the simulator (:mod:`sim.sysid.replay`) and searches the servo stiffness and
damping and the command latency with CMA-ES to minimise the joint-trajectory divergence (:mod:`sim.sysid.fit`);
writes the calibrated robot options (``--out``: ``robot``, ``robot_config``, each parameter with its standard error,
the divergence before and after) and prints a summary (``--json``: one object). On a real robot the log is
``rcs deploy``'s run log; ``--collect`` makes one from a simulated robot driven by a multi-sine excitation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rcs.cli.main import at_least, greater_than, json_line
from rcs.errors import RcsError

#: the line ``rcs --help`` shows for this command (an ``rcs.commands`` entry point)
SUMMARY = "calibrate a simulated robot from a joint log (collect one from a shifted sim)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--log", type=Path, help="fit: a joint log (LeRobot dataset in the run-log layout)")
    mode.add_argument("--collect", type=Path, help="write a joint log of the simulated robot driven by an excitation")
    parser.add_argument("--robot", default="sim/panda", help="the simulated robot to calibrate (default sim/panda)")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/sysid/calibrated.json"), help="fit: calibrated options"
    )
    parser.add_argument("--iterations", type=at_least(1), default=80, help="fit: CMA-ES generations (default 80)")
    parser.add_argument("--population", type=at_least(4), default=8, help="fit: replays per generation (default 8)")
    parser.add_argument(
        "--episodes", type=at_least(1), default=None, help="collect: 20; fit: the first N (default all)"
    )
    parser.add_argument("--shift", default=None, help="collect: a reality shift of the robot (rcs list)")
    parser.add_argument("--seconds", type=greater_than(0.0), default=4.0, help="collect: s per episode (default 4)")
    parser.add_argument("--rate", type=at_least(1), default=100, help="collect: log rate in Hz (default 100)")
    parser.add_argument(
        "--joint-noise", type=float, default=2e-4, help="collect: encoder noise added to the logged joints (rad, 2e-4)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the excitation or of the search (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    def say(text: str) -> None:
        if not args.json:
            sys.stderr.write(text + "\n")

    try:
        result = _collect(args, say) if args.collect is not None else _fit(args, say)
    except RcsError as e:
        raise SystemExit(f"rcs sysid: {e}") from None
    sys.stdout.write(json_line(result) if args.json else json.dumps(result, indent=2) + "\n")
    return 0


def _collect(args: argparse.Namespace, say: Any) -> dict[str, Any]:
    from rcs.shifts import make_shift
    from sim.sysid.excite import collect

    config = make_shift(args.shift).apply(args.robot, {}) if args.shift else {}
    episodes = args.episodes or 20
    say(f"rcs sysid: logging {episodes} excitations of {args.robot}{f' under {args.shift}' if args.shift else ''}")
    root = collect(
        args.collect, args.robot, config, episodes, args.seconds, args.rate, args.seed, joint_noise_rad=args.joint_noise
    )
    return {"log": str(root), "robot": args.robot, "shift": args.shift, "episodes": episodes, "rate_hz": args.rate}


def _fit(args: argparse.Namespace, say: Any) -> dict[str, Any]:
    from rcs.registry import make_robot
    from sim.sysid.fit import fit
    from sim.sysid.joint_log import read_joint_log
    from sim.sysid.parameters import ARM_PARAMETERS

    arm = make_robot(args.robot)
    spec = arm.spec
    sim = getattr(arm, "simulation", None)
    if sim is None:
        raise SystemExit(f"rcs sysid: --robot={args.robot}: not a simulated robot")
    sim.close()
    log = read_joint_log(args.log, spec, args.episodes)
    say(f"rcs sysid: {log.frames} frames in {len(log.states)} episodes at {log.fps} Hz; fitting {args.robot}")
    result = fit(
        log,
        args.robot,
        iterations=args.iterations,
        population=args.population,
        seed=args.seed,
        progress=lambda i, best: say(f"  generation {i}/{args.iterations}: divergence {best:.3g} rad"),
    )
    units = {p.name: p.unit for p in ARM_PARAMETERS}
    out = {
        "robot": args.robot,
        "robot_config": result.robot_config(),
        "parameters": {
            name: {"value": v, "std": result.std[name], "nominal": result.nominal[name], "unit": units[name]}
            for name, v in result.values.items()
        },
        "divergence_rad": {"before": result.divergence_before, "after": result.divergence_after},
        "not_identified": result.not_identified,
        "log": str(args.log),
        "frames": log.frames,
        "evaluations": result.evaluations,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    say(f"rcs sysid: divergence {result.divergence_before:.3g} -> {result.divergence_after:.3g} rad; wrote {args.out}")
    return out
