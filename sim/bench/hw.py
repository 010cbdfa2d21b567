"""``rcs bench hw``: control rate and command-to-motion latency of each physical robot driver against its emulator.

For every arm with a registered wire-protocol emulator (``rcs list``: emulators; ``--robots`` picks some; the
quadrotor links are ``rcs bench links``), the
emulator is started as its own process (its physics is the robot) and the driver connects to it exactly as to the
real robot. Then:

- ``loop``: the full control path of ``rcs robot`` (:class:`rcs.control.loop.ControlLoop` with the real-time setup
  where permitted, the :func:`rcs.control.task.make_policy_task` pipeline: read -> chunk executor -> watchdog ->
  safety filter -> write) paced at the rate of the robot's shipped config (``launch/robots/*.yaml``,
  ``rate_hz``) for ``--seconds``, following a slow sinusoid on the first joint: achieved rate, wake-up lateness
  (p50/p99/max, us), missed ticks and the time per phase (read/compute/write, us);
- ``max_rate_hz``: the same path unpaced (ticks as fast as the link allows): the bus or socket's ceiling;
- ``command_to_motion_ms``: a step of ``--step`` rad on the first joint sent straight through the driver, until
  the emulator's physics shows the joint moved by ``--motion-threshold`` rad (its side channel, polled): p50/max
  over ``--steps`` steps in alternating directions. It includes the wire transfer, the driver, the emulated
  servo's or controller's reaction and the side channel's own round trip (a fraction of a millisecond).

Reference run side by side (same emulator, same run): ``baselines`` holds, where one exists, the vendor stack's own
loop doing the same read + write per tick (``hw/so101``: lerobot's ``SO101Follower.get_observation`` +
``send_action``, :mod:`sim.bench.baselines.lerobot_so101`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

import rcs
from rcs.registry import emulators, start_emulator
from rcs.remote.config import load_mapping
from sim.bench.sway import sway_loop

log = logging.getLogger(__name__)

LAUNCH_ROBOTS = Path(__file__).resolve().parents[2] / "launch" / "robots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robots", nargs="+", default=None, help="emulated robots (default: every registered one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of paced control per robot")
    parser.add_argument("--steps", type=int, default=10, help="step commands for the latency measurement")
    parser.add_argument("--step", type=float, default=0.05, help="step size (rad)")
    parser.add_argument("--motion-threshold", type=float, default=0.003, help="motion that counts as moved (rad)")


def shipped_rate_hz(robot: str) -> float | None:
    """``rate_hz`` of the robot's config in ``launch/robots/`` (the rate it is deployed at), if one exists."""
    for path in sorted(LAUNCH_ROBOTS.glob("*.yaml")):
        data = load_mapping(str(path))
        if data.get("robot") == robot and "rate_hz" in data:
            return float(data["rate_hz"])
    return None


def _loop(arm: Any, rate_hz: float, seconds: float, paced: bool) -> dict[str, Any]:
    """The control path of ``rcs robot`` on ``arm`` for ``seconds`` (:func:`sim.bench.sway.sway_loop`)."""
    stats, report = sway_loop(arm, rate_hz, seconds, paced)
    return {
        "rate_hz": rate_hz if paced else None,
        "achieved_rate_hz": round(stats["achieved_rate_hz"], 1),
        "lateness_us": stats["lateness_us"],
        "missed_ticks": stats["missed_ticks"],
        "rt_scheduling": stats["rt_scheduling"],
        "phase_us": {k: v for k, v in stats["phase_us"].items() if k != "advance"},
        "write_errors": report.get("write_errors", 0),
    }


def _command_to_motion(arm: Any, emulator: Any, steps: int, step: float, threshold: float) -> dict[str, Any]:
    latencies = []
    for k in range(steps):
        q = arm.read().joint_positions
        before = np.asarray(emulator.joint_positions(), dtype=float)[0]
        target = q.copy()
        target[0] += step if k % 2 == 0 else -step
        t0 = time.monotonic()
        arm.command_joint_positions(target)
        while time.monotonic() - t0 < 2.0:
            if abs(float(np.asarray(emulator.joint_positions(), dtype=float)[0]) - before) >= threshold:
                latencies.append((time.monotonic() - t0) * 1000.0)
                break
        time.sleep(0.3)  # settle before the next step
    if not latencies:
        return {"steps": steps, "moved": 0}
    a = np.array(latencies)
    return {
        "steps": steps,
        "moved": len(latencies),
        "p50": round(float(np.percentile(a, 50)), 2),
        "max": round(float(a.max()), 2),
    }


#: the vendor stack's own loop run side by side with a driver, where one exists: robot -> (label, "module:function");
#: the function takes the emulator's ``robot_config`` and the seconds to run, and returns its figures.
VENDOR_LOOPS: dict[str, tuple[str, str]] = {
    "hw/so101": ("lerobot_so101_follower", "sim.bench.baselines.lerobot_so101:loop_rate"),
}


def _baseline(robot: str, config: dict[str, Any], seconds: float) -> dict[str, Any] | None:
    if robot not in VENDOR_LOOPS:
        return None
    label, target = VENDOR_LOOPS[robot]
    module, function = target.split(":")
    return {label: getattr(importlib.import_module(module), function)(config, seconds)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sim.bench.links import LINKS  # quadrotor links: their own bench (setpoint latency, telemetry age)

    names = args.robots or [n for n in emulators.names() if n not in LINKS]
    out: dict[str, Any] = {"seconds": args.seconds, "robots": {}}
    for name in names:
        log.info("rcs bench hw: %s: starting its emulator", name)
        rate = shipped_rate_hz(name)
        with contextlib.closing(start_emulator(name)) as emulator:
            arm = rcs.make_robot(name, **emulator.robot_config)
            with arm:
                result: dict[str, Any] = {"emulator": type(emulator).__name__}
                if rate is not None:
                    result["loop"] = _loop(arm, rate, args.seconds, paced=True)
                result["max_rate_hz"] = _loop(arm, 1000.0, min(args.seconds, 3.0), paced=False)["achieved_rate_hz"]
                result["command_to_motion_ms"] = _command_to_motion(
                    arm, emulator, args.steps, args.step, args.motion_threshold
                )
            baseline = _baseline(name, emulator.robot_config, args.seconds)
            if baseline is not None:
                result["baselines"] = baseline
        out["robots"][name] = result
    return out
