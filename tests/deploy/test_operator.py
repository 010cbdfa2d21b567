"""The operator's keys of rcs deploy: real bytes through a real pty in cbreak mode (terminal: presses and
auto-repeat only), and real input_event records through a FIFO (an input device: presses and releases)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rcs.deploy.operator import OperatorConsole, OperatorEvent, OperatorKeys
from rcs.errors import ConfigError
from rcs.teleop.keyboard import INPUT_EVENT, KeySource

SPACE, E_KEY = 57, 18  # linux/input-event-codes.h


@pytest.fixture
def terminal():
    master, slave = os.openpty()
    console = OperatorConsole(
        KeySource(tty=os.ttyname(slave)), first_repeat_s=1.0, repeat_gap_s=0.5
    )  # wide: a loaded host stalls
    console.connect()
    yield console, master
    console.close()
    os.close(master)
    os.close(slave)


def _poll_for(console: OperatorConsole, seconds: float) -> list[OperatorEvent]:
    out: list[OperatorEvent] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out += console.poll(0.01)
    return out


def test_terminal_deadman_is_held_while_the_key_repeats_and_released_when_it_stops(terminal):
    console, master = terminal
    assert console.poll(0.05) == [] and not console.held()
    os.write(master, b" ")  # the press; a terminal repeats only after its delay (here under first_repeat_s)
    assert _poll_for(console, 0.1) == [OperatorEvent.ENGAGE]
    assert _poll_for(console, 0.6) == [] and console.held()  # waiting for the first repeat: still held
    for _ in range(10):  # auto-repeat at 25 Hz
        os.write(master, b" ")
        assert _poll_for(console, 0.04) == []
    assert console.held()
    events = _poll_for(console, 1.2)  # the repeats stopped: released after repeat_gap_s
    assert events == [OperatorEvent.HOLD] and not console.held()
    os.write(master, b" ")  # pressed again: engaged again
    assert _poll_for(console, 0.05) == [OperatorEvent.ENGAGE]


def test_terminal_press_without_repeat_releases_after_the_first_repeat_window(terminal):
    console, master = terminal
    os.write(master, b" ")
    assert _poll_for(console, 0.1) == [OperatorEvent.ENGAGE]
    t0 = time.monotonic()
    while console.held():
        console.poll(0.01)
    assert time.monotonic() - t0 < 1.0 + 0.5  # first_repeat_s after the press, plus a loaded host's poll


def test_terminal_repeats_read_in_one_batch_release_after_the_repeat_gap(terminal):
    """A reader that fell behind (a loaded host) reads buffered auto-repeats at one instant: they are repeats, so
    the release is noticed repeat_gap_s after them, not first_repeat_s (the arm would run on after the key)."""
    console, master = terminal
    os.write(master, b"   ")  # three repeats buffered while the reader was busy
    t0 = time.monotonic()
    assert _poll_for(console, 0.05) == [OperatorEvent.ENGAGE]
    while console.held():
        console.poll(0.01)
    assert time.monotonic() - t0 < 1.0  # first_repeat_s: an old reader held until here at the earliest


def test_terminal_repeats_buffered_during_a_stall_do_not_extend_the_hold(terminal):
    """The reader stalls (a loaded host) while the operator holds, then lets go: the repeats read after the stall
    may be as old as the stall, so the key counts as released at once, not repeat_gap_s after the late read."""
    console, master = terminal
    os.write(master, b" ")
    assert _poll_for(console, 0.05) == [OperatorEvent.ENGAGE]
    for _ in range(20):  # 0.8 s of auto-repeat at 25 Hz that nobody reads
        os.write(master, b" ")
        time.sleep(0.04)
    time.sleep(0.1)  # the key was let go; then the reader catches up
    assert console.poll() == [OperatorEvent.HOLD] and not console.held()
    os.write(master, b" ")  # still held after all: the next repeat engages again
    assert _poll_for(console, 0.05) == [OperatorEvent.ENGAGE]


def test_terminal_estop_quit_and_confirm(terminal):
    console, master = terminal
    os.write(master, b"e")
    assert _poll_for(console, 0.05) == [OperatorEvent.ESTOP]
    os.write(master, b"\x1b")
    assert _poll_for(console, 0.05) == [OperatorEvent.ESTOP]
    os.write(master, b"q")
    assert _poll_for(console, 0.05) == [OperatorEvent.QUIT]
    os.write(master, b"n")  # typed before the question: no answer
    time.sleep(0.05)
    t0 = time.monotonic()
    assert console.confirm(0.3) is False and time.monotonic() - t0 >= 0.3  # nothing typed: refused at the timeout
    threading.Timer(0.1, os.write, (master, b"y")).start()  # typed after the question
    assert console.confirm(2.0) is True
    threading.Timer(0.1, os.write, (master, b"x")).start()
    t0 = time.monotonic()
    assert console.confirm(2.0) is False and time.monotonic() - t0 < 1.5  # anything else refuses at once
    os.write(master, b"y")  # typed before the question: discarded, so the answer is the timeout's
    time.sleep(0.05)
    assert console.confirm(0.2) is False


def test_input_device_deadman_follows_press_and_release(tmp_path):
    fifo = tmp_path / "event0"
    os.mkfifo(fifo)
    console = OperatorConsole(KeySource(device=str(fifo)))
    console.connect()
    writer = os.open(fifo, os.O_WRONLY)
    try:

        def ev(code: int, value: int) -> bytes:
            return INPUT_EVENT.pack(0, 0, 1, code, value)

        os.write(writer, ev(SPACE, 1))
        assert _poll_for(console, 0.05) == [OperatorEvent.ENGAGE]
        assert _poll_for(console, 1.0) == [] and console.held()  # no repeats needed: held until released
        os.write(writer, ev(SPACE, 0) + ev(E_KEY, 1))
        assert _poll_for(console, 0.05) == [OperatorEvent.ESTOP, OperatorEvent.HOLD]
    finally:
        os.close(writer)
        console.close()


def test_bad_bindings_and_timing_are_refused():
    with pytest.raises(ConfigError, match="bound twice"):
        OperatorKeys(deadman="e")
    with pytest.raises(ConfigError, match="repeat_gap_s=0.9 must be in"):
        OperatorConsole(KeySource(), repeat_gap_s=0.9, first_repeat_s=0.5)
