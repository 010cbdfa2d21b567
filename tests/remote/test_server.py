"""The robot server with real ZeroMQ sockets and the MuJoCo robots (main venv), driven through RobotClient."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

import rcs
from rcs.errors import ConfigError
from rcs.remote.client import RobotClient, RobotServerTimeout
from rcs.remote.config import load_server_config, server_config
from rcs.remote.server import RobotServer
from rcs.remote.wire import TOPIC_CAMERA, TOPIC_STATE, TOPIC_STATUS
from rcs.serving.policy import ConstantPolicy, schema_from_manifest
from rcs.serving.server import PolicyServer
from tests.remote.helpers import free_endpoints

REPO = Path(__file__).resolve().parents[2]
ARM = [f"joint{i}" for i in range(1, 8)]


def serve(config: dict) -> tuple[RobotServer, RobotClient]:
    """A server on free ports; real-time scheduling as in production (falls back with a warning if refused)."""
    state, command = free_endpoints()
    server = RobotServer(server_config({**config, "state_endpoint": state, "command_endpoint": command}))
    server.start()
    client = RobotClient(command, state, topics=(TOPIC_STATE, TOPIC_STATUS, TOPIC_CAMERA), timeout_s=5.0)
    return server, client


@pytest.fixture(scope="module")
def panda() -> Iterator[tuple[RobotServer, RobotClient]]:
    server, client = serve({"robot": "sim/panda", "rate_hz": 500})
    yield server, client
    client.close()
    server.stop(0.0)


def latest(client: RobotClient) -> dict[str, np.ndarray]:
    """The newest published state's tensors (drains what queued up since the last read)."""
    states = [m for topic, m in client.receive_recent(0.0)[0] if topic == TOPIC_STATE]
    return (states[-1] if states else client.wait_for(TOPIC_STATE)).tensors


def fresh_status(client: RobotClient) -> dict:
    """The first STATUS published after this call (older queued ones are dropped)."""
    while client.receive(0.0) is not None:
        pass
    return client.wait_for(TOPIC_STATUS).meta


def joints(client: RobotClient) -> np.ndarray:
    """The newest published joint positions."""
    return np.array(latest(client)["joint_positions"])


def wait_until_still(client: RobotClient, timeout: float = 10.0) -> np.ndarray:
    end = time.monotonic() + timeout
    q = joints(client)
    while time.monotonic() < end:
        time.sleep(0.2)
        q2 = joints(client)
        if np.max(np.abs(q2 - q)) < 1e-4:
            return q2
        q = q2
    raise AssertionError("the arm did not come to rest")


def test_receive_recent_drops_the_backlog_of_a_slow_reader(panda) -> None:
    server, client = panda
    client.receive_recent(0.0)
    time.sleep(0.5)  # a reader that fell behind: ~250 states queued
    oldest = client.receive(0.0)
    assert oldest is not None and time.monotonic() - oldest[1].header.capture_time > 0.4  # what receive() hands out
    missed_before = server.loop.stats().missed_ticks  # before the window the kept states come from
    time.sleep(0.2)
    got, dropped = client.receive_recent(1.0, max_lag_s=0.05)
    missed = server.loop.stats().missed_ticks - missed_before
    states = [m for topic, m in got if topic == TOPIC_STATE]
    assert dropped > 200
    newest = states[-1].header.capture_time
    assert time.monotonic() - newest < 0.1  # the newest state, not the backlog
    # every state of the last 50 ms, in order, none older: 25 ticks at 500 Hz. A loaded machine can make the
    # loop skip deadlines (it never bursts to catch up, docs/control.md): those ticks were never published.
    assert all(newest - m.header.capture_time <= 0.05 for m in states)
    ticks = [m.header.tick for m in states]
    assert ticks == sorted(set(ticks)) and 20 <= ticks[-1] - ticks[0] + 1 <= 30, ticks
    assert (ticks[-1] - ticks[0] + 1) - len(ticks) <= missed, (ticks, missed)  # gaps only where the loop skipped
    assert [topic for topic, _ in got].count(TOPIC_STATUS) == 1  # the newest status only (one every 0.2 s)
    time.sleep(0.1)
    got, dropped = client.receive_recent(1.0)  # max_lag_s=0: the newest of each topic
    assert [topic for topic, _ in got].count(TOPIC_STATE) == 1 and dropped > 30


