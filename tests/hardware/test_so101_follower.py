"""The SO-101 follower driver ``hw/so101`` through lerobot's real FeetechMotorsBus, against a Feetech bus emulator
on a pty: handshake, calibration check, sync reads/writes, Status polling and link loss all go over the wire."""

from __future__ import annotations

import json
import logging
import math
import threading
import time

import numpy as np
import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("deepdiff")

from hardware.emulators.feetech.bus import FeetechBusEmulator  # noqa: E402
from hardware.so101 import calibration as cal  # noqa: E402
from hardware.so101.follower import SO101Follower, make_so101_follower  # noqa: E402
from hardware.so101.motors import make_bus, sync_read, with_retry  # noqa: E402
from rcs.errors import ActionError, ConfigError, DeviceFaultError, LinkLostError, NotConnectedError  # noqa: E402
from sim.mujoco.arm import SO101  # noqa: E402
from tests.hardware.feetech_rig import NAMES, RANGE_MAX, RANGE_MIN, flash_ranges, symmetric_calibration  # noqa: E402

HOMING_OFFSET, GOAL, TORQUE_ENABLE, STATUS = 31, 42, 40, 65
DEG_PER_TICK = 360 / 4095  # lerobot's degrees mapping


def _write_file(tmp_path, calib: dict, arm_id: str = "arm") -> None:
    (tmp_path / f"{arm_id}.json").write_text(json.dumps(calib))


@pytest.fixture
def emu():
    e = FeetechBusEmulator()
    yield e
    e.close()


@pytest.fixture
def calibrated(tmp_path, emu):
    calib = symmetric_calibration()
    _write_file(tmp_path, calib)
    flash_ranges(emu, calib)
    return calib


def _arm(emu, tmp_path, **config) -> SO101Follower:
    config.setdefault("close_hold_s", 0.0)
    return make_so101_follower(port=emu.port, arm_id="arm", calibration_dir=tmp_path, **config)


def _wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll ``condition`` (a sync write has no reply: the emulator handles it a moment after it is sent)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _goal_rad(emu, motor_id: int) -> float:
    """The goal register of an arm servo as the angle lerobot's degrees mapping gives it (mid-range 2048)."""
    return math.radians((emu.word(motor_id, GOAL) - 2047.5) * DEG_PER_TICK)


# -- while disconnected ------------------------------------------------------------------------------------------
def test_spec_and_features_are_the_simulated_so101s_while_disconnected(tmp_path):
    arm = make_so101_follower(port="/dev/does-not-exist", calibration_dir=tmp_path)
    assert arm.spec == SO101.spec
    assert arm.observation_features["joint_positions"]["names"] == list(NAMES[:5])
    assert arm.action_features["gripper"]["unit"].startswith("normalized")
    p, q = arm.kinematics.forward(np.zeros(5))
    assert p.shape == (3,) and abs(np.linalg.norm(q) - 1) < 1e-9
    with pytest.raises(NotConnectedError):
        arm.read()
    with pytest.raises(NotConnectedError):
        arm.command_joint_positions(np.zeros(5))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"port": "/dev/x", "speed": 3}, r"unknown option\(s\) speed; accepted: port, arm_id"),
        ({}, "option port is required"),
        ({"port": "/dev/x", "limit_policy": "bounce"}, "limit_policy='bounce' must be one of"),
        ({"port": "/dev/x", "max_relative_target": -1.0}, r"max_relative_target=-1.0 must be in \(0, pi\]"),
        ({"port": "/dev/x", "status_every": 0}, "status_every=0 must be an integer >= 1"),
        ({"port": "/dev/x", "torque_on_close": "drop"}, "torque_on_close='drop' must be one of"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(config, match):
    with pytest.raises(ConfigError, match=match) as info:
        make_so101_follower(**config)
    assert "\n" not in str(info.value)


# -- calibration files -------------------------------------------------------------------------------------------
def _broken(change) -> dict:
    calib = symmetric_calibration()
    change(calib)
    return calib


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c.pop("wrist_flex"), r"joint 'wrist_flex' missing"),
        (lambda c: c.update(elbow_roll=dict(c["elbow_flex"])), r"joint 'elbow_roll' is not an SO-101 joint"),
        (lambda c: c["elbow_flex"].update(id=7), r"joint 'elbow_flex': id=7 but .* is servo id 3"),
        (lambda c: c["gripper"].update(range_max=5000), r"joint 'gripper': range 1024..5000 outside 0..4095"),
        (lambda c: c["shoulder_lift"].update(range_min=-3), r"joint 'shoulder_lift': range -3..3072 outside"),
        (lambda c: c["shoulder_pan"].update(range_min=3072, range_max=1024), r"range_min=3072 must be < range_max"),
        (lambda c: c["wrist_roll"].update(homing_offset=3000), r"homing_offset=3000 outside -2047..2047"),
        (lambda c: c["wrist_roll"].pop("drive_mode"), r"joint 'wrist_roll': expected exactly the fields"),
    ],
)
def test_a_calibration_file_for_another_arm_is_refused_before_the_bus_is_touched(tmp_path, emu, change, match):
    _write_file(tmp_path, _broken(change))
    arm = _arm(emu, tmp_path)
    with pytest.raises(ConfigError, match=match) as info:
        arm.connect()
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "arm.json") in message
    assert emu.packets == 0  # nothing reached the servos, torque never enabled
    assert not arm.is_connected


