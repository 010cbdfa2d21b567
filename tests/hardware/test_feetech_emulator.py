"""The STS3215 bus emulator backed by the MuJoCo SO-101, driven through lerobot's real FeetechMotorsBus (scservo_sdk)
over a real pty, the emulator in its own process. Ground truth comes from the emulator's control channel."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("lerobot.motors.feetech")

import termios  # noqa: E402

import scservo_sdk as scs  # noqa: E402
import serial  # noqa: E402
from lerobot.motors import Motor, MotorNormMode  # noqa: E402
from lerobot.motors.feetech import FeetechMotorsBus  # noqa: E402
from lerobot.motors.feetech.tables import (  # noqa: E402
    STS_SMS_SERIES_CONTROL_TABLE,
    STS_SMS_SERIES_ENCODINGS_TABLE,
)

from hardware.emulators.feetech import protocol  # noqa: E402
from hardware.emulators.feetech.registers import REGISTERS, ControlTable  # noqa: E402
from hardware.emulators.feetech.servo import TICKS_PER_RAD, Servo  # noqa: E402
from hardware.emulators.so101 import JOINTS, So101Emulator, start_so101, sweep_plan  # noqa: E402
from hardware.so101.motors import drain, with_retry  # noqa: E402
from rcs.emulator import RobotEmulator  # noqa: E402
from rcs.errors import ConfigError, LinkLostError  # noqa: E402

STATUS, TORQUE_ENABLE = 65, 40
# The host's retry policy (lerobot's num_retry): a loaded 2-core machine may not schedule the emulator process
# within lerobot's 50 ms packet timeout; a real bus answers in microseconds.
RETRY = 3
RETRY_S = 2.0  # s: how long the rig's requests are retried (drained first) before the link counts as lost
# what lerobot's bus raises when the other end of the pty is gone (scservo_sdk flushes with tcdrain: EIO)
LINK_FAILURES = (ConnectionError, OSError, serial.SerialException, termios.error)


class FreshReplyBus(FeetechMotorsBus):
    """lerobot's bus, with each request sent on a quiet line. scservo_sdk matches a reply by servo id only: a reply
    that missed lerobot's packet timeout (a loaded machine delays either process) stays in the pty buffer and would
    be taken for the answer to the next, different request (seen: a Moving byte read as Present_Position). So the
    input is flushed before each request, and a failed request is retried only after the line went quiet, with
    the driver's own :func:`hardware.so101.motors.with_retry`; lerobot's own retries (``num_retry``) would resend
    without draining."""

    def _fresh(self, method, *args, **kwargs):
        kwargs["num_retry"] = 0
        self.port_handler.ser.reset_input_buffer()  # scservo_sdk's clearPort() only drains output
        return with_retry(self, method.__name__, method, *args, timeout_s=RETRY_S, **kwargs)

    def broadcast_ping(self, *args, **kwargs):
        # lerobot's handshake (connect) goes through here too; a stale partial packet ahead of the replies would
        # make its parser drop the first servo's answer
        drain(self, quiet_s=0.02, max_s=0.5)
        return super().broadcast_ping(*args, **kwargs)

    def ping(self, *args, **kwargs):
        kwargs["raise_on_error"] = True  # a missed answer is retried on a drained line, not returned as None
        return self._fresh(super().ping, *args, **kwargs)

    def read(self, *args, **kwargs):
        return self._fresh(super().read, *args, **kwargs)

    def sync_read(self, *args, **kwargs):
        return self._fresh(super().sync_read, *args, **kwargs)

    def write(self, *args, **kwargs):
        return self._fresh(super().write, *args, **kwargs)


def make_bus(port: str) -> FeetechMotorsBus:
    motors = {n: Motor(i + 1, "sts3215", MotorNormMode.DEGREES) for i, n in enumerate(JOINTS)}
    bus = FreshReplyBus(port, motors)
    # lerobot's handshake is one broadcast ping: under the full suite beside CPU burners it has come back missing
    # the first servos' answers (cause not found: see test_ping_read_and_sync_round_trip); the test rig connects
    # without it and checks every servo with its own PING instead (each must answer with the STS3215 model)
    bus.connect(handshake=False)
    for name in JOINTS:
        assert bus.ping(name, num_retry=RETRY) == 777, f"servo {name} does not answer PING"
    return bus


def raw_read(bus: FeetechMotorsBus, servo_id: int, address: int) -> tuple[int, int, int]:
    """One-byte READ through scservo_sdk: (value, comm result, status packet error byte); a missed reply is
    re-asked on a drained line for up to RETRY_S, as FreshReplyBus does."""
    deadline = time.monotonic() + RETRY_S
    while True:
        drain(bus, quiet_s=0.005, max_s=0.5)  # see FreshReplyBus
        value, comm, error = bus.packet_handler.read1ByteTxRx(bus.port_handler, servo_id, address)
        if comm == scs.COMM_SUCCESS or time.monotonic() > deadline:
            return value, comm, error


def raw_write(bus: FeetechMotorsBus, servo_id: int, address: int, value: int) -> None:
    """One-byte WRITE through scservo_sdk, whatever error bits the servo reports; a missed status packet is
    re-asked on a drained line for up to RETRY_S."""
    deadline = time.monotonic() + RETRY_S
    while True:
        drain(bus, quiet_s=0.005, max_s=0.5)  # see FreshReplyBus
        comm, _ = bus.packet_handler.write1ByteTxRx(bus.port_handler, servo_id, address, value)
        if comm == scs.COMM_SUCCESS:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"write of {value} at {address} on servo {servo_id}: no status packet in {RETRY_S} s")


def poll(condition, timeout: float = 20.0, period: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(period)


@pytest.fixture(scope="module")
def emu():
    with So101Emulator(seed=7) as e:
        yield e


@pytest.fixture(scope="module")
def bus(emu):
    b = make_bus(emu.port)
    yield b
    try:
        b.disconnect(disable_torque=False)
    except Exception:  # the port may be gone after the unplug test
        pass


@pytest.fixture
def held(emu, bus):
    """The arm held by hand at the zero pose, torque off, no faults, factory protections."""
    for i, name in enumerate(JOINTS, start=1):
        emu.clear_faults(name)
        raw_write(bus, i, TORQUE_ENABLE, 1)  # enabling torque clears latched faults
        raw_write(bus, i, TORQUE_ENABLE, 0)
    assert poll(lambda: all(raw_read(bus, i, STATUS)[:2] == (0, scs.COMM_SUCCESS) for i in range(1, 7)))
    for name in JOINTS:
        bus.write("Protection_Time", name, 200, num_retry=RETRY)
        bus.write("Unloading_Condition", name, 44, num_retry=RETRY)
        bus.write("Return_Delay_Time", name, 0, num_retry=RETRY)
    emu.move_by_hand([0.0] * 6, duration=1.0)
    yield


# -- the control table and the protocol: an independent source agrees ------------------------------------------
def test_register_table_matches_lerobots_table():
    required = {
        "ID", "Baud_Rate", "Return_Delay_Time", "Min_Position_Limit", "Max_Position_Limit", "Max_Temperature_Limit",
        "Max_Voltage_Limit", "Min_Voltage_Limit", "Max_Torque_Limit", "Unloading_Condition", "P_Coefficient",
        "D_Coefficient", "I_Coefficient", "Homing_Offset", "Operating_Mode", "Torque_Enable", "Acceleration",
        "Goal_Position", "Goal_Time", "Goal_Velocity", "Torque_Limit", "Lock", "Present_Position",
        "Present_Velocity", "Present_Load", "Present_Voltage", "Present_Temperature", "Status", "Moving",
        "Present_Current", "Model_Number", "Firmware_Major_Version", "Firmware_Minor_Version",
    }  # fmt: skip
    assert required <= set(REGISTERS)
    shared = set(REGISTERS) & set(STS_SMS_SERIES_CONTROL_TABLE)
    assert required <= shared
    for name in shared:
        reg = REGISTERS[name]
        assert (reg.address, reg.size) == STS_SMS_SERIES_CONTROL_TABLE[name], name
    for name, bit in STS_SMS_SERIES_ENCODINGS_TABLE.items():
        if name in REGISTERS:
            assert REGISTERS[name].sign_bit == bit, name
    assert (protocol.PING, protocol.READ, protocol.WRITE, protocol.REG_WRITE, protocol.ACTION) == (
        scs.INST_PING, scs.INST_READ, scs.INST_WRITE, scs.INST_REG_WRITE, scs.INST_ACTION,
    )  # fmt: skip
    assert (protocol.SYNC_READ, protocol.SYNC_WRITE, protocol.BROADCAST) == (
        scs.INST_SYNC_READ, scs.INST_SYNC_WRITE, scs.BROADCAST_ID,
    )  # fmt: skip
    assert (scs.ERRBIT_VOLTAGE, scs.ERRBIT_ANGLE, scs.ERRBIT_OVERHEAT, scs.ERRBIT_OVERELE, scs.ERRBIT_OVERLOAD) == (
        0x01, 0x02, 0x04, 0x08, 0x20,
    )  # fmt: skip


def test_homing_offset_and_limits_follow_the_firmware():
    servo = Servo(1, mounting_offset=2100.0)
    servo.step(0.5, 0.0, 0.002)
    raw = 2100 + 0.5 * TICKS_PER_RAD
    assert servo.table.get("Present_Position") == round(raw) % 4096
    servo.table.host_write(31, (1000 | 0x800).to_bytes(2, "little"))  # Homing_Offset -1000, sign bit 11
    assert servo.table.get("Homing_Offset") == -1000
    servo.step(0.5, 0.0, 0.002)
    assert servo.table.get("Present_Position") == round(raw + 1000) % 4096  # (raw - offset) mod 4096
    servo.bus_write(9, (1000).to_bytes(2, "little") + (3000).to_bytes(2, "little"))
    servo.bus_write(42, (3500).to_bytes(2, "little"))
    assert servo.table.get("Goal_Position") == 3000  # clamped to Max_Position_Limit
    servo.bus_write(42, (5 | 0x8000).to_bytes(2, "little"))  # -5 (sign bit 15)
    assert servo.table.get("Goal_Position") == 1000
    before = ControlTable(1).read(0, 5)
    table = ControlTable(1)
    table.host_write(0, b"\x09\x09\x09\x09\x09")  # firmware and model number are read-only
    assert table.read(0, 5)[:2] == before[:2] and table.get("Model_Number") == 777


# -- the bus through lerobot ------------------------------------------------------------------------------------
def test_ping_read_and_sync_round_trip(emu, bus, held):
    assert isinstance(emu, RobotEmulator) and emu.robot == "hw/so101"
    # every servo answers one broadcast PING with its model number. Asked up to RETRY times: in the full suite
    # beside CPU burners, a broadcast answer has come back without the first servos' packets (the emulator's
    # replies or the host's read of them: not diagnosed, see the closing notes of issue 16)
    found = None
    for _ in range(RETRY):
        found = bus.broadcast_ping(num_retry=RETRY)
        if found == {i: 777 for i in range(1, 7)}:
            break
    assert found == {i: 777 for i in range(1, 7)}
    assert bus.ping("elbow_flex", num_retry=RETRY) == 777
    values = {n: 100 + 10 * i for i, n in enumerate(JOINTS)}
    bus.sync_write("Goal_Velocity", values, num_retry=RETRY)
    assert bus.sync_read("Goal_Velocity", num_retry=RETRY) == values
    bus.write("Acceleration", "gripper", 77, num_retry=RETRY)
    assert bus.read("Acceleration", "gripper", num_retry=RETRY) == 77
    # REG_WRITE is held until ACTION
    ph, port = bus.packet_handler, bus.port_handler
    assert any(ph.regWriteTxRx(port, 3, 41, 1, [55])[0] == scs.COMM_SUCCESS for _ in range(RETRY))
    assert bus.read("Acceleration", "elbow_flex", num_retry=RETRY) != 55
    assert ph.action(port, scs.BROADCAST_ID) == scs.COMM_SUCCESS
    assert bus.read("Acceleration", "elbow_flex", num_retry=RETRY) == 55
    # present positions are the physics' angles through the (unknown) mounting offsets: consistent increments
    truth = emu.state()
    present = bus.sync_read("Present_Position", normalize=False, num_retry=RETRY)
    assert truth["hand"] == "holding"
    assert all(1848 - 3 <= present[n] <= 2248 + 3 for n in JOINTS)  # 2048 +- the mounting spread at 0 rad
    voltage = bus.sync_read("Present_Voltage", num_retry=RETRY)
    assert all(110 <= v <= 121 for v in voltage.values())  # 12 V supply (0.1 V units), a little sag


def test_goal_write_moves_the_joint_and_present_position_follows(emu, bus, held):
    q0_before = emu.joint_positions()
    start = bus.sync_read("Present_Position", normalize=False, num_retry=RETRY)
    q0 = emu.joint_positions()
    bus.sync_write("Goal_Velocity", {n: 0 for n in JOINTS}, num_retry=RETRY)
    for n in JOINTS:
        bus.write("Torque_Enable", n, 1, num_retry=RETRY)  # holds where it is (the goal tracked the present position)
    emu.release_hand()
    time.sleep(0.5)
    assert np.abs(emu.joint_positions() - q0).max() < 0.05  # servos hold the arm up
    goal = start["elbow_flex"] - 400
    bus.write("Goal_Position", "elbow_flex", goal, normalize=False, num_retry=RETRY)
    expected = q0[2] - 400 / TICKS_PER_RAD
    moved = poll(lambda: abs(emu.joint_positions()[2] - expected) < 0.03)
    assert moved, f"elbow at {emu.joint_positions()[2]:.3f} rad, expected {expected:.3f}"
    assert poll(lambda: bus.read("Moving", "elbow_flex", num_retry=RETRY) == 0)  # settled: < 20 ticks/s
    before = emu.joint_positions()[2]
    present = bus.read("Present_Position", "elbow_flex", normalize=False, num_retry=RETRY)
    after = emu.joint_positions()[2]
    assert abs(present - goal) <= 20  # the P loop's steady-state error under gravity
    # present = the encoder of the true angle: its change lies within the ground truth's change measured around
    # both reads (+- 1 tick: each read is rounded to a tick)
    low = (min(before, after) - max(q0_before[2], q0[2])) * TICKS_PER_RAD
    high = (max(before, after) - min(q0_before[2], q0[2])) * TICKS_PER_RAD
    assert low - 1 <= present - start["elbow_flex"] <= high + 1


def test_torque_off_lets_the_arm_sag(emu, bus, held):
    for n in JOINTS:
        bus.write("Torque_Enable", n, 1, num_retry=RETRY)
    emu.release_hand()
    time.sleep(0.5)
    q_held = emu.joint_positions()
    bus.write("Torque_Enable", "shoulder_lift", 0, num_retry=RETRY)
    sagged = poll(lambda: abs(emu.joint_positions()[1] - q_held[1]) > 0.3)
    assert sagged, "shoulder_lift did not fall with its torque off"
    assert bus.read("Present_Load", "shoulder_lift", num_retry=RETRY) == 0


@pytest.mark.parametrize("kind, bit", [("overheat", 0x04), ("overload", 0x20)])
def test_fault_sets_the_error_bit_and_releases_torque(emu, bus, held, kind, bit):
    bus.write(
        "Protection_Time", "wrist_flex", 10, num_retry=RETRY
    )  # 100 ms of overload before the servo protects itself
    bus.write("Torque_Enable", "wrist_flex", 1, num_retry=RETRY)
    emu.release_hand()
    value, comm, error = raw_read(bus, 4, STATUS)
    assert comm == scs.COMM_SUCCESS and value == 0 and error == 0
    emu.inject_fault("wrist_flex", kind)
    status = poll(lambda: raw_read(bus, 4, STATUS)[0] & bit)
    assert status, f"{kind}: Status bit {bit:#x} never set"
    torque, comm, error = raw_read(bus, 4, TORQUE_ENABLE)
    assert comm == scs.COMM_SUCCESS and error & bit and torque == 0  # error byte of every status packet
    with pytest.raises(RuntimeError, match="error"):  # lerobot refuses a reply carrying an error
        bus.read("Torque_Enable", "wrist_flex", num_retry=RETRY)
    emu.clear_faults("wrist_flex")
    raw_write(bus, 4, TORQUE_ENABLE, 1)  # re-enabling clears a latch
    assert poll(lambda: raw_read(bus, 4, STATUS)[0] == 0)


def test_voltage_fault_releases_torque_only_where_unloading_condition_says(emu, bus, held):
    bus.write("Torque_Enable", "elbow_flex", 1, num_retry=RETRY)
    emu.inject_fault("elbow_flex", "voltage")
    assert poll(lambda: raw_read(bus, 3, STATUS)[0] & 0x01)
    torque, _, error = raw_read(bus, 3, TORQUE_ENABLE)
    assert error & 0x01 and torque == 1  # factory Unloading_Condition 44 does not include voltage
    raw_write(bus, 3, 19, 44 | 0x01)  # Unloading_Condition
    assert poll(lambda: raw_read(bus, 3, TORQUE_ENABLE)[0] == 0)


def test_corrupted_checksum_is_ignored(emu):
    with serial.Serial(emu.port, 1_000_000, timeout=0.3) as link:
        good = protocol.instruction_packet(1, protocol.READ, bytes([3, 2]))
        bad = good[:-1] + bytes([good[-1] ^ 0xFF])
        link.write(bad)
        assert link.read(8) == b""  # no reply, as a real servo
        link.write(good)
        assert link.read(8) == protocol.status_packet(1, (777).to_bytes(2, "little"))


def test_wire_time_bounds_the_rate(emu, bus, held):
    baud = 1_000_000
    request = len(protocol.instruction_packet(0xFE, protocol.SYNC_READ, bytes([56, 2, 1, 2, 3, 4, 5, 6])))
    replies = 6 * len(protocol.status_packet(1, b"\x00\x00"))
    wire = protocol.transfer_time(request + replies, baud)
    n = 100
    t0 = time.perf_counter()
    for _ in range(n):
        bus.sync_read("Present_Position", normalize=False, num_retry=RETRY)
    period = (time.perf_counter() - t0) / n
    assert period >= wire  # 620 us of bytes at 1 Mbaud
    # a long block: 6 x 66 bytes of replies; a bus without wire timing answers far faster than 4 ms
    reader = scs.GroupSyncRead(bus.port_handler, bus.packet_handler, 0, 60)
    for i in range(1, 7):
        reader.addParam(i)
    block = protocol.transfer_time(len(protocol.instruction_packet(0xFE, 0x82, bytes(8))) + 6 * 66, baud)
    timed = 0
    for _ in range(10):
        drain(bus, quiet_s=0.02, max_s=0.5)  # no late reply of an earlier request may answer this one
        t0 = time.perf_counter()
        if reader.txRxPacket() == scs.COMM_SUCCESS:  # (a timeout on a loaded machine is not a measurement)
            assert time.perf_counter() - t0 >= block
            timed += 1
    assert timed >= 5
    # a host at another baud rate is noise to the servos: nobody answers
    bus.set_baudrate(500_000)
    try:
        assert bus.broadcast_ping(num_retry=RETRY) is None
    finally:
        bus.set_baudrate(baud)
    assert bus.ping("gripper", num_retry=RETRY) == 777


# -- the calibration operator ------------------------------------------------------------------------------------
def test_operator_middle_pose_and_sweep_reach_every_end_stop(emu, bus, held):
    operator = emu.operator()
    operator.hold_middle_pose()
    assert np.abs(emu.joint_positions()).max() < 0.02 and abs(emu.gripper_position()) < 0.02
    homings = bus.set_half_turn_homings()  # lerobot: the middle pose reads 2047 from now on
    assert all(abs(h) <= 2047 for h in homings.values())
    mid = bus.sync_read("Present_Position", normalize=False, num_retry=RETRY)
    assert all(abs(v - 2047) <= 3 for v in mid.values()), mid
    lo: dict[str, int] = dict(mid)
    hi: dict[str, int] = dict(mid)
    checkpoints = []
    stop = threading.Event()

    def record():
        while not stop.is_set():
            for n, v in bus.sync_read("Present_Position", normalize=False, num_retry=3).items():
                lo[n], hi[n] = min(lo[n], v), max(hi[n], v)
            time.sleep(0.005)

    recorder = threading.Thread(target=record)
    recorder.start()
    try:
        operator.sweep_ranges(lambda: checkpoints.append(emu.state()))
    finally:
        stop.set()
        recorder.join(10)
    assert len(checkpoints) == sum(ends for _, ends in sweep_plan(np.zeros((6, 2))))
    limits = np.asarray(emu.state()["limits"])
    for i, n in enumerate(JOINTS):
        expected_lo = 2047 + limits[i, 0] * TICKS_PER_RAD
        expected_hi = 2047 + limits[i, 1] * TICKS_PER_RAD
        assert abs(lo[n] - expected_lo) <= 8, (n, lo[n], expected_lo)  # pressed against the end stop
        assert abs(hi[n] - expected_hi) <= 8, (n, hi[n], expected_hi)
    assert np.abs(emu.joint_positions()).max() < 0.02  # back in the middle


# -- process, client and factory ---------------------------------------------------------------------------------
def test_unplug_and_kill_make_host_reads_fail():
    with So101Emulator(seed=1) as e:
        b = make_bus(e.port)
        assert b.read("ID", "gripper", num_retry=RETRY) == 6
        e.unplug()
        with pytest.raises(LINK_FAILURES):
            b.sync_read("Present_Position")
        assert abs(e.joint_positions()).max() < 10  # the arm process lives on
    with So101Emulator(seed=2, role="leader") as e:
        b = make_bus(e.port)
        assert 70 <= b.read("Present_Voltage", "elbow_flex", num_retry=RETRY) <= 74  # the leader's 7.4 V servos
        e.kill()
        with pytest.raises(LINK_FAILURES):
            b.sync_read("Present_Position")
        with pytest.raises(LinkLostError, match="hw/so101 emulator: state: no control reply"):
            e._timeout_ms = 500
            e.joint_positions()
        e.close()
        e.close()  # idempotent


def test_bad_inputs_give_one_line_errors(emu, tmp_path):
    with pytest.raises(LinkLostError, match=r"hw/so101 emulator: process exited with code 1 before ready"):
        So101Emulator(python="/bin/false", ready_timeout=20)
    with pytest.raises(ConfigError, match="role='boss': expected one of follower, leader"):
        So101Emulator(role="boss")
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        start_so101(colour="red")
    with pytest.raises(ConfigError, match="fault: fault kind='melt': expected one of"):
        emu.inject_fault("gripper", "melt")
    with pytest.raises(ConfigError, match="servo='thumb': expected a joint name"):
        emu.inject_fault("thumb", "overload")
    with pytest.raises(ConfigError, match=r"duration=0.0: expected 0 < duration <= 120.0 s"):
        emu.move_by_hand([0.0] * 6, duration=0.0)
    with pytest.raises(ConfigError, match="joint 'thumb' unknown"):
        emu.move_by_hand({"thumb": 1.0})
    with pytest.raises(ConfigError, match=r"positions: every angle must be a finite number"):
        emu.move_by_hand([math.nan] * 6, wait=False)


def test_start_so101_runs_the_calibration_when_the_arm_has_none(tmp_path):
    calibration = pytest.importorskip("hardware.so101.calibration")
    emulator = start_so101(calibration_dir=tmp_path, arm_id="hil_arm", seed=5)
    try:
        path = tmp_path / "hil_arm.json"
        assert path.exists() and emulator.robot_config == {
            "port": emulator.port, "arm_id": "hil_arm", "calibration_dir": str(tmp_path),
        }  # fmt: skip
        calib = calibration.load_calibration(path)
        limits = np.asarray(emulator.state()["limits"])
        for i, n in enumerate(JOINTS[:4]):
            span = (limits[i, 1] - limits[i, 0]) * TICKS_PER_RAD
            assert abs((calib[n].range_max - calib[n].range_min) - span) <= 16, n
    finally:
        emulator.close()


def test_a_stalled_servo_heats_until_its_overheat_protection_releases_torque():
    servo = Servo(2, mounting_offset=2048.0)
    servo.step(0.0, 0.0, 0.01)
    servo.bus_write(36, bytes([100]))  # Overload_Torque 100 %: the overload protection never trips first
    servo.bus_write(40, bytes([1]))
    servo.bus_write(42, (2048 + 1000).to_bytes(2, "little"))  # far goal, joint held at 0 rad: a stall
    temperatures = []
    for k in range(30_000):  # 300 s at 10 ms
        servo.step(0.0, 0.0, 0.01)
        if k % 1000 == 0:
            temperatures.append(servo.table.get("Present_Temperature"))
        if servo.table.get("Torque_Enable") == 0:
            break
    assert temperatures == sorted(temperatures) and temperatures[-1] > temperatures[0]  # rises with the load
    assert servo.table.get("Status") & 0x04 and servo.table.get("Present_Temperature") >= 70
    assert servo.table.get("Torque_Enable") == 0 and servo.table.get("Present_Load") == 0
