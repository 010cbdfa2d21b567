"""Keyboard teleoperation: Cartesian jog, gripper, episode controls, from real key events.

Two sources of key events, both parsed here from their raw bytes:

- a terminal (default; works over SSH): stdin in cbreak mode delivers the bytes the terminal sends per key
  press (letters, ``\\r`` for Enter, ``\\x7f`` Backspace, ``\\x1b[3~`` Delete, a lone ``\\x1b`` Esc, ``\\x03``
  Ctrl-C). A terminal sends no key releases, only auto-repeat, so a press jogs for ``hold_s`` seconds and
  auto-repeat extends it.
- a Linux input device (``device=/dev/input/eventN``): ``struct input_event`` records (``EV_KEY`` with value 1
  press, 0 release, 2 repeat), so a key jogs exactly while it is held.

Bindings (base frame: x forward, y left, z up):

========================  =====================================================
w / s, a / d, r / f       +x / -x, +y / -y, +z / -z at ``linear_speed`` m/s
u / o, i / k, j / l       roll (+x / -x), pitch (+y / -y), yaw (+z / -z) at ``angular_speed`` rad/s
space                     toggle the gripper (open <-> closed)
Enter                     start an episode; while recording: stop and save it
Backspace                 re-record (discard the episode, same scene)
Delete                    discard the episode (next scene)
Esc, Ctrl-C               quit (discards the episode in progress)
========================  =====================================================
"""

from __future__ import annotations

import math
import os
import select
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rcs.errors import ConfigError, NotConnectedError
from rcs.teleop.base import EpisodeEvent, EventLatch, Teleop, TeleopCommand

#: key name -> (axis 0..5 of the twist, sign)
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0),
    "s": (0, -1.0),
    "a": (1, 1.0),
    "d": (1, -1.0),
    "r": (2, 1.0),
    "f": (2, -1.0),
    "u": (3, 1.0),
    "o": (3, -1.0),
    "i": (4, 1.0),
    "k": (4, -1.0),
    "j": (5, 1.0),
    "l": (5, -1.0),
}
EVENT_KEYS: dict[str, EpisodeEvent] = {
    "enter": EpisodeEvent.START,
    "backspace": EpisodeEvent.RERECORD,
    "delete": EpisodeEvent.DISCARD,
    "esc": EpisodeEvent.QUIT,
    "ctrl-c": EpisodeEvent.QUIT,
}
GRIPPER_KEY = "space"


@dataclass(frozen=True)
class KeyEvent:
    """One key event: ``key`` name, ``down`` (press or auto-repeat) or release, and ``time`` (s): from a terminal the
    earliest host monotonic instant it can have arrived (see :meth:`KeySource.events`), from an input device the
    kernel's timestamp of the event."""

    key: str
    down: bool
    time: float
    repeat: bool = False


# -- terminal bytes ---------------------------------------------------------------------------------------
_TERMINAL_SEQUENCES: dict[bytes, str] = {
    b"\x1b[3~": "delete",
    b"\x1b[A": "up",
    b"\x1b[B": "down",
    b"\x1b[C": "right",
    b"\x1b[D": "left",
}
_TERMINAL_BYTES: dict[int, str] = {
    0x0D: "enter",
    0x0A: "enter",
    0x7F: "backspace",
    0x08: "backspace",
    0x20: "space",
    0x03: "ctrl-c",
}


def parse_terminal_bytes(data: bytes, now: float) -> list[KeyEvent]:
    """Key presses in a chunk of terminal input (one ``read`` of stdin in cbreak mode).

    Escape sequences are matched whole; an ESC byte that starts no known sequence is the Esc key (terminals
    send Esc alone, and a sequence arrives within one read). Unknown bytes are ignored.
    """
    out: list[KeyEvent] = []
    i = 0
    while i < len(data):
        if data[i] == 0x1B:
            for seq, seq_name in _TERMINAL_SEQUENCES.items():
                if data.startswith(seq, i):
                    out.append(KeyEvent(seq_name, True, now))
                    i += len(seq)
                    break
            else:
                out.append(KeyEvent("esc", True, now))
                i += 1
            continue
        b = data[i]
        name = _TERMINAL_BYTES.get(b)
        if name is None and 0x21 <= b <= 0x7E:
            name = chr(b).lower()
        if name is not None:
            out.append(KeyEvent(name, True, now))
        i += 1
    return out


