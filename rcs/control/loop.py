"""A fixed-rate control loop that drives any registered robot.

Scheduling is by absolute deadline: tick ``k`` is due at ``t0 + k * period`` on ``CLOCK_MONOTONIC`` and the
loop sleeps until that instant (``clock_nanosleep(TIMER_ABSTIME)`` through libc), so time spent in a tick
never accumulates into drift. A tick that wakes more than a whole period late skips the missed deadlines
(counted as ``missed_ticks``) instead of bursting to catch up.

Real-time setup (:func:`realtime`) asks for ``SCHED_FIFO``, locks memory (``mlockall``), optionally pins
the loop thread to CPUs, shrinks the timer slack and pauses the garbage collector; each step that is not
permitted falls back with a logged warning, and :class:`LoopStats` says what was in effect.

Per tick the loop calls ``task.read``, ``task.compute`` and ``task.write`` and, for simulated robots
(:class:`rcs.devices.Simulated`), ``robot.advance(period)``; it records wake-up lateness and the time spent in
each phase. ``paced=False`` runs the same ticks as fast as possible (tests, evaluation).

:mod:`rcs.control.task` binds the loop to a device (executor -> watchdog -> safety filter -> robot).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from rcs.control.priorities import LOOP_PRIORITY, enable_fifo
from rcs.devices import Simulated
from rcs.errors import ConfigError, RcsError
from rcs.heap import frozen_heap

log = logging.getLogger(__name__)

#: Rates above this are accepted with a warning (the loop is characterized up to 500 Hz).
CHARACTERIZED_RATE_HZ = 500.0

# ---------------------------------------------------------------------------------------------------------
# Real-time setup
# ---------------------------------------------------------------------------------------------------------

_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30
_MCL_CURRENT, _MCL_FUTURE = 1, 2
_CLOCK_MONOTONIC, _TIMER_ABSTIME = 1, 1


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


_LIBC = _libc()


@dataclass(frozen=True)
class RtConfig:
    """What real-time setup to attempt for the loop thread.

    Attributes:
        fifo_priority: ``SCHED_FIFO`` priority (1-99) for the loop thread, or ``None`` to keep the default
            scheduler.
        lock_memory: ``mlockall(MCL_CURRENT | MCL_FUTURE)`` so page faults cannot stall a tick.
        cpus: CPUs to pin the loop thread to, or ``None`` to leave affinity alone.
        disable_gc: pause the cyclic garbage collector while the loop runs (reference counting still frees
            memory; objects alive at start are frozen out of later collections).
        timer_slack_ns: timer slack of the loop thread (ns) for non-real-time fallback; ``None`` leaves it.
        switch_interval_s: interpreter thread switch interval while running (how long the loop thread can
            wait for the GIL held by another Python thread), or ``None`` to leave it.
    """

    fifo_priority: int | None = LOOP_PRIORITY
    lock_memory: bool = True
    cpus: tuple[int, ...] | None = None
    disable_gc: bool = True
    timer_slack_ns: int | None = 1
    switch_interval_s: float | None = 0.0005

    def __post_init__(self) -> None:
        if self.fifo_priority is not None and not 1 <= self.fifo_priority <= 99:
            raise ConfigError(f"fifo_priority={self.fifo_priority} must be in 1..99")


#: No real-time setup at all (what a plain Python loop gets).
NO_RT = RtConfig(fifo_priority=None, lock_memory=False, disable_gc=False, timer_slack_ns=None, switch_interval_s=None)


@dataclass
class RtStatus:
    """What real-time setup is in effect.

    Attributes:
        fifo: ``SCHED_FIFO`` active for the loop thread.
        priority: its priority (None without FIFO).
        memory_locked: ``mlockall`` succeeded.
        cpus: CPUs the loop thread is pinned to (None: not pinned).
        gc_paused: cyclic GC paused.
        warnings: one message per requested step that fell back.
    """

    fifo: bool = False
    priority: int | None = None
    memory_locked: bool = False
    cpus: tuple[int, ...] | None = None
    gc_paused: bool = False
    warnings: list[str] = field(default_factory=list)


def lock_memory() -> tuple[bool, str | None]:
    """``mlockall(MCL_CURRENT | MCL_FUTURE)``. Returns (ok, warning)."""
    if _LIBC is None:
        return False, "mlockall unavailable (no libc found); memory not locked"
    if _LIBC.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        err = ctypes.get_errno()
        return False, (
            f"mlockall failed ({os.strerror(err)}); page faults may stall ticks. Needs CAP_IPC_LOCK or a memlock limit."
        )
    return True, None


def pin_cpus(cpus: tuple[int, ...]) -> tuple[bool, str | None]:
    """Pin the calling thread to ``cpus``. Returns (ok, warning)."""
    try:
        os.sched_setaffinity(0, set(cpus))
        return True, None
    except (OSError, AttributeError, ValueError) as e:
        return False, f"cannot pin to CPUs {cpus} ({e}); affinity left unchanged"


def _timer_slack(ns: int | None) -> int | None:
    """Set the thread's timer slack; return the previous value (None if unchanged/unsupported)."""
    if ns is None or _LIBC is None or not sys.platform.startswith("linux"):
        return None
    old = _LIBC.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
    if old < 0 or _LIBC.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0) != 0:
        return None
    return int(old)


