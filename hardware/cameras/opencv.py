"""Physical cameras through OpenCV's ``cv2.VideoCapture``: UVC devices, network streams, video files.

``source`` is a UVC device index (``0``, or ``"0"``) or path (``/dev/video0``, read through V4L2), a network
stream URL (``http://``, ``https://``, ``rtsp://``, read through FFmpeg) or a video file path (FFmpeg).

A capture thread (:mod:`hardware.cameras.newest_frame`) grabs continuously and keeps only the newest frame,
stamped with ``time.monotonic()`` (s) taken the moment ``grab()`` returned, then converts it from OpenCV's BGR to
RGB. :meth:`OpenCVCamera.read` returns that frame without waiting on the device; a newest frame older than
``max_age_s`` raises :class:`rcs.errors.LinkLostError`. A dropped device or stream is reopened by the thread with
backoff (``reconnects`` counts it). A file is paced at its own frame rate, like a camera, and rewinds at its end
when ``loop`` (the default for files); otherwise its end is a ``LinkLostError``.

Size and rate: the requested width/height/fps are set on a device, then checked against what it delivers (the
first frame's shape; the device's reported ``CAP_PROP_FPS``). A mismatch is a :class:`rcs.errors.ConfigError`,
never a silent resize. A file's rate is the file's own (``spec.fps`` becomes it). A network stream's rate is what
its server sends: FFmpeg reports a placeholder (25 Hz for MJPEG over HTTP) rather than the stream's rate, so it is
not checked; :attr:`OpenCVCamera.measured_fps` gives the rate actually received.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hardware.cameras import checked_request, parse_extrinsics, positive
from hardware.cameras.newest_frame import EndOfStream, NewestFrameCamera
from rcs.errors import ConfigError
from rcs.spec import CameraSpec
from rcs.types import CameraFrame, CameraIntrinsics

log = logging.getLogger(__name__)

#: option names the factory accepts besides name/width/height/fps/source (see :func:`make_opencv_camera`).
OPTIONS = ("fovy", "fx", "fy", "cx", "cy", "extrinsics", "max_age_s", "loop", "open_timeout_s", "read_timeout_s")
_URL_SCHEMES = ("http://", "https://", "rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://")


def intrinsics_from_options(
    camera: str, width: int, height: int, options: Mapping[str, Any]
) -> tuple[float, CameraIntrinsics | None]:
    """(fovy rad, explicit intrinsics or None) from the ``fovy`` / ``fx, fy, cx, cy`` options."""
    fovy = float(CameraSpec.fovy) if "fovy" not in options else positive(camera, "fovy", options["fovy"])
    if not fovy < math.pi:
        raise ConfigError(f"camera {camera!r}: fovy={fovy!r}: expected a vertical field of view in (0, pi) rad")
    given = [k for k in ("fx", "fy", "cx", "cy") if k in options]
    if not given:
        return fovy, None
    if len(given) != 4:
        missing = ", ".join(k for k in ("fx", "fy", "cx", "cy") if k not in options)
        raise ConfigError(f"camera {camera!r}: intrinsics need all of fx, fy, cx, cy (missing {missing})")
    fx, fy = (positive(camera, k, options[k]) for k in ("fx", "fy"))
    cx, cy = (positive(camera, k, options[k]) for k in ("cx", "cy"))
    return fovy, CameraIntrinsics(width, height, fx, fy, cx, cy)


class _VideoCaptureSource:
    """A ``cv2.VideoCapture`` as a :class:`hardware.cameras.newest_frame.FrameSource` of RGB images."""

    def __init__(
        self, source: int | str, kind: str, spec: CameraSpec, loop: bool, open_timeout_s: float, read_timeout_s: float
    ) -> None:
        self.source, self.kind, self.spec, self.loop = source, kind, spec, loop
        self.open_timeout_ms, self.read_timeout_ms = int(open_timeout_s * 1000), int(read_timeout_s * 1000)
        self.cap: cv2.VideoCapture | None = None
        self.period_s = 1.0 / spec.fps
        self._next = 0.0  # files: monotonic time the next frame is due

    def open(self) -> None:
        self.close()
        if self.kind == "device":
            cap = cv2.VideoCapture(self.source, cv2.CAP_V4L2)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                self.open_timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                self.read_timeout_ms,
            ]
            cap = cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise ConnectionError("cannot open it")
        if self.kind == "device":
            # ask for the spec's mode; what the device really gives is checked on the first frame
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.spec.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.spec.height)
            cap.set(cv2.CAP_PROP_FPS, self.spec.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # V4L2: fewest driver buffers, so a grab is the newest exposure
        self.cap = cap
        self._next = time.monotonic()

    def reported_fps(self) -> float:
        return float(self.cap.get(cv2.CAP_PROP_FPS)) if self.cap is not None else 0.0

    def grab(self) -> tuple[float, np.ndarray] | None:
        cap = self.cap
        if cap is None:
            return None
        if self.kind == "file":  # a file is read as fast as the disk allows: pace it like a camera
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -self.period_s:  # fell a whole period behind (stalled): re-anchor instead of bursting
                self._next = time.monotonic()
            self._next += self.period_s
        if not cap.grab():
            if self.kind != "file":
                return None
            if not self.loop:
                raise EndOfStream("end of the file (loop=False)")
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            if not cap.grab():
                return None  # unreadable from the start: reopen with backoff like any drop
        t = time.monotonic()
        ok, bgr = cap.retrieve()
        if not ok or bgr is None:
            return None
        if bgr.ndim == 2:
            return t, cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        return t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def classify_source(camera: str, source: Any) -> tuple[int | str, str]:
    """(normalized source, kind): ``"device"`` (UVC index or /dev path), ``"stream"`` (URL) or ``"file"``."""
    if isinstance(source, bool) or source is None:
        raise ConfigError(
            f"camera {camera!r}: source={source!r}: expected a device index, /dev path, URL or video file"
        )
    if isinstance(source, (int, np.integer)):
        if source < 0:
            raise ConfigError(f"camera {camera!r}: source={source}: a device index must be >= 0")
        return int(source), "device"
    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str) or not source:
        raise ConfigError(
            f"camera {camera!r}: source={source!r}: expected a device index, /dev path, URL or video file"
        )
    if source.isdigit():
        return int(source), "device"
    if source.lower().startswith(_URL_SCHEMES):
        return source, "stream"
    if source.startswith("/dev/"):
        if not Path(source).exists():
            raise ConfigError(f"camera {camera!r}: source={source!r}: no such device")
        return source, "device"
    if not Path(source).is_file():
        raise ConfigError(f"camera {camera!r}: source={source!r}: no such video file (nor a device or URL)")
    return source, "file"


class OpenCVCamera(NewestFrameCamera):
    """A physical camera (or stream, or video file) read through ``cv2.VideoCapture``; see the module docstring.

    Args:
        spec: name, requested width/height (pixels), fps (Hz) and vertical field of view (rad, for intrinsics).
        source: device index or path, stream URL, or video file.
        intrinsics: explicit pinhole intrinsics (pixels); ``None`` derives them from ``spec.fovy``.
        extrinsics: 4x4 pose of the camera optical frame (z forward, x right, y down) in the world/base frame;
            ``None`` is the identity (the camera frame is the world frame).
        max_age_s: a newest frame older than this (s) raises :class:`rcs.errors.LinkLostError` on read.
        loop: files only: rewind at the end (default for files) instead of ending with ``LinkLostError``.
        open_timeout_s: how long connect waits for the source to open and deliver its first frame (s).
        read_timeout_s: network streams: how long one read may block before it counts as a drop (s).

    Attributes:
        reconnects: times the capture thread reopened the source after a drop.
    """

    def __init__(
        self,
        spec: CameraSpec,
        source: int | str,
        intrinsics: CameraIntrinsics | None = None,
        extrinsics: np.ndarray | None = None,
        max_age_s: float = 0.5,
        loop: bool | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(spec)
        self.source, self.kind = classify_source(spec.name, source)
        self._intrinsics = intrinsics
        self.extrinsics = np.eye(4) if extrinsics is None else parse_extrinsics(spec.name, extrinsics)
        for field, value in (
            ("max_age_s", max_age_s),
            ("open_timeout_s", open_timeout_s),
            ("read_timeout_s", read_timeout_s),
        ):
            positive(spec.name, field, value)
        if loop is not None and not isinstance(loop, bool):
            raise ConfigError(f"camera {spec.name!r}: loop={loop!r}: expected true or false")
        self.max_age_s, self.open_timeout_s, self.read_timeout_s = (
            float(max_age_s),
            float(open_timeout_s),
            float(read_timeout_s),
        )
        self.loop = (self.kind == "file") if loop is None else loop
        self.label = f"camera {spec.name!r} on {self.source}"

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics (pixels): the ``fx, fy, cx, cy`` given, else from ``spec.fovy`` (rad)."""
        return self._intrinsics if self._intrinsics is not None else super().intrinsics

    @property
    def frames_captured(self) -> int:
        """Frames grabbed since connect (read or not)."""
        return self._grabber.frames if self._grabber is not None else 0

    @property
    def measured_fps(self) -> float:
        """Frames per second actually captured over the last (up to) 64 frames; 0 before two frames."""
        return self._grabber.rate_hz() if self._grabber is not None else 0.0

    def _connect(self) -> None:
        spec = self.spec
        if self.kind == "file":
            probe = cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG)
            fps = float(probe.get(cv2.CAP_PROP_FPS)) if probe.isOpened() else 0.0
            opened = probe.isOpened()
            probe.release()
            if not opened:
                raise ConfigError(f"{self.label}: OpenCV cannot decode this file")
            if not (math.isfinite(fps) and fps > 0):
                raise ConfigError(f"{self.label}: the file reports no frame rate (CAP_PROP_FPS={fps})")
            spec = dataclasses.replace(spec, fps=fps)  # a file plays at its own rate
            self.spec = spec
        source = _VideoCaptureSource(self.source, self.kind, spec, self.loop, self.open_timeout_s, self.read_timeout_s)
        try:
            source.open()
        except ConnectionError:
            raise ConfigError(
                f"{self.label}: cannot open the source ({self.kind} absent, refused or unreadable)"
            ) from None
        if self.kind == "device":
            got = source.reported_fps()
            if got > 0 and abs(got - spec.fps) > 0.01 * spec.fps:
                source.close()
                raise ConfigError(f"{self.label}: asked {spec.fps:g} fps, the device gives {got:g} fps")
        first = self._start(source, self.max_age_s)
        h, w = first.payload.shape[:2]
        if (w, h) != (spec.width, spec.height):
            self._close()
            raise ConfigError(
                f"{self.label}: asked {spec.width}x{spec.height} (width x height), the {self.kind} gives {w}x{h}"
            )

    def _read(self) -> CameraFrame:
        got = self._newest()
        return CameraFrame(
            timestamp=got.timestamp,
            image=got.payload.copy(),  # the caller owns its array (rcs.types)
            intrinsics=self.intrinsics,
            extrinsics=self.extrinsics.copy(),
            frame_index=got.index,
        )


