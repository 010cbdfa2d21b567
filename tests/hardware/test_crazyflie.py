"""hw/crazyflie through real cflib (its UDP link) against the Crazyflie emulator process, whose motion is the MuJoCo
Crazyflie (RealtimeVehicle). Ground truth comes from the emulator's control channel, never from the driver."""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rcs
from hardware.crazyflie.driver import ArmingRefusedError, CrazyflieQuadrotor
from hardware.emulators.crazyflie import CrazyflieEmulator
from rcs.errors import ActionError, ConfigError, LinkLostError

DEADLINE_S = 20.0  # generous: a loaded 2-core host


def _wait(
    condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S, every: Callable[[], None] | None = None
):
    """Poll ``condition`` (calling ``every`` between polls, e.g. to keep setpoints coming) until true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if every is not None:
            every()
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def emulator():
    emu = CrazyflieEmulator()
    yield emu
    emu.close()


@pytest.fixture
def cf(emulator, tmp_path: Path):
    """A connected driver; the vehicle starts level on the ground, disarmed, firmware freshly started."""
    emulator.restart()
    emulator.place([0.0, 0.0, 0.015])
    robot = rcs.make_robot("hw/crazyflie", uri=emulator.uri, toc_cache_dir=str(tmp_path / "toc"))
    robot.connect()
    yield robot
    robot.close()


def _take_off(cf: CrazyflieQuadrotor, emulator: CrazyflieEmulator, z: float = 0.5) -> None:
    cf.arm()
    _wait(
        lambda: abs(emulator.vehicle_state().position[2] - z) < 0.03,
        f"the vehicle at z={z} m",
        every=lambda: cf.command_position(np.array([0.0, 0.0, z]), 0.0),
    )


@contextmanager
def _cflib_armed(emulator: CrazyflieEmulator) -> Iterator[Any]:
    """cflib's own ``Crazyflie`` (not the driver), fully connected to the freshly restarted emulator and armed, the
    vehicle level on the ground at the origin; the link is closed on leaving, whatever happened inside."""
    from hardware.crazyflie.driver import _init_drivers

    emulator.restart()
    emulator.place([0.0, 0.0, 0.015])
    _init_drivers()
    from cflib.crazyflie import Crazyflie

    cf = Crazyflie()
    ready = threading.Event()
    cf.fully_connected.add_callback(lambda _uri: ready.set())
    cf.open_link(emulator.uri)
    try:
        assert ready.wait(DEADLINE_S)
        cf.supervisor.send_arming_request(True)
        _wait(lambda: emulator.stats()["armed"], "armed")
        yield cf
    finally:
        cf.close_link()


def test_connects_through_cflib_and_reads_ground_truth(cf, emulator, tmp_path):
    assert isinstance(cf, CrazyflieQuadrotor)
    truth = emulator.vehicle_state()
    state = cf.read()
    assert np.allclose(state.position, truth.position, atol=1e-3)
    assert np.allclose(state.quaternion, truth.quaternion, atol=1e-3)
    assert not state.armed and not truth.armed
    assert abs(state.timestamp - time.monotonic()) < 1.0
    later = cf.read()
    assert later.timestamp > state.timestamp
    # cflib cached both tables of contents under their CRC; the log TOC's is the emulator's
    crc = emulator.stats()["log_toc_crc"]
    assert (tmp_path / "toc" / f"{crc:08X}.json").exists()
    assert len(list((tmp_path / "toc").glob("*.json"))) == 2
    # a second connection is served from the cache and works the same
    again = rcs.make_robot("hw/crazyflie", uri=emulator.uri, toc_cache_dir=str(tmp_path / "toc"))
    with again:
        assert np.allclose(again.read().position, truth.position, atol=1e-3)


def test_takeoff_to_half_a_metre_holds_and_read_matches_physics(cf, emulator):
    _take_off(cf, emulator)
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:  # hold for a second
        cf.command_position(np.array([0.0, 0.0, 0.5]), 0.0)
        truth = emulator.vehicle_state()
        assert abs(truth.position[2] - 0.5) < 0.05, truth.position
        time.sleep(0.02)
    state, truth = cf.read(), emulator.vehicle_state()
    assert state.armed and truth.armed
    assert np.abs(state.position - truth.position).max() < 0.02
    assert np.abs(state.linear_velocity - truth.linear_velocity).max() < 0.05
    assert (state.motor_thrusts > 0.03).all()  # hovering: about 0.066 N per rotor


def test_thrust_rates_reach_the_body_rates_with_the_right_signs(cf, emulator):
    _take_off(cf, emulator)
    hover = cf.spec.hover_thrust
    for axis, rate in ((2, 1.0), (0, 1.5), (1, 1.5)):
        peak = 0.0
        t_end = time.monotonic() + (0.5 if axis == 2 else 0.12)
        while time.monotonic() < t_end:
            rates = np.zeros(3)
            rates[axis] = rate
            cf.command_thrust_rates(hover, rates)
            peak = max(peak, float(emulator.vehicle_state().angular_velocity[axis]))
            time.sleep(0.01)
        assert peak > 0.3 * rate, f"axis {axis}: peak body rate {peak:.2f} rad/s for {rate} commanded"
        _wait(  # back to a level hover before the next axis
            lambda: (
                abs(emulator.vehicle_state().position[2] - 0.5) < 0.05
                and float(np.abs(emulator.vehicle_state().angular_velocity).max()) < 0.2
            ),
            "hover again",
            every=lambda: cf.command_position(np.array([0.0, 0.0, 0.5]), 0.0),
        )


def test_commander_watchdog_levels_then_stops_the_motors(cf, emulator):
    _take_off(cf, emulator)
    cf.command_position(np.array([0.0, 0.0, 0.5]), 0.0)  # then nothing more
    seen: set[str] = set()

    def phase() -> bool:
        seen.add(emulator.stats()["watchdog"])
        return "shutdown" in seen

    _wait(phase, "the watchdog's shutdown")
    assert "level" in seen  # 0.5 s: levelled, altitude held; 2 s: motors off
    _wait(lambda: emulator.vehicle_state().position[2] < 0.1, "the vehicle down")
    assert float(np.max(emulator.vehicle_state().motor_thrusts)) < 0.005


def test_emergency_stop_cuts_the_motors_and_locks(cf, emulator):
    _take_off(cf, emulator)
    cf.emergency_stop()
    _wait(lambda: not emulator.vehicle_state().armed, "motors cut")
    stats = emulator.stats()
    assert stats["locked"] and not stats["armed"]
    _wait(lambda: emulator.vehicle_state().position[2] < 0.1, "the vehicle down")
    with pytest.raises(ArmingRefusedError) as e:
        cf.arm()
    assert "locked" in str(e.value) and len(str(e.value).splitlines()) == 1


def test_localization_emergency_stop_packet_cuts_the_motors(cf, emulator):
    _take_off(cf, emulator)
    emulator.send_raw(bytes([0x6 << 4 | 0xC | 1, 3]))  # port 6 (localization), generic channel, EMERGENCY_STOP
    _wait(lambda: not emulator.vehicle_state().armed, "motors cut")
    assert emulator.stats()["locked"]


@pytest.mark.parametrize(
    ("position", "quaternion", "reason"),
    [
        ([0.0, 0.0, 0.05], [math.cos(math.radians(20)), math.sin(math.radians(20)), 0.0, 0.0], "tilted 40.0 deg"),
        ([6.0, 0.0, 0.015], [1.0, 0.0, 0.0, 0.0], "outside the geofence"),
    ],
)
def test_arming_is_refused_with_the_reason(cf, emulator, position, quaternion, reason):
    emulator.place(position, quaternion)
    with pytest.raises(ArmingRefusedError) as e:
        cf.arm()
    message = str(e.value)
    assert reason in message and message.startswith("hw/crazyflie: supervisor: arming refused")
    assert len(message.splitlines()) == 1
    assert not emulator.vehicle_state().armed


def test_malformed_and_oversized_datagrams_are_ignored(cf, emulator):
    before = emulator.stats()
    junk = [
        b"",  # empty
        bytes([0x5C | 1]) + bytes(40),  # longer than a CRTP packet
        bytes([0x7C, 7, 1, 2]),  # generic position setpoint cut short
        bytes([0x7C, 7]) + struct.pack("<ffff", math.nan, 0.0, 1.0, 0.0),  # NaN position
        bytes([0x3C]) + b"\x01",  # legacy RPYT cut short
        bytes([0x2C | 1]),  # parameter read without an id
        bytes([0x5C | 1, 6, 200, 0x07, 0xFF, 0xFF]),  # log block with an unknown variable (ENOENT reply)
        bytes([0x8C, 7, 0]),  # high-level take-off cut short
    ]
    for datagram in junk:
        emulator.send_raw(datagram)
    _wait(lambda: emulator.stats()["oversized"] >= before["oversized"] + 2, "the emulator to count the datagrams")
    after = emulator.stats()
    assert after["malformed"] >= before["malformed"] + 4
    assert not after["armed"] and emulator.vehicle_state().motor_thrusts.max() == 0.0
    first = cf.read()  # the link and the telemetry are unaffected
    assert cf.read().timestamp > first.timestamp


def test_nan_setpoints_never_leave_the_driver(cf, emulator):
    cf.arm()
    cf.command_position(np.array([0.0, 0.0, 0.02]), 0.0)
    _wait(lambda: emulator.stats()["setpoints"][-1][2][2] == pytest.approx(0.02), "the first setpoint")
    since = time.monotonic()  # the emulator stamps each setpoint with the host's monotonic clock
    with pytest.raises(ActionError) as e:
        cf.command_position(np.array([0.0, math.nan, 0.5]), 0.0)
    assert e.value.field == "position[1]"
    with pytest.raises(ActionError):
        cf.command_thrust_rates(math.nan, np.zeros(3))
    with pytest.raises(ActionError):
        cf.command_position(np.zeros(3), math.inf)
    cf.command_position(np.array([0.0, 0.0, 0.03]), 0.0)  # a valid one is the next to arrive
    _wait(lambda: emulator.stats()["setpoints"][-1][0] > since, "the valid setpoint")
    arrived = [s for s in emulator.stats()["setpoints"] if s[0] > since]
    assert len(arrived) == 1 and arrived[0][2][2] == pytest.approx(0.03)


def test_motor_power_params_spin_the_motors(cf, emulator):
    cf.arm()
    cf.command_motor_thrusts(np.full(4, 0.3))  # below hover: stays on the ground
    _wait(lambda: emulator.vehicle_state().motor_thrusts.min() > 0.3 * cf.spec.max_thrust * 0.8, "motors at 30 %")
    assert emulator.stats()["params"]["motorPowerSet.enable"] == 1
    cf.command_thrust_rates(0.0, np.zeros(3))  # leaves the motor mode: thrust 0 stops them
    _wait(lambda: emulator.vehicle_state().motor_thrusts.max() < 0.005, "motors stopped")
    assert emulator.stats()["params"]["motorPowerSet.enable"] == 0


def test_high_level_commander_takeoff_go_to_land(emulator):
    """The high-level commander through cflib's own API (the driver does not use it)."""
    with _cflib_armed(emulator) as cf:
        cf.high_level_commander.takeoff(0.4, 1.0)
        _wait(lambda: abs(emulator.vehicle_state().position[2] - 0.4) < 0.03, "take-off to 0.4 m")
        cf.high_level_commander.go_to(0.3, 0.0, 0.4, 0.0, 1.0)
        _wait(lambda: abs(emulator.vehicle_state().position[0] - 0.3) < 0.03, "go_to x = 0.3 m")
        time.sleep(2.5)  # longer than the low-level watchdog: onboard trajectories do not time out
        assert abs(emulator.vehicle_state().position[2] - 0.4) < 0.05
        cf.high_level_commander.land(0.0, 1.0)
        _wait(
            lambda: (
                emulator.vehicle_state().position[2] < 0.05 and emulator.vehicle_state().motor_thrusts.max() < 0.005
            ),
            "landed with the motors stopped",
        )


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError) as e:
        rcs.make_robot("hw/crazyflie", uri="udp://127.0.0.1:1", baud=3)
    assert "baud" in str(e.value) and "accepted keys: uri" in str(e.value) and len(str(e.value).splitlines()) == 1
    with pytest.raises(ConfigError) as e:
        rcs.make_robot("hw/crazyflie")
    assert "'uri' is required" in str(e.value)
    with pytest.raises(ConfigError) as e:
        rcs.make_robot("hw/crazyflie", uri="udp://127.0.0.1:1", log_period_ms=15)
    assert "log_period_ms" in str(e.value)


