"""A child started with ``preexec_fn=terminate_with_parent()`` ends when its parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from tests.processes import ended

# The parent runs a thread that allocates all the time, as a policy client or a view reader does: the child's
# preexec work must not need a lock that thread may hold at fork time.
_PARENT = textwrap.dedent(
    """
    import subprocess, threading
    from rcs.child_process import terminate_with_parent

    def churn():
        while True:
            [bytearray(4096) for _ in range(64)]

    threading.Thread(target=churn, daemon=True).start()
    children = [
        subprocess.Popen(["sleep", "600"], preexec_fn=terminate_with_parent()) for _ in range(20)
    ]
    print(" ".join(str(c.pid) for c in children), flush=True)
    threading.Event().wait()
    """
)


def test_children_of_a_killed_threaded_parent_get_sigterm() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 20
        assert all(not ended(pid, timeout_s=0.0) for pid in pids)
    finally:
        parent.kill()
        parent.wait()
    try:
        assert all(ended(pid, timeout_s=10.0) for pid in pids)
    finally:  # nothing left behind when the assertion fails
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
