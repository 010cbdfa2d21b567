"""The standard transport request, reply check and statistics, shared by our transport benchmark
(:mod:`sim.bench.transport_ours`) and the third-party baselines (:mod:`sim.bench.baselines`); numpy + stdlib only.

The request is the one ``rcs bench transport`` uses for every system: two 224x224x3 uint8 images and 14
float32 state values; the null policy replies with a 50x7 float32 action chunk. Latency is the client-side
wall time of one blocking request/reply (serialisation + transport + deserialisation + the reply check).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

IMAGE_SHAPE = (224, 224, 3)
STATE_DIM = 14
CHUNK_SHAPE = (50, 7)
CHUNK_DTYPE = np.float32


def stop_child(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """Terminate a benchmark's child server process, killing it if it does not exit within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()


def make_request(seed: int = 0) -> dict[str, np.ndarray]:
    """Two random uint8 images (random so nothing compresses trivially) and a float32 state vector."""
    rng = np.random.default_rng(seed)
    return {
        "image_0": rng.integers(0, 256, IMAGE_SHAPE, dtype=np.uint8),
        "image_1": rng.integers(0, 256, IMAGE_SHAPE, dtype=np.uint8),
        "state": rng.standard_normal(STATE_DIM).astype(np.float32),
    }


def null_chunk() -> np.ndarray:
    """What the null policy returns: a (50, 7) float32 chunk (constant, built once)."""
    return np.zeros(CHUNK_SHAPE, dtype=CHUNK_DTYPE)


def check_chunk(chunk: Any) -> None:
    """Raise unless ``chunk`` is a (50, 7) float32 array; called on every reply."""
    if not isinstance(chunk, np.ndarray) or chunk.shape != CHUNK_SHAPE or chunk.dtype != CHUNK_DTYPE:
        got = (type(chunk).__name__, getattr(chunk, "shape", None), getattr(chunk, "dtype", None))
        raise AssertionError(f"bad reply: expected ndarray {CHUNK_SHAPE} {np.dtype(CHUNK_DTYPE)}, got {got}")


def timed_calls(
    call: Callable[[], Any], requests: int, clock: Callable[[], int] = time.monotonic_ns
) -> tuple[np.ndarray, int, int]:
    """Latency (ns) of each of ``requests`` calls, and the clock at start and end (ns).

    The default clock, CLOCK_MONOTONIC, is shared by the processes of a host, so spans of several client
    processes can be compared.
    """
    lat = np.empty(requests, dtype=np.int64)
    start = clock()
    for i in range(requests):
        t0 = clock()
        call()
        lat[i] = clock() - t0
    return lat, start, clock()


def measure(call: Callable[[], Any], requests: int, warmup: int) -> dict[str, Any]:
    """Run ``warmup`` untimed then ``requests`` timed calls of ``call`` (which must check its reply)."""
    for _ in range(warmup):
        call()
    lat, t_start, t_end = timed_calls(call, requests)
    total_s = (t_end - t_start) / 1e9
    ms = lat / 1e6
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "req_per_s": float(requests / total_s),
        "requests": int(requests),
        "warmup": int(warmup),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
        "replies_checked": int(requests + warmup),
        "reply_shape": list(CHUNK_SHAPE),
        "reply_dtype": np.dtype(CHUNK_DTYPE).name,
    }


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--requests", type=int, default=10_000, help="timed requests (default 10000)")
    p.add_argument("--warmup", type=int, default=None, help="untimed requests first (default min(200, N/10))")
    return p


def default_warmup(args: argparse.Namespace) -> int:
    return args.warmup if args.warmup is not None else max(1, min(200, args.requests // 10))


def emit(result: dict[str, Any]) -> None:
    """The subprocess contract: exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