def test_description_state_status(panda) -> None:
    _, client = panda
    d = client.describe()
    assert d["kind"] == "arm" and d["joint_names"] == ARM and d["command_names"] == ARM + ["gripper"]
    assert d["base_frame"] == "link0" and d["rate_hz"] == 500.0 and d["cameras"] == []
    assert client.clock_offset_s == pytest.approx(time.time() - time.monotonic(), abs=0.5)
    # state at the control rate, each stamped with its tick and monotonic capture time
    t0 = time.monotonic()
    msgs = []
    while time.monotonic() - t0 < 1.0:
        got = client.receive(0.5)
        if got and got[0] == TOPIC_STATE:
            msgs.append(got[1])
    assert len(msgs) > 0.6 * 500
    ticks = [m.header.tick for m in msgs]
    assert ticks == sorted(ticks)
    assert abs(msgs[-1].header.capture_time - time.monotonic()) < 0.5
    assert set(msgs[-1].tensors) >= {"joint_positions", "joint_velocities", "joint_efforts", "gripper", "tcp_position"}
    status = fresh_status(client)
    assert status["loop"]["rate_hz"] == 500.0 and status["estop"] is False and status["armed"] is True


def test_camera_frames_are_published() -> None:
    server, client = serve(
        {"robot": "sim/so101", "rate_hz": 30, "cameras": [{"name": "front", "width": 64, "height": 48, "fps": 5}]}
    )
    try:
        assert client.describe()["cameras"][0]["width"] == 64
        cam = client.wait_for(TOPIC_CAMERA + b"front", timeout_s=20.0)
        assert cam.meta["name"] == "front" and len(cam.meta["intrinsics"]) == 6
        assert cam.tensors["image"].shape == (48, 64, 3) and cam.tensors["image"].dtype == np.uint8
        assert cam.tensors["image"].std() > 0  # a rendered scene, not a blank buffer
        assert cam.tensors["extrinsics"].shape == (4, 4)
    finally:
        client.close()
        server.stop(0.0)


def test_trajectory_moves_bad_ones_are_rejected_and_the_arm_holds(panda) -> None:
    _, client = panda
    q = wait_until_still(client)
    goal = q.copy()
    goal[0] += 0.15
    for names, pos, times, code in [
        (ARM[:6] + ["elbow"], [goal], [1.0], "names"),
        (ARM, [np.r_[math.nan, goal[1:]]], [1.0], "non_finite"),
        (ARM, [q + np.r_[0.4, np.zeros(6)]], [0.0], "jump"),
        (ARM, [q + np.r_[4.0, np.zeros(6)]], [5.0], "position_limit"),
    ]:
        reply = client.trajectory(names, np.array(pos), np.array(times))
        assert not reply.ok and reply.code == code, reply
    stale = client.trajectory(ARM, np.array([goal]), np.array([1.0]), age_s=3.0)
    assert stale.code == "stale_timestamp"
    malformed = client.command("trajectory", {"positions": np.zeros((1, 7))}, names=ARM)
    assert malformed.code == "shape"
    assert client.command("fly").code == "unknown_command"
    time.sleep(0.3)
    assert np.max(np.abs(joints(client) - q)) < 1e-3  # nothing moved
    status = fresh_status(client)
    assert {"names", "non_finite", "jump", "position_limit", "stale_timestamp"} <= set(status["command_rejections"])
    assert "rejected" in status["last_rejection"]

    reply = client.trajectory(ARM, np.array([goal]), np.array([1.0]))
    assert reply.ok, reply
    assert reply.info["duration_s"] == pytest.approx(1.0)
    q_end = wait_until_still(client)
    np.testing.assert_allclose(q_end[0], goal[0], atol=5e-3)
    np.testing.assert_allclose(q_end[1:], q[1:], atol=5e-3)


def test_estop_latches_until_reset(panda) -> None:
    _, client = panda
    q = wait_until_still(client)
    assert client.estop("test").ok
    reply = client.trajectory(ARM, np.array([q - np.r_[0.1, np.zeros(6)]]), np.array([0.5]))
    assert not reply.ok and reply.code == "estop" and "reset" in reply.limit
    assert not client.set_armed(True).ok  # arming is refused while latched
    time.sleep(0.5)
    assert np.max(np.abs(joints(client) - q)) < 1e-3
    status = fresh_status(client)
    assert status["estop"] is True and status["stage"] == "estop" and "test" in status["estop_reason"]
    assert client.reset().ok
    reply = client.trajectory(ARM, np.array([q - np.r_[0.1, np.zeros(6)]]), np.array([0.5]))
    assert reply.ok, reply
    np.testing.assert_allclose(wait_until_still(client)[0], q[0] - 0.1, atol=5e-3)


