"""`rcs serve` as a real subprocess, and the `serve` fixture that starts them (shared through tests/conftest.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

RCS = str(Path(sys.executable).with_name("rcs"))


class Server:
    """`rcs serve` in a subprocess; learns its endpoint from the log line."""

    def __init__(self, *args: str, bind: str = "tcp://127.0.0.1:0") -> None:
        self.proc = subprocess.Popen(
            [RCS, "serve", "--bind", bind, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self._found = threading.Event()
        self.endpoint = ""
        threading.Thread(target=self._drain, daemon=True).start()
        end = time.monotonic() + 90.0  # a lerobot checkpoint imports torch first: slow on a loaded machine
        while not self._found.wait(0.05) and self.proc.poll() is None and time.monotonic() < end:
            pass
        if not self._found.is_set():
            self.kill()
            time.sleep(0.1)
            raise RuntimeError("rcs serve did not start:\n" + "".join(self.lines))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r" on (tcp://\S+?)(?: with CURVE)?$", line.strip())
            if m and not self._found.is_set():
                self.endpoint = m.group(1)
                self._found.set()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def log(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def serve():
    started: list[Server] = []

    def start(*args: str, bind: str = "tcp://127.0.0.1:0") -> Server:
        s = Server(*args, bind=bind)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()
