"""Workaround: libfranka leaves the thread that connects at SCHED_FIFO 99.

libfranka always tries to put the calling thread on ``SCHED_FIFO`` at the highest priority (its
``setCurrentThreadToHighestSchedulerPriority``; with ``RealtimeConfig.Ignore`` it only ignores a failure), and franky
does this when the ``Robot`` is constructed, in the caller's thread, and never restores it (see libfranka's
``ControlLoop`` constructor, quoted in https://github.com/JeanElsner/panda-py/pull/56). Measured here with
franky-control on franky-sim as root: the thread that ran ``FrankaArm.connect()`` came back at ``SCHED_FIFO`` 99.

That thread is ours, not libfranka's: a robot server's main thread, a recording's, a test runner's. At FIFO 99 it
outranks the control loop (FIFO 80) and every emulator, and each process it starts afterwards inherits FIFO 99 (a
policy server, a video encoder, a run log), which can starve a whole machine. :func:`keep_thread_scheduling` puts
the caller's policy and priority back; franky's own control thread keeps whatever libfranka gives it.

It restores them with ``pthread_setschedparam``, not with ``os.sched_setscheduler``: once ``pthread_setschedparam``
was used on a thread, glibc keeps that thread's policy in its thread descriptor, copies it into every thread the
thread creates afterwards, and reports it from ``pthread_getschedparam``. A raw ``sched_setscheduler`` changes the
kernel's value but not that copy, and a library that re-applies "the current" scheduling to its new threads then
raises them to FIFO 99: measured with libzmq, whose I/O threads, created by a thread restored the raw way, called
``sched_setscheduler(SCHED_FIFO, 99)`` on themselves (strace) in every ZeroMQ context the process made afterwards.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def keep_thread_scheduling() -> Iterator[None]:
    """Run the block, then restore the calling thread's scheduling policy and priority if the block changed them."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        now = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
        if now != (policy, param.sched_priority):
            try:
                set_thread_scheduling(policy, param.sched_priority)
            except OSError as exc:  # lowering one's own priority is always permitted; say so if it is not
                log.warning("could not restore the thread's scheduling (%s, %d) after libfranka: %s", *now, exc)


class _SchedParam(ctypes.Structure):
    _fields_ = [("sched_priority", ctypes.c_int)]


def set_thread_scheduling(policy: int, priority: int) -> None:
    """Set the calling thread's policy (``os.SCHED_*``) and static priority through glibc's
    ``pthread_setschedparam``, so that glibc's own record of them (what the thread's new threads copy and
    ``pthread_getschedparam`` reports) agrees with the kernel. Raises :class:`OSError` if refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.pthread_self.restype = ctypes.c_ulong
    libc.pthread_setschedparam.argtypes = [ctypes.c_ulong, ctypes.c_int, ctypes.POINTER(_SchedParam)]
    error = libc.pthread_setschedparam(libc.pthread_self(), policy, ctypes.byref(_SchedParam(priority)))
    if error:
        raise OSError(error, os.strerror(error))