@contextmanager
def realtime(config: RtConfig) -> Iterator[RtStatus]:
    """Apply ``config`` to the calling thread for the duration of the ``with`` block, then undo it.

    Every step that is not permitted is skipped with a logged warning (recorded in the yielded status).
    """
    status = RtStatus()
    undo: list[Callable[[], None]] = []

    def note(ok: bool, warning: str | None) -> bool:
        if warning:
            status.warnings.append(warning)
            log.warning(warning)
        return ok

    try:
        if config.lock_memory:
            status.memory_locked = note(*lock_memory())
            if status.memory_locked and _LIBC is not None:
                undo.append(_LIBC.munlockall)
        if config.cpus is not None:
            old_cpus = os.sched_getaffinity(0)
            if note(*pin_cpus(config.cpus)):
                status.cpus = tuple(config.cpus)
                undo.append(lambda: os.sched_setaffinity(0, old_cpus))
        if config.fifo_priority is not None:
            old_policy, old_param = os.sched_getscheduler(0), os.sched_getparam(0)
            if note(*enable_fifo(config.fifo_priority)):
                status.fifo, status.priority = True, config.fifo_priority
                undo.append(lambda: os.sched_setscheduler(0, old_policy, old_param))
        old_slack = _timer_slack(config.timer_slack_ns)
        if old_slack is not None and _LIBC is not None:
            undo.append(lambda: _LIBC.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(old_slack), 0, 0, 0))
        if config.switch_interval_s is not None:
            old_interval = sys.getswitchinterval()
            sys.setswitchinterval(config.switch_interval_s)
            undo.append(lambda: sys.setswitchinterval(old_interval))
        if config.disable_gc and gc.isenabled():
            heap = ExitStack()
            heap.enter_context(frozen_heap(disable=True))
            status.gc_paused = True
            undo.append(heap.close)
        yield status
    finally:
        for fn in reversed(undo):
            try:
                fn()
            except OSError as e:  # restoring must never mask the loop's own exception
                log.warning("could not undo real-time setting: %s", e)


