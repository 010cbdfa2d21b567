"""Scheduling priorities of the threads a real-time control loop waits on, stated once.

The loop thread runs ``SCHED_FIFO`` at :data:`LOOP_PRIORITY`. What it reads and the actions it applies pass through
other threads; on a busy machine (ordinary ``SCHED_OTHER`` work on every core) those would wait behind that work for
milliseconds, which a motor-level flight policy cannot absorb. So, where permitted, they run ``SCHED_FIFO`` just below
the loop:

- :data:`IO_PRIORITY`: ZeroMQ's I/O threads of a real-time robot server and of its policy client (every state,
  command and action chunk passes them);
- :data:`PATH_PRIORITY`: Python threads on the control path: a device link's receive thread (the state ``read()``
  returns), the policy link's feed (observation out, chunk in), and a same-machine policy server's I/O and
  inference threads (``rcs serve --realtime``).

They still share the interpreter lock with the loop thread (whose switch interval bounds how long it waits for it).
Where ``SCHED_FIFO`` is not permitted each role keeps the default scheduler, with one warning per role and process.

A new thread inherits its creator's policy and priority (Linux ``pthread_create`` without an explicit schedule), so a
helper thread a library starts lazily from the loop thread would run at the loop's priority for the rest of the
process: :func:`start_zmq_garbage_collector` starts pyzmq's such thread beforehand, from an ordinary thread.
"""

from __future__ import annotations

import logging
import os
import threading

import zmq

log = logging.getLogger(__name__)

#: SCHED_FIFO priority of the control loop thread (``RtConfig.fifo_priority``'s default).
LOOP_PRIORITY = 80
#: SCHED_FIFO priority of ZeroMQ's I/O threads in a real-time server or client.
IO_PRIORITY = 70
#: SCHED_FIFO priority of Python threads on the control path (link receive, policy feed, policy server).
PATH_PRIORITY = 60


def enable_fifo(priority: int) -> tuple[bool, str | None]:
    """Switch the calling thread to ``SCHED_FIFO`` at ``priority``. Returns (ok, warning)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True, None
    except (OSError, AttributeError) as e:
        return False, (
            f"SCHED_FIFO priority {priority} not permitted ({e}); running with the default scheduler, expect "
            "millisecond jitter. Run as root, or grant CAP_SYS_NICE / an rtprio limit."
        )


_warned: set[str] = set()
_warned_lock = threading.Lock()


def promote_current_thread(role: str, priority: int = PATH_PRIORITY) -> bool:
    """Switch the calling thread to ``SCHED_FIFO`` at ``priority``; returns whether it took effect.

    Args:
        role: what the thread does (names it in the one warning per role when not permitted).
        priority: 1-99, below :data:`LOOP_PRIORITY` for anything the loop waits on.
    """
    ok, why = enable_fifo(priority)
    if not ok:
        _warn_once(role, f"{role} thread keeps the default scheduler: {why}")
    return ok


def _warn_once(role: str, message: str) -> None:
    with _warned_lock:
        first = role not in _warned
        _warned.add(role)
    if first:
        log.warning("%s", message)


def fifo_permitted(priority: int) -> tuple[bool, str | None]:
    """Whether a new thread of this process may run ``SCHED_FIFO`` at ``priority`` (asked of a short-lived probe
    thread, so that no running thread changes); returns (ok, warning) like :func:`enable_fifo`."""
    answer: list[tuple[bool, str | None]] = []
    probe = threading.Thread(target=lambda: answer.append(enable_fifo(priority)), name="rcs-fifo-probe")
    probe.start()
    probe.join()
    return answer[0]


def realtime_io_threads(ctx: zmq.Context, priority: int = IO_PRIORITY) -> bool:
    """Ask for ``SCHED_FIFO`` ``priority`` on ``ctx``'s I/O threads where this process is permitted it; only takes
    effect before the context's first socket. Returns whether the options were set.

    libzmq applies them as its I/O thread starts and aborts the whole process if the kernel refuses (its
    ``posix_assert`` after ``pthread_setschedparam``: a non-root user without CAP_SYS_NICE or an rtprio limit), so
    the permission is probed first and, where refused, the options are left unset with one warning.
    """
    ok, why = fifo_permitted(priority)
    if not ok:
        _warn_once("zmq-io", f"ZeroMQ I/O threads keep the default scheduler: {why}")
        return False
    try:
        ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_FIFO)
        ctx.set(zmq.THREAD_PRIORITY, priority)
        return True
    except (zmq.ZMQError, AttributeError) as e:
        log.warning("ZeroMQ I/O threads keep the default scheduler: %s", e)
        return False


def start_zmq_garbage_collector() -> None:
    """Start pyzmq's zero-copy garbage-collector thread (and its context's I/O threads) from the calling thread.

    pyzmq starts it on the first zero-copy send of a frame over ``zmq.COPY_THRESHOLD`` bytes (a camera frame); from
    a real-time server's loop thread it would inherit ``SCHED_FIFO`` :data:`LOOP_PRIORITY` and keep it after the
    server stops. Call from a thread with the default scheduler before such a thread starts; no-op if running.
    """
    from zmq.utils.garbage import gc

    if not gc.is_alive():
        gc.start()
