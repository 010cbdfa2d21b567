"""The capture thread shared by the physical camera drivers: grab continuously, keep only the newest frame.

A camera driver supplies a :class:`FrameSource` (open / grab / close on its SDK); :class:`NewestFrame` runs it
on a daemon thread. Each grabbed frame replaces the previous one (a slow reader never sees a queue of stale
frames), stamped with the ``time.monotonic()`` (s) the source measured when the grab returned. When grabs fail
(cable pulled, stream server restarted) the thread closes the source and reopens it with a backoff of
:data:`BACKOFF_MIN_S` doubling to :data:`BACKOFF_MAX_S`, logs one warning per drop and counts ``reconnects``;
frames resume without the reader doing anything. Meanwhile the newest frame ages, and :meth:`NewestFrame.latest`
raises :class:`rcs.errors.LinkLostError` once it is older than ``max_age_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from rcs.devices import Camera
from rcs.errors import ConfigError, LinkLostError
from rcs.spec import CameraSpec

log = logging.getLogger(__name__)

#: first reconnect delay (s) after a drop, doubled after each failed attempt up to :data:`BACKOFF_MAX_S`.
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0


class EndOfStream(Exception):
    """Raised by :meth:`FrameSource.grab` when the source has no more frames and never will (a file's end)."""


class FrameSource[T](Protocol):
    """What a driver wraps around its SDK. Every method is called from the capture thread only (after the first
    :meth:`open`, which the driver calls itself to report a bad source at connect)."""

    def open(self) -> None:
        """(Re)open the device or stream; raise any exception if it is not available."""
        ...

    def grab(self) -> tuple[float, T] | None:
        """Block for the next frame (at most about one frame period or the SDK's read timeout) and return
        ``(time.monotonic() s when the device delivered it, payload)``; ``None`` (or any exception) if the read
        failed (the link dropped); raise :class:`EndOfStream` at a definitive end."""
        ...

    def close(self) -> None:
        """Release the device (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class Captured[T]:
    """One grabbed frame: capture time (s, ``time.monotonic()``), the driver's payload, 0-based index since start."""

    timestamp: float
    payload: T
    index: int


class NewestFrame[T]:
    """Runs ``source`` on a capture thread and hands out its newest frame.

    Args:
        source: an opened :class:`FrameSource` (the thread owns it from :meth:`start` on, and closes it).
        label: names the camera and its source in every message, e.g. ``camera 'front' on /dev/video0``.
        period_s: nominal frame period (s): how long :meth:`latest` waits when no frame has arrived yet.
        max_age_s: a newest frame older than this (s) is a lost link.
    """

    def __init__(self, source: FrameSource[T], label: str, period_s: float, max_age_s: float) -> None:
        self.source, self.label = source, label
        self.period_s, self.max_age_s = float(period_s), float(max_age_s)
        self._cond = threading.Condition()
        self._latest: Captured[T] | None = None
        self._count = 0
        self._ended: str | None = None
        self._dropped: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recent: deque[float] = deque(maxlen=64)  # capture times of the last frames, for the rate
        #: times the source was reopened successfully after a drop.
        self.reconnects = 0

    @property
    def frames(self) -> int:
        """Frames captured since :meth:`start`."""
        return self._count

    def rate_hz(self) -> float:
        """Capture rate over the last (up to) 64 frames (Hz); 0 before two frames."""
        with self._cond:
            a = list(self._recent)
        return (len(a) - 1) / (a[-1] - a[0]) if len(a) >= 2 and a[-1] > a[0] else 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"capture {self.label}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (it finishes its current grab, at most the source's read timeout) and close the source."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "%s: capture thread still blocked in the SDK after %.1f s; left as a daemon", self.label, timeout
                )
                return
        self.source.close()

    def wait_first(self, timeout: float) -> Captured[T] | None:
        """The first frame, waiting up to ``timeout`` s; ``None`` if none arrived (or the source ended)."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._ended is not None, timeout)
            return self._latest

    def latest(self) -> Captured[T]:
        """The newest frame, without waiting on the device (at most one frame period for the very first one).

        Raises:
            LinkLostError: no frame yet after one period, the newest is older than ``max_age_s``, or the source
                ended (one line naming the camera, its source and the age).
        """
        with self._cond:
            if self._latest is None:
                self._cond.wait_for(lambda: self._latest is not None or self._ended is not None, self.period_s)
            got = self._latest
            if got is None:
                why = self._ended or f"no frame within one frame period ({self.period_s:.3f} s)"
                raise LinkLostError(f"{self.label}: {why}")
            age = time.monotonic() - got.timestamp
            if self._ended is not None and age > self.period_s:
                raise LinkLostError(f"{self.label}: {self._ended}; newest frame is {age:.3f} s old")
            if age > self.max_age_s:
                state = f"link dropped ({self._dropped}), reconnecting" if self._dropped else "no new frame"
                raise LinkLostError(
                    f"{self.label}: newest frame is {age:.3f} s old > max_age_s {self.max_age_s:g} s ({state})"
                )
            return got

    # -- the capture thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    got = self.source.grab()
                    why = "read failed"
                except EndOfStream as exc:
                    with self._cond:
                        self._ended = str(exc) or "end of stream"
                        self._cond.notify_all()
                    return
                except Exception as exc:  # noqa: BLE001 - any SDK failure is a drop; the thread must survive it
                    got, why = None, f"{type(exc).__name__}: {exc}"
                if got is None:
                    self._reconnect(why)
                    continue
                t, payload = got
                with self._cond:
                    self._latest = Captured(t, payload, self._count)
                    self._recent.append(t)
                    self._count += 1
                    self._cond.notify_all()
        finally:
            if self._stop.is_set():
                self.source.close()

    def _reconnect(self, why: str) -> None:
        """Close and reopen the source with backoff until it works or the thread is stopped."""
        if self._stop.is_set():
            return
        self._dropped = why
        log.warning("%s: frames stopped (%s); reconnecting with backoff", self.label, why)
        self.source.close()
        delay = BACKOFF_MIN_S
        while not self._stop.wait(delay):
            try:
                self.source.open()
            except Exception as exc:  # noqa: BLE001 - retried until it works
                log.debug("%s: reopen failed (%s); next try in %.1f s", self.label, exc, min(2 * delay, BACKOFF_MAX_S))
                self.source.close()
                delay = min(2 * delay, BACKOFF_MAX_S)
                continue
            self.reconnects += 1
            self._dropped = None
            log.info("%s: reconnected (reconnect %d)", self.label, self.reconnects)
            return


class NewestFrameCamera(Camera):
    """A :class:`rcs.devices.Camera` whose frames come from a :class:`NewestFrame` capture thread: what the
    physical drivers share (start and first frame, newest frame, stop). Subclasses set :attr:`label` and
    :attr:`open_timeout_s`, open their :class:`FrameSource` in ``_connect`` and pass it to :meth:`_start`."""

    label: str
    open_timeout_s: float

    def __init__(self, spec: CameraSpec) -> None:
        super().__init__(spec)
        self._grabber: NewestFrame[Any] | None = None

    @property
    def reconnects(self) -> int:
        """Times the source was reopened after a drop since connect."""
        return self._grabber.reconnects if self._grabber is not None else 0

    def _start(self, source: FrameSource[Any], max_age_s: float, what: str = "frame") -> Captured[Any]:
        """Run ``source`` on the capture thread; its first ``what`` within :attr:`open_timeout_s`, else a
        one-line :class:`ConfigError` (the thread is stopped)."""
        grabber = NewestFrame(source, self.label, 1.0 / self.spec.fps, max_age_s)
        grabber.start()
        first = grabber.wait_first(self.open_timeout_s)
        if first is None:
            grabber.stop()
            raise ConfigError(f"{self.label}: no {what} within open_timeout_s {self.open_timeout_s:g} s")
        self._grabber = grabber
        return first

    def _close(self) -> None:
        if self._grabber is not None:
            self._grabber.stop()
            self._grabber = None

    def _newest(self) -> Captured[Any]:
        """The newest frame (see :meth:`NewestFrame.latest`)."""
        if self._grabber is None:
            raise ConfigError(f"{self.label}: not connected")
        return self._grabber.latest()
