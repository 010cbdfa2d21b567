"""hw/px4 against the PX4 emulator: pymavlink over UDP to an emulator process whose vehicle is MuJoCo physics.

Ground truth comes from the emulator's control channel in the rcs frames; the driver's readings go through the
NED/FRD -> ENU/FLU conversion, so a frame error shows up as metres or radians, not millimetres. A raw pymavlink peer
checks the emulator's own wire conventions (and what the driver cannot send: malformed bytes, unknown commands).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import rcs
from hardware.emulators.px4 import Px4Emulator
from hardware.px4.protocol import MAIN_OFFBOARD, open_link
from rcs.errors import ActionError, ConfigError, DeviceFaultError, LinkLostError
from rcs.geometry import quat_angle, quat_from_euler_rpy, yaw_of

LEVEL = np.array([1.0, 0.0, 0.0, 0.0])
GROUND = [0.0, 0.0, 0.015]  # the Crazyflie's resting height (m)


def wait_for(condition: Callable[[], Any], timeout: float, what: str | Callable[[], str], every: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` (or what ``what()`` says then)
    after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def emulator():
    e = Px4Emulator()
    yield e
    e.close()


@pytest.fixture
def px4(emulator):
    r = rcs.make_robot("hw/px4", **emulator.robot_config)
    r.connect()
    yield r
    r.close()
    emulator.hold(GROUND, LEVEL)  # whatever a test did, the next starts level on the ground
    emulator.release()


class Peer:
    """A raw MAVLink peer (a ground station's view of the emulator)."""

    def __init__(self, address: str) -> None:
        self.conn = open_link(f"udpout:{address}", 250, 190)
        self.conn.mav.heartbeat_send(6, 8, 0, 0, 4)  # the emulator answers whoever talked last

    def command(self, command: int, *params: float) -> Any:
        p = [*params, *[0.0] * (7 - len(params))]
        self.conn.mav.heartbeat_send(6, 8, 0, 0, 4)  # still here: the emulator answers peers heard within 2 s
        sent = time.monotonic()
        self.conn.mav.command_long_send(1, 1, command, 0, *p)
        while time.monotonic() < sent + 10:
            ack = self.conn.recv_match(type="COMMAND_ACK", blocking=True, timeout=0.5)
            if ack is not None and ack.command == command:
                return ack
        pytest.fail(f"no COMMAND_ACK for command {command}")

    def message(self, kind: str, timeout: float = 10.0) -> Any:
        msg = self.conn.recv_match(type=kind, blocking=True, timeout=timeout)
        assert msg is not None, f"no {kind} within {timeout} s"
        return msg

    def close(self) -> None:
        self.conn.close()


# -- frames, end to end -----------------------------------------------------------------------------------------


def test_read_matches_ground_truth_of_a_yawed_moving_vehicle(emulator, px4):
    q = quat_from_euler_rpy(0.1, -0.2, 2.0)
    v = np.array([0.2, -0.1, 0.05])
    emulator.hold([1.0, -2.0, 1.5], q, v)
    wait_for(lambda: px4.read().position[0] > 0.9, 10, "the carried vehicle in the reading")
    for _ in range(5):
        s = px4.read()
        truth = emulator.vehicle_state()
        # the truth is taken after the reading: move it back along the known velocity to the reading's time
        expected = truth.position - v * (truth.timestamp - s.timestamp)
        assert np.abs(s.position - expected).max() < 0.03, (s.position, expected)
        assert quat_angle(s.quaternion, truth.quaternion) < 0.01
        # (gravity acts for one physics step between the hand's placements: 2 ms * g = 0.02 m/s down)
        np.testing.assert_allclose(s.linear_velocity, truth.linear_velocity, atol=1e-3)
        np.testing.assert_allclose(s.linear_velocity, v, atol=0.03)
        np.testing.assert_allclose(s.angular_velocity, truth.angular_velocity, atol=1e-3)
        assert yaw_of(s.quaternion) == pytest.approx(2.0, abs=0.01)
        assert not s.armed


def test_emulator_speaks_ned_frd_on_the_wire(emulator, px4):
    """Level, nose north, 2 m north and 1 m east of the origin, 1.5 m up: PX4 sends x=2, y=1, z=-1.5 and the
    identity quaternion; the driver reads it back as ENU (1, 2, 1.5), yaw +pi/2."""
    nose_north = quat_from_euler_rpy(0.0, 0.0, np.pi / 2)
    emulator.hold([1.0, 2.0, 1.5], nose_north)
    peer = Peer(emulator.address)
    try:
        wait_for(lambda: abs(peer.message("LOCAL_POSITION_NED").x - 2.0) < 1e-3, 10, "the held pose on the wire")
        p = peer.message("LOCAL_POSITION_NED")
        np.testing.assert_allclose([p.x, p.y, p.z], [2.0, 1.0, -1.5], atol=1e-3)
        a = peer.message("ATTITUDE_QUATERNION")
        assert quat_angle(np.array([a.q1, a.q2, a.q3, a.q4]), LEVEL) < 1e-3
        hb = peer.message("HEARTBEAT")
        assert (hb.type, hb.autopilot) == (2, 12)  # MAV_TYPE_QUADROTOR, MAV_AUTOPILOT_PX4
    finally:
        peer.close()
    s = px4.read()
    np.testing.assert_allclose(s.position, [1.0, 2.0, 1.5], atol=1e-3)
    assert yaw_of(s.quaternion) == pytest.approx(np.pi / 2, abs=1e-3)


# -- arming ------------------------------------------------------------------------------------------------------


def test_arming_is_refused_when_tilted_or_outside_the_geofence_with_the_reason(emulator, px4):
    emulator.hold([0.0, 0.0, 0.1], quat_from_euler_rpy(np.radians(70), 0.0, 0.0))
    with pytest.raises(DeviceFaultError) as e:
        px4.arm()
    message = str(e.value)
    assert len(message.splitlines()) == 1 and "hw/px4" in message
    assert "DENIED" in message and "Arming denied: tilt 70 deg > FD_FAIL_R/P 60 deg" in message
    assert not emulator.vehicle_state().armed

    emulator.hold([12.0, 0.0, 0.1], LEVEL)
    with pytest.raises(DeviceFaultError, match="outside geofence"):
        px4.arm()

    emulator.hold(GROUND, LEVEL)
    px4.arm()
    assert emulator.vehicle_state().armed
    wait_for(lambda: px4.read().armed, 5, "the armed flag in the heartbeat")
    px4.disarm()
    assert not emulator.vehicle_state().armed


def test_unknown_command_is_unsupported(emulator, px4):
    peer = Peer(emulator.address)
    try:
        assert peer.command(31000).result == 3  # MAV_CMD_USER_1 -> MAV_RESULT_UNSUPPORTED
    finally:
        peer.close()


def test_takeoff_and_land_commands(emulator):
    """MAV_CMD_NAV_TAKEOFF climbs to param7 (m above home: the emulator's home is at 0 m AMSL) then holds;
    MAV_CMD_NAV_LAND lands and disarms after touchdown."""
    peer = Peer(emulator.address)
    try:
        assert peer.command(400, 1.0).result == 0
        assert peer.command(22, 0, 0, 0, np.nan, np.nan, np.nan, 0.4).result == 0
        wait_for(lambda: emulator.state()["mode"] == "Hold", 20, "takeoff complete (Hold)")
        assert emulator.vehicle_state().position[2] == pytest.approx(0.4, abs=0.1)
        assert peer.command(21).result == 0
        wait_for(lambda: not emulator.vehicle_state().armed, 20, "landed and disarmed")
        assert emulator.vehicle_state().position[2] < 0.05
    finally:
        peer.close()


# -- bad input never leaves the driver / never stops the emulator ---------------------------------------------------


def test_nan_setpoints_never_leave_the_driver(emulator, px4):
    before = emulator.setpoint_timing()[0]
    for bad in (
        lambda: px4.command_position(np.array([np.nan, 0.0, 1.0])),
        lambda: px4.command_position(np.array([0.0, 0.0, 1.0]), float("nan")),
        lambda: px4.command_thrust_rates(float("nan"), np.zeros(3)),
        lambda: px4.command_thrust_rates(0.1, np.array([0.0, np.inf, 0.0])),
        lambda: px4.command_motor_thrusts(np.array([0.1, np.nan, 0.1, 0.1])),
    ):
        with pytest.raises(ActionError):
            bad()
    time.sleep(0.2)  # nothing should arrive; a setpoint that did would have landed by now
    assert emulator.setpoint_timing()[0] == before
    px4.command_position(np.array([0.0, 0.0, 0.5]))  # a good one does arrive: the check above can fail
    wait_for(lambda: emulator.setpoint_timing()[0] > before, 5, "the good setpoint")


def test_malformed_bytes_and_nan_setpoints_do_not_crash_the_emulator(emulator, px4):
    host, port = emulator.address.rsplit(":", 1)
    rng = np.random.default_rng(0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = Peer(emulator.address)
    try:
        before = emulator.setpoint_timing()[0]
        garbage = [
            rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
            b"\xfd\xff\x00\x00\x00\x01\x01\x4c\x00\x00",  # MAVLink 2 header promising 255 bytes, then nothing
            b"\xfd" * 2000,
            b"",
        ]
        # a valid COMMAND_LONG with its checksum broken
        frame = bytearray(peer.conn.mav.command_long_encode(1, 1, 400, 0, 1, 0, 0, 0, 0, 0, 0).pack(peer.conn.mav))
        frame[-1] ^= 0xFF
        garbage.append(bytes(frame))
        for g in garbage * 5:
            sock.sendto(g, (host, int(port)))
        # NaN in a setpoint's used fields: PX4 ignores it (no proof of life either)
        peer.conn.mav.set_position_target_local_ned_send(
            0, 1, 1, 1, 0b110111111000, np.nan, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0
        )
        peer.conn.mav.set_attitude_target_send(0, 1, 1, 128, [1, 0, 0, 0], 0, np.nan, 0, 0.5)
        time.sleep(0.3)
        state = emulator.state()
        assert state["bad_packets"] > 0 and not state["armed"]  # the corrupted ARM command was not executed
        assert emulator.setpoint_timing()[0] == before
        assert emulator.process.poll() is None
        px4.read()  # telemetry still flows
        assert peer.command(400, 0.0).result == 0  # and commands are still served
    finally:
        sock.close()
        peer.close()


# -- offboard ----------------------------------------------------------------------------------------------------


def _stream(robot, seconds: float, command: Callable[[], None], until: Callable[[], bool] | None = None) -> bool:
    """Send ``command`` every 20 ms (a 50 Hz offboard loop) for ``seconds`` or until ``until()``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        command()
        robot.read()
        if until is not None and until():
            return True
        time.sleep(0.02)
    return False


def test_offboard_is_refused_before_setpoints_stream_and_a_refusal_surfaces_once():
    emulator = Px4Emulator()
    peer = Peer(emulator.address)
    try:
        ack = peer.command(176, 1.0, float(MAIN_OFFBOARD))
        assert ack.result == 1  # TEMPORARILY_REJECTED: no offboard signal yet
        assert emulator.state()["mode"] == "Hold"

        # a driver asking too early (before PX4's second of proof of life) gets the refusal, once, with the reason
        eager = rcs.make_robot("hw/px4", offboard_settle_s=0.1, **emulator.robot_config)
        with eager:
            with pytest.raises(DeviceFaultError) as e:
                _stream(eager, 5.0, lambda: eager.command_position(np.array([0.0, 0.0, 0.3])))
            assert "OFFBOARD mode refused (TEMPORARILY_REJECTED)" in str(e.value)
            assert "no offboard signal" in str(e.value) and len(str(e.value).splitlines()) == 1
            # not asked again in the same stream: no further error, and the mode stays Hold
            _stream(eager, 1.5, lambda: eager.command_position(np.array([0.0, 0.0, 0.3])))
            assert emulator.state()["mode"] == "Hold"

        # after a stream of setpoints the driver's own request is accepted (disarmed: the vehicle stays put)
        with rcs.make_robot("hw/px4", **emulator.robot_config) as px4:
            switched = _stream(
                px4,
                10.0,
                lambda: px4.command_position(np.array([0.0, 0.0, 0.3])),
                until=lambda: emulator.state()["mode"] == "Offboard",
            )
            assert switched
    finally:
        peer.close()
        emulator.close()


def test_takeoff_hold_and_offboard_loss_failsafe_lands():
    emulator = Px4Emulator(offboard_loss_action="land")
    try:
        with rcs.make_robot("hw/px4", **emulator.robot_config) as px4:
            px4.arm()
            target = np.array([0.2, -0.1, 0.5])

            def near() -> bool:
                return bool(np.linalg.norm(emulator.vehicle_state().position - target) < 0.05)

            assert _stream(px4, 20.0, lambda: px4.command_position(target, 0.5), until=near), "never reached 0.5 m"
            assert emulator.state()["mode"] == "Offboard"
            worst = 0.0
            end = time.monotonic() + 1.0
            while time.monotonic() < end:  # hold
                px4.command_position(target, 0.5)
                worst = max(worst, float(np.linalg.norm(emulator.vehicle_state().position - target)))
                time.sleep(0.02)
            assert worst < 0.1, f"drifted {worst:.3f} m from the hold point"
            assert yaw_of(px4.read().quaternion) == pytest.approx(0.5, abs=0.05)

            # thrust + body rates: hover thrust plus 30 % climbs
            hover = px4.spec.hover_thrust
            _stream(px4, 0.3, lambda: px4.command_thrust_rates(1.3 * hover, np.zeros(3)))
            assert emulator.vehicle_state().linear_velocity[2] > 0.1

            # the setpoints stop: after COM_OF_LOSS_T PX4 lands in place and disarms
            last = emulator.setpoint_timing()[0]  # when the emulator got the last setpoint (monotonic s)
            early = emulator.state()
            if time.monotonic() - last < 0.9:  # seen before COM_OF_LOSS_T ran out: still offboard, no failsafe
                assert early["mode"] == "Offboard" and not early["failsafe"]
            state = wait_for(lambda: (s := emulator.state())["failsafe"] and s, 10, "the offboard-loss failsafe")
            assert state["mode"] == "Land"
            s = wait_for(lambda: (v := emulator.vehicle_state()).position[2] < 0.05 and v, 20, "touchdown")
            assert np.linalg.norm(s.position[:2] - target[:2]) < 0.3, "it did not land in place"
            wait_for(lambda: not emulator.vehicle_state().armed, 10, "disarm after landing")
    finally:
        emulator.close()


def test_motor_commands_reach_the_right_rotors(emulator, px4):
    """SET_ACTUATOR_CONTROL_TARGET in PX4's motor order maps back to the spec's rotors (on the ground)."""
    px4.arm()
    u = np.array([0.4, 0.05, 0.05, 0.05])  # rotor 0 of the spec (Crazyflie m1, front right) only
    _stream(
        px4,
        10.0,
        lambda: px4.command_motor_thrusts(u),
        until=lambda: emulator.vehicle_state().motor_thrusts[0] > 0.3 * px4.spec.max_thrust,
    )
    thrusts = emulator.vehicle_state().motor_thrusts
    assert int(np.argmax(thrusts)) == 0 and thrusts[1:].max() < 0.1 * px4.spec.max_thrust
    assert int(np.argmax(px4.read().motor_thrusts)) == 0  # SERVO_OUTPUT_RAW maps back the same way
    px4.disarm()


# -- configuration and link loss -------------------------------------------------------------------------------


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError) as e:
        rcs.make_robot("hw/px4", conection="udpin:0.0.0.0:14540")
    assert "conection" in str(e.value) and "connection" in str(e.value) and len(str(e.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="link_timeout_s"):
        rcs.make_robot("hw/px4", link_timeout_s=-1)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # a port where nobody answers
    try:
        connection = f"udpout:127.0.0.1:{silent.getsockname()[1]}"
        r = rcs.make_robot("hw/px4", connection=connection, connect_timeout_s=0.5)
        with pytest.raises(LinkLostError) as e:
            r.connect()
        assert connection in str(e.value) and "no heartbeat" in str(e.value)
        assert not r.is_connected
    finally:
        silent.close()


def test_link_loss_is_one_error_naming_the_link():
    emulator = Px4Emulator()
    px4 = rcs.make_robot("hw/px4", **emulator.robot_config)
    try:
        px4.connect()
        px4.read()
        emulator.kill()
        deadline = time.monotonic() + 10
        with pytest.raises(LinkLostError) as e:
            while time.monotonic() < deadline:
                px4.read()
                px4.command_position(np.array([0.0, 0.0, 0.5]))
                time.sleep(0.02)
        message = str(e.value)
        assert len(message.splitlines()) == 1 and "hw/px4" in message and emulator.robot_config["connection"] in message
        with pytest.raises(LinkLostError) as again:  # latched: the same error, not a new kind
            px4.read()
        assert str(again.value) == message
    finally:
        px4.close()
        assert not px4.is_connected
        emulator.close()


def test_learned_hover_policy_flies_through_the_mavlink_link():
    """The shipped learned hover policy, served over ZeroMQ, flies the PX4 emulator's vehicle through `rcs robot`'s
    policy link and hw/px4 (per-motor thrusts as SET_ACTUATOR_CONTROL_TARGET, state from 500 Hz LOCAL_POSITION_NED
    and ATTITUDE_QUATERNION): from the ground to the target, held there (ground truth from the physics); e-stop
    lands it."""
    import os
    import threading

    from policies.flight.model import SHIPPED_CHECKPOINT
    from rcs.remote.client import RobotClient
    from rcs.remote.config import server_config
    from rcs.remote.server import RobotServer
    from rcs.serving.policy import load_policy
    from rcs.serving.server import PolicyServer
    from tests.remote.helpers import free_endpoints

    emulator = Px4Emulator(telemetry_hz=500.0)  # PX4 streams up to a few hundred Hz over a fast link
    policy_endpoint = free_endpoints()[0]
    # as `rcs serve --realtime` beside the robot: the policy is on the loop's control path
    policy_server = PolicyServer(load_policy(SHIPPED_CHECKPOINT), policy_endpoint, realtime=True)
    policy_server.start()
    state, command = free_endpoints()
    target = np.array([0.0, 0.0, 0.5])
    server = RobotServer(
        server_config(
            {
                "robot": "hw/px4",
                "robot_config": emulator.robot_config,
                "rate_hz": 500,
                "start_armed": False,
                "state_endpoint": state,
                "command_endpoint": command,
                "safety": {"geofence": {"lower": [-2, -2, 0], "upper": [2, 2, 2.5]}, "max_altitude": 2.0},
                "policy": {
                    "endpoint": policy_endpoint,
                    "manifest": str(SHIPPED_CHECKPOINT),
                    "mode": "motor_thrusts",
                    "target": target.tolist(),
                },
            }
        )
    )
    client = None
    try:
        server.start()
        client = RobotClient(command, state, timeout_s=5.0)
        assert client.set_armed(True).ok

        def held_near_target() -> bool:
            t0 = time.monotonic()
            while np.linalg.norm(emulator.vehicle_state().position - target) <= 0.1:
                if time.monotonic() - t0 > 2.0:
                    return True
                time.sleep(0.05)
            return False

        def near_target_and_report() -> str:  # the loop's report when the wait ends, not when it began
            return f"2 s within 0.1 m of {target.tolist()} (at {emulator.vehicle_state().position}; {server.task.report()})"

        wait_for(held_near_target, 30.0, near_target_and_report, 0.05)
        # 5-6 ms between an observation and its action at the motors here: the policy is fed the state predicted
        # at that time (rcs.flight.prediction), it tolerates about 2 ms
        horizon = server.status()["policy"]["prediction_horizon_ms"]
        assert horizon["predictions"] > 100 and 2.0 < horizon["p50"] < 50.0, horizon
        scheduling = {t.name: os.sched_getscheduler(t.native_id) for t in threading.enumerate() if t.native_id}
        if scheduling["control-loop"] == os.SCHED_FIFO:  # where SCHED_FIFO is permitted, the control path has it
            path = ("px4-link", "rcs-chunk-feed", "rcs-serve-io")
            assert all(scheduling[name] == os.SCHED_FIFO for name in path), scheduling
        assert client.estop("test").ok
        wait_for(lambda: emulator.vehicle_state().position[2] < 0.1, 20.0, "the e-stop landing")
    finally:
        if client is not None:
            client.close()
        server.stop(0.0)
        policy_server.stop()
        emulator.close()


def test_an_emulator_whose_starter_dies_stops_on_its_own():
    """A test process killed mid-run (a segfault, SIGKILL) cannot stop its emulator; the emulator notices its
    starter is gone and exits, instead of streaming 500 Hz telemetry at SCHED_FIFO priority to nobody."""
    import os
    import signal
    import subprocess
    import sys

    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hardware.emulators.px4 import Px4Emulator; e = Px4Emulator(telemetry_hz=500.0); "
            "print(e.process.pid, flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        cwd=str(__import__("hardware").__path__[0] + "/.."),
    )
    assert starter.stdout is not None
    pid = int(starter.stdout.readline())
    os.kill(starter.pid, signal.SIGKILL)
    starter.wait(10)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a reaped-by-init zombie still answers kill(0): read its state
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"

    try:
        wait_for(gone, 15.0, f"emulator pid {pid} to exit after its starter was killed", 0.1)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
