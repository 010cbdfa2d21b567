"""Policy server and robot client over real sockets, with the server in another process (`rcs serve`).

Each test starts `rcs serve` as a subprocess bound to an ephemeral loopback port, and talks to it with the
real client (and, for malformed input, a raw DEALER socket).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from rcs.serving import keys
from rcs.serving.chunk_feed import ChunkFeed, FeedState
from rcs.serving.client import (
    DeadlineExceeded,
    HandshakeTimeout,
    PolicyClient,
    SchemaMismatchError,
    ServerError,
)
from rcs.serving.policy import standard_schema, write_manifest
from rcs.serving.protocol import Header, MsgType, Schema, TensorSpec, decode, encode

RCS = str(Path(sys.executable).with_name("rcs"))
SMALL = standard_schema(image_size=8, state_dim=14, chunk_size=5, action_dim=7, policy_dt=0.05)


def _obs(schema: Schema = SMALL, fill: int = 0) -> dict[str, np.ndarray]:
    return {s.name: np.full(s.shape, fill, dtype=s.dtype) for s in schema.observation}


@pytest.fixture
def manifest(tmp_path):
    def write(value=None, checkpoint_id="ckpt-a", delay_s=0.0, schema=SMALL, name="policy.json") -> Path:
        return write_manifest(
            tmp_path / name, "constant", schema, value=value, checkpoint_id=checkpoint_id, delay_s=delay_s
        )

    return write


def _raw(endpoint: str) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    return s


def _ask(sock: zmq.Socket, frames: list, timeout_s: float = 3.0):
    sock.send_multipart(frames)
    assert sock.poll(int(timeout_s * 1000)), "no reply from the server"
    return decode(sock.recv_multipart())


# ---------------------------------------------------------------------------------------------------------


def test_handshake_requests_and_malformed_input_never_crash_the_server(serve, manifest):
    # error replies are not rate-limited here (that has its own test): every bad message must be answered
    server = serve("--policy", str(manifest(value=[1, 2, 3, 4, 5, 6, 7])), "--error-rate", "1e9", "--heartbeat", "60")
    client = PolicyClient(server.endpoint, SMALL)
    welcome = client.handshake()
    assert welcome.schema == SMALL and welcome.checkpoint_id == "ckpt-a" and welcome.session_id != 0
    reply = client.request(_obs(), tick=17, capture_time=123.5, budget_s=2.0)
    assert reply.obs_tick == 17 and reply.capture_time == 123.5 and reply.checkpoint_id == "ckpt-a"
    assert reply.actions.shape == (5, 7) and np.allclose(reply.actions[3], [1, 2, 3, 4, 5, 6, 7])

    raw = _raw(server.endpoint)
    # a session belongs to the connection that opened it: another socket cannot use the client's session id
    hijack = _ask(raw, encode(Header(MsgType.OBS, welcome.session_id, 1, 1, 0.0, 0, SMALL.hash), {}, _obs()))
    assert hijack.meta["code"] == "unknown_session"
    sid, shash = _ask(raw, encode(Header(MsgType.HELLO), {"schema": None})).header.session_id, SMALL.hash
    good = encode(Header(MsgType.OBS, sid, 1000, 1, 0.0, 0, shash), {}, _obs())
    cases = {
        "short_header": [b"RCSP\x01", good[1]],
        "bad_magic": [b"XXXX" + bytes(good[0])[4:], good[1]],
        "bad_version": [bytes(good[0])[:4] + b"\x07" + bytes(good[0])[5:], good[1]],
        "bad_type": [bytes(good[0])[:5] + b"\x63" + bytes(good[0])[6:], good[1]],
        "bad_metadata": [good[0], b"\xc1garbage"],
        "missing_frames": [good[0]],
        "size_mismatch": [good[0], good[1], *[bytes(f) for f in good[2:-1]], b"\x00" * 3],
        "bad_dtype": [good[0], msgpack.packb({"tensors": [{"name": "x", "dtype": "object", "shape": [1]}]}), b"1"],
        "oversize": [good[0], msgpack.packb({"tensors": [{"name": "x", "dtype": "uint8", "shape": [1 << 30]}]}), b""],
        "schema_hash": encode(Header(MsgType.OBS, sid, 1001, 1, 0.0, 0, b"wrong!!!"), {}, _obs()),
        "schema": encode(
            Header(MsgType.OBS, sid, 1002, 1, 0.0, 0, shash),
            {},
            {**_obs(), "observation.state": np.zeros(3, np.float32)},
        ),
        "unknown_session": encode(Header(MsgType.OBS, 99, 1, 1, 0.0, 0, shash), {}, _obs()),
    }
    for code, frames in cases.items():
        msg = _ask(raw, frames)
        assert msg.header.type is MsgType.ERROR, code
        assert msg.meta["code"] == code, (code, msg.meta)
        assert msg.meta["field"] and msg.meta["message"], msg.meta
    # 300 randomly mutated messages: each is answered with an ERROR (or, if a mutation happens to be valid, a
    # normal reply) and the server keeps running
    rng = np.random.default_rng(0)
    valid = [bytes(f) for f in encode(Header(MsgType.OBS, sid, 5000, 1, 0.0, 0, shash), {}, _obs())]
    for _ in range(300):
        frames = list(valid)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(frames)))
            f = bytearray(frames[i])
            if f and rng.random() < 0.6:
                f[int(rng.integers(0, len(f)))] = int(rng.integers(0, 256))
            else:
                f = f[: int(rng.integers(0, len(f) + 1))]
            frames[i] = bytes(f)
        raw.send_multipart(frames)
    answered = 0
    while raw.poll(1000):
        decode(raw.recv_multipart())
        answered += 1
    assert answered >= 300 and server.proc.poll() is None, answered
    # a frame above ZMQ_MAXMSGSIZE is dropped by libzmq (the peer is disconnected), the server lives on
    raw.send_multipart([good[0], good[1], b"\x00" * (65 * 1024 * 1024)])
    time.sleep(0.3)
    reply = client.request(_obs(), tick=18, budget_s=2.0)
    assert reply.obs_tick == 18 and server.proc.poll() is None
    # heartbeats are answered
    client.heartbeat()
    time.sleep(0.2)
    client.heartbeat()
    assert client.silent_for() < 1.0
    client.close()
    raw.close(0)


def test_schema_mismatch_refuses_to_arm_before_any_motion(serve, manifest):
    server = serve("--policy", str(manifest()))
    wrong = standard_schema(image_size=8, state_dim=13, chunk_size=5, action_dim=7, policy_dt=0.05)
    client = PolicyClient(server.endpoint, wrong)
    with pytest.raises(SchemaMismatchError) as info:
        client.handshake()
    assert any("observation.state" in d and "shape" in d for d in info.value.differences)
    assert not client.connected

    # the feed never submits a chunk: the executor stays empty
    from rcs.control.chunking import ChunkExecutor, ExecutorConfig

    reordered = Schema(
        SMALL.observation, TensorSpec("action", (5, 7), "float32", "rad", tuple(reversed(SMALL.action.names))), 0.05
    )
    executor = ChunkExecutor(ExecutorConfig(names=reordered.action.names, control_dt=0.01))
    observed = []
    feed = ChunkFeed(
        PolicyClient(server.endpoint, reordered),
        executor,
        lambda: observed.append(1) or (0, time.monotonic(), _obs()),
        budget_s=1.0,
    )
    feed.start()
    deadline = time.monotonic() + 5
    while feed.state is not FeedState.REFUSED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert feed.state is FeedState.REFUSED
    assert "joint order" in str(feed.refusal)
    feed.stop()
    assert observed == [] and executor.accepted == 0 and feed.counters["submitted"] == 0


def test_several_clients_get_their_own_sessions(serve, manifest):
    server = serve("--policy", str(manifest()))
    clients = [PolicyClient(server.endpoint, SMALL, name=f"robot{i}") for i in range(3)]
    ids = {c.handshake().session_id for c in clients}
    assert len(ids) == 3
    for round_ in range(3):
        for i, c in enumerate(clients):
            r = c.request(_obs(fill=i), tick=100 * i + round_, capture_time=float(i), budget_s=2.0)
            assert r.obs_tick == 100 * i + round_ and r.capture_time == float(i)
    # interleaved: all three send, then all three receive their own reply
    seqs = [c.send_observation(_obs(), 7 + i, 0.0, 2.0) for i, c in enumerate(clients)]
    for i, (c, seq) in enumerate(zip(clients, seqs, strict=True)):
        r = c.wait_reply(seq, time.monotonic() + 2.0, time.monotonic())
        assert r.obs_tick == 7 + i
    for c in clients:
        c.close()


def test_latest_only_supersedes_and_deadlines_expire(serve, manifest):
    server = serve("--policy", str(manifest(delay_s=0.3)))
    c = PolicyClient(server.endpoint, SMALL, server_timeout_s=5.0)
    c.handshake()
    s1 = c.send_observation(_obs(), 1, 0.0, 5.0)
    time.sleep(0.1)  # s1 is in inference now
    s2 = c.send_observation(_obs(), 2, 0.0, 5.0)
    s3 = c.send_observation(_obs(), 3, 0.0, 5.0)
    with pytest.raises(ServerError) as info:
        c.wait_reply(s2, time.monotonic() + 3, time.monotonic())
    assert info.value.code == "superseded"
    assert c.wait_reply(s1, time.monotonic() + 3, time.monotonic()).obs_tick == 1
    assert c.wait_reply(s3, time.monotonic() + 3, time.monotonic()).obs_tick == 3

    # client-side deadline, then the server's verdict: inference (0.3 s) finished after the 50 ms budget
    with pytest.raises(DeadlineExceeded):
        c.request(_obs(), 4, budget_s=0.05)
    with pytest.raises(ServerError) as info:
        c.wait_reply(c.seq, time.monotonic() + 3, time.monotonic())
    assert info.value.code == "expired" and info.value.meta["field"] == "budget_us"

    # expired while queued behind another session: dropped before inference
    other = PolicyClient(server.endpoint, SMALL, server_timeout_s=5.0)
    other.handshake()
    busy = other.send_observation(_obs(), 10, 0.0, 5.0)
    time.sleep(0.05)
    s5 = c.send_observation(_obs(), 11, 0.0, 0.1)
    with pytest.raises(ServerError) as info:
        c.wait_reply(s5, time.monotonic() + 3, time.monotonic())
    assert info.value.code == "expired" and "before inference" in info.value.meta["message"]
    assert other.wait_reply(busy, time.monotonic() + 3, time.monotonic()).obs_tick == 10
    c.close()
    other.close()


def test_curve_allowed_key_works_unknown_key_is_refused(serve, manifest, tmp_path):
    def keygen(prefix: str) -> str:
        out = subprocess.run(
            [RCS, "keygen", str(tmp_path / prefix)], capture_output=True, text=True, timeout=30, check=False
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    keygen("server")
    allowed_public = keygen("robot")
    keygen("intruder")
    assert oct((tmp_path / "robot.key_secret").stat().st_mode & 0o777) == "0o600"
    (tmp_path / "allow.txt").write_text(f"# robots\n{allowed_public}\n")
    server = serve(
        "--policy",
        str(manifest()),
        "--curve-secret",
        str(tmp_path / "server.key_secret"),
        "--allow",
        str(tmp_path / "allow.txt"),
    )
    server_key = keys.load(tmp_path / "server.key").public

    good = PolicyClient(
        server.endpoint, SMALL, server_key=server_key, client_keys=keys.load_secret(tmp_path / "robot.key_secret")
    )
    good.handshake()
    assert good.request(_obs(), 5, budget_s=2.0).obs_tick == 5

    intruder = PolicyClient(
        server.endpoint, SMALL, server_key=server_key, client_keys=keys.load_secret(tmp_path / "intruder.key_secret")
    )
    with pytest.raises(HandshakeTimeout):
        intruder.handshake(timeout_s=1.0)
    plain = PolicyClient(server.endpoint, SMALL)  # no encryption at all
    with pytest.raises(HandshakeTimeout):
        plain.handshake(timeout_s=1.0)
    assert "refused client key" in server.log()
    assert good.request(_obs(), 6, budget_s=2.0).obs_tick == 6
    good.close()


def test_checkpoint_swap_keeps_sessions(serve, manifest):
    path = manifest(value=[0.0] * 7, checkpoint_id="ckpt-a")
    server = serve("--policy", str(path))
    c = PolicyClient(server.endpoint, SMALL)
    sid = c.handshake().session_id
    assert c.request(_obs(), 1, budget_s=2.0).checkpoint_id == "ckpt-a"
    manifest(value=[0.5] * 7, checkpoint_id="ckpt-b")
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    tick = 2
    while True:
        r = c.request(_obs(), tick, budget_s=2.0)
        tick += 1
        if r.checkpoint_id == "ckpt-b" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.checkpoint_id == "ckpt-b" and np.allclose(r.actions, 0.5)
    assert c.welcome is not None and c.welcome.session_id == sid and c.handshakes == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="posix only")
def test_server_killed_mid_episode_robot_holds_stops_and_rearms_after_fresh_handshake(serve, tmp_path):
    import rcs
    from rcs.control.loop import ControlLoop
    from rcs.control.task import make_policy_task

    robot = rcs.make_robot("sim/panda")
    robot.connect()
    rate = 100.0
    task = make_policy_task(robot, rate_hz=rate)
    state = robot.read()
    hold = np.concatenate([state.joint_positions, [state.gripper]])
    names = task.executor.names
    schema = Schema(
        (TensorSpec("observation.state", (len(names),), "float32", "rad", names),),
        TensorSpec("action", (3, len(names)), "float32", "rad", names),
        0.05,
    )  # 15 ticks < stop 20
    path = write_manifest(tmp_path / "hold.json", "constant", schema, value=hold.tolist(), checkpoint_id="hold")
    server = serve("--policy", str(path))
    port_endpoint = server.endpoint

    def observe():
        s = robot.read()
        return (
            task.executor.tick,
            time.monotonic(),
            {"observation.state": np.concatenate([s.joint_positions, [s.gripper]]).astype(np.float32)},
        )

    loop = ControlLoop(task, rate, robot=robot, rt=None, log_every_s=0)
    loop.start(duration_s=30.0)
    feed = ChunkFeed(
        PolicyClient(port_endpoint, schema, server_timeout_s=0.5),
        task.executor,
        observe,
        budget_s=0.3,
        handshake_timeout_s=0.3,
        on_arm=task.engage,
    )
    feed.start()
    try:

        def wait_for(cond, timeout=8.0):
            end = time.monotonic() + timeout
            while not cond() and time.monotonic() < end:
                time.sleep(0.01)
            return cond()

        assert wait_for(lambda: task.stage.value == "running" and task.executor.accepted >= 3)
        before = dict(task.watchdog.ticks_in_stage)
        server.kill()
        t_kill = time.monotonic()
        assert wait_for(lambda: not feed.armed)
        accepted_after_loss = task.executor.accepted
        # the watchdog takes over: hold, controlled stop, then disarm (1 s without a fresh chunk)
        assert wait_for(lambda: task.stage.value == "disarmed", timeout=5.0), task.report()
        ticks = {k: n - before.get(k, 0) for k, n in task.watchdog.ticks_in_stage.items()}
        assert ticks["hold"] > 0 and ticks["stopping"] > 0, ticks
        assert task.executor.accepted == accepted_after_loss
        handshakes_before_restart = feed.counters["handshakes"]
        assert time.monotonic() - t_kill < 5.0

        t_restart = time.monotonic()
        restarted = serve("--policy", str(path), bind=port_endpoint)
        assert restarted.endpoint == port_endpoint
        assert wait_for(
            lambda: feed.armed and task.stage.value == "running" and task.executor.accepted > accepted_after_loss,
            timeout=10.0,
        ), (feed.events, task.report())
        assert feed.counters["handshakes"] == handshakes_before_restart + 1
        # after the kill: lost first, and the only (re-)arming is right after a handshake with the new server
        after = [(t, e.split()[0].rstrip(":")) for t, e in feed.events if t >= t_kill]
        assert after[0][1] == "lost", feed.events
        assert [k for _, k in after if k != "lost"] == ["handshake", "armed"], feed.events
        assert next(t for t, k in after if k == "handshake") >= t_restart
        assert task.report()["write_errors"] == 0 and not task.estop.triggered
    finally:
        feed.stop()
        loop.stop()
        loop.join()
        robot.close()


# -- in-process server (real sockets, server in a thread): batching, policy failures, configuration ---------


class _Recording:
    """A policy that records batch sizes and can fail on demand."""

    def __init__(self, schema: Schema = SMALL, delay_s: float = 0.0) -> None:
        self.schema = schema
        self.checkpoint_id = "rec"
        self.batches: list[int] = []
        self.delay_s = delay_s
        self.mode = "ok"

    def infer(self, observations):
        self.batches.append(len(observations))
        time.sleep(self.delay_s)
        if self.mode == "raise":
            raise RuntimeError("boom")
        if self.mode == "shape":
            return [np.zeros((2, 2), np.float32) for _ in observations]
        return [np.full((5, 7), float(o["observation.state"][0]), np.float32) for o in observations]


def test_micro_batching_across_sessions_keeps_replies_apart():
    from rcs.serving.server import PolicyServer

    policy = _Recording(delay_s=0.05)
    server = PolicyServer(policy, "tcp://127.0.0.1:0", max_batch=4, batch_window_s=0.1)
    endpoint = server.start()
    try:
        clients = [PolicyClient(endpoint, SMALL) for _ in range(3)]
        for c in clients:
            c.handshake()
        seqs = [c.send_observation(_obs(fill=i + 1), i, 0.0, 5.0) for i, c in enumerate(clients)]
        replies = [c.wait_reply(s, time.monotonic() + 5, time.monotonic()) for c, s in zip(clients, seqs, strict=True)]
        assert 3 in policy.batches, policy.batches  # the three sessions were inferred together
        for i, r in enumerate(replies):
            assert r.obs_tick == i and np.all(r.actions == i + 1)
        assert all(v["served"] == 1 for v in server.sessions().values())
    finally:
        server.stop()


def test_policy_failures_are_errors_not_crashes():
    from rcs.serving.server import PolicyServer

    policy = _Recording()
    server = PolicyServer(policy, "tcp://127.0.0.1:0")
    endpoint = server.start()
    try:
        c = PolicyClient(endpoint, SMALL)
        c.handshake()
        for mode in ("raise", "shape"):
            policy.mode = mode
            with pytest.raises(ServerError) as info:
                c.request(_obs(), 1 if mode == "raise" else 2, budget_s=2.0)
            assert info.value.code == "policy", mode
        policy.mode = "ok"
        assert c.request(_obs(fill=3), 3, budget_s=2.0).actions[0, 0] == 3
        # swapping in-process to a checkpoint with another schema: the session must re-handshake and refuse
        from rcs.serving.client import SessionLost

        server.swap(_Recording(standard_schema(image_size=8, state_dim=13, chunk_size=5, action_dim=7, policy_dt=0.05)))
        with pytest.raises(SessionLost):
            c.request(_obs(), 4, budget_s=2.0)
        with pytest.raises(SchemaMismatchError):
            c.handshake()
    finally:
        server.stop()


def test_configuration_errors(tmp_path):
    from rcs.errors import ConfigError
    from rcs.serving.server import PolicyServer, is_loopback

    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("ipc:///tmp/x") and is_loopback("tcp://[::1]:1")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://192.168.1.2:5555")
    with pytest.raises(ConfigError):
        PolicyServer(_Recording(), curve=keys.KeyPair(b"x" * 40, b"y" * 40))  # CURVE without an allow-list
    from rcs.serving.policy import load_policy

    with pytest.raises(ConfigError):
        load_policy("/nonexistent/checkpoint")
    with pytest.raises(ConfigError, match="no config.json"):  # kind lerobot, but no lerobot checkpoint there
        load_policy(str(write_manifest(tmp_path / "lerobot.json", "lerobot")))


def test_allow_list_parsing(tmp_path):
    from rcs.errors import ConfigError

    pub, _ = zmq.curve_keypair()
    (tmp_path / "ok.txt").write_text(f"# comment\n\n{pub.decode()}  robot-1\n")
    assert keys.load_allow_list(tmp_path / "ok.txt") == frozenset({pub})
    (tmp_path / "bad.txt").write_text("not-a-key\n")
    with pytest.raises(ConfigError, match="40-character"):
        keys.load_allow_list(tmp_path / "bad.txt")
    (tmp_path / "empty.txt").write_text("# nobody\n")
    with pytest.raises(ConfigError, match="no keys"):
        keys.load_allow_list(tmp_path / "empty.txt")
    keys.generate(tmp_path / "d" / "robot")
    assert keys.load_allow_list(tmp_path / "d") == frozenset({keys.load(tmp_path / "d" / "robot.key").public})
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        keys.generate(tmp_path / "d" / "robot")


def test_transport_benchmark_smoke():
    from sim.bench.transport_ours import measure_ours

    one = measure_ours(30, clients=1, curve=True, warmup=3)
    assert one["p50_ms"] > 0 and one["p99_ms"] >= one["p50_ms"] and one["req_per_s"] > 0
    two = measure_ours(30, clients=2, curve=False, warmup=3)
    assert two["aggregate_req_per_s"] > 0 and len(two["per_client_req_per_s"]) == 2
    shm = measure_ours(30, clients=2, curve=True, warmup=3, shm=True)  # clients raise if shm was declined
    assert shm["shm"] and shm["aggregate_req_per_s"] > 0


class _Inpainting:
    """Continues from the committed prefix when one arrives (what a real-time-chunking policy does)."""

    def __init__(self) -> None:
        self.schema = SMALL
        self.checkpoint_id = "inpaint"
        self.seen: list[np.ndarray | None] = []

    def infer(self, observations):
        from rcs.serving.protocol import COMMITTED

        out = []
        for o in observations:
            prefix = o.get(COMMITTED)
            self.seen.append(None if prefix is None else np.array(prefix))
            chunk = np.tile(np.arange(5, dtype=np.float32)[:, None] * 0.01 + len(self.seen), (1, 7))
            if prefix is not None:
                chunk[: len(prefix)] = prefix
            out.append(chunk)
        return out


def test_chunk_feed_sends_the_committed_prefix_and_bad_prefixes_are_refused():
    from rcs.control.chunking import ChunkExecutor, ExecutorConfig
    from rcs.serving.protocol import COMMITTED
    from rcs.serving.server import PolicyServer

    policy = _Inpainting()
    server = PolicyServer(policy, "tcp://127.0.0.1:0")
    endpoint = server.start()
    control_dt = 0.01  # policy_dt 0.05: 5 control ticks per policy step
    executor = ChunkExecutor(ExecutorConfig(names=SMALL.action.names, control_dt=control_dt))
    tick = [0]
    feed = ChunkFeed(
        PolicyClient(endpoint, SMALL),
        executor,
        lambda: (tick[0], time.monotonic(), _obs()),
        period_s=0.05,
        budget_s=2.0,
    )
    try:
        feed.start()
        deadline = time.monotonic() + 5
        while feed.counters["submitted"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        executor.step(0)  # the control loop merges the first chunk at tick 0
        plan_ticks = executor.request(2).committed
        tick[0] = 2
        while all(p is None for p in policy.seen) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any(p is not None for p in policy.seen), (feed.counters, len(policy.seen))
        assert policy.seen[0] is None  # nothing committed before the first chunk
        prefix = next(p for p in policy.seen[1:] if p is not None)
        # the plan from tick 2 on, at the policy rate (every 5th control tick), as float32
        np.testing.assert_allclose(prefix, plan_ticks[::5][: len(prefix)].astype(np.float32), atol=1e-6)
        assert prefix.shape[1] == 7 and 1 <= len(prefix) <= 5
        feed.stop()

        client = PolicyClient(endpoint, SMALL)
        client.handshake()
        for bad, what in [
            (np.zeros((6, 7), np.float32), "shape"),
            (np.zeros((2, 6), np.float32), "shape"),
            (np.full((2, 7), np.nan, np.float32), "NaN"),
            (np.zeros((2, 7)), "dtype"),
        ]:
            with pytest.raises(ServerError) as info:
                client.request({**_obs(), COMMITTED: bad}, tick=1, budget_s=2.0)
            assert info.value.code == "schema" and COMMITTED in info.value.meta["field"], (what, info.value.meta)
        client.close()
    finally:
        feed.stop()
        server.stop()
