"""The robot server's command endpoint under hostile input: frame and message caps, dtypes, CURVE.

Real ZeroMQ sockets against a real RobotServer (simulated Panda) on loopback; raw DEALER sockets play the
attacker, RobotClient the legitimate user.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from rcs.errors import ConfigError
from rcs.remote.client import RobotClient, RobotServerTimeout
from rcs.remote.config import server_config
from rcs.remote.server import RobotServer
from rcs.remote.wire import RobotHeader, RobotMsg, decode_message
from rcs.serving import keys
from tests.remote.helpers import free_endpoints

RCS = str(Path(sys.executable).with_name("rcs"))


def _server(**extra: object) -> RobotServer:
    state, command = free_endpoints()
    config = {
        "robot": "sim/panda",
        "rate_hz": 100,
        "realtime": False,
        "state_endpoint": state,
        "command_endpoint": command,
        **extra,
    }
    return RobotServer(server_config(config)).start()


@pytest.fixture(scope="module")
def robot() -> Iterator[tuple[RobotServer, RobotClient]]:
    server = _server()
    client = RobotClient(server.config.command_endpoint, server.config.state_endpoint, timeout_s=5.0)
    yield server, client
    client.close()
    server.stop(0.0)


def _peak_rss_reset() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/self/status")


def _raw(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _command_frames(tensors: dict[str, int], seq: int = 1) -> list[bytes]:
    """Header and metadata of a trajectory COMMAND describing uint8 tensors of the given byte sizes."""
    meta = {
        "command": "trajectory",
        "names": [],
        "tensors": [{"name": name, "dtype": "uint8", "shape": [size]} for name, size in tensors.items()],
    }
    return [RobotHeader(RobotMsg.COMMAND, seq).pack(), msgpack.packb(meta)]


def test_an_oversized_frame_is_refused_before_the_server_buffers_it(robot) -> None:
    server, client = robot
    assert server.config.max_frame_bytes == 1 << 20
    chunk = np.ones(32 << 20, dtype=np.uint8)  # touched: resident before the baseline is taken
    frames = [*_command_frames({f"t{i}": chunk.nbytes for i in range(8)}), *([memoryview(chunk)] * 8)]
    attacker = _raw(server.config.command_endpoint)
    client.describe()
    _peak_rss_reset()
    before = _status_kib("VmHWM")
    attacker.send_multipart(frames, copy=False)  # 256 MiB in one message, 32 MiB frames (zero-copy here)
    assert not attacker.poll(2000), "the server answered a message it should have refused on arrival"
    assert client.describe()["name"]  # still serving
    grown = _status_kib("VmHWM") - before
    # Without ZMQ_MAXMSGSIZE at the command caps libzmq would buffer all 256 MiB before the server looks at it.
    assert grown < 48 * 1024, f"peak RSS grew by {grown} KiB while a 256 MiB message was refused"
    attacker.close(0)


def test_a_message_over_the_total_cap_is_refused_as_it_arrives(robot) -> None:
    server, client = robot
    frame = 900 * 1024  # each frame under max_frame_bytes (1 MiB), 6 of them over max_message_bytes (4 MiB)
    attacker = _raw(server.config.command_endpoint)
    attacker.send_multipart([*_command_frames({f"t{i}": frame for i in range(6)}, seq=7), *[bytes(frame)] * 6])
    assert attacker.poll(5000), "no reply"
    reply = decode_message(attacker.recv_multipart())
    assert reply.header.seq == 7 and reply.meta["ok"] is False
    assert reply.meta["code"] == "oversize" and reply.meta["field"] == "message"
    assert reply.meta["limit"] == f"<= {server.config.max_message_bytes} bytes in all frames"
    assert client.describe()["name"]
    attacker.close(0)


def test_memory_of_a_refused_message_of_many_small_frames_is_given_back(robot) -> None:
    # libzmq delivers a message only when all its frames arrived, so one of many frames under the frame cap
    # is buffered whole (docs/protocol.md, "Limits of the limits"); once refused, it must not stay resident.
    server, client = robot
    chunk = np.ones(server.config.max_frame_bytes - 4096, dtype=np.uint8)
    attacker = _raw(server.config.command_endpoint)
    client.describe()
    before = _status_kib("VmRSS")
    attacker.send_multipart([*_command_frames({"t0": 1}, seq=3), *([memoryview(chunk)] * 200)], copy=False)
    assert attacker.poll(10_000), "no reply"
    reply = decode_message(attacker.recv_multipart())
    assert reply.header.seq == 3 and reply.meta["code"] == "oversize" and reply.meta["field"] == "message"
    assert client.describe()["name"]
    held = _status_kib("VmRSS") - before
    assert held < 48 * 1024, f"{held} KiB still resident after a ~200 MiB message was refused"
    attacker.close(0)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool", "float16"])
def test_non_float_command_tensors_are_refused_for_their_dtype(robot, dtype) -> None:
    server, client = robot
    q = server.current_command()[:7]
    positions = np.round(q).astype(dtype)[None, :]
    reply = client.command(
        "trajectory",
        {"positions": positions, "time_from_start": np.array([0.5])},
        names=[f"joint{i}" for i in range(1, 8)],
        age_s=0.0,
    )
    assert not reply.ok and reply.code == "dtype" and reply.field == "positions", reply
    assert f"dtype {dtype}" in reply.message and reply.limit == "float64 or float32"
    assert "\n" not in str(reply)
    reply = client.command(
        "pose",
        {"position": np.array([0, 0, 1], dtype=np.int64), "quaternion": np.array([0.0, 1.0, 0.0, 0.0])},
        frame_id="base",
        age_s=0.0,
    )
    assert not reply.ok and reply.code == "dtype" and reply.field == "pose.position", reply


def test_float32_commands_are_still_accepted(robot) -> None:
    server, client = robot
    q = server.current_command()
    names = [f"joint{i}" for i in range(1, 8)]
    reply = client.command(
        "trajectory",
        {"positions": q[None, :7].astype(np.float32), "time_from_start": np.array([0.0], dtype=np.float32)},
        names=names,
        age_s=0.0,
    )
    assert reply.ok, reply


def test_curve_only_clients_with_an_allowed_key_talk_to_the_robot(tmp_path) -> None:
    _, server_secret = keys.generate(tmp_path / "robot")
    allowed_public, allowed_secret = keys.generate(tmp_path / "ros")
    _, stranger_secret = keys.generate(tmp_path / "stranger")
    (tmp_path / "allow.txt").write_text(keys.load(allowed_public).public.decode() + "\n")
    server = _server(curve_secret=str(server_secret), allow=str(tmp_path / "allow.txt"))
    server_key = keys.load(server_secret).public
    command, state = server.config.command_endpoint, server.config.state_endpoint
    try:
        with RobotClient(
            command, state, timeout_s=5.0, server_key=server_key, client_keys=keys.load_secret(allowed_secret)
        ) as good:
            assert good.describe()["name"]
            assert good.wait_for(b"state", 5.0).tensors["joint_positions"].shape == (7,)
        with RobotClient(
            command, state, timeout_s=1.0, server_key=server_key, client_keys=keys.load_secret(stranger_secret)
        ) as stranger:
            with pytest.raises(RobotServerTimeout):
                stranger.describe()
            assert stranger.receive(1.0) is None  # nor can it read the state stream
        with RobotClient(command, state, timeout_s=1.0) as plain:
            with pytest.raises(RobotServerTimeout):
                plain.describe()
            assert plain.receive(1.0) is None
    finally:
        server.stop(0.0)


def test_caps_and_keys_are_checked_in_the_config() -> None:
    with pytest.raises(ConfigError, match=r"max_frame_bytes=1000 must be an integer number of bytes in \[66560"):
        server_config({"robot": "sim/panda", "max_frame_bytes": 1000})
    with pytest.raises(ConfigError, match="curve_secret and allow go together"):
        server_config({"robot": "sim/panda", "curve_secret": "robot.key_secret"})
    state, command = free_endpoints()
    config = server_config(
        {
            "robot": "sim/panda",
            "realtime": False,
            "state_endpoint": state,
            "command_endpoint": command,
            "trajectory": {"max_points": 100_000},
        }
    )
    with pytest.raises(ConfigError, match=r"trajectory.max_points=100000: .* > max_frame_bytes=1048576"):
        RobotServer(config)


def test_rcs_robot_curve_options_fail_in_one_line(tmp_path) -> None:
    run = subprocess.run(
        [RCS, "robot", "--robot", "sim/panda", "--curve-secret", str(tmp_path / "none.key_secret"), "--no-realtime"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert (
        run.stderr.strip() == "rcs robot: curve_secret and allow go together (CURVE needs the server key pair "
        "and the allow-list of client keys)"
    )
    run = subprocess.run(
        [
            RCS,
            "robot",
            "--robot",
            "sim/panda",
            "--curve-secret",
            str(tmp_path / "none.key_secret"),
            "--allow",
            str(tmp_path / "none.txt"),
            "--no-realtime",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.startswith("rcs robot: cannot load CURVE key"), run.stderr
