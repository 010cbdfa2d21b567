"""Physical camera drivers (:class:`rcs.devices.Camera` backends) and the checks their factories share.

- :mod:`hardware.cameras.opencv`: UVC devices, network streams and video files through OpenCV (``"opencv"``).
- :mod:`hardware.cameras.realsense`: Intel RealSense colour + aligned depth through pyrealsense2 (``"realsense"``).
- :mod:`hardware.cameras.newest_frame`: their shared capture thread (newest frame only, reconnect with backoff).

Only numpy and the light core are imported here, so a driver pulls in just its own SDK.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rcs.errors import ConfigError


def positive(camera: str, field: str, value: Any, integer: bool = False) -> float:
    """``value`` as a float if it is a positive finite number (an integer if ``integer``), else a one-line ConfigError."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer and float(value) != int(value):
        ok = False
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"camera {camera!r}: {field}={value!r}: expected {kind}")
    return float(value)


def parse_extrinsics(camera: str, value: Any) -> np.ndarray:
    """A 4x4 rigid transform (rotation orthonormal within 1e-3, last row 0 0 0 1) from a nested list."""
    try:
        t = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"camera {camera!r}: extrinsics: expected a 4x4 list of numbers") from None
    if t.shape != (4, 4) or not np.isfinite(t).all():
        raise ConfigError(f"camera {camera!r}: extrinsics: expected a finite 4x4 matrix, got shape {t.shape}")
    r = t[:3, :3]
    if not np.allclose(t[3], [0, 0, 0, 1]) or not np.allclose(r @ r.T, np.eye(3), atol=1e-3) or np.linalg.det(r) < 0:
        raise ConfigError(f"camera {camera!r}: extrinsics: expected a rigid transform (rotation, last row 0 0 0 1)")
    return t


def check_options(camera: str, options: Mapping[str, Any], known: Sequence[str]) -> None:
    """A one-line ConfigError for the first unknown option name."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"camera {camera!r}: unknown option {unknown[0]!r}; known options: {', '.join(sorted(known))}"
        )


def checked_request(
    name: Any, width: Any, height: Any, fps: Any, options: Mapping[str, Any], known: Sequence[str]
) -> tuple[int, int, float]:
    """A camera factory's common checks: a non-empty ``name``, only ``known`` option names, positive integer
    ``width``/``height`` (pixels) and positive ``fps`` (Hz). Returns (width, height, fps); one-line ConfigError."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"camera name={name!r}: expected a non-empty string")
    check_options(name, options, known)
    w = int(positive(name, "width", width, integer=True))
    h = int(positive(name, "height", height, integer=True))
    return w, h, positive(name, "fps", fps)
