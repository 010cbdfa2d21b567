"""Child processes that end with the process that started them.

A child started with ``preexec_fn=terminate_with_parent`` receives SIGTERM from the kernel when its parent dies
(Linux ``prctl(PR_SET_PDEATHSIG)``), also when the parent is SIGKILLed and cannot clean up. The child's own
SIGTERM handler then runs (a policy server stops, the run log saves its open segment, a view closes its file, a
robot server of ``rcs up`` stops its robot): a killed ``rcs deploy``, ``rcs eval``, ``rcs up`` or robot with a
view leaves no process behind. Such a child's last report then goes to a pipe nobody reads:
:func:`report_to_parent` drops it instead of ending on a BrokenPipeError.

Caveat (the kernel's rule): "parent" is the *thread* that forked the child; start such children from a thread
that lives as long as they should (the main thread in every caller here).
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import TextIO

#: Linux prctl option: the signal a child receives when its parent dies
_PR_SET_PDEATHSIG = 1


def terminate_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the parent dies (Linux; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's stop() still ends the child on a normal exit


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
