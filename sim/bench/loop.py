"""``rcs bench loop``: wake-up lateness of the control loop on a simulated robot under CPU load.

The benchmark starts a CPU-heavy process (a busy loop in a subprocess of this interpreter), runs the full
policy pipeline (chunk executor -> watchdog -> safety filter -> simulated robot) at ``--rate`` for
``--seconds`` with our absolute-deadline pacing and real-time setup, then runs the *same* loop for the same
duration paced the way two widely used stacks pace theirs, and stops the hog.

Baselines (reimplemented faithfully, see the pacer docstrings):

- ``lerobot_record``: lerobot's ``record_loop`` (``src/lerobot/scripts/lerobot_record.py``) measures the loop
  body from ``start_loop_t = time.perf_counter()`` and calls ``precise_sleep(1 / fps - dt_s)`` (formerly
  ``busy_wait``), which on Linux is ``time.sleep(seconds)`` when positive: relative pacing, no deadline.
- ``openpi_runtime``: openpi's ``Runtime._run_episode`` (``packages/openpi-client/src/openpi_client/runtime/
  runtime.py``) sleeps ``step_time - (time.time() - last_step_time)`` after each step and then sets
  ``last_step_time = time.time()``.
- ``rcs_no_rt``: our absolute-deadline pacing without any real-time setup, to separate the two effects.

Lateness is measured against each method's own intended wake-up time (for the relative pacers: the
previous reference time plus one period), so drift is reported separately (``achieved_rate_hz``, ``drift_ms``).
An overrun is a wake-up later than half a period.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import rcs
from rcs.control.chunking import ActionChunk
from rcs.control.loop import (
    NO_RT,
    AbsolutePacer,
    ControlLoop,
    LoopStats,
    Pacer,
    RtConfig,
    Wake,
)
from rcs.control.task import PolicyTask, make_policy_task
from rcs.devices import Arm, Simulated

log = logging.getLogger(__name__)

#: Targets of the issue: p99 lateness, max lateness (us) and overruns.
TARGETS = {"p99_us": 100.0, "max_us": 1000.0, "overruns": 0}

_HOG_CODE = "x = 0\nwhile True:\n    x = (x + 1) % 1000003\n"


# ---------------------------------------------------------------------------------------------------------
# Baseline pacers
# ---------------------------------------------------------------------------------------------------------


class LerobotRecordPacer:
    """lerobot ``record_loop`` pacing: sleep ``1/fps - (perf_counter() - start_loop_t)`` after the body.

    Reimplements, from ``lerobot/scripts/lerobot_record.py`` (0.4-0.6)::

        start_loop_t = time.perf_counter()
        ...  # observation, policy/teleop, send_action, dataset
        dt_s = time.perf_counter() - start_loop_t
        precise_sleep(1 / fps - dt_s)   # Linux: time.sleep(seconds) if seconds > 0 (older: busy_wait)

    The intended start of the next iteration is ``start_loop_t + 1/fps``.
    """

    name = "lerobot_record"
    measures_lateness = True

    def __init__(self) -> None:
        self._fps = 1.0
        self._start_loop_t: float | None = None

    def start(self, now_ns: int, period_ns: int) -> None:
        """Reset; ``fps`` is the loop rate."""
        self._fps = 1e9 / period_ns
        self._start_loop_t = None

    def wait(self) -> Wake:
        """Sleep ``1/fps`` minus the time since the previous loop start (none before the first)."""
        if self._start_loop_t is None:
            self._start_loop_t = time.perf_counter()
            now = time.perf_counter_ns()
            return Wake(now, now)
        dt_s = time.perf_counter() - self._start_loop_t
        seconds = 1 / self._fps - dt_s
        if seconds > 0:
            time.sleep(seconds)
        intended = self._start_loop_t + 1 / self._fps
        self._start_loop_t = time.perf_counter()
        return Wake(int(intended * 1e9), int(self._start_loop_t * 1e9))


class OpenpiRuntimePacer:
    """openpi ``Runtime._run_episode`` pacing: sleep ``step_time - dt`` measured with ``time.time()``.

    Reimplements, from ``openpi_client/runtime/runtime.py``::

        step_time = 1 / self._max_hz
        last_step_time = time.time()
        while self._in_episode:
            self._step()
            now = time.time()
            dt = now - last_step_time
            if dt < step_time:
                time.sleep(step_time - dt)
                last_step_time = time.time()
            else:
                last_step_time = now

    The intended start of the next step is ``last_step_time + step_time``.
    """

    name = "openpi_runtime"
    measures_lateness = True

    def __init__(self) -> None:
        self._step_time = 1.0
        self._last: float | None = None

    def start(self, now_ns: int, period_ns: int) -> None:
        """Reset; ``step_time`` is the period."""
        self._step_time = period_ns / 1e9
        self._last = None

    def wait(self) -> Wake:
        """Sleep ``step_time - dt`` since the last step, as openpi's runtime does."""
        if self._last is None:
            self._last = time.time()
            first = int(self._last * 1e9)
            return Wake(first, first)
        intended = self._last + self._step_time
        now = time.time()
        dt = now - self._last
        if dt < self._step_time:
            time.sleep(self._step_time - dt)
            self._last = time.time()
        else:
            self._last = now
        return Wake(int(intended * 1e9), int(self._last * 1e9))


