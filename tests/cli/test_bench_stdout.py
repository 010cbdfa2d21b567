"""`rcs bench NAME --json`: stdout holds the JSON object alone, whatever the benchmark's libraries print."""

from __future__ import annotations

import argparse
import json
import types

from rcs.cli import bench


def test_prints_of_a_benchmark_go_to_stderr_and_stdout_is_pure_json(monkeypatch, capsys):
    def run(args: argparse.Namespace) -> dict:
        print("Loading weights from local directory")  # what lerobot's from_pretrained does
        return {"value": 1.5, "steps": args.steps}

    plugin = types.SimpleNamespace(add_arguments=lambda p: p.add_argument("--steps", type=int, default=3), run=run)
    monkeypatch.setattr(bench.benchmarks, "factory", lambda name: plugin)
    assert bench.run(argparse.Namespace(name="fake", json=True, rest=["--steps", "4"])) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"value": 1.5, "steps": 4}
    assert "Loading weights" in err