def test_missing_calibration_file_says_how_to_calibrate(tmp_path, emu):
    with pytest.raises(ConfigError, match=r"no calibration file .*arm.json .*python -m hardware.so101.calibration"):
        _arm(emu, tmp_path).connect()
    assert emu.packets == 0


def test_servos_holding_another_calibration_are_refused_and_torque_stays_off(tmp_path, emu, calibrated):
    emu.set_word(4, RANGE_MAX, 3000)  # wrist_flex was recalibrated since the file was written
    with pytest.raises(ConfigError, match=r"servo wrist_flex \(id 4\) holds range_max=3000 but .* says 3072.*recalib"):
        _arm(emu, tmp_path).connect()
    assert all(emu.regs[i][TORQUE_ENABLE] == 0 for i in range(1, 7))
    assert all(emu.regs[i][55] == 0 for i in range(1, 7))  # nor locked


# -- connect, command, read --------------------------------------------------------------------------------------
def test_connect_and_close_are_idempotent_and_torque_is_released_on_close(tmp_path, emu, calibrated):
    arm = _arm(emu, tmp_path)
    arm.connect()
    arm.connect()
    assert arm.is_connected
    assert all(emu.regs[i][TORQUE_ENABLE] == 1 for i in range(1, 7))
    assert all(emu.word(i, GOAL) == 2048 for i in range(1, 7))  # goal = present before torque: no jump
    arm.close()
    arm.close()
    assert not arm.is_connected
    assert _wait_for(lambda: all(emu.regs[i][TORQUE_ENABLE] == 0 for i in range(1, 7)))
    with arm:  # and again, after a close
        assert arm.read().joint_positions.shape == (5,)


def test_torque_on_close_hold_keeps_the_arm_up(tmp_path, emu, calibrated):
    arm = _arm(emu, tmp_path, torque_on_close="hold")
    arm.connect()
    arm.close()
    assert all(emu.regs[i][TORQUE_ENABLE] == 1 for i in range(1, 7))