# ---------------------------------------------------------------------------------------------------------
# Sleeping until an absolute deadline
# ---------------------------------------------------------------------------------------------------------


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _make_clock_nanosleep() -> Callable[[int], None] | None:
    if _LIBC is None or not sys.platform.startswith("linux"):
        return None
    try:
        fn = _LIBC.clock_nanosleep
    except AttributeError:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec), ctypes.c_void_p]
    fn.restype = ctypes.c_int

    def sleep_until(deadline_ns: int) -> None:
        ts = _Timespec(deadline_ns // 1_000_000_000, deadline_ns % 1_000_000_000)
        while fn(_CLOCK_MONOTONIC, _TIMER_ABSTIME, ctypes.byref(ts), None) == 4:  # EINTR: sleep again
            pass

    return sleep_until


def _sleep_until_relative(deadline_ns: int) -> None:
    remaining = deadline_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)


#: Ways to sleep until an absolute ``time.monotonic_ns()`` deadline, best first.
SLEEPERS: dict[str, Callable[[int], None]] = {
    name: fn
    for name, fn in (("clock_nanosleep", _make_clock_nanosleep()), ("sleep", _sleep_until_relative))
    if fn is not None
}


def sleep_until(deadline_ns: int, spin_ns: int = 0, sleeper: str | None = None) -> None:
    """Sleep until ``deadline_ns`` (``time.monotonic_ns()`` clock).

    Sleeps until ``spin_ns`` before the deadline, then busy-waits the rest (``spin_ns = 0``: no spin; with
    ``SCHED_FIFO`` a plain absolute sleep is already accurate to tens of microseconds here).
    """
    fn = SLEEPERS[sleeper or next(iter(SLEEPERS))]
    if spin_ns > 0:
        fn(deadline_ns - spin_ns)
        while time.monotonic_ns() < deadline_ns:
            pass
    else:
        fn(deadline_ns)


# ---------------------------------------------------------------------------------------------------------
# Pacers: when the next tick starts
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wake:
    """One wake-up of the loop.

    Attributes:
        intended_ns: when the pacer meant to wake (``time.monotonic_ns()``).
        woke_ns: when it woke.
        skipped: whole periods skipped because the wake-up was more than a period late.
    """

    intended_ns: int
    woke_ns: int
    skipped: int = 0


class Pacer(Protocol):
    """Decides when each tick starts; ``wait`` is called before every tick."""

    name: str
    measures_lateness: bool

    def start(self, now_ns: int, period_ns: int) -> None:
        """Begin pacing at ``now_ns`` (``time.monotonic_ns()``) with a period of ``period_ns``."""

    def wait(self) -> Wake:
        """Block until the next tick should start; return when it was meant to and when it did."""


