"""Intel RealSense RGB-D cameras through ``pyrealsense2`` (imported lazily: only connecting needs it).

The colour stream runs in RGB8 at the spec's width/height/fps; the depth stream (``depth_width`` x
``depth_height``, default the colour size) is aligned to the colour image with ``rs.align``. A capture thread
(:mod:`hardware.cameras.newest_frame`, the same one as :mod:`hardware.cameras.opencv`) keeps only the newest
frameset, stamped with ``time.monotonic()`` (s) when ``wait_for_frames`` returned, and reconnects after a drop.

Depth: :meth:`RealSenseCamera.read` returns a :class:`RgbdFrame`, a :class:`rcs.types.CameraFrame` with one more
field, ``depth``: (H, W) float32 metres along the colour camera's optical axis, aligned pixel for pixel with
``image``, 0 where the sensor has no reading. One read gives colour and depth of the same capture (two reads
could not promise that); consumers that only know ``CameraFrame`` ignore the extra field.

Intrinsics come from the device's colour stream profile (``fovy`` is not used); extrinsics from the
``extrinsics`` option (4x4 list, the colour camera optical frame in the world/base frame), else the identity.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.cameras import checked_request, parse_extrinsics, positive
from hardware.cameras.newest_frame import NewestFrameCamera
from rcs.errors import ConfigError
from rcs.spec import CameraSpec
from rcs.types import CameraFrame, CameraIntrinsics

#: option names the factory accepts besides name/width/height/fps (see :func:`make_realsense_camera`).
OPTIONS = ("serial", "depth_width", "depth_height", "extrinsics", "max_age_s", "open_timeout_s")


@dataclass(frozen=True, slots=True)
class RgbdFrame(CameraFrame):
    """A :class:`rcs.types.CameraFrame` plus ``depth``: (H, W) float32 m, aligned to ``image``, 0 = no reading."""

    depth: np.ndarray


def _import_rs(label: str) -> Any:
    try:
        return importlib.import_module("pyrealsense2")
    except ImportError:
        raise ConfigError(f"{label}: needs pyrealsense2, which is not installed (pip install pyrealsense2)") from None


class _RealSenseSource:
    """A RealSense pipeline as a :class:`hardware.cameras.newest_frame.FrameSource` of (RGB, depth m)."""

    def __init__(self, rs: Any, serial: str, spec: CameraSpec, depth_size: tuple[int, int], timeout_ms: int) -> None:
        self.rs, self.serial, self.spec, self.depth_size, self.timeout_ms = rs, serial, spec, depth_size, timeout_ms
        self.pipeline: Any = None
        self.align = rs.align(rs.stream.color)
        self.depth_scale = 0.0
        self.profile: Any = None

    def open(self) -> None:
        self.close()
        rs = self.rs
        config = rs.config()
        config.enable_device(self.serial)
        s = self.spec
        config.enable_stream(rs.stream.color, s.width, s.height, rs.format.rgb8, int(round(s.fps)))
        config.enable_stream(rs.stream.depth, self.depth_size[0], self.depth_size[1], rs.format.z16, int(round(s.fps)))
        pipeline = rs.pipeline()
        self.profile = pipeline.start(config)  # raises RuntimeError naming the unsupported mode
        self.pipeline = pipeline
        self.depth_scale = float(self.profile.get_device().first_depth_sensor().get_depth_scale())

    def color_profile(self) -> Any:
        return self.profile.get_stream(self.rs.stream.color).as_video_stream_profile()

    def grab(self) -> tuple[float, tuple[np.ndarray, np.ndarray]] | None:
        if self.pipeline is None:
            return None
        ok, frames = self.pipeline.try_wait_for_frames(self.timeout_ms)
        if not ok:
            return None
        t = time.monotonic()
        aligned = self.align.process(frames)
        color, depth = aligned.get_color_frame(), aligned.get_depth_frame()
        if not color or not depth:
            return None
        rgb = np.asanyarray(color.get_data()).copy()
        metres = np.asanyarray(depth.get_data()).astype(np.float32) * np.float32(self.depth_scale)
        return t, (rgb, metres)

    def close(self) -> None:
        if self.pipeline is not None:
            try:
                self.pipeline.stop()
            except RuntimeError:
                pass  # already stopped (device unplugged)
            self.pipeline = None


class RealSenseCamera(NewestFrameCamera):
    """A RealSense RGB-D camera; see the module docstring.

    Args:
        spec: name, colour width/height (pixels) and fps (Hz; a mode the device supports).
        serial: device serial number; ``None`` takes the only connected device (several: ConfigError).
        depth_size: (width, height) of the depth stream before alignment; ``None`` is the colour size.
        extrinsics: 4x4 pose of the colour optical frame in the world/base frame; ``None`` is the identity.
        max_age_s: a newest frame older than this (s) raises :class:`rcs.errors.LinkLostError` on read.
        open_timeout_s: how long connect waits for the first frameset (s).
    """

    def __init__(
        self,
        spec: CameraSpec,
        serial: str | None = None,
        depth_size: tuple[int, int] | None = None,
        extrinsics: Any = None,
        max_age_s: float = 0.5,
        open_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(spec)
        self.serial = serial
        self.depth_size = depth_size or (spec.width, spec.height)
        self.extrinsics = np.eye(4) if extrinsics is None else parse_extrinsics(spec.name, extrinsics)
        self.max_age_s = positive(spec.name, "max_age_s", max_age_s)
        self.open_timeout_s = positive(spec.name, "open_timeout_s", open_timeout_s)
        self.label = f"camera {spec.name!r} on realsense {serial or '(any)'}"
        self._intrinsics: CameraIntrinsics | None = None

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """The colour stream's intrinsics as the device reports them (pixels); from ``spec.fovy`` before connect."""
        return self._intrinsics if self._intrinsics is not None else super().intrinsics

    def _connect(self) -> None:
        rs = _import_rs(self.label)
        devices = rs.context().query_devices()
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        if not serials:
            raise ConfigError(f"{self.label}: no RealSense device connected")
        if self.serial is None:
            if len(serials) > 1:
                raise ConfigError(f"{self.label}: {len(serials)} devices connected ({', '.join(serials)}): set serial")
            serial = serials[0]
        elif self.serial not in serials:
            raise ConfigError(f"{self.label}: serial {self.serial!r} not connected; connected: {', '.join(serials)}")
        else:
            serial = self.serial
        self.label = f"camera {self.spec.name!r} on realsense {serial}"
        source = _RealSenseSource(rs, serial, self.spec, self.depth_size, int(1000 * max(self.max_age_s, 0.2)))
        try:
            source.open()
        except RuntimeError as exc:
            s = self.spec
            raise ConfigError(
                f"{self.label}: cannot start colour {s.width}x{s.height} at {s.fps:g} fps with depth "
                f"{self.depth_size[0]}x{self.depth_size[1]}: {str(exc).splitlines()[0] if str(exc) else 'unsupported'}"
            ) from None
        p = source.color_profile()
        if (p.width(), p.height()) != (self.spec.width, self.spec.height) or abs(p.fps() - self.spec.fps) > 0.5:
            source.close()
            raise ConfigError(
                f"{self.label}: asked {self.spec.width}x{self.spec.height} at {self.spec.fps:g} fps, "
                f"the device gives {p.width()}x{p.height()} at {p.fps()} fps"
            )
        i = p.get_intrinsics()
        self._intrinsics = CameraIntrinsics(i.width, i.height, float(i.fx), float(i.fy), float(i.ppx), float(i.ppy))
        self._start(source, self.max_age_s, "frameset")

    def _read(self) -> RgbdFrame:
        got = self._newest()
        rgb, depth = got.payload
        return RgbdFrame(
            timestamp=got.timestamp,
            image=rgb.copy(),
            intrinsics=self.intrinsics,
            extrinsics=self.extrinsics.copy(),
            frame_index=got.index,
            depth=depth.copy(),
        )


