"""Keyboard: real key events (terminal bytes through a real pty in cbreak mode, evdev input_event records through
a FIFO) parsed by the real device, mapped onto the env's action modes."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from rcs.errors import NotConnectedError
from rcs.teleop.base import EpisodeEvent
from rcs.teleop.keyboard import INPUT_EVENT, KeyboardTeleop, parse_evdev, parse_terminal_bytes

OBS = {"gripper": np.array([1.0], np.float32)}


def _ev(code: int, value: int, etype: int = 1, t: float = 100.25) -> bytes:
    return INPUT_EVENT.pack(int(t), int((t % 1) * 1e6), etype, code, value)


def test_terminal_bytes_parse_keys_sequences_and_lone_escape():
    keys = [e.key for e in parse_terminal_bytes(b"wA \r\x7f\x1b[3~\x1b[A\x1b\x03z", 1.0)]
    assert keys == ["w", "a", "space", "enter", "backspace", "delete", "up", "esc", "ctrl-c", "z"]
    assert parse_terminal_bytes(b"\x00\x01", 1.0) == []  # unbound control bytes are ignored


def test_evdev_records_parse_press_release_repeat_and_reject_partial_reads():
    data = _ev(17, 1) + _ev(0, 0, etype=0) + _ev(17, 2) + _ev(17, 0) + _ev(999, 1) + _ev(4, 1, etype=4)
    events = parse_evdev(data)
    assert [(e.key, e.down, e.repeat) for e in events] == [("w", True, False), ("w", True, True), ("w", False, False)]
    assert events[0].time == pytest.approx(100.25)
    with pytest.raises(ValueError, match="not a whole number of 24-byte"):
        parse_evdev(data[:-3])


@pytest.fixture
def pty_keyboard():
    master, slave = os.openpty()
    kb = KeyboardTeleop(tty=os.ttyname(slave), hold_s=0.3)
    kb.connect()
    yield kb, master
    kb.close()
    os.close(master)
    os.close(slave)


def _settle() -> None:
    time.sleep(0.05)  # let the pty deliver the bytes


def test_terminal_keyboard_through_a_real_pty(pty_keyboard):
    kb, master = pty_keyboard
    assert kb.command(OBS).twist.tolist() == [0.0] * 6
    os.write(master, b"wd")
    _settle()
    cmd = kb.command(OBS)
    assert cmd.twist[0] == pytest.approx(0.1) and cmd.twist[1] == pytest.approx(-0.1) and cmd.events == ()
    time.sleep(0.35)  # no auto-repeat arrived within hold_s: the jog stops
    assert kb.command(OBS).twist.tolist() == [0.0] * 6
    os.write(master, b" ")
    _settle()
    assert kb.command(OBS).gripper == 0.0
    os.write(master, b"\r\x7f\x1b[3~\x1b")
    _settle()
    assert kb.command(OBS).events == (
        EpisodeEvent.START,
        EpisodeEvent.RERECORD,
        EpisodeEvent.DISCARD,
        EpisodeEvent.QUIT,
    )
    assert kb.command(OBS).events == ()  # events are delivered once


def test_evdev_keyboard_holds_until_release_and_reports_unplug(tmp_path):
    fifo = tmp_path / "event0"
    os.mkfifo(fifo)
    writer_fd = None
    kb = KeyboardTeleop(device=str(fifo), hold_s=0.01)
    try:
        kb.connect()  # opens the read end non-blocking
        writer_fd = os.open(fifo, os.O_WRONLY)
        os.write(writer_fd, _ev(19, 1) + _ev(38, 1))  # r (up) and l (yaw -) pressed
        time.sleep(0.05)
        cmd = kb.command(OBS)
        assert cmd.twist[2] == pytest.approx(0.1) and cmd.twist[5] == pytest.approx(-0.5)
        time.sleep(0.05)  # still held: evdev reports releases, so no hold timeout applies
        assert kb.command(OBS).twist[2] == pytest.approx(0.1)
        os.write(writer_fd, _ev(19, 0) + _ev(28, 1) + _ev(28, 0))
        time.sleep(0.05)
        cmd = kb.command(OBS)
        assert cmd.twist[2] == 0.0 and cmd.twist[5] == pytest.approx(-0.5) and cmd.events == (EpisodeEvent.START,)
        os.close(writer_fd)
        writer_fd = None  # the device goes away: end of file
        with pytest.raises(NotConnectedError, match="device gone"):
            kb.command(OBS)
    finally:
        if writer_fd is not None:
            os.close(writer_fd)
        kb.close()