# -- Linux evdev ---------------------------------------------------------------------------------------------
#: struct input_event on 64-bit Linux: struct timeval (two longs), __u16 type, __u16 code, __s32 value.
INPUT_EVENT = struct.Struct("llHHi")
EV_KEY = 0x01
#: linux/input-event-codes.h KEY_* codes of the keys bound here.
EVDEV_KEYS: dict[int, str] = {
    1: "esc",
    14: "backspace",
    16: "q",
    17: "w",
    18: "e",
    19: "r",
    22: "u",
    23: "i",
    24: "o",
    28: "enter",
    30: "a",
    31: "s",
    32: "d",
    33: "f",
    34: "g",
    36: "j",
    37: "k",
    38: "l",
    57: "space",
    111: "delete",
}


def parse_evdev(data: bytes) -> list[KeyEvent]:
    """Key events in whole ``input_event`` records (other event types, e.g. EV_SYN, EV_MSC, are skipped)."""
    size = INPUT_EVENT.size
    if len(data) % size:
        raise ValueError(f"evdev read of {len(data)} bytes is not a whole number of {size}-byte input_event records")
    out = []
    for sec, usec, etype, code, value in INPUT_EVENT.iter_unpack(data):
        if etype != EV_KEY or code not in EVDEV_KEYS:
            continue
        out.append(KeyEvent(EVDEV_KEYS[code], value != 0, sec + usec * 1e-6, repeat=value == 2))
    return out


# -- the device --------------------------------------------------------------------------------------------------
class KeyboardState:
    """Turns key events into a :class:`TeleopCommand` (no I/O: the parsing/mapping half of the device).

    Args:
        linear_speed: m/s per held motion key.
        angular_speed: rad/s per held rotation key.
        hold_s: how long a press without release events (terminal) keeps jogging.
    """

    def __init__(self, linear_speed: float = 0.1, angular_speed: float = 0.5, hold_s: float = 0.15) -> None:
        self.linear_speed, self.angular_speed, self.hold_s = float(linear_speed), float(angular_speed), float(hold_s)
        self._held: dict[str, float] = {}  # key -> release time (inf while physically held)
        self._latch = EventLatch()
        self.gripper = 1.0

    def feed(self, events: list[KeyEvent], releases: bool, now: float) -> None:
        """Apply key events read at ``now`` (monotonic s). ``releases``: the source reports releases (evdev) or not
        (terminal; then a press jogs until ``now + hold_s``: a jog the operator watches starts when it is read,
        even when the reader fell behind)."""
        for ev in events:
            if ev.key in MOTION_KEYS:
                if ev.down:
                    self._held[ev.key] = float("inf") if releases else now + self.hold_s
                else:
                    self._held.pop(ev.key, None)
            elif ev.down and not ev.repeat:
                if ev.key == GRIPPER_KEY:
                    self.gripper = 0.0 if self.gripper > 0.5 else 1.0
                elif ev.key in EVENT_KEYS:
                    self._latch.push(EVENT_KEYS[ev.key])

    def command(self, now: float) -> TeleopCommand:
        twist = np.zeros(6)
        for key, until in list(self._held.items()):
            if until < now:
                del self._held[key]
                continue
            axis, sign = MOTION_KEYS[key]
            twist[axis] += sign * (self.linear_speed if axis < 3 else self.angular_speed)
        return TeleopCommand(twist=twist, gripper=self.gripper, events=self._latch.pop_all())