class AbsolutePacer:
    """Absolute deadlines ``t0 + k * period``: no drift; more than a period late skips missed deadlines."""

    name = "absolute"
    measures_lateness = True

    def __init__(self, spin_ns: int = 0, sleeper: str | None = None) -> None:
        self.spin_ns = spin_ns
        self.sleeper = sleeper
        self._t0 = 0
        self._period = 1
        self._k = 0

    def start(self, now_ns: int, period_ns: int) -> None:
        """The first deadline is one period after ``now_ns``."""
        self._t0, self._period, self._k = now_ns, period_ns, 0

    def wait(self) -> Wake:
        """Sleep until the next deadline; skip deadlines already more than a period in the past."""
        self._k += 1
        deadline = self._t0 + self._k * self._period
        sleep_until(deadline, self.spin_ns, self.sleeper)
        woke = time.monotonic_ns()
        skipped = max(0, (woke - deadline) // self._period)
        self._k += skipped
        return Wake(deadline, woke, int(skipped))


class UnpacedPacer:
    """No waiting at all: ticks run back to back (simulation time still advances by one period per tick)."""

    name = "unpaced"
    measures_lateness = False

    def start(self, now_ns: int, period_ns: int) -> None:
        """Nothing to set up."""
        pass

    def wait(self) -> Wake:
        """Return at once."""
        now = time.monotonic_ns()
        return Wake(now, now)


class ScaledPacer:
    """Ticks ``period / factor`` of wall time apart and never skips: a late tick starts at once and the next
    deadline counts from it, so a simulated robot advances exactly one period per tick (the loop's default pacer
    skips deadlines when late and then advances by all of them with one command held: with a simulator slower
    than real time each tick would advance more than the last, without bound)."""

    name = "scaled"
    measures_lateness = True

    def __init__(self, factor: float) -> None:
        if not 0.0 < factor <= 1.0:
            raise ConfigError(f"realtime_factor={factor}: expected 0 < realtime_factor <= 1")
        self.factor = factor
        self._period = 1
        self._next = 0

    def start(self, now_ns: int, period_ns: int) -> None:
        """The first deadline is one scaled period after ``now_ns``."""
        self._period = max(1, int(round(period_ns / self.factor)))
        self._next = now_ns + self._period

    def wait(self) -> Wake:
        """Sleep until the next deadline (none if it passed); never reports skipped periods."""
        deadline = self._next
        sleep_until(deadline)
        woke = time.monotonic_ns()
        self._next = max(deadline, woke) + self._period
        return Wake(deadline, woke, 0)


# ---------------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------------

PHASES = ("read", "compute", "write", "advance")


@dataclass(frozen=True)
class LoopStats:
    """Timing of a loop run (all durations in microseconds).

    Attributes:
        rate_hz: requested rate.
        ticks: ticks executed.
        paced: whether ticks were paced in real time.
        pacer: name of the pacing method.
        lateness_us: wake-up lateness ``p50``, ``p99``, ``max`` (0 for unpaced runs).
        overruns: wake-ups later than half a period.
        missed_ticks: deadlines skipped because a wake-up was more than a period late.
        rt_scheduling: ``SCHED_FIFO`` was in effect.
        memory_locked: ``mlockall`` was in effect.
        cpus: CPUs the loop thread was pinned to.
        phase_us: per phase (read, compute, write, advance): ``mean``, ``p99``, ``max``.
        wall_s: wall-clock duration of the run (s).
        achieved_rate_hz: ticks per wall-clock second.
        warnings: real-time setup fallbacks.
    """

    rate_hz: float
    ticks: int
    paced: bool
    pacer: str
    lateness_us: dict[str, float]
    overruns: int
    missed_ticks: int
    rt_scheduling: bool
    memory_locked: bool
    cpus: tuple[int, ...] | None
    phase_us: dict[str, dict[str, float]]
    wall_s: float
    achieved_rate_hz: float
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        out = asdict(self)
        out["cpus"] = list(self.cpus) if self.cpus is not None else None
        out["warnings"] = list(self.warnings)
        return out


class _Recorder:
    """Per-tick timings in preallocated ring buffers (no allocation per tick)."""

    def __init__(self, capacity: int, period_ns: int) -> None:
        self.capacity = capacity
        self.period_ns = period_ns
        self.lateness = np.zeros(capacity, dtype=np.int64)
        self.phases = np.zeros((len(PHASES), capacity), dtype=np.int64)
        self.n = 0
        self.max_lateness = 0
        self.overruns = 0
        self.missed = 0
        self.phase_max = np.zeros(len(PHASES), dtype=np.int64)
        self.phase_sum = np.zeros(len(PHASES), dtype=np.float64)

    def add(self, lateness_ns: int, skipped: int, t: tuple[int, int, int, int, int]) -> None:
        i = self.n % self.capacity
        self.lateness[i] = lateness_ns
        if lateness_ns > self.max_lateness:
            self.max_lateness = lateness_ns
        if 2 * lateness_ns > self.period_ns:
            self.overruns += 1
        self.missed += skipped
        col = self.phases[:, i]
        col[0], col[1], col[2], col[3] = t[1] - t[0], t[2] - t[1], t[3] - t[2], t[4] - t[3]
        np.maximum(self.phase_max, col, out=self.phase_max)
        self.phase_sum += col
        self.n += 1

    def window(self, last: int | None = None) -> slice | np.ndarray:
        n = min(self.n, self.capacity)
        if last is None or last >= n:
            return slice(0, n)
        end = self.n % self.capacity
        return np.arange(end - last, end) % self.capacity

    def lateness_us(self, last: int | None = None, with_max: bool = True) -> dict[str, float]:
        sel = self.lateness[self.window(last)]
        if len(sel) == 0:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}
        p50, p99 = np.percentile(sel, [50, 99])
        mx = self.max_lateness if with_max else int(sel.max())
        return {"p50": round(float(p50) / 1e3, 2), "p99": round(float(p99) / 1e3, 2), "max": round(mx / 1e3, 2)}

    def phase_us(self) -> dict[str, dict[str, float]]:
        sel = self.phases[:, self.window()]
        out = {}
        for j, name in enumerate(PHASES):
            p99 = float(np.percentile(sel[j], 99)) if sel.shape[1] else 0.0
            mean = float(self.phase_sum[j]) / self.n if self.n else 0.0
            mx = float(self.phase_max[j])
            out[name] = {"mean": round(mean / 1e3, 2), "p99": round(p99 / 1e3, 2), "max": round(mx / 1e3, 2)}
        return out


