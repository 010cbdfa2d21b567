"""`rcs bench safety`: the workspace check's cost per tick stays within its FK budget and the TCP in the box."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RCS = str(Path(sys.executable).with_name("rcs"))


def test_safety_bench_reports_fk_calls_within_the_budget_and_no_tick_outside():
    out = subprocess.run(
        [RCS, "bench", "safety", "--episodes", "2", "--seconds", "0.3", "--rates", "500", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    rate = result["500_hz"]
    assert rate["ticks"] == 2 * 150 and rate["ticks_outside_box"] == 0
    assert 1 <= rate["fk_calls_per_tick"]["max"] <= rate["fk_budget"]
    assert 0 < rate["ms_per_tick"]["p50"] <= rate["ms_per_tick"]["max"]
