"""Run a third-party transport baseline in its own side venv and return its JSON result.

The baselines (:mod:`sim.bench.baselines`) need packages that conflict with each other and with the stack
(openpi-client pins numpy<2; lerobot pulls torch), so each runs as a subprocess of its venv's interpreter under
``.venv-bench/`` (created by ``scripts/setup_bench_baselines.sh``). This module imports nothing heavy.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcs.errors import RcsError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]  # sim/bench/baselines/runner.py -> repo root
VENV_ROOT = REPO_ROOT / ".venv-bench"
SETUP_SCRIPT = "scripts/setup_bench_baselines.sh"


@dataclass(frozen=True)
class Baseline:
    name: str
    venv: str  # directory under .venv-bench/
    module: str
    description: str


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline(
            "openpi_style",
            "openpi",
            "sim.bench.baselines.openpi_style",
            "openpi-client 0.1.2 WebsocketClientPolicy vs openpi-style websocket + msgpack server",
        ),
        Baseline(
            "lerobot_async",
            "lerobot",
            "sim.bench.baselines.lerobot_async",
            "lerobot 0.6.1 async inference: its gRPC PolicyServer + RobotClient, pickle payloads",
        ),
    )
}
_ALIASES = {"openpi": "openpi_style", "lerobot": "lerobot_async"}


class BaselineError(RcsError, RuntimeError):
    """A baseline could not run (missing venv, crash, timeout or unreadable output)."""


def baseline_python(name: str) -> Path:
    """Interpreter of the side venv for baseline ``name``; raises :class:`BaselineError` if it is missing."""
    b = _lookup(name)
    py = VENV_ROOT / b.venv / "bin" / "python"
    if not py.exists():
        raise BaselineError(
            f"baseline {b.name!r} needs the side venv {py.parent.parent} (not found); "
            f"create it with: bash {SETUP_SCRIPT} {b.venv}"
        )
    return py


def run_baseline(
    name: str,
    requests: int,
    *,
    warmup: int | None = None,
    timeout_s: float | None = None,
    extra_args: list[str] | None = None,
) -> dict[str, Any]:
    """Run baseline ``name`` ("openpi_style"/"openpi" or "lerobot_async"/"lerobot") for ``requests`` timed
    requests in its venv and return its result dict (``p50_ms``, ``p99_ms``, ``req_per_s``, ``requests``, ...).

    The subprocess runs in a temporary working directory (lerobot writes ./logs there) with this repo on
    ``PYTHONPATH``. ``timeout_s`` defaults to 120 s plus 0.1 s per request.
    """
    if requests < 1:
        raise BaselineError(f"requests must be >= 1, got {requests}")
    b = _lookup(name)
    py = baseline_python(b.name)
    cmd = [str(py), "-m", b.module, "--requests", str(requests)]
    if warmup is not None:
        cmd += ["--warmup", str(warmup)]
    cmd += list(extra_args or [])
    timeout = timeout_s if timeout_s is not None else 120.0 + 0.1 * requests
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        ),
    }
    env.pop("VIRTUAL_ENV", None)
    logger.info("running baseline %s: %s", b.name, " ".join(cmd))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"rcs-bench-{b.name}-") as cwd:
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise BaselineError(
                f"baseline {b.name!r} timed out after {timeout:.0f} s "
                f"({requests} requests); stderr tail:\n{_tail(e.stderr)}"
            ) from e
    if proc.returncode != 0:
        raise BaselineError(f"baseline {b.name!r} failed (exit {proc.returncode}); stderr tail:\n{_tail(proc.stderr)}")
    result = _parse(b.name, proc.stdout, proc.stderr)
    result.setdefault("system", b.name)
    result["wall_s"] = time.monotonic() - t0
    return result


def _lookup(name: str) -> Baseline:
    key = _ALIASES.get(name, name)
    if key not in BASELINES:
        raise BaselineError(f"unknown baseline {name!r}; known: {sorted(BASELINES)} (aliases {sorted(_ALIASES)})")
    return BASELINES[key]


def _parse(name: str, stdout: str, stderr: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
            missing = {"p50_ms", "p99_ms", "req_per_s", "requests"} - set(result)
            if missing:
                raise BaselineError(f"baseline {name!r} JSON lacks {sorted(missing)}: {line[:500]}")
            return result
    raise BaselineError(
        f"baseline {name!r} printed no JSON result; stdout tail:\n{_tail(stdout)}\nstderr tail:\n{_tail(stderr)}"
    )


def _tail(text: str | bytes | None, n: int = 2000) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text[-n:]
