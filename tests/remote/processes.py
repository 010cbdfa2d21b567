"""Shared by the tests that run an ``rcs`` command (``rcs robot`` above all) as a real process: start it and wait
for its ready line, stop it with SIGTERM the way a supervisor does."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

#: the ``rcs`` command line in this interpreter (the tests' venv); append the subcommand and its options
RCS = [sys.executable, "-m", "rcs.cli.main"]
#: the line ``rcs robot`` prints on stdout once its driver is connected and its sockets are bound
READY = '"ready": true'


def start_ready(cmd: list[str], needle: str = READY, timeout: float = 120.0) -> subprocess.Popen[str]:
    """Start ``cmd`` (``[*RCS, subcommand, ...]``) and return it once a stdout line contains ``needle``.

    Waits at most ``timeout`` s (generous: a loaded 2-core host); a process that exits or stays silent that long is
    killed, and the AssertionError carries its last stdout and stderr.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end, seen = time.monotonic() + timeout, []
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return proc
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"{cmd[3:5]}: no ready line within {timeout} s: {''.join(seen)[-1000:]} {err[-2000:]}")


def terminate(proc: subprocess.Popen[str]) -> str:
    """SIGTERM ``proc`` if it still runs, wait up to 30 s (then SIGKILL) and return its stderr; the exit code is
    then ``proc.returncode``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err