def test_read_converts_lerobot_units_and_timestamps_at_capture(tmp_path, emu, calibrated):
    with _arm(emu, tmp_path) as arm:
        emu.set_position(2, 2048 + 512)
        emu.set_word(3, 58, 0x8000 | 100)  # Present_Velocity: -100 steps/s (sign bit 15)
        emu.set_word(1, 60, 250)  # Present_Load: 25.0 % of full torque
        emu.set_position(6, 1024 + 1536)  # gripper: 75 % of its calibrated range
        before = time.monotonic()
        s = arm.read()
        assert before <= s.timestamp <= time.monotonic()
        assert s.joint_positions[1] == pytest.approx(math.radians((2560 - 2048) * DEG_PER_TICK), abs=1e-9)
        assert s.joint_velocities[2] == pytest.approx(-100 * 2 * math.pi / 4096)
        assert s.joint_efforts[0] == pytest.approx(0.25 * SO101.spec.joints[0].max_effort)
        assert s.gripper == pytest.approx(0.75)
        p, q = arm.kinematics.forward(s.joint_positions)
        np.testing.assert_allclose(s.tcp_position, p)


def test_joint_and_gripper_commands_reach_the_servos(tmp_path, emu, calibrated):
    with _arm(emu, tmp_path) as arm:
        arm.read()
        target = np.array([0.3, -0.2, 0.1, 0.25, -0.4])
        packets = emu.packets
        arm.command_joint_positions(target)
        assert _wait_for(lambda: emu.packets >= packets + 1)
        time.sleep(0.1)
        assert emu.packets == packets + 1  # one sync write
        for i in range(5):
            assert _goal_rad(emu, i + 1) == pytest.approx(target[i], abs=2 * math.radians(DEG_PER_TICK))
        arm.command_gripper(0.25)
        assert _wait_for(lambda: emu.word(6, GOAL) == 1024 + 512)


def test_out_of_limit_target_raises_and_nothing_is_written(tmp_path, emu, calibrated):
    with _arm(emu, tmp_path) as arm:
        arm.read()
        goals = [emu.word(i, GOAL) for i in range(1, 7)]
        packets = emu.packets
        with pytest.raises(ActionError, match=r"joint_positions\[elbow_flex\]=2\.5 violates limit"):
            arm.command_joint_positions(np.array([0.0, 0.0, 2.5, 0.0, 0.0]))
        # inside the spec (+-1.69 rad) but beyond the calibrated range 1024..3072 (+-90 deg): the servo would clamp
        with pytest.raises(ActionError, match=r"joint_positions\[shoulder_pan\]=1\.65 .*calibrated range"):
            arm.command_joint_positions(np.array([1.65, 0.0, 0.0, 0.0, 0.0]))
        with pytest.raises(ActionError, match=r"gripper\[0\]=1\.2 violates limit \[0, 1\]"):
            arm.command_gripper(1.2)
        assert emu.packets == packets
        assert [emu.word(i, GOAL) for i in range(1, 7)] == goals


def test_steps_beyond_max_relative_target_are_clipped_and_reported(tmp_path, emu, calibrated):
    with _arm(emu, tmp_path, max_relative_target=0.2) as arm:
        arm.read()
        packets = emu.packets
        arm.command_joint_positions(np.array([0.5, 0.0, 0.0, 0.0, -0.1]))
        assert _wait_for(lambda: emu.packets == packets + 1)  # after a read: only the write
        assert _goal_rad(emu, 1) == pytest.approx(0.2, abs=2 * math.radians(DEG_PER_TICK))
        assert _goal_rad(emu, 5) == pytest.approx(-0.1, abs=2 * math.radians(DEG_PER_TICK))
        assert arm.guard_report.counts == {"max_relative_target": 1} and arm.clip_report.total == 0
        assert "shoulder_pan" in arm.guard_report.last
        emu.set_position(1, 2048 + 100)  # the arm moved since the last read
        packets = emu.packets
        arm.command_joint_positions(np.array([0.5, 0.0, 0.0, 0.0, 0.0]))
        assert _wait_for(lambda: emu.packets == packets + 2)  # no read since the last command: read, then write
        from_here = math.radians((2148 - 2047.5) * DEG_PER_TICK)
        assert _goal_rad(emu, 1) == pytest.approx(from_here + 0.2, abs=2 * math.radians(DEG_PER_TICK))