class KeySource:
    """Key events from a terminal (cbreak mode; presses and auto-repeat only) or a Linux input device (presses,
    repeats and releases). Shared by the keyboard teleop and ``rcs deploy``'s operator console.

    Args:
        device: a ``/dev/input/eventN`` path (evdev), or ``None`` for a terminal.
        tty: the terminal to read when ``device`` is None: a path (e.g. ``/dev/pts/3``), or ``None`` for stdin.
        what: names the user of the keys in errors (``"teleop keyboard"``).
    """

    def __init__(self, device: str | None = None, tty: str | None = None, what: str = "keyboard") -> None:
        self.device = device
        self.tty = tty
        self.what = what
        self._own_fd = False
        self._fd: int | None = None
        self._saved_tty: Any = None
        self._empty_at = math.nan  # monotonic s: when the source was last found with nothing to read

    @property
    def releases(self) -> bool:
        """Whether the source reports key releases (evdev) or only presses and auto-repeat (terminal)."""
        return self.device is not None

    @property
    def connected(self) -> bool:
        return self._fd is not None

    def connect(self) -> None:
        """Open the device, or put the terminal in cbreak mode (restored by :meth:`close`)."""
        if self._fd is not None:
            return
        if self.device is None:
            import termios
            import tty

            if self.tty is not None:
                fd = os.open(self.tty, os.O_RDONLY | os.O_NOCTTY)
                self._own_fd = True
            else:
                fd = sys.stdin.fileno()
            if not os.isatty(fd):
                if self._own_fd:
                    os.close(fd)
                raise ConfigError(
                    f"{self.what}: stdin is not a terminal; run in a terminal or pass device=/dev/input/eventN"
                )
            self._fd = fd
            self._saved_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self._empty_at = time.monotonic()  # what is typed from now on arrived after this
        else:
            try:
                self._fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK)
            except OSError as exc:
                raise ConfigError(f"{self.what}: cannot open device={self.device!r}: {exc.strerror}") from exc

    def close(self) -> None:
        """Restore the terminal (or close the device)."""
        if self._fd is None:
            return
        if self.device is None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_tty)
            if self._own_fd:
                os.close(self._fd)
        else:
            os.close(self._fd)
        self._fd = None

    def wait(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` s for input; whether some is ready."""
        if self._fd is None:
            raise NotConnectedError(f"{self.what} is not connected: call connect()")
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout_s))
        return bool(ready)

    def events(self) -> list[KeyEvent]:
        """Every key event read so far (without blocking); raises NotConnectedError when the device is gone.

        A terminal sends no times, so its events are stamped with the earliest instant they can have arrived: when
        the terminal was last found empty. A reader that fell behind (a loaded host) thus sees the keys as old as
        they may be, never younger: a hold judged on these stamps ends early under lag, never late.
        """
        if self._fd is None:
            raise NotConnectedError(f"{self.what} is not connected: call connect() or use 'with'")
        arrived_after = self._empty_at
        out: list[KeyEvent] = []
        for data in self._reads(self._fd):
            out.extend(parse_terminal_bytes(data, arrived_after) if self.device is None else parse_evdev(data))
        return out

    def _reads(self, fd: int) -> Iterator[bytes]:
        while True:
            checked = time.monotonic()
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                self._empty_at = checked
                return
            try:
                data = os.read(fd, 4096)
            except OSError as exc:  # e.g. ENODEV: the keyboard was unplugged
                raise NotConnectedError(f"keyboard {self.device or 'terminal'}: read failed ({exc.strerror})") from exc
            if not data:
                raise NotConnectedError(f"keyboard {self.device or 'terminal'}: end of input (device gone)")
            yield data


class KeyboardTeleop(Teleop):
    """The keyboard device: reads a :class:`KeySource` (terminal by default, or a Linux input device) into a
    :class:`KeyboardState`.

    Args:
        device: a ``/dev/input/eventN`` path (evdev), or ``None`` for a terminal.
        tty: the terminal to read when ``device`` is None: a path (e.g. ``/dev/pts/3``), or ``None`` for stdin.
        linear_speed, angular_speed, hold_s: see :class:`KeyboardState`.
    """

    name = "keyboard"

    def __init__(
        self,
        device: str | None = None,
        linear_speed: float = 0.1,
        angular_speed: float = 0.5,
        hold_s: float = 0.15,
        tty: str | None = None,
    ) -> None:
        self.device = device
        self.keys = KeySource(device, tty, what="teleop keyboard")
        self.state = KeyboardState(linear_speed, angular_speed, hold_s)

    def connect(self) -> None:
        self.keys.connect()

    def close(self) -> None:
        self.keys.close()

    def command(self, obs: dict[str, np.ndarray]) -> TeleopCommand:
        now = time.monotonic()
        self.state.feed(self.keys.events(), releases=self.keys.releases, now=now)
        return self.state.command(now)

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.state.gripper = 1.0 if float(np.asarray(obs["gripper"]).reshape(-1)[0]) > 0.5 else 0.0

    def describe(self) -> dict[str, Any]:
        return {
            "teleop": self.name,
            "device": self.device or "terminal",
            "linear_speed": self.state.linear_speed,
            "angular_speed": self.state.angular_speed,
        }


def make_keyboard(
    env: Any = None,
    seed: int | None = None,
    device: str | None = None,
    linear_speed: float = 0.1,
    angular_speed: float = 0.5,
    hold_s: float = 0.15,
    tty: str | None = None,
    **_: Any,
) -> KeyboardTeleop:
    """Registry factory ``"keyboard"`` (options from ``--teleop-option KEY=VALUE`` arrive as strings)."""
    return KeyboardTeleop(device, float(linear_speed), float(angular_speed), float(hold_s), tty=tty)
