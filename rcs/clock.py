"""How an environment lets one control period pass: simulated time or the wall clock.

A simulated device is advanced explicitly; a physical one runs in real time, so the caller sleeps until
an absolute deadline (no drift: deadlines are ``start + k * period``, never ``now + period``).
"""

from __future__ import annotations

import time
from typing import Protocol

from rcs.devices import Simulated


class Clock(Protocol):
    def reset(self) -> None: ...

    def tick(self) -> None:
        """Let one control period pass."""
        ...


class SimClock:
    """Advances a simulated device by ``period`` seconds per tick."""

    def __init__(self, device: Simulated, period: float) -> None:
        self._device = device
        self.period = period

    def reset(self) -> None:
        pass

    def tick(self) -> None:
        self._device.advance(self.period)


class WallClock:
    """Sleeps until the next absolute deadline of a fixed-period schedule (monotonic clock)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._next = time.monotonic() + period

    def reset(self) -> None:
        self._next = time.monotonic() + self.period

    def tick(self) -> None:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:  # missed: re-anchor rather than burst to catch up
            self._next = time.monotonic()
        self._next += self.period


def clock_for(device: object, period: float) -> Clock:
    """A :class:`SimClock` for simulated devices, a :class:`WallClock` otherwise."""
    return SimClock(device, period) if isinstance(device, Simulated) else WallClock(period)