def test_pose_target_through_ik_and_bad_targets(panda) -> None:
    _, client = panda
    wait_until_still(client)
    down = [0.0, 1.0, 0.0, 0.0]  # TCP pointing down (w, x, y, z)
    assert client.pose("map", [0.5, 0.0, 0.3], down).code == "frame"
    assert client.pose("link0", [5.0, 0.0, 0.3], down).code == "workspace"
    assert client.pose("link0", [0.5, 0.0, 0.3], [0.0, 0.0, 0.0, 0.0]).code == "quaternion"
    assert client.pose("link0", [0.5, math.nan, 0.3], down).code == "non_finite"
    reply = client.pose("link0", [0.5, 0.1, 0.3], down)
    assert reply.ok, reply
    wait_until_still(client)
    tcp = latest(client)["tcp_position"]
    np.testing.assert_allclose(tcp, [0.5, 0.1, 0.3], atol=5e-3)


def test_disarmed_arm_holds_and_rejects_motion(panda) -> None:
    _, client = panda
    q = wait_until_still(client)
    assert client.set_armed(False).ok
    reply = client.trajectory(ARM, np.array([q + np.r_[0.1, np.zeros(6)]]), np.array([0.5]))
    assert reply.code == "disarmed"
    assert client.set_armed(True).ok


def test_malformed_frames_are_answered_not_fatal(panda) -> None:
    _, client = panda
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(client.command_endpoint)
    sock.send_multipart([b"garbage"])
    assert sock.poll(5000)
    from rcs.remote.wire import decode_message

    reply = decode_message(sock.recv_multipart())
    assert reply.meta["ok"] is False and reply.meta["code"] == "short_header"
    sock.close(0)
    assert client.describe()["name"] == "sim/panda"  # still serving


def test_quadrotor_arm_takeoff_disarm_refused_in_air_estop_lands() -> None:
    server, client = serve(
        {
            "robot": "sim/crazyflie",
            "rate_hz": 100,
            "start_armed": False,
            "safety": {"geofence": {"lower": [-2, -2, 0], "upper": [2, 2, 2.5]}, "max_altitude": 2.0},
            "watchdog": {"stop_after_s": 0.5, "disarm_after_s": 5.0, "fade_in_s": 0.2},
        }
    )
    try:
        d = client.describe()
        assert d["kind"] == "quadrotor" and d["command_names"] == ["x", "y", "z", "yaw"]
        up = np.array([[0.0, 0.0, 0.3], [0.0, 0.0, 0.6]])
        assert client.trajectory(["x", "y", "z"], up, np.array([1.0, 2.0])).code == "disarmed"
        assert client.pose("world", [0, 0, 3.0], [1, 0, 0, 0]).code == "disarmed"
        assert client.set_armed(True).ok
        assert client.pose("world", [0, 0, 3.0], [1, 0, 0, 0]).code == "position_limit"  # above the ceiling
        assert client.pose("odom", [0, 0, 0.5], [1, 0, 0, 0]).code == "frame"
        assert client.trajectory(["x", "y", "z"], up, np.array([1.0, 2.0])).ok
        time.sleep(3.0)
        s = latest(client)
        assert s["position"][2] == pytest.approx(0.6, abs=0.08) and bool(s["armed"][0])
        reply = client.set_armed(False)
        assert reply.code == "airborne"
        assert client.estop("test").ok
        time.sleep(4.0)
        s = latest(client)
        assert s["position"][2] < 0.1  # landed (e-stop lands, never cuts thrust in the air)
    finally:
        client.close()
        server.stop(0.0)


class CountingPolicy(ConstantPolicy):
    """A constant policy that counts the observations it answered."""

    answered = 0

    def infer(self, observations):  # noqa: ANN001, ANN201 (ConstantPolicy's signature)
        self.answered += len(observations)
        return super().infer(observations)


@contextlib.contextmanager
def constant_policy_link(manifest: Path, link: dict | None = None, policy: list | None = None) -> Iterator[RobotClient]:
    """A sim/panda robot server whose policy link serves the manifest's constant ``value`` (real sockets).

    ``link``: more ``policy`` keys of the server config; ``policy``: a list that receives the served policy.
    """
    m = json.loads(manifest.read_text())
    policy_endpoint = free_endpoints()[0]
    constant = CountingPolicy(schema_from_manifest(m), m["value"], m["checkpoint_id"])
    if policy is not None:
        policy.append(constant)
    server = PolicyServer(constant, policy_endpoint)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    robot, client = serve(
        {
            "robot": "sim/panda",
            "rate_hz": 250,
            "policy": {"endpoint": policy_endpoint, "manifest": str(manifest), **(link or {})},
        }
    )
    try:
        yield client
    finally:
        client.close()
        robot.stop(0.0)
        server.stop()
        thread.join(5)


