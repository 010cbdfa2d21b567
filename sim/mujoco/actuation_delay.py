"""Commands that reach a simulated robot's actuators a fixed time after they were sent: the latency of a real
robot's link and drives (observation read, command computed and sent, drive applies it), as simulation time.

A command written at simulated time ``t`` takes effect at ``t + delay_s``; until then the actuators keep the
earlier command. A switch that falls inside a physics step (length ``h``) holds the blend
``old + f (new - old)`` for that step, ``f`` the fraction of the step after the switch: the actuator's input over the
step integrates to that of the exact switch, and the delay acts continuously (not in whole steps), which a fit of
the delay (``rcs sysid``) needs. Reads are never delayed, so an observation is fresh and the action computed from
it lands ``delay_s`` later: an observation-to-action latency.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from rcs.errors import ConfigError

#: s: the most latency a simulated robot takes (a robot lagging a second behind its commands is broken, not slow)
MAX_DELAY_S = 1.0


class ActuationDelay:
    """A FIFO of ``(due time, control indices, values)``; the owner applies what is due as it steps.

    Args:
        delay_s: latency (s of simulated time), in [0, :data:`MAX_DELAY_S`].
    """

    def __init__(self, delay_s: float) -> None:
        if isinstance(delay_s, bool) or not (math.isfinite(delay_s) and 0.0 <= delay_s <= MAX_DELAY_S):
            raise ConfigError(f"actuation_delay_s={delay_s!r}: expected a number of seconds in [0, {MAX_DELAY_S:g}]")
        self.delay_s = float(delay_s)
        self._queue: deque[tuple[float, np.ndarray | int, np.ndarray | float]] = deque()

    def push(self, now: float, index: np.ndarray | int, values: np.ndarray | float) -> None:
        """A command written at ``now`` (s) for ``ctrl[index] = values``."""
        self._queue.append((now + self.delay_s, index, np.copy(values)))

    def next_due(self) -> float:
        """Simulated time (s) of the oldest pending command; ``inf`` when none is pending."""
        return self._queue[0][0] if self._queue else math.inf

    def apply_due(self, ctrl: np.ndarray, until: float) -> None:
        """Write every command due at or before ``until`` (s) into ``ctrl``, oldest first."""
        while self._queue and self._queue[0][0] <= until:
            _, index, values = self._queue.popleft()
            ctrl[index] = values

    def blend_due(self, ctrl: np.ndarray, start: float, h: float) -> np.ndarray | None:
        """For the physics step ``[start, start + h)`` (s): write into ``ctrl`` the blend of every command that switches
        inside it (module docstring) and return the controls to hold from the step's end; ``None`` (``ctrl``
        untouched) when no command falls inside the step. Commands due at the step's start are applied whole first."""
        eps = 1e-6 * h
        self.apply_due(ctrl, start + eps)
        if not self._queue or self._queue[0][0] >= start + h - eps:
            return None
        after = ctrl.copy()
        blended = ctrl.copy()
        while self._queue and self._queue[0][0] < start + h - eps:
            due, index, values = self._queue.popleft()
            fraction = (start + h - due) / h
            after[index] = values
            blended[index] = blended[index] + fraction * (np.asarray(values) - blended[index])
        ctrl[:] = blended
        return after

    def clear(self) -> None:
        """Drop pending commands (a reset)."""
        self._queue.clear()
