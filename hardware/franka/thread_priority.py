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
"""

from __future__ import annotations

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
                os.sched_setscheduler(0, policy, param)
            except OSError as exc:  # lowering one's own priority is always permitted; say so if it is not
                log.warning("could not restore the thread's scheduling (%s, %d) after libfranka: %s", *now, exc)
