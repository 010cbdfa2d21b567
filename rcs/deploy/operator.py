"""The operator's keys during ``rcs deploy``: confirm, dead-man, e-stop, quit.

Keys come from a :class:`rcs.teleop.keyboard.KeySource`: the terminal (default; works over SSH) or a Linux input
device (``/dev/input/eventN``, exact press and release).

- **confirm**: ``y`` engages; any other key, or nothing within the timeout, refuses.
- **dead-man** (space by default): the policy drives the arm only while the key is held; released, the arm holds
  where it is. A terminal reports no releases, only the key's auto-repeat, so "held" means: the last press or
  repeat is younger than ``repeat_gap_s`` (after a lone first press, ``first_repeat_s``: terminals wait about
  0.25-0.6 s before they start repeating). A terminal's keys carry the earliest instant they can have arrived
  (:meth:`rcs.teleop.keyboard.KeySource.events`), so a reader that fell behind (a loaded host) sees the buffered
  repeats as old as they may be: the hold ends early, never late (the arm pauses; the next repeat engages again).
  Repeats read in one batch count as repeats (``repeat_gap_s``), never as a fresh press whose longer window would
  keep the arm engaged after the operator let go. An input device reports the release itself.
- **e-stop** (``e`` or Esc): latches the robot server's e-stop (the arm brakes and holds until reset); the run ends.
- **quit** (``q`` or Ctrl-C): the arm holds and the run ends normally.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from rcs.errors import ConfigError
from rcs.teleop.keyboard import KeyEvent, KeySource

#: s: a terminal's auto-repeat starts after this long at most (X11's default delay is 0.66 s; consoles 0.25-0.5 s)
FIRST_REPEAT_S = 0.7
#: s: gap between two auto-repeats beyond which the key counts as released (terminals repeat at 25-33 Hz)
REPEAT_GAP_S = 0.25


class OperatorEvent(str, Enum):
    """What the operator's keys asked for."""

    ENGAGE = "engage"  # the dead-man key is held (again)
    HOLD = "hold"  # the dead-man key was released
    ESTOP = "estop"
    QUIT = "quit"


@dataclass(frozen=True)
class OperatorKeys:
    """Key bindings (key names as :mod:`rcs.teleop.keyboard` parses them)."""

    deadman: str = "space"
    estop: tuple[str, ...] = ("e", "esc")
    quit: tuple[str, ...] = ("q", "ctrl-c")
    confirm: str = "y"

    def __post_init__(self) -> None:
        used = [self.deadman, *self.estop, *self.quit]
        if len(set(used)) != len(used):
            raise ConfigError(f"operator keys: a key is bound twice among dead-man, e-stop and quit: {used}")


class OperatorConsole:
    """Reads the operator's keys (see the module docstring).

    Args:
        keys: where the keys come from.
        bindings: which key does what.
        first_repeat_s, repeat_gap_s: terminal dead-man timing (s); unused for an input device.
    """

    def __init__(
        self,
        keys: KeySource,
        bindings: OperatorKeys | None = None,
        first_repeat_s: float = FIRST_REPEAT_S,
        repeat_gap_s: float = REPEAT_GAP_S,
    ) -> None:
        if not 0 < repeat_gap_s <= first_repeat_s:
            raise ConfigError(f"repeat_gap_s={repeat_gap_s} must be in (0, first_repeat_s={first_repeat_s}] s")
        self.keys = keys
        self.bindings = bindings or OperatorKeys()
        self.first_repeat_s = first_repeat_s
        self.repeat_gap_s = repeat_gap_s
        self._last_seen = math.nan  # latest press or repeat of the dead-man key (monotonic s)
        self._repeats = 0  # dead-man events of the current hold after its first press
        self._held = False  # input device: between press and release

    def connect(self) -> None:
        self.keys.connect()

    def close(self) -> None:
        self.keys.close()

    def confirm(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` s for one key: the confirm key engages, anything else refuses."""
        end = time.monotonic() + timeout_s
        self.keys.events()  # a key typed before the question is no answer
        while (left := end - time.monotonic()) > 0:
            if not self.keys.wait(left):
                continue
            for ev in self.keys.events():
                if ev.down and not ev.repeat:
                    return ev.key == self.bindings.confirm
        return False

    def held(self, now: float | None = None) -> bool:
        """Whether the dead-man key counts as held at ``now`` (monotonic s)."""
        if self.keys.releases:
            return self._held
        now = time.monotonic() if now is None else now
        if math.isnan(self._last_seen):
            return False
        gap = self.first_repeat_s if self._repeats == 0 else self.repeat_gap_s
        return now - self._last_seen <= gap

    def poll(self, timeout_s: float = 0.0) -> list[OperatorEvent]:
        """Wait up to ``timeout_s`` s for keys; the events since the last poll, in order. ``ENGAGE``/``HOLD``
        report changes of the dead-man state (a release is noticed here too when the repeats stop)."""
        was = self.held()
        if timeout_s > 0:
            self.keys.wait(timeout_s)
        out = [event for ev in self.keys.events() for event in self._apply(ev)]
        is_held = self.held()
        if is_held != was:
            out.append(OperatorEvent.ENGAGE if is_held else OperatorEvent.HOLD)
        return out

    def _apply(self, ev: KeyEvent) -> Sequence[OperatorEvent]:
        b = self.bindings
        if ev.key == b.deadman:
            if self.keys.releases:
                self._held = ev.down
                return ()
            if ev.down:
                # a new hold: the terminal's repeat delay applies until a second event of the key arrives
                self._repeats = self._repeats + 1 if self.held(ev.time) else 0
                self._last_seen = ev.time
            return ()
        if not ev.down or ev.repeat:
            return ()
        if ev.key in b.estop:
            return (OperatorEvent.ESTOP,)
        if ev.key in b.quit:
            return (OperatorEvent.QUIT,)
        return ()