def make_realsense_camera(
    robot: Any = None, name: str = "realsense", width: int = 640, height: int = 480, fps: float = 30.0, **options: Any
) -> RealSenseCamera:
    """Registry factory ``"realsense"``: a RealSense colour + aligned depth camera.

    ``robot`` is unused (registry calling convention). Options: ``serial`` (str), ``depth_width`` /
    ``depth_height`` (pixels, default the colour size), ``extrinsics`` (4x4 list: the colour optical frame in the
    world/base frame, default identity), ``max_age_s`` (s, 0.5), ``open_timeout_s`` (s, 10).
    """
    w, h, rate = checked_request(name, width, height, fps, options, OPTIONS)
    dw = int(positive(name, "depth_width", options.get("depth_width", w), integer=True))
    dh = int(positive(name, "depth_height", options.get("depth_height", h), integer=True))
    serial = options.get("serial")
    if serial is not None and (not isinstance(serial, (str, int)) or isinstance(serial, bool) or not str(serial)):
        raise ConfigError(f"camera {name!r}: serial={serial!r}: expected the device's serial number")
    kwargs = {k: options[k] for k in ("max_age_s", "open_timeout_s") if k in options}
    spec = CameraSpec(name, w, h, rate)
    return RealSenseCamera(spec, None if serial is None else str(serial), (dw, dh), options.get("extrinsics"), **kwargs)
