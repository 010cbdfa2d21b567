"""An emulator's side channel: what a test or benchmark may ask an emulated robot that no real robot answers
(ground truth from the physics, fault injection, a hand moving the robot), as JSON requests over ZeroMQ REQ/REP.

Request ``{"cmd": NAME, ...fields}``; reply ``{"ok": true, ...}`` or ``{"ok": false, "error": one line}``. The
emulator process runs a :class:`ControlServer` with its own handler; the test side holds a :class:`ControlClient`.
The driver under test never uses this channel: it talks to the emulator over the vendor's wire protocol only.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import Any

from rcs.errors import ConfigError, LinkLostError

Handler = Callable[[Mapping[str, Any]], dict[str, Any]]
"""A request (``cmd`` and its fields) -> the reply's fields; raises ValueError/KeyError/TypeError to refuse it."""

#: ms between checks of the stop flag while no request arrives
_POLL_MS = 50


class ControlServer:
    """Binds ``endpoint`` (REP) and answers each request with ``handle`` on a daemon thread (:meth:`start`).

    A handler's ValueError, KeyError or TypeError is the request's refusal (``ok: false`` with its first line);
    the server keeps serving.
    """

    def __init__(self, endpoint: str, handle: Handler, name: str = "emulator-control") -> None:
        import zmq

        self.endpoint = endpoint
        self._zmq = zmq
        self._ctx = zmq.Context()
        self._rep = self._ctx.socket(zmq.REP)
        self._rep.setsockopt(zmq.LINGER, 0)
        self._rep.bind(endpoint)
        self._handle = handle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        """Start answering requests."""
        self._thread.start()

    def _serve(self) -> None:
        poller = self._zmq.Poller()
        poller.register(self._rep, self._zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(_POLL_MS):
                continue
            try:
                reply = {"ok": True, **self._handle(json.loads(self._rep.recv()))}
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"ok": False, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
            self._rep.send(json.dumps(reply).encode())

    def close(self) -> None:
        """Stop serving and release the socket (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if not self._rep.closed:
            self._rep.close(0)
            self._ctx.term()


class ControlClient:
    """The test side of an emulator's channel.

    Args:
        name: names the emulator in every error (e.g. ``"hw/so101 emulator"``).
        endpoint: the emulator's control endpoint (from its ready line).
        timeout_s: how long a request waits for its reply.
        process: the emulator's process, to say whether it exited when a reply does not come.
    """

    def __init__(self, name: str, endpoint: str, timeout_s: float, process: subprocess.Popen) -> None:
        import zmq

        self.name = name
        self.endpoint = endpoint
        self._timeout_ms = int(timeout_s * 1000)
        self._process = process
        self._zmq = zmq
        self._ctx: Any = zmq.Context()
        self._sock: Any = None

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send ``cmd`` with ``fields``; the reply's fields (``ok`` removed).

        Raises:
            LinkLostError: the channel is closed, or no reply came within the timeout (the message says whether
                the process exited).
            ConfigError: the emulator refused the request (its one-line reason).
        """
        if self._ctx is None:
            raise LinkLostError(f"{self.name}: {cmd}: the emulator is closed")
        zmq = self._zmq
        if self._sock is None:
            self._sock = self._ctx.socket(zmq.REQ)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(self.endpoint)
        self._sock.send(json.dumps({"cmd": cmd, **fields}).encode())
        if not self._sock.poll(self._timeout_ms):
            self._sock.close(0)  # a REQ socket without its reply cannot send again
            self._sock = None
            state = "exited" if self._process.poll() is not None else "running"
            raise LinkLostError(
                f"{self.name}: {cmd}: no control reply within {self._timeout_ms / 1000} s (process {state})"
            )
        reply = json.loads(self._sock.recv())
        if not reply.pop("ok", False):
            raise ConfigError(f"{self.name}: {cmd}: {reply.get('error')}")
        return dict(reply)

    def close(self) -> None:
        """Release the channel (idempotent); later requests raise :class:`LinkLostError`."""
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
