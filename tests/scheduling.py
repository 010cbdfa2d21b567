"""Shared by tests: which threads of a process run ``SCHED_FIFO`` (read from ``/proc``), and waiting for them to end."""

from __future__ import annotations

import os
import threading
import time


def fifo_threads() -> dict[int, str]:
    """This process's ``SCHED_FIFO`` threads: thread id -> Python's name where it has one, else the kernel's
    ``comm`` (ZeroMQ names its I/O threads ``ZMQbg/IO/<n>``)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    found: dict[int, str] = {}
    for entry in os.listdir("/proc/self/task"):
        tid = int(entry)
        try:
            if os.sched_getscheduler(tid) != os.SCHED_FIFO:
                continue
            with open(f"/proc/self/task/{tid}/comm") as f:
                found[tid] = names.get(tid) or f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
    return found


def fifo_threads_left(among: set[int] | None = None, *, timeout_s: float = 2.0) -> dict[int, str]:
    """The ``SCHED_FIFO`` threads (of ``among`` where given) still running after up to ``timeout_s`` seconds of
    waiting for them to end (threads stopped with a join timeout finish their last tick meanwhile)."""
    end = time.monotonic() + timeout_s
    while True:
        left = {tid: name for tid, name in fifo_threads().items() if among is None or tid in among}
        if not left or time.monotonic() >= end:
            return left
        time.sleep(0.05)
