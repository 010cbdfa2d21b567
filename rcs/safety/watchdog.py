"""Watchdog, stop behaviour and the latching e-stop.

Time is counted in control ticks (``tick * control_dt`` seconds), never the wall clock, so the same run in
simulation and on hardware goes through the same stages at the same ticks.

Stages (:class:`Stage`), evaluated once per tick by :meth:`Watchdog.update`:

- ``IDLE``: not engaged; the device holds where it is.
- ``RUNNING``: engaged and the executor has an action for this tick (faded in after engaging).
- ``HOLD``: engaged, no action for this tick (starved) but the last fresh chunk is recent: hold position.
- ``STOPPING``: no fresh chunk for ``stop_after_s`` (default 200 ms): controlled stop.
- ``DISARMED``: no fresh chunk for ``disarm_after_s`` (default 1 s), or disengaged: latched until
  :meth:`Watchdog.engage`.
- ``ESTOP``: the :class:`EStop` is triggered: latched until :meth:`EStop.reset` *and* a new engage.

What each stage commands is device specific and lives in a fallback (:class:`ArmFallback`,
:class:`QuadrotorFallback`): arms decelerate and hold; quadrotors hold position and then land, and are only
disarmed on the ground. Every fallback command still goes through the safety filter.
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import IO, Any, Protocol

import numpy as np

from rcs.errors import ConfigError
from rcs.geometry import yaw_of
from rcs.spec import QuadrotorSpec
from rcs.types import Command, QuadrotorState

log = logging.getLogger(__name__)


class Stage(str, Enum):
    """Watchdog stage of one tick."""

    IDLE = "idle"
    RUNNING = "running"
    HOLD = "hold"
    STOPPING = "stopping"
    DISARMED = "disarmed"
    ESTOP = "estop"


# ---------------------------------------------------------------------------------------------------------
# E-stop
# ---------------------------------------------------------------------------------------------------------


class EStop:
    """A latching emergency stop.

    :meth:`trigger` may be called from any thread or a signal handler (it takes no lock); once triggered it
    stays triggered until :meth:`reset` is called explicitly. Resetting does not resume motion: the
    watchdog also requires a new engage.
    """

    def __init__(self) -> None:
        self._triggered = False
        self._reason = ""
        self._count = 0

    @property
    def triggered(self) -> bool:
        """Whether the e-stop is latched."""
        return self._triggered

    @property
    def reason(self) -> str:
        """Reason given by the first trigger since the last reset ("" when not triggered)."""
        return self._reason

    @property
    def count(self) -> int:
        """Number of triggers since construction."""
        return self._count

    def trigger(self, reason: str = "api") -> None:
        """Latch the e-stop (idempotent; the first reason is kept)."""
        self._count += 1
        if not self._triggered:
            self._reason = reason
            self._triggered = True
            log.critical("E-STOP triggered: %s", reason)

    def reset(self) -> None:
        """Release the latch. Motion resumes only after the watchdog is engaged again."""
        if self._triggered:
            log.warning("e-stop reset (was: %s)", self._reason)
        self._triggered = False
        self._reason = ""


def install_estop_signal_handler(
    estop: EStop, signals: Iterable[signal.Signals] = (signal.SIGUSR1,)
) -> Callable[[], None]:
    """Trigger ``estop`` on each of ``signals`` (main thread only). Returns a function restoring the old handlers.

    With ``SIGINT`` among the signals, the first Ctrl-C triggers the e-stop and a second one (while still
    triggered) raises :class:`KeyboardInterrupt` as usual, so a stuck program can still be interrupted.
    """
    previous: dict[signal.Signals, object] = {}

    def handler(signum: int, frame: object) -> None:
        sig = signal.Signals(signum)
        if sig == signal.SIGINT and estop.triggered:
            raise KeyboardInterrupt
        estop.trigger(f"signal {sig.name}")

    for sig in signals:
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            # ``old`` is what signal.signal returned for ``sig``, so it accepts it back; ``previous`` is typed
            # ``object`` as signal's handler type is private to typeshed
            signal.signal(sig, old)  # type: ignore[arg-type]

    return restore


class KeyboardEStop:
    """Trigger an e-stop when one of ``keys`` is read from ``stream`` (a background thread).

    Works with a terminal (``sys.stdin``: put in cbreak mode while running so single key presses arrive
    without Enter), a pipe or any file-like object with ``read(1)``. Use as a context manager or call
    :meth:`start` / :meth:`stop`.

    Args:
        estop: the e-stop to trigger.
        stream: where keys are read from.
        keys: characters that trigger the e-stop (default: space, ``e``, ``E``).
        poll_s: how often (s) the thread checks for :meth:`stop` while waiting on a file descriptor.
    """

    def __init__(self, estop: EStop, stream: IO[str] | IO[bytes], keys: str = " eE", poll_s: float = 0.05) -> None:
        self.estop = estop
        self.stream = stream
        self.keys = frozenset(keys)
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restore_tty: Callable[[], None] | None = None

    def start(self) -> KeyboardEStop:
        """Start listening (idempotent)."""
        if self._thread is None:
            self._restore_tty = _cbreak(self.stream)
            self._thread = threading.Thread(target=self._run, name="keyboard-estop", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and restore the terminal mode."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._restore_tty is not None:
            self._restore_tty()
            self._restore_tty = None

    def __enter__(self) -> KeyboardEStop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read_char(self) -> str | None:
        """One character, "" at end of stream, None if nothing arrived within ``poll_s``."""
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is None:
            ch = self.stream.read(1)
        else:
            ready, _, _ = select.select([fd], [], [], self.poll_s)
            if not ready:
                return None
            ch = os.read(fd, 1)
        return ch.decode(errors="replace") if isinstance(ch, bytes) else ch

    def _run(self) -> None:
        while not self._stop.is_set():
            ch = self._read_char()
            if ch is None:
                continue
            if ch == "":
                return
            if ch in self.keys:
                self.estop.trigger(f"keyboard {ch!r}")


def _cbreak(stream: object) -> Callable[[], None] | None:
    """Put a terminal in cbreak mode; return a function restoring it (None if not a terminal)."""
    try:
        # any object: one without fileno() is not a terminal (the AttributeError below)
        fd = stream.fileno()  # type: ignore[attr-defined]
        if not os.isatty(fd):
            return None
        import termios
        import tty

        old = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, old)
    except (AttributeError, OSError, ValueError, ImportError):
        return None


# ---------------------------------------------------------------------------------------------------------
# Watchdog (device independent)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchdogConfig:
    """Timeouts of the watchdog, in seconds of control time.

    Attributes:
        control_dt: control period (s).
        stop_after_s: controlled stop after this long without a fresh chunk.
        disarm_after_s: disarm after this long without a fresh chunk (must exceed ``stop_after_s``).
        fade_in_s: ramp from the hold command to the policy's over this long after engaging (0: none).
    """

    control_dt: float
    stop_after_s: float = 0.2
    disarm_after_s: float = 1.0
    fade_in_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.control_dt > 0:
            raise ConfigError(f"control_dt={self.control_dt} must be > 0")
        if not 0 < self.stop_after_s < self.disarm_after_s:
            raise ConfigError(f"need 0 < stop_after_s ({self.stop_after_s}) < disarm_after_s ({self.disarm_after_s})")
        if self.fade_in_s < 0:
            raise ConfigError(f"fade_in_s={self.fade_in_s} must be >= 0")

    def ticks(self, seconds: float) -> int:
        """Whole ticks in ``seconds`` (rounded up; at least 1 for a positive duration)."""
        return max(1, math.ceil(seconds / self.control_dt - 1e-9)) if seconds > 0 else 0


#: How late (s) the next chunk of a served policy may be before the watchdog stops the arm (``rcs eval``,
#: ``rcs robot``'s policy link).
DEFAULT_CHUNK_OVERDUE_S = 0.2


def watchdog_for(request_period_s: float, overdue_s: float = DEFAULT_CHUNK_OVERDUE_S) -> dict[str, float]:
    """:class:`WatchdogConfig` timeouts for a robot that asks for a chunk every ``request_period_s`` (s).

    A chunk is expected one request period after the previous one; the arm stops (controlled) once the next is
    ``overdue_s`` late and disarms 0.8 s later (at least 1 s after the last chunk). A policy that replans every
    8 steps of 50 ms therefore runs its chunk for 0.4 s without tripping the watchdog.
    """
    stop = request_period_s + overdue_s
    return {"stop_after_s": stop, "disarm_after_s": max(1.0, stop + 0.8)}


#: Stages whose entry is logged at WARNING.
_ALARM = (Stage.STOPPING, Stage.DISARMED, Stage.ESTOP)


def min_jerk_ramp(x: float) -> float:
    """0 -> 1 minimum-jerk ramp ``10x^3 - 15x^4 + 6x^5`` for ``x`` in [0, 1] (clamped outside)."""
    x = min(max(x, 0.0), 1.0)
    return x * x * x * (10.0 + x * (-15.0 + 6.0 * x))


class Watchdog:
    """Stage machine fed once per tick with whether a fresh action and a fresh chunk exist.

    Args:
        config: timeouts.
        estop: the e-stop to obey (a new one if omitted).
    """

    def __init__(self, config: WatchdogConfig, estop: EStop | None = None) -> None:
        self.config = config
        self.estop = estop if estop is not None else EStop()
        self._stop_ticks = config.ticks(config.stop_after_s)
        self._disarm_ticks = config.ticks(config.disarm_after_s)
        self._fade_ticks = config.ticks(config.fade_in_s)
        self._engaged = False
        self._engage_tick = 0
        self._needs_fade = False
        self.fade_started_at: int | None = None
        self.stage = Stage.IDLE
        #: why the watchdog is in :attr:`stage` (the reason logged with the last transition).
        self.reason = "not engaged"
        self.ticks_in_stage: dict[Stage, int] = {s: 0 for s in Stage}
        self.transitions: list[tuple[int, Stage]] = []
        #: ticks per stage and transitions per "from->to" since the episode started (see :meth:`end_episode`).
        self.episode_ticks_in_stage: dict[Stage, int] = {s: 0 for s in Stage}
        self.episode_transitions: dict[str, int] = {}
        self.episodes = 0

    @property
    def engaged(self) -> bool:
        """Whether the policy currently has control."""
        return self._engaged

    def engage(self, tick: int) -> None:
        """Hand control to the policy from ``tick``; refused (logged) while the e-stop is latched."""
        if self.estop.triggered:
            log.error("engage refused: e-stop latched (%s); reset it first", self.estop.reason)
            return
        self._engaged = True
        self._engage_tick = tick
        self._needs_fade = True
        log.info("policy engaged at tick %d", tick)

    def disengage(self, tick: int) -> None:
        """Take control back from the policy (the device stops and holds)."""
        if self._engaged:
            log.info("policy disengaged at tick %d", tick)
        self._engaged = False

    def update(self, tick: int, has_action: bool, last_chunk_tick: int | None) -> Stage:
        """The stage for ``tick``.

        Args:
            tick: current control tick.
            has_action: whether the executor produced an action for this tick.
            last_chunk_tick: tick at which the most recent chunk was accepted (None: never).
        """
        stage, reason = self._evaluate(tick, has_action, last_chunk_tick)
        if stage != self.stage:
            self.transitions.append((tick, stage))
            key = f"{self.stage.value}->{stage.value}"
            n = self.episode_transitions.get(key, 0) + 1
            self.episode_transitions[key] = n
            if stage in _ALARM:
                level = logging.WARNING
            elif self.stage in _ALARM or n == 1:
                level = logging.INFO
            else:  # running <-> hold while the executor is starved can flip every tick: counted, not logged
                level = logging.DEBUG
            if log.isEnabledFor(level):
                log.log(level, "watchdog: %s -> %s at tick %d: %s", self.stage.value, stage.value, tick, reason)
            self.stage = stage
            self.reason = reason
        self.ticks_in_stage[stage] += 1
        self.episode_ticks_in_stage[stage] += 1
        return stage

    def _evaluate(self, tick: int, has_action: bool, last_chunk_tick: int | None) -> tuple[Stage, str]:
        """The stage for ``tick`` and why (a phrase with the values that decided it)."""
        if self.estop.triggered:
            self._engaged = False
            return Stage.ESTOP, f"e-stop latched ({self.estop.reason})"
        if not self._engaged:
            if self.stage in (Stage.DISARMED, Stage.ESTOP):
                return Stage.DISARMED, "not engaged: latched until the policy is engaged again"
            return Stage.IDLE, "not engaged"
        fresh_since = self._engage_tick if last_chunk_tick is None else max(last_chunk_tick, self._engage_tick)
        silent = tick - fresh_since
        dt = self.config.control_dt
        since = "engaging" if last_chunk_tick is None or last_chunk_tick < self._engage_tick else "the last chunk"
        if silent >= self._disarm_ticks:
            self._engaged = False
            return Stage.DISARMED, (
                f"no fresh chunk for {silent} ticks since {since} ({silent * dt:.6g} s >= disarm_after_s "
                f"{self.config.disarm_after_s:g} s)"
            )
        if silent >= self._stop_ticks:
            self._needs_fade = True
            return Stage.STOPPING, (
                f"no fresh chunk for {silent} ticks since {since} ({silent * dt:.6g} s >= stop_after_s "
                f"{self.config.stop_after_s:g} s)"
            )
        if not has_action:
            return Stage.HOLD, f"no action for this tick (executor starved), {silent} ticks since {since}"
        if self._needs_fade:
            self._needs_fade = False
            self.fade_started_at = tick
        return Stage.RUNNING, f"action for this tick, {silent} ticks since {since}"

    def episode_summary(self) -> dict[str, Any]:
        """Ticks per stage (non-zero only) and transition counts of the current episode."""
        return {
            "ticks_in_stage": {s.value: n for s, n in self.episode_ticks_in_stage.items() if n},
            "transitions": dict(self.episode_transitions),
        }

    def end_episode(self, label: str = "") -> dict[str, Any]:
        """Log the episode's stage counts in one line and start counting a new episode.

        WARNING if the episode went through STOPPING, DISARMED or ESTOP, else INFO.

        Args:
            label: how the episode is named in the line (e.g. ``"seed 3"``); default: its ordinal.

        Returns:
            :meth:`episode_summary` of the ended episode.
        """
        summary = self.episode_summary()
        self.episodes += 1
        alarmed = any(self.episode_ticks_in_stage[s] for s in _ALARM)
        ticks = ", ".join(f"{k} {v}" for k, v in summary["ticks_in_stage"].items()) or "none"
        changes = ", ".join(f"{k} {v}" for k, v in sorted(summary["transitions"].items())) or "none"
        log.log(
            logging.WARNING if alarmed else logging.INFO,
            "watchdog: episode %s: ticks %s; transitions %s",
            label or f"#{self.episodes}",
            ticks,
            changes,
        )
        self.episode_ticks_in_stage = {s: 0 for s in Stage}
        self.episode_transitions = {}
        return summary

    def fade_alpha(self, tick: int) -> float:
        """Weight (0..1) of the policy's command at ``tick`` during a fade-in (1 when not fading)."""
        if self.fade_started_at is None or self._fade_ticks == 0:
            return 1.0
        return min_jerk_ramp((tick - self.fade_started_at + 1) / self._fade_ticks)


