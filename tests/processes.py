"""Shared by tests: a process's children and waiting for a process that is not ours to end (Linux ``/proc``)."""

from __future__ import annotations

import time
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """The processes ``pid``'s threads started."""
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]


def command_line(pid: int) -> list[str]:
    """``pid``'s argv (empty once it has ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except (FileNotFoundError, ProcessLookupError):
        return []


def ended(pid: int, timeout_s: float) -> bool:
    """True once ``pid`` has exited (or is a zombie: dead, only not yet reaped by whoever adopted it)."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.1)


def signal_state(pid: int) -> str:
    """Why ``pid`` may still run after a signal: its state, its pending / blocked / ignored / caught signal masks
    (hex, bit ``n - 1`` for signal ``n``: SIGTERM is 0x4000) and each thread's name, state and kernel wait channel.
    One line, for an assertion message."""
    try:
        status = dict(
            line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line
        )
        threads = []
        for t in sorted(Path(f"/proc/{pid}/task").iterdir()):
            stat = (t / "stat").read_text()
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
            threads.append(f"{name}:{rest.split()[0]}:{(t / 'wchan').read_text() or '-'}")
    except (FileNotFoundError, ProcessLookupError):
        return f"pid {pid} has ended"
    masks = " ".join(
        f"{k}={status.get(k, '?').strip()}" for k in ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    )
    return f"pid {pid}: {masks}; threads {' '.join(threads)}"