def make_opencv_camera(
    robot: Any = None,
    name: str = "camera",
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    source: int | str | None = None,
    **options: Any,
) -> OpenCVCamera:
    """Registry factory ``"opencv"``: a camera read through OpenCV.

    ``robot`` is accepted for the registry's calling convention and unused (a physical camera is its own device).
    ``source``: device index or ``/dev/videoN``, stream URL, or video file. Options: ``fovy`` (rad, default
    :attr:`CameraSpec.fovy`) or all of ``fx, fy, cx, cy`` (pixels) for intrinsics; ``extrinsics`` (4x4 list: the
    camera optical frame in the world/base frame, default identity); ``max_age_s`` (s, 0.5); ``loop`` (files,
    default true); ``open_timeout_s`` (s, 10); ``read_timeout_s`` (s, 2).
    """
    w, h, rate = checked_request(name, width, height, fps, options, OPTIONS)
    if source is None:
        raise ConfigError(f"camera {name!r}: source: required (device index, /dev path, URL or video file)")
    fovy, intrinsics = intrinsics_from_options(name, w, h, options)
    kwargs = {k: options[k] for k in ("max_age_s", "loop", "open_timeout_s", "read_timeout_s") if k in options}
    return OpenCVCamera(
        CameraSpec(name, w, h, rate, fovy),
        source,
        intrinsics=intrinsics,
        extrinsics=options.get("extrinsics"),
        **kwargs,
    )