# ---------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------


class ControlTask(Protocol):
    """One tick of work, split into the three timed phases."""

    def read(self, tick: int) -> Any:
        """Read the device (observation for this tick)."""
        ...

    def compute(self, tick: int, observation: Any) -> Any:
        """Compute the command for this tick."""
        ...

    def write(self, tick: int, command: Any) -> None:
        """Send the command to the device."""
        ...


class ControlLoop:
    """Runs a :class:`ControlTask` at a fixed rate.

    Args:
        task: the per-tick work.
        rate_hz: tick rate (Hz).
        robot: the device; if it is :class:`rcs.devices.Simulated` the loop advances it by one period per
            tick (by the skipped periods too, so simulated time tracks the tick grid).
        paced: run in real time (True) or as fast as possible (False).
        rt: real-time setup for paced runs (``None``: none). Unpaced runs never change scheduling.
        pacer: how ticks are paced (default: :class:`AbsolutePacer`); ignored when ``paced`` is False.
        stats_capacity: ticks kept for percentiles (a ring buffer; maxima and counts cover the whole run).
        log_every_s: period (s of ticks) of the timing summary logged at INFO (0: never).
    """

    def __init__(
        self,
        task: ControlTask,
        rate_hz: float,
        *,
        robot: object | None = None,
        paced: bool = True,
        rt: RtConfig | None = RtConfig(),
        pacer: Pacer | None = None,
        stats_capacity: int = 1 << 17,
        log_every_s: float = 10.0,
    ) -> None:
        if not (rate_hz > 0 and np.isfinite(rate_hz)):
            raise ConfigError(f"rate_hz={rate_hz} must be a positive number")
        if rate_hz > CHARACTERIZED_RATE_HZ:
            log.warning("rate_hz=%s is above the characterized %s Hz", rate_hz, CHARACTERIZED_RATE_HZ)
        self.task = task
        self.rate_hz = float(rate_hz)
        self.period_ns = int(round(1e9 / rate_hz))
        self.period_s = self.period_ns / 1e9
        self.simulated = robot if isinstance(robot, Simulated) else None
        self.paced = paced
        self.rt = rt if paced else None
        self.pacer: Pacer = (pacer or AbsolutePacer()) if paced else UnpacedPacer()
        self.stats_capacity = stats_capacity
        self.log_every_ticks = int(log_every_s * rate_hz) if log_every_s > 0 else 0
        self.tick = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recorder = _Recorder(stats_capacity, self.period_ns)
        self._rt_status = RtStatus()
        self._wall_s = 0.0
        self._result: LoopStats | None = None
        self._error: BaseException | None = None

    # -- control ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop after the current tick (any thread)."""
        self._stop.set()

    def run(self, ticks: int | None = None, duration_s: float | None = None) -> LoopStats:
        """Run in the calling thread until ``ticks`` ticks, ``duration_s`` of ticks, or :meth:`stop`."""
        limit = ticks if ticks is not None else (round(duration_s * self.rate_hz) if duration_s is not None else None)
        self._stop.clear()
        self._recorder = _Recorder(self.stats_capacity, self.period_ns)
        start_tick = self.tick + 1
        with realtime(self.rt) if self.rt is not None else _no_rt() as status:
            self._rt_status = status
            started = time.monotonic_ns()
            try:
                self._loop(start_tick, limit)
            finally:
                self._wall_s = (time.monotonic_ns() - started) / 1e9
        self._result = self.stats()
        return self._result

    def start(self, ticks: int | None = None, duration_s: float | None = None) -> threading.Thread:
        """Run in a new thread (the real-time setup applies to that thread). See :meth:`join`."""

        def target() -> None:
            try:
                self.run(ticks, duration_s)
            except RcsError as e:  # a device error (link lost, servo fault): its message says it all
                self._error = e
                log.error("control loop stopped: %s", e)
            except BaseException as e:  # surfaced by join()
                self._error = e
                log.exception("control loop stopped by an exception")

        self._thread = threading.Thread(target=target, name="control-loop", daemon=True)
        self._thread.start()
        return self._thread

    @property
    def running(self) -> bool:
        """Whether a loop started with :meth:`start` is still ticking."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped a loop started with :meth:`start` (``None`` while fine)."""
        return self._error

    def join(self, timeout: float | None = None) -> LoopStats:
        """Wait for a loop started with :meth:`start`; re-raises its exception."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self._result or self.stats()

    # -- the ticks ----------------------------------------------------------------------------------
    def _loop(self, start_tick: int, limit: int | None) -> None:
        task, sim, pacer, rec = self.task, self.simulated, self.pacer, self._recorder
        clock = time.monotonic_ns
        measure = pacer.measures_lateness
        pacer.start(clock(), self.period_ns)
        tick = start_tick - 1
        done = 0
        while not self._stop.is_set() and (limit is None or done < limit):
            wake = pacer.wait()
            tick += 1 + wake.skipped
            self.tick = tick
            t0 = clock()
            obs = task.read(tick)
            t1 = clock()
            cmd = task.compute(tick, obs)
            t2 = clock()
            task.write(tick, cmd)
            t3 = clock()
            if sim is not None:
                sim.advance(self.period_s * (1 + wake.skipped))
            t4 = clock()
            rec.add(wake.woke_ns - wake.intended_ns if measure else 0, wake.skipped, (t0, t1, t2, t3, t4))
            done += 1
            if self.log_every_ticks and rec.n % self.log_every_ticks == 0:
                lat = rec.lateness_us(self.log_every_ticks, with_max=False)
                log.info(
                    "loop %.0f Hz: tick %d, lateness p50 %.0f us p99 %.0f us max %.0f us, overruns %d, missed %d",
                    self.rate_hz,
                    tick,
                    lat["p50"],
                    lat["p99"],
                    lat["max"],
                    rec.overruns,
                    rec.missed,
                )

    def stats(self) -> LoopStats:
        """Statistics of the current or last run."""
        rec, status = self._recorder, self._rt_status
        wall = self._wall_s
        return LoopStats(
            rate_hz=self.rate_hz,
            ticks=rec.n,
            paced=self.paced,
            pacer=self.pacer.name,
            lateness_us=rec.lateness_us(),
            overruns=rec.overruns,
            missed_ticks=rec.missed,
            rt_scheduling=status.fifo,
            memory_locked=status.memory_locked,
            cpus=status.cpus,
            phase_us=rec.phase_us(),
            wall_s=round(wall, 3),
            achieved_rate_hz=round(rec.n / wall, 2) if wall > 0 else 0.0,
            warnings=tuple(status.warnings),
        )


@contextmanager
def _no_rt() -> Iterator[RtStatus]:
    yield RtStatus()
