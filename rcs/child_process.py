"""Child processes that end with the process that started them.

A child started with ``preexec_fn=terminate_with_parent`` receives SIGTERM from the kernel when its parent dies
(Linux ``prctl(PR_SET_PDEATHSIG)``), also when the parent is SIGKILLed and cannot clean up. The child's own
SIGTERM handler then runs (a policy server stops, the run log saves its open segment): a killed ``rcs deploy``
or ``rcs eval`` leaves no process behind.

Caveat (the kernel's rule): "parent" is the *thread* that forked the child; start such children from a thread
that lives as long as they should (the main thread in every caller here).
"""

from __future__ import annotations

import ctypes
import signal

#: Linux prctl option: the signal a child receives when its parent dies
_PR_SET_PDEATHSIG = 1


def terminate_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the parent dies (Linux; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's stop() still ends the child on a normal exit