def test_link_loss_is_one_clear_error_and_close_works(tmp_path):
    emu = CrazyflieEmulator()
    try:
        robot = rcs.make_robot("hw/crazyflie", uri=emu.uri, toc_cache_dir=str(tmp_path / "toc"))
        robot.connect()
        robot.read()
        emu.kill()
        with pytest.raises(LinkLostError) as e:
            _wait(lambda: robot.read() is None, "never", every=lambda: robot.command_position(np.zeros(3), 0.0))
        message = str(e.value)
        assert len(message.splitlines()) == 1 and "hw/crazyflie" in message and emu.uri in message
        with pytest.raises(LinkLostError):  # latched: every later call says the same
            robot.command_position(np.zeros(3), 0.0)
        robot.close()
        assert not robot.is_connected
    finally:
        emu.close()


def test_connecting_to_nothing_is_one_clear_error(tmp_path):
    robot = rcs.make_robot(
        "hw/crazyflie", uri="udp://127.0.0.1:9", connect_timeout_s=1.0, toc_cache_dir=str(tmp_path / "toc")
    )
    with pytest.raises(LinkLostError) as e:
        robot.connect()
    assert "cannot connect" in str(e.value) and len(str(e.value).splitlines()) == 1
    robot.close()


def test_rcs_robot_serves_the_crazyflie_from_its_shipped_config(emulator):
    """``rcs robot`` with launch/robots/hw_crazyflie.yaml, only the URI overridden, against the emulator: it
    connects through cflib and publishes the physics' state; SIGTERM closes it cleanly."""
    from rcs.remote.client import RobotClient
    from tests.remote.helpers import free_endpoints
    from tests.remote.processes import RCS, start_ready, terminate

    emulator.restart()
    emulator.place([0.1, -0.2, 0.015])
    state_ep, command_ep = free_endpoints()
    repo = Path(__file__).resolve().parents[2]
    cmd = [*RCS, "robot", "--config", str(repo / "launch/robots/hw_crazyflie.yaml")]
    cmd += ["--robot-option", f"uri={emulator.uri}", "--state-endpoint", state_ep, "--command-endpoint", command_ep]
    proc = start_ready(cmd, timeout=60.0)
    try:
        with RobotClient(command_ep, state_ep) as client:
            assert client.describe()["name"] == "hw/crazyflie"
            position = client.wait_for(b"state").tensors["position"]
            assert np.abs(position - emulator.vehicle_state().position).max() < 0.01
    finally:
        err = terminate(proc)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err, err[-2000:]