def test_clip_policy_counts_the_spec_clip_once_and_the_calibrated_range_as_a_guard(tmp_path, emu, calibrated):
    with _arm(emu, tmp_path, limit_policy="clip", max_relative_target=None) as arm:
        arm.read()
        sent = arm.command_joint_positions(arm.spec.upper + 1.0)
        np.testing.assert_array_equal(sent, arm.spec.upper)
        assert arm.clip_report.total == 1
        # the calibrated range 1024..3072 ends at +90 deg, inside the spec: the goal stops there, counted as a guard
        assert arm.guard_report.counts == {"joint_positions": 1}
        assert _wait_for(lambda: emu.word(1, GOAL) in (3071, 3072))
        assert emu.word(5, GOAL) == int(
            math.degrees(arm.spec.upper[4]) / DEG_PER_TICK + 2047.5
        )  # wrist_roll: full turn


def test_a_stray_reply_taken_for_a_position_is_retried_not_returned(tmp_path, emu, calibrated):
    """A late packet of another register read as Present_Position (seen under load: a velocity of 6 steps/s became
    shoulder_lift = -3.13 rad) is outside anything the calibrated joint can read: it is read again."""
    with _arm(emu, tmp_path) as arm:
        arm.read()
        emu.set_position(2, 6)
        threading.Timer(0.3, emu.set_position, (2, 2048 + 100)).start()
        state = arm.read()
        assert state.joint_positions[1] == pytest.approx(math.radians(100 * DEG_PER_TICK), abs=1e-9)
        emu.set_position(2, 6)  # and one that does not go away is a broken link, said in one line
        with pytest.raises(LinkLostError, match=r"implausible Present_Position -179\.\d deg of shoulder_lift"):
            arm.read()


# -- faults and link loss ----------------------------------------------------------------------------------------
def test_servo_fault_releases_torque_and_names_the_servo(tmp_path, emu, calibrated):
    with _arm(emu, tmp_path, status_every=1) as arm:
        arm.read()
        emu.regs[3][STATUS] = 0x20  # elbow_flex reports overload
        with pytest.raises(DeviceFaultError, match=r"^hw/so101: elbow_flex: overload \(servo id 3\)") as info:
            arm.read()
        assert info.value.component == "elbow_flex" and info.value.reason.startswith("overload")
        assert _wait_for(lambda: all(emu.regs[i][TORQUE_ENABLE] == 0 for i in range(1, 7)))
        packets = emu.packets
        with pytest.raises(DeviceFaultError):  # latched: nothing more goes to the servos
            arm.command_joint_positions(np.zeros(5))
        assert emu.packets == packets
    assert not arm.is_connected


def test_a_servo_in_fault_at_connect_never_gets_torque(tmp_path, emu, calibrated):
    emu.regs[6][STATUS] = 0x04
    with pytest.raises(DeviceFaultError, match=r"hw/so101: gripper: overheating"):
        _arm(emu, tmp_path).connect()
    time.sleep(0.2)  # a torque-on packet, had one been sent, would have landed by now
    assert all(emu.regs[i][TORQUE_ENABLE] == 0 for i in range(1, 7))


def test_link_lost_mid_motion_raises_link_lost_and_close_does_not_raise(tmp_path, emu, calibrated):
    arm = _arm(emu, tmp_path)
    arm.connect()
    arm.command_joint_positions(np.array([0.2, 0.0, 0.0, 0.0, 0.0]))
    emu.unplug()
    with pytest.raises(
        LinkLostError, match=rf"hw/so101 on {emu.port}: reading (Status|Present_Position) failed"
    ) as info:
        arm.read()
    assert "\n" not in str(info.value)
    with pytest.raises(LinkLostError):
        arm.command_joint_positions(np.zeros(5))
    arm.close()
    assert not arm.is_connected


