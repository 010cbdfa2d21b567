"""The benchmarks' control workload: the control path of ``rcs robot`` on an arm, following a slow sway.

:func:`sway_loop` runs :class:`rcs.control.loop.ControlLoop` over the :func:`rcs.control.task.make_policy_task`
pipeline (read -> chunk executor -> watchdog -> safety filter -> write). Every 10 ticks it submits a 20-tick chunk
that holds the arm's start pose except joint 0, which follows ``0.1 sin(2 pi 0.25 t)`` rad: small, slow and inside
every arm's limits, so what is measured is the path, not the safety filter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rcs.control.chunking import ActionChunk
from rcs.control.loop import ControlLoop, RtConfig
from rcs.control.task import make_policy_task


def sway_loop(
    arm: Any, rate_hz: float, seconds: float, paced: bool = True, on_read: Callable[[], None] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the sway for ``seconds`` at ``rate_hz`` (or unpaced); ``on_read`` runs before each state read (e.g.
    reading cameras, as an observation would). A simulated ``arm`` is advanced by the loop. Returns the loop's
    statistics (:meth:`rcs.control.loop.LoopStats.as_dict`) and the task's report."""
    task = make_policy_task(arm, rate_hz)
    dt = 1.0 / rate_hz
    state = arm.read()
    hold = np.concatenate([state.joint_positions, [state.gripper] if arm.spec.gripper else []])

    class Driver:
        def read(self, tick: int) -> Any:
            if on_read is not None:
                on_read()
            return task.read(tick)

        def compute(self, tick: int, s: Any) -> Any:
            if tick == 0:
                task.engage()
            if tick % 10 == 0:
                t = tick * dt + np.arange(20) * dt
                chunk = np.tile(hold, (20, 1))
                chunk[:, 0] += 0.1 * np.sin(2 * math.pi * 0.25 * t)
                task.executor.submit(ActionChunk(tick, chunk, task.executor.names, dt, dt, time.monotonic()))
            return task.compute(tick, s)

        def write(self, tick: int, command: Any) -> None:
            task.write(tick, command)

    loop = ControlLoop(Driver(), rate_hz, robot=arm, paced=paced, rt=RtConfig() if paced else None, log_every_s=0.0)
    return loop.run(ticks=int(seconds * rate_hz)).as_dict(), task.report()