def test_legacy_attitude_and_world_velocity_setpoints_through_cflib(emulator):
    """cflib's own commander: a legacy attitude setpoint pitched forward (cflib's positive pitch: nose down)
    accelerates the vehicle along +x; a world velocity setpoint moves it along +y."""
    with _cflib_armed(emulator) as cf:
        _wait(
            lambda: abs(emulator.vehicle_state().position[2] - 0.5) < 0.03,
            "hover at 0.5 m",
            every=lambda: cf.commander.send_position_setpoint(0.0, 0.0, 0.5, 0.0),
        )
        hover_raw = int(0.027 * 9.81 / (4 * 0.1488) * 65535)
        t_end = time.monotonic() + 0.25
        while time.monotonic() < t_end:
            cf.commander.send_setpoint(0.0, 10.0, 0.0, int(hover_raw * 1.05))
            time.sleep(0.01)
        truth = emulator.vehicle_state()
        assert truth.linear_velocity[0] > 0.05, truth.linear_velocity
        y0 = truth.position[1]
        _wait(
            lambda: emulator.vehicle_state().position[1] > y0 + 0.15,
            "the vehicle moving along +y",
            every=lambda: cf.commander.send_velocity_world_setpoint(0.0, 0.3, 0.0, 0.0),
        )


def test_log_blocks_answer_as_the_firmware_does(emulator):
    """The log subsystem's settings replies (cmd, block id, errno) and data packets, on a raw CRTP socket."""
    import errno
    import socket

    emulator.restart()

    def request(sock: socket.socket, payload: bytes) -> bytes:
        sock.send(bytes([0x5 << 4 | 0xC | 1]) + payload)  # port 5 (log), settings channel
        while True:
            reply = sock.recv(64)
            if reply[0] >> 4 == 0x5 and reply[0] & 3 == 1 and reply[1] == payload[0]:
                return reply[1:]

    x = 0  # stateEstimate.x is log variable 0; each v2 item: type byte (float 0x07), id lo, id hi
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(DEADLINE_S)
        sock.connect(("127.0.0.1", emulator.port))
        assert request(sock, bytes([5]))[2] == 0  # reset
        too_big = bytes([6, 1]) + bytes([0x07, x, 0]) * 7  # 28 bytes of floats > 26
        assert request(sock, too_big)[2] == errno.E2BIG
        assert request(sock, bytes([6, 1, 0x07, x, 0, 0x07, 1, 0]))[2] == 0  # x and y
        assert request(sock, bytes([6, 1, 0x07, x, 0]))[2] == errno.EEXIST
        assert request(sock, bytes([6, 2, 0x07, 250, 0]))[2] == errno.ENOENT  # no such variable
        assert request(sock, bytes([3, 9, 1]))[2] == errno.ENOENT  # start an unknown block
        assert request(sock, bytes([3, 1, 1]))[2] == 0  # start block 1 every 10 ms
        stamps = []
        while len(stamps) < 5:
            data = sock.recv(64)
            if data[0] >> 4 == 0x5 and data[0] & 3 == 2:
                assert data[1] == 1 and len(data) == 1 + 4 + 8
                stamps.append(int.from_bytes(data[2:5], "little"))
        assert all(b - a >= 10 for a, b in zip(stamps, stamps[1:], strict=False))
        assert request(sock, bytes([4, 1]))[2] == 0  # stop
        assert request(sock, bytes([2, 1]))[2] == 0  # delete
        assert request(sock, bytes([2, 1]))[2] == errno.ENOENT


