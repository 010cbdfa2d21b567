"""Transport latency of this stack's policy server (``rcs.serving``) for the standard request.

Request: two 224x224x3 uint8 images and 14 float32 state values; reply: a 50x7 float32 chunk from the null
policy. The server runs in another process on loopback (``PolicyServer``, the same code as ``rcs serve``);
clients are :class:`rcs.serving.client.PolicyClient` (the full protocol: header, msgpack metadata, tensor
checks on both sides, per-request deadline). Latency is the client-side wall time of one blocking
request/reply. ``measure_ours`` is combined with the openpi/lerobot baselines by ``rcs bench transport``.

Run alone: ``python -m sim.bench.transport_ours --requests 2000 --clients 1 [--curve] [--shm]`` (one JSON
object).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from sim.bench.transport_request import (
    CHUNK_SHAPE,
    IMAGE_SHAPE,
    STATE_DIM,
    check_chunk,
    make_request,
    timed_calls,
)


def _schema() -> Any:
    from rcs.serving.policy import standard_schema

    return standard_schema(
        image_size=IMAGE_SHAPE[0], cameras=2, state_dim=STATE_DIM, chunk_size=CHUNK_SHAPE[0], action_dim=CHUNK_SHAPE[1]
    )


def _request(seed: int = 0) -> dict[str, np.ndarray]:
    """The baselines' standard request (same arrays), under this schema's feature names."""
    r = make_request(seed)
    return {
        "observation.images.cam0": r["image_0"],
        "observation.images.cam1": r["image_1"],
        "observation.state": r["state"],
    }


def _serve_main(curve: bool) -> None:
    """Child process: serve the null policy, print the endpoint, exit when stdin closes."""
    from rcs.serving.keys import KeyPair
    from rcs.serving.policy import NullPolicy
    from rcs.serving.server import PolicyServer

    keys = None
    allow = None
    if curve:
        keys = KeyPair(os.environ["RCS_BENCH_SERVER_PUBLIC"].encode(), os.environ["RCS_BENCH_SERVER_SECRET"].encode())
        allow = frozenset({os.environ["RCS_BENCH_CLIENT_PUBLIC"].encode()})
    server = PolicyServer(NullPolicy(_schema()), "tcp://127.0.0.1:0", curve=keys, allow=allow)
    sys.stdout.write(server.start() + "\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.stop()


def _client(
    endpoint: str, keys: Mapping[str, str] | None, warmup: int, seed: int, shm: bool = False
) -> tuple[Any, Callable[[], None]]:
    from rcs.serving.client import PolicyClient
    from rcs.serving.keys import KeyPair

    kw: dict[str, Any] = {}
    if keys is not None:
        kw = {
            "server_key": keys["RCS_BENCH_SERVER_PUBLIC"].encode(),
            "client_keys": KeyPair(keys["RCS_BENCH_CLIENT_PUBLIC"].encode(), keys["RCS_BENCH_CLIENT_SECRET"].encode()),
        }
    client = PolicyClient(endpoint, _schema(), server_timeout_s=10.0, shared_memory=shm, **kw)
    client.handshake(timeout_s=10.0)
    if shm and not client.shm_active:
        raise RuntimeError("shared memory was requested but the server declined it")
    obs = _request(seed)
    tick = 0

    def call() -> None:
        nonlocal tick
        tick += 1
        check_chunk(client.request(obs, tick, budget_s=5.0).actions)

    for _ in range(warmup):
        call()
    return client, call


def _client_main(endpoint: str, curve: bool, requests: int, warmup: int, seed: int, shm: bool = False) -> None:
    """Child process: handshake and warm up, print "ready", wait for "go", print one JSON line of results."""
    client, call = _client(endpoint, os.environ if curve else None, warmup, seed, shm)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    lat, start, end = timed_calls(call, requests)
    client.close()
    sys.stdout.write(json.dumps({"lat_ns": lat.tolist(), "start_ns": start, "end_ns": end}) + "\n")
    sys.stdout.flush()


def _child(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sim.bench.transport_ours", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _line(proc: subprocess.Popen, what: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"benchmark {what} process exited (code {proc.wait()}) before answering")
    return line.strip()


def measure_ours(
    requests: int, clients: int = 1, curve: bool = False, warmup: int | None = None, shm: bool = False
) -> dict:
    """Latency (ms) and throughput of ``requests`` blocking requests per client.

    The server runs in a child process (``python -m sim.bench.transport_ours --serve``); one client runs in
    this process, several each in a child process, released together after their handshake and warm-up.
    Processes talk only through pipes (text lines, JSON) and the protocol itself: nothing is pickled.

    Args:
        requests: timed requests per client.
        clients: concurrent clients.
        curve: CurveZMQ encryption and authentication on (fresh key pairs, passed by environment).
        warmup: untimed requests per client first (default ``min(200, requests // 10)``, at least 1).
        shm: observations through the same-host shared-memory fast path (:mod:`rcs.serving.shm`).

    Returns:
        ``{"p50_ms", "p99_ms", "req_per_s", ...}``: percentiles over every request of every client,
        ``req_per_s`` per client (mean); with ``clients > 1`` also ``"aggregate_req_per_s"`` (all requests over
        the span from the first start to the last end) and ``"per_client_req_per_s"``.
    """
    import zmq

    warmup = warmup if warmup is not None else max(1, min(200, requests // 10))
    env = dict(os.environ)
    if curve:
        s_pub, s_sec = zmq.curve_keypair()
        c_pub, c_sec = zmq.curve_keypair()
        env.update(
            RCS_BENCH_SERVER_PUBLIC=s_pub.decode(),
            RCS_BENCH_SERVER_SECRET=s_sec.decode(),
            RCS_BENCH_CLIENT_PUBLIC=c_pub.decode(),
            RCS_BENCH_CLIENT_SECRET=c_sec.decode(),
        )
    server = _child(["--serve"] + (["--curve"] if curve else []), env)
    procs: list[subprocess.Popen] = []
    try:
        endpoint = _line(server, "server")
        transport = (
            "rcs.serving (ZMQ ROUTER/DEALER; observations in shared memory, reply as tensor frames)"
            if shm
            else "rcs.serving (ZMQ ROUTER/DEALER, msgpack + raw tensor frames)"
        )
        result: dict[str, Any] = {
            "requests": requests,
            "warmup": warmup,
            "clients": clients,
            "curve": curve,
            "shm": shm,
            "transport": transport,
        }
        if clients == 1:
            client, call = _client(endpoint, env if curve else None, warmup, 0, shm)
            lat, start, end = timed_calls(call, requests)
            client.close()
            lats, spans = [lat], [(start, end)]
        else:
            flag = (["--curve"] if curve else []) + (["--shm"] if shm else [])
            procs = [
                _child(
                    [
                        "--client",
                        endpoint,
                        "--requests",
                        str(requests),
                        "--warmup",
                        str(warmup),
                        "--seed",
                        str(i),
                        *flag,
                    ],
                    env,
                )
                for i in range(clients)
            ]
            for p in procs:
                if _line(p, "client") != "ready":
                    raise RuntimeError("benchmark client did not get ready")
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            outs = [json.loads(_line(p, "client")) for p in procs]
            lats = [np.asarray(o["lat_ns"], dtype=np.int64) for o in outs]
            spans = [(o["start_ns"], o["end_ns"]) for o in outs]
        ms = np.concatenate(lats) / 1e6
        result.update(
            p50_ms=float(np.percentile(ms, 50)),
            p99_ms=float(np.percentile(ms, 99)),
            mean_ms=float(ms.mean()),
            max_ms=float(ms.max()),
        )
        per_client = [len(lt) / ((e - s) / 1e9) for lt, (s, e) in zip(lats, spans, strict=True)]
        result["req_per_s"] = float(np.mean(per_client))
        if clients > 1:
            span_s = (max(e for _, e in spans) - min(s for s, _ in spans)) / 1e9
            result["aggregate_req_per_s"] = float(sum(len(lt) for lt in lats) / span_s)
            result["per_client_req_per_s"] = [float(x) for x in per_client]
        return result
    finally:
        for p in [*procs, server]:
            if p.stdin is not None and not p.stdin.closed:
                p.stdin.close()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def main(argv: list[str] | None = None) -> int:
    """Print one JSON object (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--curve", action="store_true")
    p.add_argument("--shm", action="store_true", help="observations through shared memory (same host)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--client", metavar="ENDPOINT", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        _serve_main(a.curve)
        return 0
    if a.client:
        _client_main(a.client, a.curve, a.requests, a.warmup if a.warmup is not None else 1, a.seed, a.shm)
        return 0
    sys.stdout.write(json.dumps(measure_ours(a.requests, a.clients, a.curve, a.warmup, a.shm)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