# ---------------------------------------------------------------------------------------------------------
# Device-specific fallbacks: what HOLD / STOPPING / DISARMED / ESTOP command
# ---------------------------------------------------------------------------------------------------------


@dataclass
class CommandHistory:
    """The last two commands that went to the device (after the safety filter) and their control ticks.

    A loop that wakes late skips ticks, so two consecutive commands may be several ticks apart: a rate is the
    difference of the commands over :meth:`ticks_between`, not per call.
    """

    last: Command | None = None
    previous: Command | None = None
    last_tick: int = 0
    previous_tick: int = 0

    def push(self, command: Command, tick: int = 0) -> None:
        """Record the command that went to the device at control tick ``tick``."""
        self.previous, self.last = self.last, command
        self.previous_tick, self.last_tick = self.last_tick, int(tick)

    def ticks_between(self) -> int:
        """Control ticks from the previous command to the last (at least 1)."""
        return max(1, self.last_tick - self.previous_tick)


class Fallback(Protocol):
    """Device-specific commands for the watchdog's non-running stages."""

    def command(self, stage: Stage, state: Any, history: CommandHistory, tick: int) -> Command:
        """The command for ``stage`` (never RUNNING) at control tick ``tick`` given the measured state and the
        last commands (ramps and descents advance with ``tick``, so a loop that skips ticks keeps their timing)."""
        ...

    def neutral(self, mode: str, state: Any, history: CommandHistory) -> np.ndarray:
        """The command a fade-in starts from, in the policy's ``mode``."""
        ...

    def reset(self) -> None:
        """Forget latched setpoints (called when the watchdog returns to RUNNING)."""
        ...


