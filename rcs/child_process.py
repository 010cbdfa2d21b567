"""Child processes that end with the process that started them.

A child started with ``preexec_fn=terminate_with_parent()`` receives SIGTERM from the kernel when its parent dies
(Linux ``prctl(PR_SET_PDEATHSIG)``), also when the parent is SIGKILLed and cannot clean up. The child's own
SIGTERM handler then runs (a policy server stops, the run log saves its open segment, a view closes its file, a
robot server of ``rcs up`` stops its robot): a killed ``rcs deploy``, ``rcs eval``, ``rcs up`` or robot with a
view leaves no process behind. Such a child's last report then goes to a pipe nobody reads:
:func:`report_to_parent` drops it instead of ending on a BrokenPipeError.

Caveats (the kernel's and the C library's rules): "parent" is the *thread* that forked the child; start such
children from a thread that lives as long as they should (the main thread in every caller here). Between fork
and exec a child of a threaded parent may only do async-signal-safe work: the C library lookup (``dlopen``,
``dlsym``: locks another thread may hold at fork time) happens in the parent, the child makes one system call.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
from collections.abc import Callable
from typing import TextIO

#: Linux prctl option: the signal a child receives when its parent dies
_PR_SET_PDEATHSIG = 1


def _skip() -> None:
    """Stand-in where prctl does not exist: the parent's stop() still ends the child on a normal exit."""


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """The C library's ``prctl``, looked up once (None where it does not exist)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def terminate_with_parent() -> Callable[[], None]:
    """Return the ``preexec_fn`` that asks the kernel for SIGTERM in the child when its parent dies (Linux;
    elsewhere a function that does nothing).

    Call it in the parent: the returned function only makes the ``prctl`` system call, in the child before exec.
    """
    prctl = _prctl()
    if prctl is None:
        return _skip
    # ctypes arguments made here: the child converts nothing, it only makes the call
    option, sig = ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGTERM)

    def set_parent_death_signal() -> None:
        prctl(option, sig)

    return set_parent_death_signal


def report_to_parent(text: str, stream: TextIO) -> None:
    """Write ``text`` (e.g. one line, its newline included) to ``stream``, a pipe the parent reads; if the parent
    is gone, drop it.

    A child stopped by :func:`terminate_with_parent` has done its work (saved its file) before it reports; a
    report nobody can read is not an error worth a traceback.
    """
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        # interpreter shutdown flushes the stream again: point it at /dev/null so that flush cannot fail either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
