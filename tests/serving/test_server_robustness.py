"""A live `rcs serve` process under hostile input: fuzzing, floods, and its own heartbeats.

The server runs as a real subprocess; a raw DEALER socket plays the attacker, a real PolicyClient the robot.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from rcs.serving.client import PolicyClient
from rcs.serving.policy import standard_schema, write_manifest
from rcs.serving.protocol import Header, MsgType, decode, encode
from rcs.serving.server import RateLimit

SMALL = standard_schema(image_size=8, state_dim=14, chunk_size=5, action_dim=7, policy_dt=0.05)


def _obs(fill: int = 0) -> dict[str, np.ndarray]:
    return {s.name: np.full(s.shape, fill, dtype=s.dtype) for s in SMALL.observation}


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _raw(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(endpoint)
    return sock


def _drain(sock: zmq.Socket, counts: dict[str, int]) -> None:
    while sock.poll(0):
        msg = decode(sock.recv_multipart())  # whatever the server says must itself be well-formed
        key = msg.meta.get("code", msg.header.type.name) if msg.header.type is MsgType.ERROR else msg.header.type.name
        counts[key] = counts.get(key, 0) + 1


def _mutations(rng: np.random.Generator, templates: list[list[bytes]], n: int):
    """``n`` messages: half fully random frames, half valid messages with flipped, cut or added bytes."""
    for i in range(n):
        if i % 2:
            yield [rng.bytes(int(rng.integers(0, 120))) for _ in range(int(rng.integers(1, 5)))]
            continue
        frames = list(templates[int(rng.integers(0, len(templates)))])
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(0, len(frames)))
            f = bytearray(frames[j])
            r = rng.random()
            if f and r < 0.5:
                f[int(rng.integers(0, len(f)))] = int(rng.integers(0, 256))
            elif r < 0.8:
                f = f[: int(rng.integers(0, len(f) + 1))]
            else:
                f += rng.bytes(int(rng.integers(1, 16)))
            frames[j] = bytes(f)
        if rng.random() < 0.1:
            frames = frames[: int(rng.integers(0, len(frames) + 1))] or [b""]
        yield frames


def test_100k_random_and_mutated_frames_against_a_live_server(serve, tmp_path):
    server = serve("--policy", str(write_manifest(tmp_path / "p.json", "constant", SMALL, value=[1] * 7)))
    robot = PolicyClient(server.endpoint, SMALL)
    robot.handshake()
    assert robot.request(_obs(), tick=1, budget_s=2.0).actions.shape == (5, 7)
    attacker = _raw(server.endpoint)
    sid = decode(_ask(attacker, encode(Header(MsgType.HELLO), {"schema": None}))).header.session_id
    templates = [
        [bytes(f) for f in encode(Header(MsgType.OBS, sid, 10**6, 1, 0.0, 0, SMALL.hash), {}, _obs())],
        [bytes(f) for f in encode(Header(MsgType.HELLO), {"schema": SMALL.as_dict(), "client": "x"})],
        [bytes(f) for f in encode(Header(MsgType.HEARTBEAT, sid, 1), {})],
        [bytes(f) for f in encode(Header(MsgType.BYE, sid, 2), {})],
    ]
    rss0 = _rss_kib(server.proc.pid)
    counts: dict[str, int] = {}
    rng = np.random.default_rng(1)
    sent, tick, t0 = 0, 1, time.monotonic()
    for frames in _mutations(rng, templates, 100_000):
        attacker.send_multipart(frames)
        sent += 1
        if sent % 500 == 0:
            _drain(attacker, counts)
        if sent % 10_000 == 0:  # the robot is served throughout
            tick += 1
            robot.heartbeat()
            assert robot.request(_obs(tick % 255), tick=tick, budget_s=5.0).obs_tick == tick
            assert server.proc.poll() is None
    elapsed = time.monotonic() - t0
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        _drain(attacker, counts)
        time.sleep(0.05)
    assert server.proc.poll() is None, server.log()[-2000:]
    tick += 1
    assert robot.request(_obs(), tick=tick, budget_s=5.0).obs_tick == tick
    rss1 = _rss_kib(server.proc.pid)
    assert rss1 - rss0 < 64 * 1024, f"server RSS grew {rss0} -> {rss1} KiB"
    errors = sum(v for k, v in counts.items() if k not in ("HEARTBEAT", "WELCOME", "CHUNK"))
    # answered with an error, or dropped: at most the error budget (100/s, burst 100) went back
    assert 0 < errors <= 100 * (elapsed + 3.0) + 100 + 50, (errors, elapsed, counts)
    assert counts.get("WELCOME", 0) <= 5 * (elapsed + 3.0) + 5, counts  # HELLO flood cannot churn sessions
    attacker.close(0)
    robot.close()


def _ask(sock: zmq.Socket, frames: list, timeout_s: float = 5.0) -> list:
    sock.send_multipart(frames)
    assert sock.poll(int(timeout_s * 1000)), "no reply"
    return sock.recv_multipart()


def test_server_sends_heartbeats_to_a_silent_client(serve, tmp_path):
    server = serve("--policy", str(write_manifest(tmp_path / "p.json", "constant", SMALL)), "--heartbeat", "0.1")
    sock = _raw(server.endpoint)
    welcome = decode(_ask(sock, encode(Header(MsgType.HELLO), {"schema": SMALL.as_dict()})))
    sid = welcome.header.session_id
    beats = []
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        if sock.poll(50):
            msg = decode(sock.recv_multipart())
            if msg.header.type is MsgType.HEARTBEAT:
                beats.append((time.monotonic(), msg.header.session_id))
    assert all(s == sid for _, s in beats)
    assert 6 <= len(beats) <= 14, beats  # ~10 in 1 s at 0.1 s; never silent, never a storm
    sock.close(0)


def test_flood_of_garbage_and_hellos_is_limited_per_peer(serve, tmp_path):
    server = serve(
        "--policy",
        str(write_manifest(tmp_path / "p.json", "constant", SMALL)),
        "--error-rate",
        "20",
        "--hello-rate",
        "2",
        "--heartbeat",
        "60",
    )
    flood = _raw(server.endpoint)
    for _ in range(2000):
        flood.send_multipart([b"garbage"])
    for _ in range(200):
        flood.send_multipart(encode(Header(MsgType.HELLO), {"schema": None}))
    counts: dict[str, int] = {}
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        _drain(flood, counts)
        time.sleep(0.02)
    assert 20 <= counts.get("short_header", 0) <= 20 + 20 * 3, counts
    assert 1 <= counts.get("WELCOME", 0) <= 2 + 2 * 3, counts
    # another peer is unaffected
    robot = PolicyClient(server.endpoint, SMALL)
    robot.handshake()
    assert robot.request(_obs(), tick=5, budget_s=2.0).obs_tick == 5
    robot.close()
    flood.close(0)


@pytest.mark.parametrize("rate,burst", [(10.0, 5.0), (100.0, 100.0)])
def test_rate_limit_token_bucket(rate, burst):
    lim = RateLimit(rate, burst, peers=2)
    ok = sum(lim.allow(b"a", 0.0) for _ in range(1000))
    assert ok == int(burst)
    assert lim.allow(b"a", 1.0 / rate) and not lim.allow(b"a", 1.0 / rate)  # refills at `rate`
    lim.allow(b"b", 0.0)
    lim.allow(b"c", 0.0)  # evicts the oldest peer ("a"), so the table stays bounded
    assert set(lim._buckets) == {b"b", b"c"}
