"""The Franka Hand through ``franky.Gripper``: normalized width commands, non-blocking, and a cached reading.

Width is normalized by the spec's ``max_width`` (0.08 m): 0 closed, 1 open. Opening is a gripper *move*;
closing is a *grasp* with ``force`` and wide tolerances, so the fingers hold whatever they close on instead of
reporting a failed move. Gripper commands take the Hand hundreds of milliseconds, so they run asynchronously:
a new target while one is in flight waits (only the latest is kept) and is sent when the Hand finishes.
Reading the width costs libfranka one gripper state packet (about 1 ms), too slow for a 500 Hz loop, so a
background thread polls it at about 50 Hz and :meth:`FrankaHand.width` returns the latest value.
"""

from __future__ import annotations

import logging
import threading

import franky

from hardware.franka.faults import translate
from rcs.errors import RcsError

logger = logging.getLogger(__name__)

POLL_PERIOD = 0.02  # s, between gripper state reads
DEADBAND = 0.01  # normalized width: targets closer than this to the last one sent are not re-sent


class FrankaHand:
    """A connected Franka Hand.

    Args:
        host: the robot's address (the Hand's server is on the same host, port 1338).
        max_width: m, the normalized width 1.
        speed: m/s, finger speed.
        force: N, grasp force when closing.
    """

    def __init__(self, host: str, max_width: float, speed: float, force: float) -> None:
        self.host, self.max_width, self.speed, self.force = host, max_width, speed, force
        self._gripper = franky.Gripper(host)
        self._lock = threading.Lock()
        self._width_m = float(self._gripper.width)
        self._error: RcsError | None = None
        self._future: franky.BoolFuture | None = None
        self._pending: float | None = None
        self._sent: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"franka-hand-{host}", daemon=True)
        self._thread.start()

    def width(self) -> float:
        """Latest normalized width in [0, 1]; raises the gripper's link or fault error if it has one."""
        with self._lock:
            if self._error is not None:
                raise self._error
            return min(1.0, max(0.0, self._width_m / self.max_width))

    def command(self, width: float) -> None:
        """Set the target normalized width (non-blocking)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._sent is not None and abs(width - self._sent) < DEADBAND and self._pending is None:
                return
            self._pending = width
            self._dispatch_locked()

    def _dispatch_locked(self) -> None:
        if self._pending is None or (self._future is not None and not self._future.wait(0)):
            return
        target, self._pending = self._pending, None
        metres = target * self.max_width
        if metres < self._width_m:  # closing: grasp, so an object between the fingers is held with force
            self._future = self._gripper.grasp_async(metres, self.speed, self.force, 1.0, 1.0)
        else:
            self._future = self._gripper.move_async(metres, self.speed)
        self._sent = target

    def _poll(self) -> None:
        while not self._stop.wait(POLL_PERIOD):
            try:
                w = float(self._gripper.width)
            except Exception as exc:  # reported to the control loop on its next read/command
                err = translate(exc, self.host, "gripper")
                with self._lock:
                    self._error = err if err is not None else RcsError(f"gripper on {self.host}: {exc}")
                logger.warning("%s", self._error)
                return
            with self._lock:
                self._width_m = w
                try:
                    self._dispatch_locked()
                except Exception as exc:
                    err = translate(exc, self.host, "gripper")
                    self._error = err if err is not None else RcsError(f"gripper on {self.host}: {exc}")

    def close(self) -> None:
        """Stop polling (the fingers keep their last target, as the Hand does on disconnect)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        future = self._future
        if future is not None and not future.wait(2.0):  # its thread still uses the Gripper: let it end
            logger.warning("gripper on %s: a move was still running at close", self.host)
        else:
            # release the connection now (the Hand serves one client), even if a kept exception holds us
            self._future = None
            self._gripper = None  # type: ignore[assignment]