def hold_checkpoint(tmp_path: Path, n_action_steps: object) -> Path:
    """The Panda hold manifest in a checkpoint directory whose lerobot config.json sets ``n_action_steps``."""
    m = json.loads((REPO / "launch" / "policies" / "panda_hold.json").read_text())
    (tmp_path / "rcs_policy.json").write_text(json.dumps(m))
    (tmp_path / "config.json").write_text(json.dumps({"type": "rcs_diffusion", "n_action_steps": n_action_steps}))
    return tmp_path / "rcs_policy.json"


def test_policy_link_asks_for_a_chunk_every_n_action_steps(tmp_path) -> None:
    """`rcs robot` runs a checkpoint as `rcs eval` does: a new chunk every n_action_steps policy steps."""
    manifest = hold_checkpoint(tmp_path, 5)
    dt = json.loads(manifest.read_text())["schema"]["policy_dt"]
    served: list = []
    for link, steps in (({}, 5), ({"replan_steps": 2}, 2)):  # the checkpoint's, then the config's own
        with constant_policy_link(manifest, link, served) as client:
            end = time.monotonic() + 20
            while fresh_status(client)["stage"] != "running":
                assert time.monotonic() < end, "the policy link never started running"
            n0, t0 = served[-1].answered, time.monotonic()
            time.sleep(2.0)
            rate = (served[-1].answered - n0) / (time.monotonic() - t0)
            assert rate == pytest.approx(1 / (steps * dt), rel=0.25), (link, rate)
            assert fresh_status(client)["stage"] == "running"  # the watchdog's timeouts follow the period


@pytest.mark.parametrize(
    ("n_action_steps", "link", "match"),
    [
        (100, {}, r"n_action_steps=100 must be an integer in \[1, 10\]"),
        ("8", {}, r"n_action_steps='8' must be an integer"),
        (5, {"replan_steps": 11}, r"policy.replan_steps=11: must be in \[1, 10\]"),
        (5, {"replan_steps": 0}, r"policy.replan_steps=0 must be a positive integer"),
    ],
)
def test_policy_link_refuses_a_replan_period_it_cannot_run(tmp_path, n_action_steps, link, match) -> None:
    manifest = hold_checkpoint(tmp_path, n_action_steps)
    state, command = free_endpoints()
    with pytest.raises(ConfigError, match=match):
        RobotServer(
            server_config(
                {
                    "robot": "sim/panda",
                    "state_endpoint": state,
                    "command_endpoint": command,
                    "policy": {"endpoint": "tcp://127.0.0.1:1", "manifest": str(manifest), **link},
                }
            )
        )


def test_policy_link_refuses_a_watchdog_that_stops_between_chunks(tmp_path) -> None:
    manifest = hold_checkpoint(tmp_path, 10)  # 10 x 0.02 s: a chunk every 0.2 s
    state, command = free_endpoints()
    # timeouts a watchdog entry leaves out follow the request period (stop 0.2 s + 0.2 s overdue)
    server = RobotServer(
        server_config(
            {
                "robot": "sim/panda",
                "state_endpoint": state,
                "command_endpoint": command,
                "watchdog": {"fade_in_s": 0.3},
                "policy": {"endpoint": "tcp://127.0.0.1:1", "manifest": str(manifest)},
            }
        )
    )
    assert server.task.watchdog.config.stop_after_s == pytest.approx(0.4)
    assert server.task.watchdog.config.fade_in_s == pytest.approx(0.3)
    server.stop(0.0)
    with pytest.raises(ConfigError, match=r"watchdog.stop_after_s=0.1: must exceed the policy link's request period"):
        RobotServer(
            server_config(
                {
                    "robot": "sim/panda",
                    "state_endpoint": state,
                    "command_endpoint": command,
                    "watchdog": {"stop_after_s": 0.1, "disarm_after_s": 1.0},
                    "policy": {"endpoint": "tcp://127.0.0.1:1", "manifest": str(manifest)},
                }
            )
        )


