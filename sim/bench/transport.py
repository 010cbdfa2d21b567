"""``rcs bench transport``: our policy server next to openpi's and lerobot's transports, in one run.

Same request for all (two 224x224x3 uint8 images + 14 float32 state; reply a 50x7 float32 chunk from a null
policy), loopback, client-side wall time per blocking request/reply:

- ``ours``: :mod:`rcs.serving` (ZMQ ROUTER/DEALER, binary header + msgpack + raw tensor frames).
- ``ours_shm``: the same, observations through the same-host shared-memory fast path (reply still a frame).
- ``ours_curve``: the same as ``ours`` with CurveZMQ encryption and a client allow-list.
- ``ours_shm_curve``: shared memory and CURVE (the socket carries only the small messages).
- ``ours_8_clients``: eight client processes at once (aggregate throughput, per-client p99).
- ``openpi``: openpi's own ``openpi-client`` against a websocket + msgpack server built like openpi's.
- ``lerobot``: lerobot 0.6.1's own async-inference gRPC server and client with a null policy.

The baselines run in their own virtual environments (``bash scripts/setup_bench_baselines.sh``); a missing
one is reported under its key instead of failing the run. Ratios are ours relative to each baseline.
"""

from __future__ import annotations

import argparse
import logging

from rcs.errors import RcsError
from sim.bench.baselines.runner import run_baseline
from sim.bench.transport_ours import measure_ours

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=10_000, help="requests per system (default 10000)")
    parser.add_argument("--skip-baselines", action="store_true", help="measure ours only")


def run(args: argparse.Namespace) -> dict:
    n = args.requests
    out: dict = {}
    log.info("ours: %d requests", n)
    out["ours"] = measure_ours(n)
    log.info("ours with shared memory")
    out["ours_shm"] = measure_ours(n, shm=True)
    log.info("ours with CURVE")
    out["ours_curve"] = measure_ours(n, curve=True)
    out["ours_shm_curve"] = measure_ours(n, curve=True, shm=True)
    log.info("ours, 8 clients")
    out["ours_8_clients"] = measure_ours(n, clients=8)
    if not args.skip_baselines:
        for key, name in (("openpi", "openpi_style"), ("lerobot", "lerobot_async")):
            log.info("%s: %d requests", key, n)
            try:
                out[key] = run_baseline(name, n)
            except RcsError as e:
                out[key] = {"error": str(e)}
    ours = out["ours"]
    ratios = {}
    for key in ("openpi", "lerobot"):
        other = out.get(key, {})
        if "p50_ms" in other:
            ratios[f"{key}_p50_over_ours"] = round(other["p50_ms"] / ours["p50_ms"], 2)
            ratios[f"{key}_p50_over_ours_shm"] = round(other["p50_ms"] / out["ours_shm"]["p50_ms"], 2)
    ratios["curve_added_p50_ms"] = round(out["ours_curve"]["p50_ms"] - ours["p50_ms"], 3)
    ratios["curve_added_p50_ms_shm"] = round(out["ours_shm_curve"]["p50_ms"] - out["ours_shm"]["p50_ms"], 3)
    ratios["8_clients_throughput_over_single"] = round(
        out["ours_8_clients"]["aggregate_req_per_s"] / ours["req_per_s"], 2
    )
    out["ratios"] = ratios
    return out
