"""An emulator's own OS process, as a robot or camera is its own machine: start, ready line, stop, kill.

Every emulator runs ``python -m hardware.emulators.<module> ...`` and prints one JSON line ``{"ready": true, ...}``
on stdout once it serves; its stderr goes to a temporary file whose last line explains an early exit. The test
side is :class:`EmulatorProcess`; inside the process, :func:`serve_emulator` runs the emulator until a signal.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hardware.emulators.control import ControlClient
from rcs.errors import LinkLostError

log = logging.getLogger(__name__)

#: the repository root: emulator modules are run from it (they import ``hardware`` and ``sim``).
REPO = Path(__file__).resolve().parents[2]

#: environment variable naming the process that started an emulator: the emulator stops when that process is gone.
PARENT_ENV = "RCS_EMULATOR_PARENT_PID"


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
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            **{PARENT_ENV: str(os.getpid())},
        )
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


def serve_emulator(
    kind: str,
    control: str | None,
    start: Callable[[str], Any],
    ready: Callable[[Any], Mapping[str, Any]],
    failure: Callable[[Any], BaseException | None] = lambda _: None,
) -> int:
    """The life of an emulator process, after its own set-up: start it, print the ready line, serve until SIGTERM or
    SIGINT, close it. Returns the process's exit code (1 when ``failure`` reports that its physics stopped).

    Args:
        kind: short name for the default control endpoint and messages (``"so101"``, ``"px4"``...).
        control: the side channel's endpoint, or ``None`` for an ipc socket of this process in the temp folder
            (removed at exit).
        start: builds and starts the emulator on ``control``; the result must have ``close()``.
        ready: the ready line's fields besides ``ready`` and ``control`` (e.g. the port a driver connects to).
        failure: what stopped the emulator on its own, checked every 0.5 s (``None``: running).

    Started by :class:`EmulatorProcess` (``RCS_EMULATOR_PARENT_PID`` set), the emulator also stops within 0.5 s of
    that process vanishing without stopping it (killed, crashed): an orphan would go on streaming telemetry at
    ``SCHED_FIFO`` priority to nobody and starve the machine.
    """
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    control = control or f"ipc://{tempfile.gettempdir()}/rcs-{kind}-{os.getpid()}.ipc"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before start: a signal during start-up still cleans up
        signal.signal(sig, lambda *_: stop.set())
    emulator = None
    try:
        emulator = start(control)
        sys.stdout.write(json.dumps({"ready": True, **ready(emulator), "control": control}) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            if parent and os.getppid() != parent:
                log.warning("%s emulator: the process that started it (pid %d) is gone; stopping", kind, parent)
                return 0
            stopped = failure(emulator)
            if stopped is not None:
                log.error("%s emulator: physics stopped: %s", kind, stopped)
                return 1
    finally:
        if emulator is not None:
            emulator.close()
        if control.startswith("ipc://"):
            Path(control[len("ipc://") :]).unlink(missing_ok=True)
    return 0


class EmulatorClient:
    """The test side of a running emulator: its process (:class:`EmulatorProcess`) and its side channel
    (:class:`hardware.emulators.control.ControlClient`). Emulators' client classes derive from it and add their
    own requests, ``robot`` and ``robot_config``.

    Args:
        name: names the emulator in every message (e.g. ``"hw/so101 emulator"``).
        module: the emulator's module, run as ``python -m``.
        args: its command-line arguments.
        ready_keys: keys its ready line must carry besides ``control``.
        ready_timeout: seconds to wait for the ready line.
        request_timeout: seconds a side-channel request waits for its reply.
        python: the interpreter (default this one).

    Attributes:
        process: the :class:`subprocess.Popen`.
        ready: the parsed ready line.
        control: the side channel's endpoint.
    """

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        ready_keys: Sequence[str],
        ready_timeout: float,
        request_timeout: float,
        python: str | None = None,
    ) -> None:
        self._closed = False
        self._proc = EmulatorProcess(name, module, args, (*ready_keys, "control"), ready_timeout, python)
        self.process = self._proc.process
        self.ready = self._proc.ready
        self.control: str = self.ready["control"]
        self._channel = ControlClient(name, self.control, request_timeout, self.process)

    def _request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return self._channel.request(cmd, **fields)

    def kill(self) -> None:
        """The robot dies without warning (SIGKILL): its link and its side channel vanish."""
        self._proc.kill()

    def close(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and release the side channel (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._proc.stop()
        self._channel.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
