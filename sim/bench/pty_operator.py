"""A scripted operator for ``rcs deploy`` (tests and ``rcs bench deploy``): the command runs in a child process
whose stdin is a real pseudo-terminal, and the script types on it as an operator would (``y``, the dead-man key with
a terminal's auto-repeat, ``e``, ``q``), while it reads the command's progress lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

RCS = [sys.executable, "-m", "rcs.cli.main"]


class PtyOperator:
    """``rcs deploy ARGS --json`` in a child process whose stdin is a pseudo-terminal a script types on.

    Args:
        args: ``rcs deploy`` options.
        env: the child's environment (default this process's).
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        master, slave = os.openpty()
        self.master = master
        self.proc = subprocess.Popen(
            [*RCS, "deploy", *args, "--json"],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        os.close(slave)
        self.lines: list[str] = []
        self._typing = threading.Lock()  # the pty is closed only between two keys
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 240.0) -> float:
        """Block until ``text`` appears on stderr; the monotonic time it was seen."""
        end = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > end:
                out = self.proc.stdout.read() if self.proc.poll() is not None and self.proc.stdout else ""
                raise AssertionError(f"no {text!r} from rcs deploy:\n{''.join(self.lines)[-4000:]}\n{out[-3000:]}")
            time.sleep(0.05)
        return time.monotonic()

    def type(self, keys: bytes) -> bool:
        """Type ``keys``; False once the terminal is closed (the run ended)."""
        with self._typing:
            if self._closed:
                return False
            os.write(self.master, keys)
            return True

    def hold(self, seconds: float) -> None:
        """Hold the dead-man key: a press, then a terminal's auto-repeat (25 Hz), until ``seconds`` or the end."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.type(b" "):
            time.sleep(0.04)

    def result(self, timeout: float = 180.0) -> tuple[int, dict[str, Any]]:
        out, _ = self.proc.communicate(timeout=timeout)
        with self._typing:
            self._closed = True
            os.close(self.master)
        self._reader.join(5.0)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        assert lines, f"rcs deploy printed no report (exit {self.proc.returncode}):\n{''.join(self.lines)[-4000:]}"
        return self.proc.returncode, json.loads(lines[-1])

    def text(self) -> str:
        return "".join(self.lines)