def test_policy_link_runs_served_chunks_on_the_loop(tmp_path) -> None:
    manifest = REPO / "launch" / "policies" / "panda_hold.json"
    m = json.loads(manifest.read_text())
    with constant_policy_link(manifest) as client:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            status = fresh_status(client)
            if status["stage"] == "running" and status["engaged"]:
                break
        assert status["stage"] == "running", status
        np.testing.assert_allclose(joints(client), m["value"][:7], atol=0.02)


def test_policy_link_converts_tcp_pose_chunks_with_the_arms_ik(tmp_path) -> None:
    """A policy that outputs TCP poses (x y z + 6D rotation + gripper) drives the arm through the robot-side
    IK: a constant pose 5 cm in front of and 5 cm below the home TCP is reached."""
    from rcs.control.cartesian import POSE_6D_NAMES, POSE_6D_UNIT
    from rcs.geometry import quat_to_matrix, rotation_6d_from_matrix

    m = json.loads((REPO / "launch" / "policies" / "panda_hold.json").read_text())
    arm = rcs.make_robot("sim/panda")
    arm.connect()
    kin = arm.kinematics
    p_home, q_home = kin.forward(np.array(m["value"][:7]))
    target = p_home + np.array([0.05, 0.0, -0.05])
    names = [*POSE_6D_NAMES, "gripper"]
    m["schema"]["action"].update(shape=[10, len(names)], unit=POSE_6D_UNIT, names=names)
    m["value"] = [*target, *rotation_6d_from_matrix(quat_to_matrix(q_home)), 1.0]
    manifest = tmp_path / "pose.json"
    manifest.write_text(json.dumps(m))
    arm.close()
    with constant_policy_link(manifest) as client:
        end = time.monotonic() + 20
        reached = np.inf
        while time.monotonic() < end and reached > 0.003:
            reached = float(np.linalg.norm(kin.forward(joints(client))[0] - target))
            time.sleep(0.05)
        assert reached <= 0.003, f"TCP {reached * 1e3:.1f} mm from the commanded pose"
        assert fresh_status(client)["stage"] == "running"


FENCE = {"geofence": {"lower": [-2, -2, 0], "upper": [2, 2, 2.5]}, "max_altitude": 2.0}


def test_flight_policy_flies_the_quadrotor_through_the_policy_link() -> None:
    """The shipped learned hover policy, served over ZeroMQ, flies sim/crazyflie through the robot server's policy
    link in motor_thrusts mode: the robot side carries the policy's memories (error integral, last motor command),
    each single-action chunk is held until the next; it takes off to the target and holds it; remote poses are
    refused (they are position commands), e-stop lands."""
    from policies.flight.model import SHIPPED_CHECKPOINT
    from rcs.serving.policy import load_policy

    policy_endpoint = free_endpoints()[0]
    policy_server = PolicyServer(load_policy(SHIPPED_CHECKPOINT), policy_endpoint)
    thread = threading.Thread(target=policy_server.run, daemon=True)
    thread.start()
    target = np.array([0.0, 0.0, 0.5])
    link = {"endpoint": policy_endpoint, "manifest": str(SHIPPED_CHECKPOINT), "mode": "motor_thrusts"}
    server, client = serve(
        {
            "robot": "sim/crazyflie",
            "rate_hz": 500,  # a 100 Hz loop would add 10 ms between observation and motors
            "start_armed": False,
            "safety": FENCE,
            "policy": {**link, "target": target.tolist()},
        }
    )
    try:
        assert client.set_armed(True).ok  # the link engages the policy: it takes off by itself
        assert client.pose("world", [0, 0, 1.0], [1, 0, 0, 0]).code == "mode"
        near_since, end = None, time.monotonic() + 30.0
        while time.monotonic() < end:
            error = float(np.linalg.norm(latest(client)["position"] - target))
            if error > 0.1:
                near_since = None
            elif near_since is None:
                near_since = time.monotonic()
            elif time.monotonic() - near_since > 2.0:
                break
            time.sleep(0.05)
        report = server.task.report()
        assert near_since is not None and time.monotonic() - near_since > 2.0, (error, report)
        assert report["chunks_accepted"] > 100 and report["stage"] == "running", report
        # fed the state predicted at the motors (latency compensation is on by default for flight policies)
        horizon = server.status()["policy"]["prediction_horizon_ms"]
        assert horizon["predictions"] > 100 and 2.0 < horizon["p50"] < 50.0, horizon
        assert client.estop("test").ok
        end = time.monotonic() + 20.0
        while time.monotonic() < end and latest(client)["position"][2] > 0.1:
            time.sleep(0.1)
        assert latest(client)["position"][2] < 0.1  # landed by the position fallback
    finally:
        client.close()
        server.stop(0.0)
        policy_server.stop()
        thread.join(5)