class ArmFallback:
    """Arms: HOLD repeats the last target (the safety filter turns it into an acceleration-limited halt);
    STOPPING / DISARMED / ESTOP ramp the commanded velocity linearly to zero over ``stop_time_s`` and then
    hold. The arm interface has no brake command, so DISARMED means holding with the policy locked out until
    re-engaged (a driver with brakes would apply them here).

    The ramp is a function of control ticks, not of calls: with ``v`` the commanded velocity per tick when the
    stop began (the last two commands over the ticks between them), ``N`` the ramp's ticks and ``n`` the ticks
    since it began, the target is ``start + v (n - n (n + 1) / (2 N))`` for ``n <= N``, then held. A loop that
    skips ticks on a loaded host therefore stops in ``stop_time_s`` of robot time over the same distance
    (``v (N - 1) / 2``), instead of stretching the ramp over as many calls.

    Args:
        hold_command: the command vector that holds the arm where it is measured (from the state).
        control_dt: control period (s).
        stop_time_s: duration of the controlled stop's velocity ramp.
    """

    mode = "joint_positions"

    def __init__(
        self, hold_command: Callable[[object], np.ndarray], control_dt: float, stop_time_s: float = 0.2
    ) -> None:
        self._hold_command = hold_command
        self._stop_ticks = max(1, round(stop_time_s / control_dt))
        self._stop_velocity: np.ndarray | None = None  # command change per tick when the stop began
        self._stop_start = np.zeros(0)  # the last command when the stop began
        self._stop_tick = 0  # the tick of that command

    def reset(self) -> None:
        """Forget the stop ramp."""
        self._stop_velocity = None

    def _last(self, state: object, history: CommandHistory) -> np.ndarray:
        if history.last is not None and history.last.mode == self.mode:
            return np.asarray(history.last.values, dtype=np.float64)
        return self._hold_command(state)

    def command(self, stage: Stage, state: object, history: CommandHistory, tick: int) -> Command:
        """Hold (HOLD, IDLE) or ramp the velocity to zero and hold (STOPPING, DISARMED, ESTOP)."""
        last = self._last(state, history)
        if stage in (Stage.HOLD, Stage.IDLE):
            return Command(self.mode, last.copy())
        if self._stop_velocity is None:
            prev = history.previous
            if prev is not None and prev.mode == self.mode and history.last is not None:
                self._stop_velocity = (last - np.asarray(prev.values)) / history.ticks_between()
                self._stop_tick = history.last_tick
            else:
                self._stop_velocity = np.zeros_like(last)
                self._stop_tick = tick - 1
            self._stop_start = last.copy()
        n = min(max(tick - self._stop_tick, 0), self._stop_ticks)
        travelled = n - n * (n + 1) / (2.0 * self._stop_ticks)  # sum over k = 1..n of (1 - k / N)
        return Command(self.mode, self._stop_start + travelled * self._stop_velocity)

    def neutral(self, mode: str, state: object, history: CommandHistory) -> np.ndarray:
        """The last command (or the measured position): where a fade-in starts."""
        return self._last(state, history)


