"""``rcs bench safety``: cost per tick of the arm safety filter on the simulated Panda, workspace check included.

The filter's workspace check proves the TCP stays inside the scene's box along the whole braking path of each
step, within a budget of forward-kinematics (FK) calls per tick (``ArmSafetyConfig.workspace_fk_budget``). This
benchmark drives the filter, built exactly as the control loop builds it (``arm_safety_config``), with commands
that hit its worst cases: far joint targets (long braking paths) and pushes through the box faces. For each
control rate it reports FK calls per tick and the filter's time per tick (p50, p99, max) and counts ticks whose
TCP left the box (must be 0).

The filter runs alone (no physics): the commanded joint positions are what the check reasons about.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from typing import Any

import numpy as np

import rcs
from rcs.control.task import arm_safety_config
from rcs.percentiles import spread
from rcs.safety.arm import ArmSafetyFilter
from rcs.types import Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0, 100.0], help="control rates (Hz)")
    parser.add_argument("--episodes", type=int, default=30, help="episodes per rate (half far targets, half pushes)")
    parser.add_argument("--seconds", type=float, default=1.5, help="commanded seconds per episode")
    parser.add_argument("--seed", type=int, default=0, help="seed of the targets")


def run(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("rcs.safety").setLevel(logging.ERROR)  # interventions are the point here, not news
    panda = rcs.make_robot("sim/panda")
    spec, box = panda.spec, panda.scene.workspace
    home = np.asarray(spec.home, dtype=np.float64)
    out: dict[str, Any] = {"robot": "sim/panda", "episodes": args.episodes, "seconds": args.seconds}
    for rate in args.rates:
        base = arm_safety_config(panda, rate)
        fk = base.tcp_position
        calls = [0]

        def counted(q: np.ndarray, fk: Any = fk, calls: list[int] = calls) -> np.ndarray:
            calls[0] += 1
            return fk(q)

        cfg = dataclasses.replace(base, tcp_position=counted)
        rng = np.random.default_rng(args.seed)
        per_tick, ms, outside = [], [], 0
        for episode in range(args.episodes):
            safety = ArmSafetyFilter(spec, cfg)
            safety.reset(np.concatenate([home, [0.5]]))
            if episode % 2 == 0:
                target = rng.uniform(spec.lower, spec.upper)  # far joint target: long braking paths
            else:
                target = home + rng.normal(0.0, 0.8, spec.dof)  # a hard push, often through a box face
            command = Command("joint_positions", np.concatenate([target, [0.5]]))
            for _ in range(int(args.seconds * rate)):
                calls[0] = 0
                t0 = time.perf_counter()
                values = safety.filter(command).values
                ms.append((time.perf_counter() - t0) * 1e3)
                per_tick.append(calls[0])
                if not box.contains(fk(values[: spec.dof])):
                    outside += 1
        out[f"{rate:g}_hz"] = {
            "ticks": len(per_tick),
            "fk_budget": cfg.workspace_fk_budget,
            "fk_calls_per_tick": spread(per_tick, digits=1),
            "ms_per_tick": spread(ms, digits=3),
            "control_period_ms": round(1e3 / rate, 3),
            "ticks_outside_box": outside,
        }
    return out
