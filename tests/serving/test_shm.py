"""Same-host shared-memory fast path: layout, seqlock, segment checks, and use over real sockets."""

from __future__ import annotations

import os
import secrets
import threading
import time

import numpy as np
import pytest
import zmq

from rcs.serving import shm
from rcs.serving.client import PolicyClient, ServerError
from rcs.serving.policy import standard_schema, write_manifest
from rcs.serving.protocol import Header, MsgType, ProtocolError, decode, encode
from rcs.serving.server import PolicyServer

pytestmark = pytest.mark.skipif(not shm.SUPPORTED, reason="shared-memory fast path needs x86-64 and /dev/shm")

SCHEMA = standard_schema(image_size=16, cameras=2, state_dim=5, chunk_size=4, action_dim=3, policy_dt=0.05)


def _obs(fill: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(fill)
    return {
        s.name: (rng.integers(0, 255, s.shape) if s.dtype == "uint8" else rng.normal(size=s.shape)).astype(s.dtype)
        for s in SCHEMA.observation
    }


class Echo:
    """Chunk = a digest of every observation tensor, so a wrong or stale byte anywhere shows."""

    schema = SCHEMA
    checkpoint_id = "echo"

    def infer(self, observations):
        return [
            np.tile(np.array([float(np.asarray(o[n], np.float64).sum()) for n in sorted(o)][:3], np.float32), (4, 1))
            for o in observations
        ]


def _digest(obs: dict[str, np.ndarray]) -> np.ndarray:
    return np.array([float(np.asarray(obs[n], np.float64).sum()) for n in sorted(obs)][:3], np.float32)


def test_layout_is_aligned_and_covers_every_tensor():
    layout = shm.Layout.for_schema(SCHEMA)
    assert [e[0] for e in layout.entries] == sorted(s.name for s in SCHEMA.observation)
    assert all(off % shm.ALIGN == 0 for *_, off in layout.entries)
    ends = [off + int(np.prod(shape)) * dt.itemsize for _, dt, shape, off in layout.entries]
    assert max(ends) <= layout.slot_size and layout.size == shm.SLOTS * layout.slot_size


def test_seqlock_detects_stale_and_half_written_slots():
    w = shm.ShmWriter(SCHEMA)
    try:
        r = shm.ShmReader(w.name, SCHEMA)
        obs = _obs(1)
        slot = w.write(4, obs)
        got = r.read(4, slot)
        for k, v in obs.items():
            np.testing.assert_array_equal(got[k], v)
        with pytest.raises(ProtocolError) as info:
            r.read(2, slot)  # the slot holds a newer request
        assert info.value.code == "shm_torn"
        guard = np.ndarray((2,), dtype="<u8", buffer=w._map, offset=slot * w.layout.slot_size)
        guard[0] = 6  # the client started rewriting the slot for seq 6
        with pytest.raises(ProtocolError, match="shm_torn|holds seq"):
            r.read(4, slot)
        with pytest.raises(ProtocolError, match="0..1"):
            r.read(4, 7)
        r.close()
    finally:
        w.close()
    assert not w.path.exists()


def test_reader_refuses_foreign_or_wrong_segments(tmp_path):
    with pytest.raises(ProtocolError, match="rcs-<32 hex"):
        shm.ShmReader("../etc/passwd", SCHEMA)
    with pytest.raises(ProtocolError, match="cannot open"):
        shm.ShmReader("rcs-" + "0" * 32, SCHEMA)
    w = shm.ShmWriter(SCHEMA)
    link = shm.SEGMENT_DIR / ("rcs-" + "a" * 32)
    try:
        os.symlink(w.path, link)
        with pytest.raises(ProtocolError, match="cannot open"):  # O_NOFOLLOW: no symlinks
            shm.ShmReader(link.name, SCHEMA)
        other = standard_schema(image_size=8, cameras=2, state_dim=5, chunk_size=4, action_dim=3, policy_dt=0.05)
        with pytest.raises(ProtocolError, match="bytes"):
            shm.ShmReader(w.name, other)  # size differs from this schema's layout
    finally:
        link.unlink(missing_ok=True)
        w.close()


def test_client_uses_shared_memory_and_every_byte_arrives():
    server = PolicyServer(Echo(), "tcp://127.0.0.1:0")
    endpoint = server.start()
    try:
        client = PolicyClient(endpoint, SCHEMA, shared_memory=True)
        client.handshake()
        assert client.shm_active
        for tick in range(1, 40):  # alternating slots, fresh data each time
            obs = _obs(tick)
            np.testing.assert_allclose(client.request(obs, tick=tick, budget_s=2.0).actions[0], _digest(obs), rtol=1e-5)
        # an OBS naming a slot on a session without shared memory is an error naming the field
        plain = PolicyClient(endpoint, SCHEMA)
        plain.handshake()
        assert not plain.shm_active
        seq = plain.seq + 1
        plain.seq = seq
        header = Header(MsgType.OBS, plain.welcome.session_id, seq, 1, 0.0, 2_000_000, SCHEMA.hash)
        plain._send(encode(header, {"shm_slot": 0}))
        with pytest.raises(ServerError) as info:
            plain.wait_reply(seq, __import__("time").monotonic() + 2.0, 0.0)
        assert info.value.code == "shm" and info.value.meta["field"] == "shm_slot"
        plain.close()
        segment = client._shm.path
        client.close()
        assert not segment.exists()
    finally:
        server.stop()


def test_shared_memory_with_a_server_in_another_process_and_fallback(serve, tmp_path):
    server = serve("--policy", str(write_manifest(tmp_path / "p.json", "constant", SCHEMA, value=[1, 2, 3])))
    client = PolicyClient(server.endpoint, SCHEMA, shared_memory=True)
    client.handshake()
    assert client.shm_active  # the rcs serve process mapped this process's segment
    assert client.request(_obs(3), tick=1, budget_s=2.0).actions.tolist() == [[1, 2, 3]] * 4
    client.close()

    # a segment the server cannot map (here: removed before HELLO, as for a client on another host):
    # WELCOME says no, and the same client keeps working with tensor frames
    remote = PolicyClient(server.endpoint, SCHEMA, shared_memory=True)
    remote._shm = shm.ShmWriter(SCHEMA)
    remote._shm.path.unlink()
    remote.handshake()
    assert not remote.shm_active
    assert remote.request(_obs(4), tick=1, budget_s=2.0).actions.shape == (4, 3)
    remote.close()


@pytest.fixture
def fifo():
    """A FIFO under a valid segment name, as another local user could plant it in /dev/shm."""
    path = shm.SEGMENT_DIR / f"rcs-{secrets.token_hex(16)}"
    os.mkfifo(path, 0o600)
    yield path
    path.unlink(missing_ok=True)


def test_reader_refuses_a_fifo_without_waiting_for_a_writer(fifo):
    outcome: dict[str, object] = {}

    def open_it() -> None:
        try:
            shm.ShmReader(fifo.name, SCHEMA)
        except ProtocolError as e:
            outcome["error"] = e

    t = threading.Thread(target=open_it, daemon=True)
    t.start()
    t.join(5.0)
    if t.is_alive():  # blocked in open(): release it with a writer, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5.0)
        pytest.fail("ShmReader blocked opening a FIFO until a writer appeared")
    err = outcome.get("error")
    assert isinstance(err, ProtocolError) and err.code == "shm" and err.field == "hello.shm.name"
    assert "FIFO" in str(err) and "\n" not in str(err)


def test_a_fifo_offered_in_hello_is_refused_at_once_and_others_keep_being_served(serve, tmp_path, fifo):
    server = serve("--policy", str(write_manifest(tmp_path / "p.json", "constant", SCHEMA, value=[1, 2, 3])))
    robot = PolicyClient(server.endpoint, SCHEMA)
    robot.handshake()
    attacker = zmq.Context.instance().socket(zmq.DEALER)
    attacker.setsockopt(zmq.LINGER, 0)
    attacker.connect(server.endpoint)
    try:
        t0 = time.monotonic()
        attacker.send_multipart(
            encode(Header(MsgType.HELLO, 0, 1), {"schema": SCHEMA.as_dict(), "shm": {"name": fifo.name}})
        )
        assert attacker.poll(5000), "no answer to the HELLO: the server's I/O thread is blocked"
        welcome = decode(attacker.recv_multipart())
        assert time.monotonic() - t0 < 5.0
        # the offer is refused (that session uses frames), naming why
        assert welcome.header.type is MsgType.WELCOME and welcome.meta["shm"] is False
        assert "not a regular file (a FIFO)" in welcome.meta["shm_error"]
        # everyone else is still served: the open session, and a new handshake
        assert robot.request(_obs(5), tick=1, budget_s=5.0).actions.tolist() == [[1, 2, 3]] * 4
        other = PolicyClient(server.endpoint, SCHEMA)
        other.handshake(timeout_s=5.0)
        assert other.request(_obs(6), tick=1, budget_s=5.0).actions.shape == (4, 3)
        other.close()
    finally:
        attacker.close(0)
        robot.close()
