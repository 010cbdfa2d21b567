"""``rcs bench eval-workers``: ``rcs eval`` throughput in this process and on 1, 2 and 4 Ray workers, one run.

Each configuration evaluates the same checkpoint (default: the shipped pick-cube policy) on the same seeds through
the real-time robot path (:func:`rcs.eval.evaluation.evaluate`, :func:`rcs.eval.on_ray.evaluate_on_ray`; Ray on a
local cluster started for each run). Reported per configuration: episodes per minute over the whole run (start-up
included: each worker builds its env and starts its own ``rcs serve``), seconds to the first finished episode
(start-up plus one episode), the success rate and the policy round trip p50/p99 (ms), which show what sharing the
CPU between the workers' servers costs a real-time episode; and the overhead of one Ray worker against this
process (s of wall time for the same episodes).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", type=Path, default=None, help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--episodes", type=int, default=8, help="episodes per configuration (default 8)")
    parser.add_argument("--seed", type=int, default=10_000, help="first seed (default 10000)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode time limit (default: the env's)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2, 4], help="Ray worker counts to run (default 1 2 4)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rcs.eval.evaluation import EvalConfig, evaluate
    from rcs.eval.on_ray import evaluate_on_ray
    from sim.bench.policy import shipped_checkpoint

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    policy = args.policy if args.policy is not None else shipped_checkpoint()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rcs-bench-eval-") as tmp:
        base = EvalConfig(
            policy=policy,
            env="rcs/PandaPickCube-v0",
            episodes=args.episodes,
            seed=args.seed,
            max_steps=args.max_steps,
            videos=0,
            out=Path(tmp),
        )
        runs: list[tuple[str, Any]] = [("this process", evaluate)]
        runs += [(f"ray x{n}", functools.partial(evaluate_on_ray, workers=n)) for n in args.workers]
        for name, evaluate_with in runs:
            config = dataclasses.replace(base, out=Path(tmp) / name.replace(" ", "_"))
            first: list[float] = []  # when each episode line came
            t0 = time.monotonic()
            summary = evaluate_with(config, functools.partial(_note_episodes, first))
            wall = time.monotonic() - t0
            results[name] = {
                "episodes_per_min": round(60.0 * summary["episodes"] / wall, 2),
                "wall_s": round(wall, 1),
                "first_result_s": round(first[0] - t0, 1) if first else None,
                "success_rate": summary["success_rate"],
                "missing": len(summary.get("missing_seeds", [])),
                "policy_latency_ms": summary["policy_latency_ms"],
                "mean_steps": summary["mean_steps"],
            }
    alone = results["this process"]["wall_s"]
    if "ray x1" in results:
        results["ray_x1_overhead_s"] = round(results["ray x1"]["wall_s"] - alone, 1)
    results["cpus"] = os.cpu_count()
    results["load_avg_1min"] = round(os.getloadavg()[0], 2)
    results["episodes"] = args.episodes
    results["policy"] = str(policy)
    return results


def _note_episodes(times: list[float], line: str) -> None:
    if line.lstrip().startswith("episode "):
        times.append(time.monotonic())