def test_control_rate_through_lerobots_bus(tmp_path, emu, calibrated, caplog):
    """Reported, not asserted tightly: read (position, velocity, load, Status every 10th) + one goal write."""
    with _arm(emu, tmp_path) as arm:
        n, start = 200, time.perf_counter()
        for _ in range(n):
            s = arm.read()
            arm.command_joint_positions(s.joint_positions)
        rate = n / (time.perf_counter() - start)
    logging.getLogger(__name__).warning("hw/so101 control rate against the emulator: %.0f Hz", rate)
    assert rate > 10  # a floor that only a broken loop (timeouts, retries) misses


# -- calibration flow --------------------------------------------------------------------------------------------
class _ScriptedHand:
    """Moves the simple emulator's present positions like a person would (ticks)."""

    def __init__(self, emu: FeetechBusEmulator) -> None:
        self.emu = emu
        self.checkpoints = 0

    def hold_middle_pose(self) -> None:
        for i in range(1, 7):
            self.emu.set_position(i, 2000 + 10 * i)

    def sweep_ranges(self, checkpoint) -> None:
        for low, high in ((900, 3100), (1000, 3000)):
            for ticks in (low, high):
                for i in range(1, 7):
                    self.emu.set_position(i, ticks + i)
                checkpoint()
                self.checkpoints += 1
        for i in range(1, 7):
            self.emu.set_position(i, 2047)


def test_calibrate_runs_lerobots_flow_and_the_result_connects(tmp_path, emu):
    hand = _ScriptedHand(emu)
    path = cal.calibrate(emu.port, "fresh", tmp_path, hand, sample_period_s=0.05)
    assert path == tmp_path / "fresh.json" and hand.checkpoints == 4
    data = json.loads(path.read_text())
    assert list(data) == list(NAMES)
    for i, n in enumerate(NAMES):
        assert data[n]["homing_offset"] == 2000 + 10 * (i + 1) - 2047  # half-turn homing at the middle pose
        if n == "wrist_roll":
            assert (data[n]["range_min"], data[n]["range_max"]) == (0, 4095)
        else:  # the extremes held at checkpoints were recorded even with a slow sampler
            assert (data[n]["range_min"], data[n]["range_max"]) == (900 + i + 1, 3100 + i + 1)
        assert emu.word(i + 1, RANGE_MIN) == data[n]["range_min"]
        assert emu.word(i + 1, RANGE_MAX) == data[n]["range_max"]
        assert all(emu.regs[j][TORQUE_ENABLE] == 0 for j in range(1, 7))
    loaded = cal.load_calibration(path)
    assert loaded["shoulder_pan"].homing_offset == 2010 - 2047
    with make_so101_follower(port=emu.port, arm_id="fresh", calibration_dir=tmp_path, close_hold_s=0.0) as arm:
        assert arm.read().joint_positions.shape == (5,)


def test_calibrate_refuses_a_joint_that_never_moved(tmp_path, emu):
    class Lazy:
        def hold_middle_pose(self) -> None:
            pass

        def sweep_ranges(self, checkpoint) -> None:
            emu.set_position(1, 1000)
            checkpoint()

    with pytest.raises(ConfigError, match=r"joint 'shoulder_lift' did not move during the range sweep"):
        cal.calibrate(emu.port, "lazy", tmp_path, Lazy())
    assert not (tmp_path / "lazy.json").exists()


