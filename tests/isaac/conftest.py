"""Isaac Lab tests: real Isaac Lab 3 runs (kit-less, CPU) in their own venv, as separate processes.

Once per session ``scripts/setup_isaac.sh`` creates ``.venv-isaac`` (Isaac Lab 3.0, mujoco-usd-converter, this
repo editable; idempotent: seconds when already done), so a fresh machine's test command installs what it needs
(about 6 minutes and 8 GB the first time). Each scenario of ``isaac_checks.py`` runs in a fresh
``.venv-isaac`` process, because Isaac Lab allows one simulation per process.

Caches reused between runs: converted USD files in ``~/.cache/rcs/isaac`` (``$XDG_CACHE_HOME/rcs/isaac``) and
warp's compiled kernels in ``~/.cache/warp/<warp version>`` (``$WARP_CACHE_PATH`` when set): the first run
compiles for about 25 s, later runs load the kernels in about 1 s.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ISAAC_PYTHON = REPO / ".venv-isaac" / "bin" / "python"
CHECKS = Path(__file__).resolve().parent / "isaac_checks.py"


@pytest.fixture(scope="session")
def isaac_venv() -> Path:
    """Set up ``.venv-isaac`` (once per session) and return its Python."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup_isaac.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    assert done.returncode == 0, f"scripts/setup_isaac.sh failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return ISAAC_PYTHON


def run_isaac(
    python: Path,
    scenario: str,
    args: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> dict[str, Any]:
    """Run one scenario of isaac_checks.py in ``.venv-isaac`` and return its result (asserts it succeeded)."""
    done = subprocess.run(
        [str(python), str(CHECKS), scenario, json.dumps(args or {})],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith('{"ok"')]
    assert lines, f"isaac_checks {scenario} printed no result (rc {done.returncode}):\n{done.stderr[-4000:]}"
    out = json.loads(lines[-1])
    assert out["ok"], f"isaac_checks {scenario}: {out.get('error')}\n{done.stderr[-4000:]}"
    return out["result"]
