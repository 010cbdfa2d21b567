"""Third-party transport baselines (openpi-style, lerobot async) run in their side venvs.

The end-to-end test is slow: it needs ``.venv-bench/{openpi,lerobot}`` from ``scripts/setup_bench_baselines.sh`` and are skipped
when a venv is missing. Each runs a few hundred requests; the client side checks every reply is a (50, 7)
float32 chunk and reports how many replies it checked.
"""

from __future__ import annotations

import pytest

from sim.bench.baselines import runner as br

REQUESTS = 300
WARMUP = 20


def _require_venv(name: str) -> None:
    try:
        br.baseline_python(name)
    except br.BaselineError as e:
        pytest.skip(str(e))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["openpi_style", "lerobot_async"])
def test_baseline_json_and_reply_shape(name: str) -> None:
    _require_venv(name)
    res = br.run_baseline(name, REQUESTS, warmup=WARMUP, timeout_s=300)
    assert res["system"] == name
    assert res["requests"] == REQUESTS
    assert res["warmup"] == WARMUP
    assert res["replies_checked"] == REQUESTS + WARMUP
    assert res["reply_shape"] == [50, 7]
    assert res["reply_dtype"] == "float32"
    assert 0 < res["p50_ms"] <= res["p99_ms"] <= res["max_ms"]
    assert res["req_per_s"] > 0
    # a blocking request/reply loop cannot do better than one request per mean latency
    assert res["req_per_s"] <= 1.05 * 1000.0 / res["mean_ms"]


def test_aliases_resolve() -> None:
    assert br._lookup("openpi").name == "openpi_style"
    assert br._lookup("lerobot").name == "lerobot_async"


def test_unknown_baseline_is_a_clear_error() -> None:
    with pytest.raises(br.BaselineError, match="unknown baseline"):
        br.run_baseline("nope", 10)


def test_missing_venv_names_the_setup_script(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(br, "VENV_ROOT", tmp_path / "absent")
    with pytest.raises(br.BaselineError, match="setup_bench_baselines.sh"):
        br.run_baseline("openpi_style", 10)


def test_bad_output_is_a_clear_error() -> None:
    with pytest.raises(br.BaselineError, match="printed no JSON"):
        br._parse("x", "hello\n", "boom")
    with pytest.raises(br.BaselineError, match="lacks"):
        br._parse("x", '{"p50_ms": 1}\n', "")