@pytest.mark.parametrize("offset_ms", [0, 3, 6, 9])
def test_log_blocks_on_timers_of_any_phase_assemble_one_sample_per_period(offset_ms):
    """The firmware runs each log block on its own timer, started by its own START command: the three blocks'
    time stamps keep whatever offset those commands arrived with (up to a period). Every period still gives one
    sample (a 6 ms offset at 10 ms gave none, and the driver then reported no telemetry)."""
    from hardware.crazyflie.telemetry import BLOCKS, Telemetry
    from sim.mujoco.quadrotor import CRAZYFLIE_SPEC

    telemetry = Telemetry(CRAZYFLIE_SPEC, 10)
    values = {var: (1.0 if var.endswith("qw") else 0.0) for block in BLOCKS.values() for var, _ in block}
    phase = {name: i * offset_ms // max(len(BLOCKS) - 1, 1) for i, name in enumerate(BLOCKS)}
    for period in range(1, 11):
        for name in sorted(BLOCKS, key=lambda n: phase[n]):
            telemetry.on_block(name, 1000 + 10 * period + phase[name], {v: values[v] for v, _ in BLOCKS[name]})
    assert telemetry.sample is not None and telemetry.sample.seq == 10
    assert telemetry.sample.firmware_ms == 1000 + 100 + max(phase.values())
