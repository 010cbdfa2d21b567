"""``rcs view`` as a child process beside a robot server (``rcs robot --view``, ``rcs deploy --view``) or beside a
stream of a robot that has no server (``rcs record --view``, ``rcs eval --view``: :func:`view_of_stream`).

A process of its own, so the loop never waits on it: the loop thread runs SCHED_FIFO where permitted, above any
normal process. The view is not niced, or a busy machine would starve it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any

from rcs.child_process import terminate_with_parent
from rcs.loopback import free_endpoint

log = logging.getLogger(__name__)

#: s the view gets to flush and close its file after SIGTERM before it is killed
STOP_TIMEOUT_S = 10.0
#: s the view gets to come up (import rerun, describe the server, subscribe) before motion starts without it
READY_TIMEOUT_S = 60.0


class ViewProcess:
    """``rcs view`` on a server's endpoints, into a running rerun viewer, else into ``save`` (``""``: the view's
    default file, outputs/view/rcs-<time>.rrd).

    The constructor returns once the view has printed its ready line, i.e. it is subscribed and sees everything
    published from then on (a view started on a busy machine can otherwise take seconds to import rerun and
    miss a short run entirely). A view that is not up within ``ready_timeout_s`` is reported with a warning and
    the caller goes on without waiting further: the view is an aid, never a reason for the robot to wait.
    """

    def __init__(
        self, save: str, state_endpoint: str, command_endpoint: str, ready_timeout_s: float = READY_TIMEOUT_S
    ) -> None:
        cmd = [sys.executable, "-m", "rcs.cli.main", "view", "--state-endpoint", state_endpoint]
        cmd += ["--command-endpoint", command_endpoint, *(["--save", save] if save else [])]
        # a parent killed outright (SIGKILL) still ends its view, which then closes its file
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=terminate_with_parent())
        self.ready = threading.Event()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True, name="rcs-view-stdout").start()
        if not self.ready.wait(ready_timeout_s):
            state = f"exited with code {self.proc.poll()}" if self.proc.poll() is not None else "still starting"
            log.warning("rcs view not up within %.0f s (%s): going on without waiting for it", ready_timeout_s, state)

    def _read(self, stream: IO[str]) -> None:
        """Drain the view's stdout (its ready line and final summary), so that it never blocks on a full pipe."""
        for line in stream:
            if '"ready"' in line:
                self.ready.set()
        self.ready.set()  # exited: nobody waits for a line that will not come

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


def view_of_stream(save: str, description: Mapping[str, Any]) -> tuple[Any, ViewProcess]:
    """A :class:`rcs.remote.publisher.StreamPublisher` of ``description``'s robot (:func:`rcs.remote.description.
    describe`) on two free loopback endpoints, and ``rcs view`` subscribed to it, into ``save`` (see
    :class:`ViewProcess`). The caller publishes each state to the stream and closes both."""
    from rcs.remote.publisher import StreamPublisher

    stream = StreamPublisher(description, free_endpoint(), free_endpoint())
    try:
        return stream, ViewProcess(save, stream.state_endpoint, stream.command_endpoint)
    except BaseException:
        stream.close()
        raise
