"""``rcs view`` as a child process beside a robot server (``rcs robot --view``, ``rcs deploy --view``).

A process of its own, so the loop never waits on it: the loop thread runs SCHED_FIFO where permitted, above any
normal process. The view is not niced, or a busy machine would starve it.
"""

from __future__ import annotations

import logging
import subprocess
import sys

log = logging.getLogger(__name__)

#: s the view gets to flush and close its file after SIGTERM before it is killed
STOP_TIMEOUT_S = 10.0


class ViewProcess:
    """``rcs view`` on a server's endpoints, into a running rerun viewer, else into ``save`` (``""``: the view's
    default file, outputs/view/rcs-<time>.rrd)."""

    def __init__(self, save: str, state_endpoint: str, command_endpoint: str) -> None:
        cmd = [sys.executable, "-m", "rcs.cli.main", "view", "--state-endpoint", state_endpoint]
        cmd += ["--command-endpoint", command_endpoint, *(["--save", save] if save else [])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        """SIGTERM (the view flushes and closes its file), then wait; kill if it hangs."""
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning(
                "rcs view did not stop within %.0f s: killed (its file may miss the last seconds)", STOP_TIMEOUT_S
            )
            self.proc.kill()
            self.proc.wait()
