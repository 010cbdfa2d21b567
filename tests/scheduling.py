"""Shared by tests: which threads of a process run ``SCHED_FIFO`` (read from ``/proc``)."""

from __future__ import annotations

import os
import threading


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
