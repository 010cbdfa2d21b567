"""lerobot's SO-101 follower calibration: its JSON files, the check against the servos, and its calibration flow.

File format (what lerobot writes, e.g. ``~/.cache/huggingface/lerobot/calibration/robots/so_follower/<id>.json``)::

    {"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1290, "range_min": 760, "range_max": 3350}, ...}

one entry per motor (the six of :mod:`hardware.so101.motors`); ``homing_offset`` in encoder ticks (sign-magnitude
on the servo, |offset| <= 2047), ``range_min``/``range_max`` in ticks within 0..4095. A file that does not fit
this arm is refused before anything is written to the bus, with one line naming the file and the joint.

:func:`calibrate` runs the same steps as lerobot's ``SOFollower.calibrate`` through the bus's public methods:
torque off and position mode on every servo; the operator puts the arm in the middle of its range
(:meth:`CalibrationOperator.hold_middle_pose`); half-turn homing offsets are written so that pose reads 2047;
the operator sweeps every joint through its range while the present positions are recorded
(:meth:`CalibrationOperator.sweep_ranges`, run in a worker thread while this thread samples); ``wrist_roll``
gets the full turn 0..4095 as lerobot gives it; the calibration is written to the servos' EPROM and to the file.

The sweep protocol, for scripted operators (an emulator's hand): ``sweep_ranges(checkpoint)`` is called in a
worker thread while the caller samples ``Present_Position`` of the five recorded servos back to back (a few ms
apart). Whenever the arm reaches a pose that must be recorded (each end of each joint's range), the operator
calls ``checkpoint()`` and keeps the arm there until it returns: it returns once a complete position read that
started after the call has been recorded (it raises :class:`rcs.errors.LinkLostError` if sampling stopped, or
:class:`rcs.errors.ConfigError` after ``checkpoint_timeout_s``). ``sweep_ranges`` returns when the sweep is
done; the caller then takes one last sample. A ``sweep_ranges()`` that takes no argument is also accepted (a
person moving the arm slowly, as with lerobot, needs no checkpoints).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from hardware.so101.motors import (
    DEVICE,
    FULL_TURN_JOINT,
    LINK_ERRORS,
    MAX_TICK,
    MOTOR_IDS,
    make_bus,
    one_line,
    sync_read,
    with_retry,
)
from rcs.errors import ConfigError, LinkLostError

log = logging.getLogger(__name__)

#: lerobot's ``Robot.name`` of its SO-100/SO-101 follower class: the folder its calibration files live in.
LEROBOT_ROBOT_NAME = "so_follower"
_FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")
_MAX_HOMING = 2047  # 11-bit magnitude of the servo's sign-magnitude Homing_Offset register


def default_calibration_dir() -> Path:
    """lerobot's default folder for SO follower calibration files (honours ``HF_LEROBOT_CALIBRATION``)."""
    from lerobot.utils.constants import HF_LEROBOT_CALIBRATION, ROBOTS

    return Path(HF_LEROBOT_CALIBRATION) / ROBOTS / LEROBOT_ROBOT_NAME


def calibration_file(arm_id: str, calibration_dir: str | Path | None = None) -> Path:
    """Path of the calibration file of arm ``arm_id`` (lerobot's ``<calibration_dir>/<id>.json``)."""
    folder = Path(calibration_dir) if calibration_dir is not None else default_calibration_dir()
    return folder / f"{arm_id}.json"


def recalibrate_hint(port: str, arm_id: str) -> str:
    """How a user (re)calibrates this arm, in one line."""
    return (
        f"calibrate it: python -m hardware.so101.calibration --port {port} --arm-id {arm_id} "
        f"(or lerobot-calibrate --robot.type=so101_follower --robot.port={port} --robot.id={arm_id})"
    )