# ---------------------------------------------------------------------------------------------------------
# Load and workload
# ---------------------------------------------------------------------------------------------------------


@contextmanager
def cpu_hogs(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run ``count`` busy-looping Python processes for the duration of the block (always stopped)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen([sys.executable, "-c", _HOG_CODE], stdin=subprocess.DEVNULL, start_new_session=True)
            )
        time.sleep(0.2 if count else 0.0)  # let them get going
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=2.0)


class _FeedingTask:
    """Wraps a :class:`PolicyTask` and submits a synthetic chunk every ``every`` ticks (in the loop thread).

    The chunks sway the first two joints sinusoidally around home (amplitudes from the spec's ranges), so
    the executor, watchdog and safety filter all do their normal per-tick work.
    """

    def __init__(self, task: PolicyTask, arm: Arm, rate_hz: float, every: int, horizon: int = 25) -> None:
        self.task = task
        self.every = every
        self.horizon = horizon
        self.dt = 1.0 / rate_hz
        spec = arm.spec
        self.home = np.asarray(spec.home, dtype=np.float64)
        self.amp = np.zeros(spec.dof)
        self.amp[: min(2, spec.dof)] = 0.05 * (spec.upper - spec.lower)[: min(2, spec.dof)]
        self.grip = (0.5,) if spec.gripper is not None else ()
        self.policy_dt = every * self.dt / 5.0
        self._t0: int | None = None

    def read(self, tick: int) -> Any:
        return self.task.read(tick)

    def compute(self, tick: int, state: Any) -> Any:
        if tick % self.every == 0:
            if self._t0 is None:
                self._t0 = tick  # the sway starts at home on the first chunk
            t = (tick - self._t0 + np.arange(self.horizon) * self.policy_dt / self.dt) * self.dt
            q = self.home + self.amp * np.sin(2 * np.pi * 0.5 * t)[:, None]
            actions = np.hstack([q, np.tile(self.grip, (self.horizon, 1))]) if self.grip else q
            self.task.executor.submit(
                ActionChunk(tick, actions, self.task.executor.names, self.policy_dt, self.dt, time.monotonic())
            )
        return self.task.compute(tick, state)

    def write(self, tick: int, command: Any) -> None:
        self.task.write(tick, command)


def measure(
    robot: Arm, rate_hz: float, seconds: float, pacer: Pacer | None, rt: RtConfig
) -> tuple[LoopStats, dict[str, Any]]:
    """Run the pipeline on ``robot`` for ``seconds`` with ``pacer`` and ``rt``; return loop stats and task report."""
    if isinstance(robot, Simulated):
        robot.reset(seed=0)
    task = make_policy_task(robot, rate_hz)  # default safety: spec limits + the scene workspace
    feeder = _FeedingTask(task, robot, rate_hz, every=max(1, int(round(rate_hz / 10))))
    loop = ControlLoop(feeder, rate_hz, robot=robot, paced=True, rt=rt, pacer=pacer, log_every_s=0)
    loop.run(ticks=2)  # settle (first-tick allocations) before engaging
    task.engage()
    stats = loop.run(duration_s=seconds)
    return stats, task.report()


