"""HID report devices through hidapi (the ``hidapi`` package, module ``hid``): shared open/read/unplug handling.

A device class supplies a report parser (bytes -> state update) and a mapping (state -> TeleopCommand); this
base opens the device (by vendor/product id or hidraw path), reads every pending input report without blocking
and turns a read failure (the device was unplugged) into :class:`rcs.errors.NotConnectedError`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from rcs.errors import ConfigError, NotConnectedError
from rcs.teleop.base import Teleop, TeleopCommand

REPORT_SIZE = 64


class HidTeleop(Teleop):
    """Base of hidapi-read teleop devices.

    Args:
        ids: (vendor id, product id) pairs tried in order when ``path`` is not given.
        path: hidraw path (``/dev/hidrawN``) to open instead.
    """

    ids: tuple[tuple[int, int], ...] = ()

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._dev: Any = None

    def connect(self) -> None:
        if self._dev is not None:
            return
        try:
            import hid
        except ImportError as exc:
            raise ConfigError(
                f"teleop {self.name}: the hidapi package is missing (pip install 'rcs-stack[teleop]')"
            ) from exc
        dev = hid.device()
        try:
            if self.path is not None:
                dev.open_path(self.path.encode())
            else:
                for vid, pid in self.ids:
                    try:
                        dev.open(vid, pid)
                        break
                    except OSError:
                        continue
                else:
                    known = ", ".join(f"{v:04x}:{p:04x}" for v, p in self.ids)
                    raise ConfigError(
                        f"teleop {self.name}: no device found (USB ids tried: {known}); pass path=/dev/hidrawN"
                    )
        except OSError as exc:
            raise ConfigError(f"teleop {self.name}: cannot open {self.path}: {exc}") from exc
        dev.set_nonblocking(True)
        self._dev = dev

    def close(self) -> None:
        if self._dev is not None:
            self._dev.close()
            self._dev = None

    def command(self, obs: dict[str, np.ndarray]) -> TeleopCommand:
        if self._dev is None:
            raise NotConnectedError(f"{self.name} is not connected: call connect() or use 'with'")
        while True:
            try:
                report = self._dev.read(REPORT_SIZE)
            except (OSError, ValueError) as exc:  # hidapi raises once the device is gone
                raise NotConnectedError(f"{self.name}: read failed, device unplugged? ({exc})") from exc
            if not report:
                break
            self.feed(bytes(report))
        return self.current()

    @abstractmethod
    def feed(self, report: bytes) -> None:
        """Parse one input report (first byte: report id)."""

    @abstractmethod
    def current(self) -> TeleopCommand:
        """The command for the current device state."""