def load_calibration(path: str | Path) -> dict[str, Any]:
    """Read and check a lerobot calibration file for the SO-101 follower.

    Returns motor name -> ``lerobot.motors.MotorCalibration`` in bus order. Raises :class:`ConfigError` (one
    line naming the file and the joint) for a missing or malformed file, missing or extra joints, wrong ids,
    a drive mode other than 0/1, a homing offset beyond +-2047 ticks, or a range outside 0..4095 or empty.
    """
    from lerobot.motors import MotorCalibration

    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{DEVICE} calibration {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{DEVICE} calibration {path}: not readable as JSON ({one_line(exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{DEVICE} calibration {path}: expected an object of joints, got {type(raw).__name__}")
    missing = [j for j in MOTOR_IDS if j not in raw]
    if missing:
        raise ConfigError(
            f"{DEVICE} calibration {path}: joint {missing[0]!r} missing (an SO-101 has {list(MOTOR_IDS)})"
        )
    extra = [j for j in raw if j not in MOTOR_IDS]
    if extra:
        raise ConfigError(f"{DEVICE} calibration {path}: joint {extra[0]!r} is not an SO-101 joint {list(MOTOR_IDS)}")
    out = {}
    for joint, expected_id in MOTOR_IDS.items():
        entry = raw[joint]
        where = f"{DEVICE} calibration {path}: joint {joint!r}"
        if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
            raise ConfigError(f"{where}: expected exactly the fields {list(_FIELDS)}")
        bad = [k for k in _FIELDS if type(entry[k]) is not int]
        if bad:
            raise ConfigError(f"{where}: {bad[0]}={entry[bad[0]]!r} must be an integer")
        if entry["id"] != expected_id:
            raise ConfigError(f"{where}: id={entry['id']} but the SO-101 follower's {joint} is servo id {expected_id}")
        if entry["drive_mode"] not in (0, 1):
            raise ConfigError(f"{where}: drive_mode={entry['drive_mode']} must be 0 or 1")
        if abs(entry["homing_offset"]) > _MAX_HOMING:
            raise ConfigError(f"{where}: homing_offset={entry['homing_offset']} outside -{_MAX_HOMING}..{_MAX_HOMING}")
        lo, hi = entry["range_min"], entry["range_max"]
        if not (0 <= lo <= MAX_TICK and 0 <= hi <= MAX_TICK):
            raise ConfigError(f"{where}: range {lo}..{hi} outside 0..{MAX_TICK} ticks")
        if not lo < hi:
            raise ConfigError(f"{where}: range_min={lo} must be < range_max={hi}")
        out[joint] = MotorCalibration(**{k: entry[k] for k in _FIELDS})
    return out


def save_calibration(path: str | Path, calibration: Mapping[str, Any]) -> None:
    """Write ``calibration`` (name -> MotorCalibration) in lerobot's format (JSON, 4-space indent)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {name: {k: int(getattr(c, k)) for k in _FIELDS} for name, c in calibration.items()}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=4))
    tmp.replace(path)  # a crash mid-write leaves the old file, never half a file


def check_motor_calibration(
    bus: Any, calibration: Mapping[str, Any], path: Path, arm_id: str, link_timeout_s: float = 1.0
) -> None:
    """Raise :class:`ConfigError` unless every servo's Homing_Offset and position limits equal the file's.

    Reads only; torque is not touched. The message names the servo, both values, and how to recalibrate.
    """
    on_servos = with_retry(bus, "reading the calibration registers", bus.read_calibration, timeout_s=link_timeout_s)
    for joint, want in calibration.items():
        have = on_servos[joint]
        for field in ("homing_offset", "range_min", "range_max"):
            if getattr(have, field) != getattr(want, field):
                raise ConfigError(
                    f"{DEVICE} on {bus.port}: servo {joint} (id {want.id}) holds {field}={getattr(have, field)} but "
                    f"{path} says {getattr(want, field)}: the file is for another arm or the arm was recalibrated; "
                    + recalibrate_hint(bus.port, arm_id)
                )


class CalibrationOperator(Protocol):
    """Whoever moves the arm during :func:`calibrate` (a person, or an emulator's scripted hand)."""

    def hold_middle_pose(self) -> None:
        """Put every joint in the middle of its range (torque is off); return when the arm is there."""
        ...

    def sweep_ranges(self, checkpoint: Callable[[], None]) -> None:
        """Move every joint through its full range and back; call ``checkpoint()`` at each end (see module doc)."""
        ...


class ConsoleOperator:
    """A person at the console, prompted like lerobot's calibration (press Enter when done)."""

    def __init__(self, prompt: Callable[[str], str] | None = None) -> None:
        self._prompt = prompt if prompt is not None else input

    def hold_middle_pose(self) -> None:
        self._prompt("Move the SO-101 follower to the middle of its range of motion and press ENTER...")

    def sweep_ranges(self, checkpoint: Callable[[], None] | None = None) -> None:
        # recording runs while the person moves; no checkpoints needed at human speed
        self._prompt(
            f"Move all joints except '{FULL_TURN_JOINT}' one by one through their entire ranges of motion "
            "(recording positions), then press ENTER..."
        )


class _RangeRecorder:
    """Min/max of the present positions (raw ticks) of ``motors``, sampled by the calling thread."""

    def __init__(self, bus: Any, motors: list[str], checkpoint_timeout_s: float, link_timeout_s: float) -> None:
        self.bus, self.motors, self.timeout, self.link_timeout_s = bus, motors, checkpoint_timeout_s, link_timeout_s
        self.mins: dict[str, int] = {}
        self.maxes: dict[str, int] = {}
        self._cond = threading.Condition()
        self._started = 0
        self._completed = 0
        self._stopped = False

    def sample(self) -> None:
        with self._cond:
            self._started += 1
        try:
            pos = with_retry(
                self.bus,
                "reading positions during the range sweep",
                sync_read,
                self.bus,
                "Present_Position",
                self.motors,
                normalize=False,
                timeout_s=self.link_timeout_s,
            )
        except LinkLostError:
            self.stop()
            raise
        for m, v in pos.items():
            self.mins[m] = min(v, self.mins.get(m, v))
            self.maxes[m] = max(v, self.maxes.get(m, v))
        with self._cond:
            self._completed += 1
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def checkpoint(self) -> None:
        """Block until a position read that started after this call has been recorded."""
        with self._cond:
            need = self._started + 1
            ok = self._cond.wait_for(lambda: self._completed >= need or self._stopped, self.timeout)
            if self._completed >= need:
                return
            if not ok:
                raise ConfigError(f"{DEVICE} calibration: no position sample within {self.timeout} s of a checkpoint")
            raise LinkLostError(f"{DEVICE} on {self.bus.port}: position sampling stopped during the range sweep")


def _run_sweep(operator: Any, recorder: _RangeRecorder, sample_period_s: float) -> None:
    takes_checkpoint = bool(inspect.signature(operator.sweep_ranges).parameters)
    failure: list[BaseException] = []

    def sweep() -> None:
        try:
            if takes_checkpoint:
                operator.sweep_ranges(recorder.checkpoint)
            else:
                operator.sweep_ranges()
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    worker = threading.Thread(target=sweep, name="so101-range-sweep", daemon=True)
    recorder.sample()
    worker.start()
    try:
        while worker.is_alive():
            recorder.sample()
            time.sleep(sample_period_s)
        recorder.sample()  # the pose the sweep ended in
    finally:
        recorder.stop()  # releases a checkpoint waiting on a sampler that failed
    if failure:
        raise failure[0]


def calibrate(
    port: str,
    arm_id: str,
    calibration_dir: str | Path | None,
    operator: CalibrationOperator,
    *,
    sample_period_s: float = 0.005,
    checkpoint_timeout_s: float = 30.0,
    link_timeout_s: float = 2.0,
) -> Path:
    """Run lerobot's SO-101 follower calibration on the bus at ``port``; returns the calibration file written.

    Steps as lerobot's ``SOFollower.calibrate`` (see the module docstring). Torque stays off afterwards.
    ``calibration_dir`` ``None`` means lerobot's default folder. Each bus step (idempotent) is retried for
    ``link_timeout_s`` s after a failure before the link counts as lost. Raises :class:`ConfigError` if a joint did not
    move during the sweep, :class:`LinkLostError` if the bus fails.
    """
    from lerobot.motors import MotorCalibration
    from lerobot.motors.feetech import OperatingMode

    path = calibration_file(arm_id, calibration_dir)
    bus = make_bus(port)
    deadline = time.monotonic() + 5 * link_timeout_s  # waiting costs nothing before anything moved
    while True:
        try:
            bus.connect()
            break
        except (*LINK_ERRORS, RuntimeError) as exc:
            try:
                bus.port_handler.closePort()  # lerobot leaves it open when its handshake fails
            except Exception:
                pass
            if time.monotonic() >= deadline:
                raise LinkLostError(f"{DEVICE} on {port}: cannot connect for calibration: {one_line(exc)}") from exc

    def step(what: str, fn: Callable[..., Any], *args: Any) -> Any:
        return with_retry(bus, what, fn, *args, timeout_s=link_timeout_s)

    def prepare() -> None:
        bus.disable_torque()
        for motor in bus.motors:
            bus.write("Operating_Mode", motor, OperatingMode.POSITION.value)

    try:
        step("preparing the servos (torque off, position mode)", prepare)
        operator.hold_middle_pose()
        homing_offsets = step("writing the half-turn homing offsets", bus.set_half_turn_homings)
        recorded = [m for m in bus.motors if m != FULL_TURN_JOINT]
        recorder = _RangeRecorder(bus, recorded, checkpoint_timeout_s, link_timeout_s)
        _run_sweep(operator, recorder, sample_period_s)
        still = [m for m in recorded if recorder.mins[m] == recorder.maxes[m]]
        if still:
            raise ConfigError(
                f"{DEVICE} calibration: joint {still[0]!r} did not move during the range sweep "
                f"(stayed at {recorder.mins[still[0]]} ticks); sweep every joint except {FULL_TURN_JOINT!r}"
            )
        mins, maxes = dict(recorder.mins), dict(recorder.maxes)
        mins[FULL_TURN_JOINT], maxes[FULL_TURN_JOINT] = 0, MAX_TICK
        calibration = {
            motor: MotorCalibration(
                id=m.id,
                drive_mode=0,
                homing_offset=int(homing_offsets[motor]),
                range_min=int(mins[motor]),
                range_max=int(maxes[motor]),
            )
            for motor, m in bus.motors.items()
        }
        step("writing the calibration to the servos", bus.write_calibration, calibration)
        save_calibration(path, calibration)
        log.info("%s: calibration of %r written to the servos and to %s", DEVICE, arm_id, path)
        return path
    finally:
        try:
            bus.disconnect(disable_torque=False)  # torque is already off
        except Exception as exc:  # a dead port must not hide the error that got us here
            log.warning("%s on %s: closing the port failed: %s", DEVICE, port, one_line(exc))


def main(argv: list[str] | None = None) -> int:
    """Console calibration: ``python -m hardware.so101.calibration --port /dev/ttyACM0 --arm-id my_arm``."""
    parser = argparse.ArgumentParser(description="Calibrate an SO-101 follower arm (lerobot's flow and file).")
    parser.add_argument("--port", required=True, help="serial port of the arm's servo bus")
    parser.add_argument("--arm-id", required=True, help="calibration id (file <calibration-dir>/<arm-id>.json)")
    parser.add_argument("--calibration-dir", type=Path, default=None, help="default: lerobot's folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = calibrate(args.port, args.arm_id, args.calibration_dir, ConsoleOperator())
    log.info("calibration saved to %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
