"""An emulator's own OS process, as a robot or camera is its own machine: start, ready line, stop, kill.

Every emulator runs ``python -m hardware.emulators.<module> ...`` and prints one JSON line ``{"ready": true, ...}``
on stdout once it serves; its stderr goes to a temporary file whose last line explains an early exit.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rcs.errors import LinkLostError

#: the repository root: emulator modules are run from it (they import ``hardware`` and ``sim``).
REPO = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    """``python -m <module> <args>`` started from the repository, waited for until its ready line.

    Args:
        name: names the emulator in every message (e.g. ``"hw/so101 emulator"``).
        module: the module to run.
        args: its command-line arguments.
        ready_keys: keys the ready line must carry (besides ``"ready": true``).
        ready_timeout: seconds to wait for the ready line.
        python: the interpreter (default this one, the main venv's).

    Attributes:
        process: the :class:`subprocess.Popen`.
        ready: the parsed ready line.

    Raises:
        LinkLostError: the process exited before its ready line (naming its exit code and last stderr line), did
            not print it in time, or printed something else.
    """

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        ready_keys: Sequence[str],
        ready_timeout: float,
        python: str | None = None,
    ) -> None:
        self.name = name
        self._stopped = False
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [python or sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=env,
        )
        try:
            self.ready: dict[str, Any] = self._wait_ready(ready_keys, ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, keys: Sequence[str], timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        line = b""
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.2)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:  # stdout closed: the process is exiting; let it finish to report its code
                    try:
                        self.process.wait(max(deadline - time.monotonic(), 1.0))
                    except subprocess.TimeoutExpired:
                        pass
                    break
                line += chunk
                if b"\n" in line:
                    try:
                        msg = json.loads(line.split(b"\n", 1)[0])
                    except ValueError:
                        msg = {}
                    if isinstance(msg, dict) and msg.get("ready") and all(msg.get(k) for k in keys):
                        return msg
                    raise LinkLostError(f"{self.name}: unexpected ready line {line[:200]!r}")
            elif self.process.poll() is not None:
                break
        code = self.process.poll()
        if code is not None:
            raise LinkLostError(f"{self.name}: process exited with code {code} before ready: {self.last_error()}")
        raise LinkLostError(f"{self.name}: no ready line within {timeout} s (process still running)")

    def last_error(self) -> str:
        """The last non-empty line the process wrote to stderr."""
        if self._stderr.closed:
            return "(stderr closed)"
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "(no output)"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the device dies without warning (its sockets and ports vanish)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; release the pipes (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def __del__(self) -> None:
        process = getattr(self, "process", None)
        if not getattr(self, "_stopped", True) and process is not None and process.poll() is None:
            process.kill()  # never leave an orphan emulator behind