class QuadrotorFallback:
    """Quadrotors: hold position (HOLD, STOPPING), then land (DISARMED, ESTOP) and disarm only on the ground.

    IDLE (not engaged) holds position in the air and stays disarmed on the ground.

    The position setpoint is latched where the vehicle was when the fallback started; landing lowers it at
    ``land_speed`` to ``ground_z``; once the vehicle is within ``touchdown_height`` of the ground and slower
    than ``touchdown_speed`` the fallback commands ``"disarm"`` (which the safety filter refuses in the air).

    Args:
        spec: the vehicle (hover thrust for the fade-in's neutral command).
        control_dt: control period (s).
        ground_z: world z (m) of the ground.
        land_speed: descent rate of the landing setpoint (m/s).
        touchdown_height: height above ground (m) counted as landed.
        touchdown_speed: speed (m/s) below which a landed vehicle may be disarmed.
    """

    def __init__(
        self,
        spec: QuadrotorSpec,
        control_dt: float,
        ground_z: float = 0.0,
        land_speed: float = 0.3,
        touchdown_height: float = 0.03,
        touchdown_speed: float = 0.1,
    ) -> None:
        self.spec = spec
        self.dt = control_dt
        self.ground_z = ground_z
        self.land_speed = land_speed
        self.touchdown_height = touchdown_height
        self.touchdown_speed = touchdown_speed
        self._setpoint: np.ndarray | None = None
        self._tick: int | None = None  # the tick of the last call (the landing descends per tick elapsed)

    def reset(self) -> None:
        """Forget the latched setpoint."""
        self._setpoint = None
        self._tick = None

    def landed(self, state: QuadrotorState) -> bool:
        """Whether the vehicle rests on the ground."""
        low = float(state.position[2]) - self.ground_z <= self.touchdown_height
        return low and float(np.linalg.norm(state.linear_velocity)) <= self.touchdown_speed

    def command(self, stage: Stage, state: QuadrotorState, history: CommandHistory, tick: int) -> Command:
        """Position hold, landing setpoint, or ``"disarm"`` once on the ground."""
        elapsed = max(1, tick - self._tick) if self._tick is not None else 1
        self._tick = tick
        if self._setpoint is None:
            last = history.last
            if last is not None and last.mode == "position":
                self._setpoint = np.asarray(last.values, dtype=np.float64).copy()
            else:
                self._setpoint = np.array([*state.position, yaw_of(state.quaternion)], dtype=np.float64)
        if stage is Stage.IDLE and (self.landed(state) or not state.armed):
            return Command("disarm", np.zeros(0))
        if stage in (Stage.DISARMED, Stage.ESTOP):
            if self.landed(state) or not state.armed:
                return Command("disarm", np.zeros(0))
            self._setpoint[2] = max(self.ground_z, self._setpoint[2] - self.land_speed * self.dt * elapsed)
        return Command("position", self._setpoint.copy())

    def neutral(self, mode: str, state: QuadrotorState, history: CommandHistory) -> np.ndarray:
        """Current position and yaw, hover thrust with zero rates, or hover motor commands."""
        neutral = {
            "position": lambda: np.array([*state.position, yaw_of(state.quaternion)], dtype=np.float64),
            "thrust_rates": lambda: np.array([self.spec.hover_thrust, 0.0, 0.0, 0.0]),
            "motor_thrusts": lambda: np.full(
                self.spec.num_rotors, self.spec.hover_thrust / self.spec.max_collective_thrust
            ),
        }
        return neutral[mode]()


def fade(neutral: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    """``neutral + alpha * (target - neutral)``: the fade-in blend (alpha 0 -> neutral, 1 -> target)."""
    return neutral + alpha * (np.asarray(target, dtype=np.float64) - neutral)
