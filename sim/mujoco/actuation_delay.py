"""Commands that reach a simulated robot's actuators a fixed time after they were sent: the latency of a real
robot's link and drives (observation read, command computed and sent, drive applies it), as simulation time.

A command written at simulated time ``t`` takes effect from the first physics step that starts at or after
``t + delay_s``; until then the actuators keep the earlier command. Reads are never delayed, so an observation is
fresh and the action computed from it lands ``delay_s`` later: an observation-to-action latency.
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

    def clear(self) -> None:
        """Drop pending commands (a reset)."""
        self._queue.clear()
