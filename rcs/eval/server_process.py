"""The policy server a process evaluates against: ``rcs serve`` as a child process that dies with its parent, a free
loopback endpoint, and the handshake that waits for it (used by ``rcs eval``, ``rcs deploy`` and the residual
policy, which serves its base this way)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rcs.child_process import terminate_with_parent
from rcs.errors import ConfigError
from rcs.serving.protocol import Schema

#: s to wait for the policy server's first answer (loading a checkpoint can take long on a CPU)
SERVER_START_TIMEOUT_S = 300.0


class ServerProcess:
    """``rcs serve --policy DIR`` as a child process, its output in ``log_path``; with ``realtime``
    ``rcs serve --realtime`` (its serving threads ``SCHED_FIFO`` where permitted: the policy is on the control path
    of a real-time loop on this machine).

    On Linux the child gets SIGTERM when this process dies (``PR_SET_PDEATHSIG``): a killed parent never leaves
    a policy server behind.
    """

    def __init__(self, policy: Path, endpoint: str, log_path: Path, *, realtime: bool = False) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = log_path.open("w")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "rcs.cli.main", "serve", "--policy", str(policy), "--bind", endpoint]
        self.proc = subprocess.Popen(
            command + (["--realtime"] if realtime else []),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=terminate_with_parent(),
        )

    @property
    def exited(self) -> bool:
        """The process has ended (by itself or killed)."""
        return self.proc.poll() is not None

    def check_alive(self) -> None:
        """Raise with the tail of the server log if the process exited."""
        if self.proc.poll() is not None:
            tail = self.log_path.read_text()[-2000:]
            raise ConfigError(f"rcs serve exited with code {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; closes the log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_for_server(endpoint: str, schema: Schema | None, server: ServerProcess | None, timeout_s: float) -> str:
    """Handshake until the server answers (its schema checked against ``schema``, the robot's; ``None`` accepts
    any, for a client that adopts the server's schema); returns its checkpoint id."""
    from rcs.serving.client import HandshakeTimeout, PolicyClient, SchemaMismatchError

    client = PolicyClient(endpoint, schema, name="rcs-eval probe")
    end = time.monotonic() + timeout_s
    try:
        while True:
            if server is not None:
                server.check_alive()
            try:
                return client.handshake(1.0).checkpoint_id
            except SchemaMismatchError as e:
                raise ConfigError(f"the served checkpoint does not fit this robot, refusing to run it: {e}") from None
            except HandshakeTimeout:
                if time.monotonic() > end:
                    raise ConfigError(f"no policy server answered at {endpoint} within {timeout_s:.0f} s") from None
    finally:
        client.close()