def test_client_times_out_without_a_server() -> None:
    client = RobotClient(free_endpoints()[1], timeout_s=0.3)
    with pytest.raises(RobotServerTimeout):
        client.describe()
    client.close()


def test_configs_are_checked() -> None:
    for path in sorted((REPO / "launch" / "robots").glob("*.yaml")):
        cfg = load_server_config(path)
        assert cfg.robot in rcs.robots.names(), path.name
        if not cfg.robot.startswith("hw/"):
            continue
        # a physical robot's first runs: slowed down, fenced in, inside its limits
        if "geofence" in cfg.safety:  # a multirotor: inside a fence, under a ceiling below its top, slow, disarmed
            fence = cfg.safety["geofence"]
            assert {"lower", "upper"} <= set(fence), path.name
            assert 0 < cfg.safety["max_altitude"] <= fence["upper"][2], path.name
            assert 0 < cfg.safety["max_speed"] <= 1.0 and cfg.start_armed is False, path.name
        else:
            assert 0 < cfg.safety["velocity_scale"] <= 0.5 and cfg.safety["position_margin"] > 0, path.name
            assert {"lower", "upper"} <= set(cfg.safety["workspace"]), path.name
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        server_config({"robot": "sim/panda", "colour": "red"})
    with pytest.raises(ConfigError, match="cameras\\[0\\]: unknown key"):
        server_config({"robot": "sim/panda", "cameras": [{"name": "front", "zoom": 2}]})
    with pytest.raises(ConfigError, match="rate_hz"):
        server_config({"robot": "sim/panda", "rate_hz": -5})
    with pytest.raises(ConfigError, match="geofence"):
        RobotServer(server_config({"robot": "sim/crazyflie", "realtime": False}))
    with pytest.raises(ConfigError, match="does not exist"):
        load_server_config(REPO / "launch" / "robots" / "nope.yaml")
    from policies.flight.model import SHIPPED_CHECKPOINT

    quad = {"robot": "sim/crazyflie", "realtime": False, "safety": FENCE}
    flight = {"endpoint": "tcp://127.0.0.1:1", "manifest": str(SHIPPED_CHECKPOINT)}
    with pytest.raises(ConfigError, match=r"policy.latency_compensation='yes' must be true or false"):
        server_config({**quad, "policy": {**flight, "latency_compensation": "yes"}})
    with pytest.raises(ConfigError, match=r"policy.target=\[0, 1\] must be \[x, y, z\]"):
        server_config({**quad, "policy": {**flight, "target": [0, 1]}})
    with pytest.raises(ConfigError, match="quadrotor mode='spin'; known"):
        RobotServer(server_config({**quad, "policy": {**flight, "mode": "spin"}}))
    for mode in ("motor_rpms", "position"):  # a flight policy's actions are normalized motor thrusts
        server = RobotServer(server_config({**quad, "policy": {**flight, "mode": mode}}))
        try:
            with pytest.raises(ConfigError, match="policy.mode|policy observation"):
                server.start()
        finally:
            server.stop(0.0)


def test_a_realtime_server_runs_its_own_fifo_io_threads_and_stops_them() -> None:
    """A real-time server's ZeroMQ I/O threads (every state, command and chunk passes them) run ``SCHED_FIFO`` even
    where this process's shared context already runs I/O threads at the default scheduler (a context takes the
    option only before its first socket), and they end with the server."""
    from rcs.control.priorities import IO_PRIORITY, fifo_permitted
    from tests.scheduling import fifo_threads, fifo_threads_left

    permitted, why = fifo_permitted(IO_PRIORITY)
    if not permitted:
        pytest.skip(f"SCHED_FIFO is not permitted on this machine: {why}")
    zmq.Context.instance().socket(zmq.PUB).close()  # the shared context's I/O threads exist, default scheduler
    before = fifo_threads()
    server, client = serve({"robot": "sim/so101", "rate_hz": 100})
    try:
        started = {tid: name for tid, name in fifo_threads().items() if tid not in before}
        assert any(name.startswith("ZMQbg/IO") for name in started.values()), started
    finally:
        client.close()
        server.stop(0.0)
    left = fifo_threads_left(set(started))
    assert not left, left