def test_console_operator_prompts_like_lerobot(tmp_path, emu):
    prompts: list[str] = []
    sweep_done = threading.Event()

    def prompt(text: str) -> str:
        prompts.append(text)
        if "ranges" in text:  # the person moves the joints while recording runs
            for i in range(1, 7):
                emu.set_position(i, 1500)
            time.sleep(0.3)
            for i in range(1, 7):
                emu.set_position(i, 2500)
            time.sleep(0.3)
            sweep_done.set()
        return ""

    cal.calibrate(emu.port, "console", tmp_path, cal.ConsoleOperator(prompt))
    assert sweep_done.is_set() and len(prompts) == 2 and "middle of its range" in prompts[0]
    data = json.loads((tmp_path / "console.json").read_text())
    assert (data["elbow_flex"]["range_min"], data["elbow_flex"]["range_max"]) == (1500, 2500)


def test_calibration_command_line_prompts_on_stdin(tmp_path, emu, monkeypatch):
    answers = iter(["", ""])

    def fake_input(text: str) -> str:
        if "ranges" in text:
            emu.set_position(2, 1200)
            time.sleep(0.3)
            for i in range(1, 7):
                emu.set_position(i, 2900)
            time.sleep(0.3)
        return next(answers)

    monkeypatch.setattr("builtins.input", fake_input)
    assert cal.main(["--port", emu.port, "--arm-id", "cli", "--calibration-dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "cli.json").read_text())
    assert (data["shoulder_lift"]["range_min"], data["shoulder_lift"]["range_max"]) == (1200, 2900)


# -- hardware in the loop: the MuJoCo-backed SO-101 emulator process -------------------------------------------
HIL_SEED = 8


@pytest.fixture(scope="module")
def hil(tmp_path_factory):
    """One emulated SO-101 for the module, calibrated on start by hardware.so101.calibration.calibrate with the
    emulator's scripted operator (lerobot's flow over the wire: half-turn homings, checkpointed range sweep)."""
    from hardware.emulators.so101 import start_so101

    emu = start_so101(calibration_dir=tmp_path_factory.mktemp("so101-calibration"), seed=HIL_SEED)
    yield emu
    emu.close()


@pytest.fixture
def fresh_hil(hil):
    """Another emulated arm with the same servos (same seed) for tests that break it (faults, a killed process).
    A real servo keeps its calibration in EPROM across power cycles; the emulator process does not, so the
    calibration is written back to the servos with lerobot's bus before the driver connects."""
    from hardware.emulators.so101 import start_so101

    emu = start_so101(calibration_dir=hil.calibration_dir, seed=HIL_SEED)
    bus = make_bus(emu.port)
    bus.connect(handshake=False)
    calibration = cal.load_calibration(cal.calibration_file(emu.arm_id, emu.calibration_dir))
    with_retry(bus, "restoring the calibration", bus.write_calibration, calibration, timeout_s=10)
    bus.disconnect(disable_torque=False)
    yield emu
    emu.close()


def test_hil_calibration_puts_the_drivers_zero_at_the_models_zero(hil):
    data = json.loads(cal.calibration_file(hil.arm_id, hil.calibration_dir).read_text())
    assert data["wrist_roll"]["range_min"] == 0 and data["wrist_roll"]["range_max"] == 4095
    for n in NAMES[:4]:  # swept to both end stops: the calibrated range covers the spec's
        c, j = data[n], NAMES.index(n)
        half = math.radians((c["range_max"] - c["range_min"]) / 2 * DEG_PER_TICK)
        assert SO101.spec.upper[j] <= half < SO101.spec.upper[j] + 0.1, n
    with make_so101_follower(**hil.robot_config) as arm:
        state = arm.read()
        np.testing.assert_allclose(state.joint_positions, hil.joint_positions(), atol=0.02)


def test_hil_joint_commands_move_the_physics_and_read_agrees(hil):
    with make_so101_follower(**hil.robot_config) as arm:
        start = arm.read().joint_positions
        target = np.clip(start + np.array([0.3, -0.2, 0.25, 0.2, -0.3]), arm.spec.lower + 0.2, arm.spec.upper - 0.2)
        truth = hil.joint_positions()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            arm.read()
            arm.command_joint_positions(target)
            truth = hil.joint_positions()
            if np.abs(truth - target).max() < 0.05:
                break
            time.sleep(0.02)
        assert np.abs(truth - target).max() < 0.05, f"truth {truth.round(3)} target {target.round(3)}"
        time.sleep(0.2)
        np.testing.assert_allclose(arm.read().joint_positions, hil.joint_positions(), atol=0.02)
        arm.command_gripper(0.8)
        assert _wait_for(lambda: abs(arm.read().gripper - 0.8) < 0.05, timeout=20)
        arm.command_joint_positions(start)


def test_hil_control_rate_through_lerobots_bus_at_1_mbaud(hil):
    """read() (position, velocity, load; Status every 10th) + one goal write per tick, wire timing at 1 Mbaud."""
    with make_so101_follower(**hil.robot_config) as arm:
        n, start = 300, time.perf_counter()
        for _ in range(n):
            s = arm.read()
            arm.command_joint_positions(s.joint_positions)
        rate = n / (time.perf_counter() - start)
    logging.getLogger(__name__).warning("hw/so101 control rate against the SO-101 emulator at 1 Mbaud: %.0f Hz", rate)
    assert rate > 10  # only a broken loop (timeouts, retries) misses this on a loaded machine; figure in the log


@pytest.mark.parametrize(("kind", "reason"), [("overheat", "overheating"), ("voltage", "input voltage")])
def test_hil_servo_fault_stops_the_arm_and_names_the_servo(fresh_hil, kind, reason):
    arm = make_so101_follower(**fresh_hil.robot_config)
    arm.connect()
    fresh_hil.inject_fault("wrist_flex", kind)
    with pytest.raises(DeviceFaultError, match=rf"^hw/so101: wrist_flex: {reason}") as info:
        for _ in range(200):
            arm.read()
            time.sleep(0.01)
    assert info.value.component == "wrist_flex" and "\n" not in str(info.value)
    arm.close()
    bus = make_bus(fresh_hil.port)
    bus.connect(handshake=False)
    try:  # torque is off on every servo, not only the faulty one
        torque = with_retry(bus, "read", sync_read, bus, "Torque_Enable", normalize=False, timeout_s=10)
        assert set(torque.values()) == {0}
    finally:
        bus.disconnect(disable_torque=False)
    with pytest.raises(DeviceFaultError, match="hw/so101: wrist_flex"):  # and it is refused at connect
        make_so101_follower(**fresh_hil.robot_config).connect()


def test_hil_emulator_killed_mid_motion_is_link_lost_and_close_works(fresh_hil):
    arm = make_so101_follower(**fresh_hil.robot_config)
    arm.connect()
    q = arm.read().joint_positions
    arm.command_joint_positions(q + 0.3 * np.sign(-q + 1e-3))
    time.sleep(0.1)
    fresh_hil.kill()
    with pytest.raises(LinkLostError, match=rf"^hw/so101 on {fresh_hil.port}: .* failed") as info:
        for _ in range(50):
            arm.read()
            arm.command_joint_positions(q)
            time.sleep(0.02)
    assert "\n" not in str(info.value)
    arm.close()
    assert not arm.is_connected


def test_link_lost_names_the_first_failure_too_when_the_last_differs():
    """A persistent fault (an implausible reading) stays named when a busy host also missed a reply meanwhile."""

    class Port:
        def getBytesAvailable(self) -> int:  # noqa: N802 - scservo_sdk's name
            return 0

    class Bus:
        port, port_handler = "/dev/ttyX", Port()

    errors = iter([ConnectionError("implausible Present_Position")] + [ConnectionError("no status packet")] * 999)

    def read() -> None:
        raise next(errors)

    with pytest.raises(LinkLostError) as exc:
        with_retry(Bus(), "reading", read, timeout_s=0.3)
    text = str(exc.value)
    assert text.startswith("hw/so101 on /dev/ttyX: reading failed: no status packet (first failure: implausible")