def _summary(stats: LoopStats, report: dict[str, Any]) -> dict[str, Any]:
    period_ms = 1e3 / stats.rate_hz
    return {
        "ticks": stats.ticks,
        "lateness_us": stats.lateness_us,
        "overruns": stats.overruns,
        "missed_ticks": stats.missed_ticks,
        "rt_scheduling": stats.rt_scheduling,
        "achieved_rate_hz": stats.achieved_rate_hz,
        "drift_ms": round(stats.wall_s * 1e3 - (stats.ticks + stats.missed_ticks) * period_ms, 2),
        "phase_us": stats.phase_us,
        "safety_interventions": report["safety_interventions"],
        "starved_ticks": report["starved_ticks"],
    }


# ---------------------------------------------------------------------------------------------------------
# CLI entry points
# ---------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rcs bench loop``."""
    parser.add_argument("--rate", type=float, default=500.0, help="control rate (Hz)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each measured run (s)")
    parser.add_argument("--robot", default="sim/panda", help="registered simulated arm")
    parser.add_argument("--hogs", type=int, default=1, help="concurrent CPU-heavy processes")
    parser.add_argument("--priority", type=int, default=80, help="SCHED_FIFO priority of the loop thread")
    parser.add_argument("--cpus", type=int, nargs="*", default=None, help="pin the loop thread to these CPUs")
    parser.add_argument("--no-rt", action="store_true", help="measure our loop without real-time setup")
    parser.add_argument("--no-baselines", action="store_true", help="skip the lerobot/openpi pacing baselines")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready result."""
    robot = rcs.make_robot(args.robot)
    if not isinstance(robot, Arm):
        raise SystemExit(f"--robot {args.robot!r} is not an arm")
    rt = NO_RT if args.no_rt else RtConfig(fifo_priority=args.priority, cpus=tuple(args.cpus) if args.cpus else None)
    runs: list[tuple[str, Pacer | None, RtConfig]] = [("rcs", AbsolutePacer(), rt)]
    if not args.no_baselines:
        runs += [
            ("lerobot_record", LerobotRecordPacer(), NO_RT),
            ("openpi_runtime", OpenpiRuntimePacer(), NO_RT),
            ("rcs_no_rt", AbsolutePacer(), NO_RT),
        ]
    results: dict[str, dict[str, Any]] = {}
    try:
        robot.connect()
        with cpu_hogs(args.hogs):
            for name, pacer, rt_cfg in runs:
                log.info("bench loop: %s for %.1f s at %.0f Hz", name, args.seconds, args.rate)
                results[name] = _summary(*measure(robot, args.rate, args.seconds, pacer, rt_cfg))
    finally:
        robot.close()
        sim = getattr(robot, "simulation", None)
        if sim is not None and hasattr(sim, "close"):
            sim.close()
    ours = results.pop("rcs")
    lat = ours["lateness_us"]
    out: dict[str, Any] = {
        "rate_hz": args.rate,
        "ticks": ours["ticks"],
        "lateness_us": lat,
        "overruns": ours["overruns"],
        "rt_scheduling": ours["rt_scheduling"],
        "missed_ticks": ours["missed_ticks"],
        "achieved_rate_hz": ours["achieved_rate_hz"],
        "drift_ms": ours["drift_ms"],
        "phase_us": ours["phase_us"],
        "safety_interventions": ours["safety_interventions"],
        "starved_ticks": ours["starved_ticks"],
        "robot": args.robot,
        "seconds": args.seconds,
        "hogs": args.hogs,
        "targets_met": {
            "p99": lat["p99"] <= TARGETS["p99_us"],
            "max": lat["max"] <= TARGETS["max_us"],
            "overruns": ours["overruns"] <= TARGETS["overruns"],
        },
    }
    if results:
        out["baselines"] = results
    return out
