"""Who holds a session slot: squatters against a live `rcs serve` (eviction, per-address cap, one per connection).

The server is a real `rcs serve` subprocess; squatters are raw DEALER sockets that say HELLO and heartbeat but
never request, robots are real PolicyClients that request.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from rcs.serving.client import PolicyClient, SessionLost
from rcs.serving.policy import standard_schema, write_manifest
from rcs.serving.protocol import Header, Message, MsgType, decode, encode

SMALL = standard_schema(image_size=8, state_dim=14, chunk_size=5, action_dim=7, policy_dt=0.05)


def _obs(fill: int = 0) -> dict[str, np.ndarray]:
    return {s.name: np.full(s.shape, fill, dtype=s.dtype) for s in SMALL.observation}


def _raw(endpoint: str, source: str | None = None) -> zmq.Socket:
    """A DEALER connected to ``endpoint``, from the loopback address ``source`` if given."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if source is not None:  # libzmq's "source;destination" form binds the local end to that address
        endpoint = f"tcp://{source}:0;{endpoint.removeprefix('tcp://')}"
    sock.connect(endpoint)
    return sock


def _next(sock: zmq.Socket, timeout_s: float = 5.0, skip_heartbeats: bool = True) -> Message:
    end = time.monotonic() + timeout_s
    while (left := end - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000) + 1):
            break
        msg = decode(sock.recv_multipart())
        if not (skip_heartbeats and msg.header.type is MsgType.HEARTBEAT):
            return msg
    raise AssertionError("no reply from the server")


def _hello(sock: zmq.Socket, seq: int = 1) -> Message:
    sock.send_multipart(encode(Header(MsgType.HELLO, 0, seq), {"schema": SMALL.as_dict(), "client": "squatter"}))
    return _next(sock)


def _robot(endpoint: str) -> PolicyClient:
    """A robot that has requested once (so its session counts as working)."""
    robot = PolicyClient(endpoint, SMALL)
    robot.handshake(timeout_s=5.0)
    assert robot.request(_obs(1), tick=1, budget_s=5.0).obs_tick == 1
    return robot


@pytest.fixture
def manifest(tmp_path):
    return str(write_manifest(tmp_path / "p.json", "constant", SMALL, value=[1] * 7))


def test_squatters_that_never_request_cannot_keep_a_robot_out(serve, manifest):
    server = serve("--policy", manifest, "--max-sessions", "6", "--heartbeat", "60")
    squatters = [_raw(server.endpoint) for _ in range(6)]
    sids = []
    for sock in squatters:
        welcome = _hello(sock)
        assert welcome.header.type is MsgType.WELCOME
        sids.append(welcome.header.session_id)
    for sock, sid in zip(squatters, sids, strict=True):  # alive and heartbeating, as in the attack
        sock.send_multipart(encode(Header(MsgType.HEARTBEAT, sid, 2), {}))
        assert _next(sock, skip_heartbeats=False).header.type is MsgType.HEARTBEAT
    robot = _robot(server.endpoint)  # the table is full of squatters: the oldest one makes room
    evicted = _next(squatters[0])
    assert evicted.header.type is MsgType.ERROR and evicted.meta["code"] == "evicted"
    assert evicted.header.session_id == sids[0] and "never sent an OBS" in evicted.meta["message"]
    assert all(not s.poll(200) for s in squatters[1:])  # the others were left alone
    squatters[0].send_multipart(encode(Header(MsgType.HEARTBEAT, sids[0], 3), {}))
    assert _next(squatters[0]).meta["code"] == "unknown_session"
    # a second robot evicts the next squatter; the working robots keep being served
    second = _robot(server.endpoint)
    assert _next(squatters[1]).meta["code"] == "evicted"
    for tick, client in enumerate((robot, second, robot), start=2):
        assert client.request(_obs(tick), tick=tick, budget_s=5.0).obs_tick == tick
    for sock in squatters:
        sock.close(0)
    robot.close()
    second.close()


def test_a_table_of_requesting_sessions_refuses_newcomers_until_one_goes_idle(serve, manifest):
    server = serve("--policy", manifest, "--max-sessions", "2", "--heartbeat", "60", "--idle-evict", "1.5")
    robots = [_robot(server.endpoint) for _ in range(2)]
    late = _raw(server.endpoint)
    refused = _hello(late)
    assert refused.header.type is MsgType.ERROR and refused.meta["code"] == "too_many_sessions"
    assert refused.meta["field"] == "session_id" and refused.meta["limit"] == "<= 2 sessions"
    time.sleep(0.8)
    assert robots[1].request(_obs(2), tick=2, budget_s=5.0).obs_tick == 2  # robot 1 keeps requesting
    time.sleep(0.9)  # robot 0 has been idle 1.7 s (> 1.5 s), robot 1 for 0.9 s
    welcome = _hello(late, seq=2)
    assert welcome.header.type is MsgType.WELCOME
    with pytest.raises(SessionLost, match="session .* while the server was full"):
        robots[0].wait_reply(0, time.monotonic() + 5.0, time.monotonic())  # the idle robot is told
    assert robots[0].welcome is None  # its next request re-handshakes
    assert robots[1].request(_obs(3), tick=3, budget_s=5.0).obs_tick == 3
    late.close(0)
    for r in robots:
        r.close()


def test_sessions_per_address_are_capped_and_other_addresses_get_in(serve, manifest):
    server = serve("--policy", manifest, "--max-sessions-per-address", "2", "--heartbeat", "60")
    robots = [_robot(server.endpoint) for _ in range(2)]  # both from 127.0.0.1, both requesting
    local = _raw(server.endpoint)
    refused = _hello(local)
    assert refused.header.type is MsgType.ERROR and refused.meta["code"] == "too_many_sessions"
    assert refused.meta["field"] == "peer_address" and "127.0.0.1" in refused.meta["message"]
    assert refused.meta["limit"] == "<= 2 sessions per address"
    other = _raw(server.endpoint, source="127.0.0.2")  # another address is not affected
    assert _hello(other).header.type is MsgType.WELCOME
    for tick, robot in enumerate(robots, start=2):
        assert robot.request(_obs(tick), tick=tick, budget_s=5.0).obs_tick == tick
    for sock in (local, other):
        sock.close(0)
    for r in robots:
        r.close()


def test_one_session_per_connection(serve, manifest):
    server = serve("--policy", manifest, "--heartbeat", "60")
    sock = _raw(server.endpoint)
    first = _hello(sock, seq=1).header.session_id
    second = _hello(sock, seq=2).header.session_id
    assert first != second
    sock.send_multipart(encode(Header(MsgType.HEARTBEAT, first, 3), {}))
    assert _next(sock).meta["code"] == "unknown_session"  # the HELLO again gave the first one up
    sock.send_multipart(encode(Header(MsgType.HEARTBEAT, second, 4), {}))
    assert _next(sock, skip_heartbeats=False).header.type is MsgType.HEARTBEAT
    sock.close(0)


def test_an_evicted_policy_client_learns_its_session_ended(serve, manifest):
    """The robot side's client treats ``evicted`` like a forgotten session: SessionLost, so its bridge
    re-handshakes at once instead of waiting for its requests to time out."""
    server = serve("--policy", manifest, "--max-sessions", "1", "--heartbeat", "60")
    first = PolicyClient(server.endpoint, SMALL, heartbeat_s=0.0)
    first.handshake(timeout_s=5.0)  # never requests: evictable
    second = _robot(server.endpoint)
    with pytest.raises(SessionLost, match="evicted|never sent"):
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            first.heartbeat()
            time.sleep(0.05)
    assert first.welcome is None
    first.close()
    second.close()
