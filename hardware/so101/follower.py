"""The SO-101 follower arm as an :class:`rcs.devices.Arm` (registry name ``hw/so101``), on lerobot's Feetech bus.

Same spec as the simulated SO-101 (``sim/so101``: joint names, order, limits, normalized gripper) and the same
kinematics (:class:`sim.mujoco.kinematics.MinkKinematics` on the same MJCF), so a user swaps only the robot
name. Underneath is lerobot's own ``FeetechMotorsBus`` with the servos of lerobot's ``so_follower`` (ids 1-6,
STS3215): arm joints in lerobot's degrees (rad = deg2rad(degrees), 0 = middle of the calibrated range), the
gripper in lerobot's 0..100 (normalized width = value / 100, 0 closed).

Per control tick:

- :meth:`read`: one sync read of Present_Position (all six servos), timestamped with ``time.monotonic()`` when
  it returns; one sync read of Present_Velocity (rad/s = steps/s * 2 pi / 4096); Present_Load every
  ``effort_every`` reads (default every read; efforts in between repeat the last value), converted from the
  servo's 0.1 % of full torque to N m with the spec's 2.9 N m (an estimate: the servo measures motor current, not
  joint torque); the Status register every ``status_every`` reads (default 10). TCP from forward kinematics.
- :meth:`command_joint_positions`: one sync write of the five arm goals (no reply packet, as lerobot does).
  Before it (after :class:`rcs.devices.Arm` checked the spec limits): the target is checked against each servo's
  calibrated range, which the servo would otherwise clamp silently (``limit_policy``: raise, or clip), and each
  joint's step from the last read position (read afresh if no read came since the last command) is clipped to
  ``max_relative_target`` rad (default 0.5; ``None`` disables it), as lerobot's ``max_relative_target``. These
  two guards count their clips in :attr:`SO101Follower.guard_report`; :attr:`clip_report` counts the spec's.
- :meth:`command_gripper`: one sync write of the gripper goal alone, sent at once (nothing is cached).

Connect: the calibration file is loaded and checked (:mod:`hardware.so101.calibration`), lerobot's bus handshake
pings the six servos, the servos' calibration registers must equal the file (else a one-line error says to
recalibrate, torque never enabled), a servo already in fault is refused, then lerobot's SO follower settings are
written with torque off (return delay, acceleration, position mode, PID 16/0/32, gripper torque and current
caps), every goal is set to the present position (no jump) and torque is enabled.

Faults and link loss: a Status bit (voltage, angle sensor, overheat, overcurrent, overload) on any servo turns
torque off on all servos (one sync write, which needs no reply from a faulted servo) and raises
:class:`rcs.errors.DeviceFaultError` naming the joint and the reason; the fault is latched: every later call
raises it again until :meth:`close`. A serial failure (port gone, no reply within lerobot's packet timeout) is
retried (idempotent operations only, input flushed) for ``link_timeout_s`` (default 1 s: a busy host can miss
a 50 ms reply deadline without the arm being gone); if it persists, :class:`rcs.errors.LinkLostError` names the
port and the operation, also latched. :meth:`close` after either never raises. Replies are checked before use
(every servo answered in full; an arm joint reads within 10 deg of its calibrated range; a Status fault is
confirmed by a second read), because scservo_sdk matches replies by servo id only and a late reply after a
timeout would otherwise be taken for the answer to the next request.

Torque on close (``torque_on_close``): ``"release"`` (default, as lerobot's ``disable_torque_on_disconnect``):
every goal is set to the present position, held ``close_hold_s`` (0.3 s) so a motion in progress stops under
control, then torque is released. The SO-101 then sags under gravity onto whatever is below it: park it in its
rest pose before closing. Releasing is the default because a held servo with no program watching it can overheat
(a gripper squeezing an object draws stall current indefinitely) and its faults would go unnoticed. ``"hold"``
keeps torque on at the present position (the arm stays up; use only while someone watches it).
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hardware.so101 import calibration as cal
from hardware.so101.motors import (
    ARM_MOTORS,
    DEVICE,
    FULL_TURN_JOINT,
    GRIPPER,
    LINK_ERRORS,
    MAX_TICK,
    RESOLUTION,
    connect_retried,
    make_bus,
    one_line,
    sync_read,
    with_retry,
)
from rcs.devices import Arm, Kinematics
from rcs.errors import ConfigError, DeviceFaultError, LinkLostError, NotConnectedError
from rcs.types import ArmState
from rcs.validation import ClipReport, LimitPolicy, enforce_bounds, limit_policy_of, positive_seconds
from sim.mujoco.arm import SO101

log = logging.getLogger(__name__)

#: Status register (65) bits of the STS3215, the same as its status-packet error bits.
STATUS_BITS: tuple[tuple[int, str], ...] = (
    (0x01, "input voltage out of range"),
    (0x02, "angle sensor error"),
    (0x04, "overheating"),
    (0x08, "overcurrent"),
    (0x20, "overload"),
)
_LATCHED = 0x08 | 0x20  # overcurrent and overload stay set in the servo until torque is enabled again
_CONNECT_TIMEOUTS = 5  # the handshake is retried for this many link timeouts: at connect, waiting costs nothing
_TICK_RAD = 2 * np.pi / RESOLUTION  # velocity register: encoder steps per second
_CAL_SLACK = 2 * 2 * np.pi / MAX_TICK  # rad, two encoder ticks in lerobot's degrees mapping
_LOAD_FULL = 1000.0  # Present_Load unit: 0.1 % of full torque
_ARM_NAMES = tuple(name for name, _ in ARM_MOTORS)
_TORQUE_ON_CLOSE = ("release", "hold")
CONFIG_KEYS = (
    "port",
    "arm_id",
    "calibration_dir",
    "limit_policy",
    "max_relative_target",
    "status_every",
    "effort_every",
    "link_timeout_s",
    "torque_on_close",
    "close_hold_s",
)


def _status_reason(status: int) -> str:
    return ", ".join(text for bit, text in STATUS_BITS if status & bit) or f"status 0x{status:02x}"


class SO101Follower(Arm):
    """An SO-101 follower arm on its Feetech bus (see the module docstring for what each call does on the wire).

    Args:
        port: serial port of the arm's bus (e.g. ``/dev/ttyACM0``).
        arm_id: lerobot calibration id (file ``<calibration_dir>/<arm_id>.json``).
        calibration_dir: folder of lerobot calibration files (default: lerobot's folder for ``so_follower``).
        limit_policy: ``"raise"`` (default) or ``"clip"`` for targets outside the spec or calibrated limits.
        max_relative_target: rad, largest step of a joint target from the last read position (``None``: off).
        status_every: poll the servos' Status register every this many reads.
        effort_every: read Present_Load every this many reads.
        link_timeout_s: s, how long a bus operation is retried after it first fails before the link counts as lost.
        torque_on_close: ``"release"`` or ``"hold"``.
        close_hold_s: s, how long ``"release"`` holds the present position before releasing.
    """

    sim_twin = "sim/so101"  # the spec is the simulated SO-101's calibrated ranges

    def __init__(
        self,
        port: str,
        arm_id: str = "rcs_follower",
        calibration_dir: str | Path | None = None,
        limit_policy: LimitPolicy | str = LimitPolicy.RAISE,
        max_relative_target: float | None = 0.5,
        status_every: int = 10,
        effort_every: int = 1,
        link_timeout_s: float = 1.0,
        torque_on_close: str = "release",
        close_hold_s: float = 0.3,
    ) -> None:
        if not isinstance(port, str) or not port:
            raise ConfigError(f"{DEVICE}: port={port!r} must be a non-empty serial port path")
        if not isinstance(arm_id, str) or not arm_id or "/" in arm_id:
            raise ConfigError(f"{DEVICE}: arm_id={arm_id!r} must be a non-empty name without '/'")
        policy = limit_policy_of(DEVICE, limit_policy)
        if max_relative_target is not None and not (
            isinstance(max_relative_target, (int, float)) and 0 < max_relative_target <= np.pi
        ):
            raise ConfigError(f"{DEVICE}: max_relative_target={max_relative_target!r} must be in (0, pi] rad or None")
        for name, value, low in (
            ("status_every", status_every, 1),
            ("effort_every", effort_every, 1),
        ):
            if type(value) is not int or value < low:
                raise ConfigError(f"{DEVICE}: {name}={value!r} must be an integer >= {low}")
        link_timeout_s = positive_seconds(DEVICE, "link_timeout_s", link_timeout_s, 30)
        if torque_on_close not in _TORQUE_ON_CLOSE:
            raise ConfigError(f"{DEVICE}: torque_on_close={torque_on_close!r} must be one of {list(_TORQUE_ON_CLOSE)}")
        if not isinstance(close_hold_s, (int, float)) or not 0 <= close_hold_s <= 5:
            raise ConfigError(f"{DEVICE}: close_hold_s={close_hold_s!r} must be within 0..5 s")
        super().__init__(SO101.spec, policy)
        self.port, self.arm_id = port, arm_id
        self.calibration_dir = Path(calibration_dir) if calibration_dir is not None else None
        self.max_relative_target = None if max_relative_target is None else float(max_relative_target)
        self.status_every, self.effort_every, self.link_timeout_s = status_every, effort_every, link_timeout_s
        self.torque_on_close, self.close_hold_s = torque_on_close, float(close_hold_s)
        self._bus: Any = None
        self._failure: Exception | None = None  # latched DeviceFaultError / LinkLostError
        self._reads = 0
        self._last_q = np.zeros(self.spec.dof)
        self._fresh = False  # whether _last_q was read after the last joint command
        #: the driver's own guards beyond the spec limits that :attr:`clip_report` counts: targets clipped to the
        #: calibrated range (``limit_policy="clip"``) and steps clipped to ``max_relative_target``
        self.guard_report = ClipReport()
        self._efforts = np.zeros(self.spec.dof)
        self._cal_lower = self.spec.lower.copy()
        self._cal_upper = self.spec.upper.copy()
        self._plausible_deg: dict[str, tuple[float, float]] = {}  # joint -> lerobot degrees a reading can take

    # -- description ----------------------------------------------------------------------------------------
    @cached_property
    def kinematics(self) -> Kinematics:
        """TCP kinematics on the simulated SO-101's MJCF (base frame ``spec.base_frame``, TCP site ``tcp``)."""
        import mujoco

        from sim.mujoco.kinematics import MinkKinematics
        from sim.mujoco.simulation import MODELS_DIR

        model = mujoco.MjModel.from_xml_path(str(MODELS_DIR / SO101.robot_model))
        return MinkKinematics(model, self.spec.joint_names, self.spec.tcp_frame, self.spec.base_frame)

    @property
    def calibration_file(self) -> Path:
        """The lerobot calibration file this arm uses."""
        return cal.calibration_file(self.arm_id, self.calibration_dir)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        from lerobot.motors.feetech import OperatingMode

        path = self.calibration_file
        if not path.is_file():
            raise ConfigError(
                f"{DEVICE}: no calibration file {path} for arm_id {self.arm_id!r}; "
                + cal.recalibrate_hint(self.port, self.arm_id)
            )
        calibration = cal.load_calibration(path)  # refuses a file for another arm before the bus is opened
        bus = make_bus(self.port, calibration)
        try:  # lerobot's handshake (ping ids 1-6, model numbers, same firmware); a ping lost to a busy host is
            # not a missing servo
            connect_retried(bus.connect, bus, _CONNECT_TIMEOUTS * self.link_timeout_s)
        except (*LINK_ERRORS, RuntimeError) as exc:
            self._diagnose_handshake(calibration)  # a servo in fault fails lerobot's ping: name it
            raise ConfigError(f"{DEVICE}: cannot connect on {self.port}: {one_line(exc)}") from exc
        self._bus, self._failure, self._reads = bus, None, 0
        try:
            cal.check_motor_calibration(bus, calibration, path, self.arm_id, self.link_timeout_s)
            self._poll_status(at_connect=True)  # a servo already in fault is never given torque
            self._cal_lower, self._cal_upper = self._calibrated_limits(calibration)
            self._plausible_deg = {
                name: (-half - 10.0, half + 10.0)
                for name in _ARM_NAMES
                if name != FULL_TURN_JOINT
                for half in [(calibration[name].range_max - calibration[name].range_min) / 2 * 360 / MAX_TICK]
            }
            self._call("configuring the servos", self._configure, OperatingMode.POSITION.value)
            self._read()
        except BaseException:
            self._drop_bus()
            raise

    def _diagnose_handshake(self, calibration: dict[str, Any]) -> None:
        """After a failed handshake: raise DeviceFaultError if a servo answers with a fault in its Status.

        A status packet with an error bit makes lerobot's ping report the servo as missing; a sync read ignores
        the error byte, so the Status register still tells which servo and why. Returns if nothing is found.
        """
        bus = make_bus(self.port, calibration)
        try:
            bus.connect(handshake=False)
        except (*LINK_ERRORS, RuntimeError):
            return
        self._bus, self._failure = bus, None
        try:
            self._poll_status(at_connect=True)
        except LinkLostError:
            pass  # no answer at all: lerobot's handshake error says more
        finally:
            self._drop_bus()

    def _configure(self, position_mode: int) -> None:
        bus = self._bus
        bus.disable_torque()
        bus.configure_motors()
        for motor in bus.motors:  # lerobot's SOFollower.configure
            bus.write("Operating_Mode", motor, position_mode)
            bus.write("P_Coefficient", motor, 16)
            bus.write("I_Coefficient", motor, 0)
            bus.write("D_Coefficient", motor, 32)
        bus.write("Max_Torque_Limit", GRIPPER, 500)  # 50 % of max torque: a stalled gripper must not burn out
        bus.write("Protection_Current", GRIPPER, 250)
        bus.write("Overload_Torque", GRIPPER, 25)
        present = sync_read(bus, "Present_Position", normalize=False)
        bus.sync_write("Goal_Position", present, normalize=False)  # torque on must not jump to a stale goal
        bus.enable_torque()

    def _calibrated_limits(self, calibration: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Per arm joint, the calibrated range in rad (lerobot's degrees mapping), intersected with the spec."""
        lo, hi = [], []
        for name in _ARM_NAMES:
            c = calibration[name]
            mid = (c.range_min + c.range_max) / 2
            lo.append(np.deg2rad((c.range_min - mid) * 360 / MAX_TICK))
            hi.append(np.deg2rad((c.range_max - mid) * 360 / MAX_TICK))
        return np.maximum(np.array(lo), self.spec.lower), np.minimum(np.array(hi), self.spec.upper)

    def _close(self) -> None:
        bus, failure = self._bus, self._failure
        if bus is None:
            return
        try:
            if failure is None:
                present = with_retry(
                    bus, "reading Present_Position", sync_read, bus, "Present_Position", normalize=False, timeout_s=0.5
                )
                bus.sync_write("Goal_Position", present, normalize=False)  # stop any motion under control
                if self.torque_on_close == "release":
                    time.sleep(self.close_hold_s)
                    self._torque_off()
            elif isinstance(failure, DeviceFaultError):
                self._torque_off()  # already off; repeated in case a packet was lost
        except Exception as exc:  # close never raises: the link may be dead
            log.warning(
                "%s on %s: close could not %s torque: %s", DEVICE, self.port, self.torque_on_close, one_line(exc)
            )
        finally:
            self._drop_bus()

    def _drop_bus(self) -> None:
        bus, self._bus = self._bus, None
        _close_port(bus)

    # -- per tick -------------------------------------------------------------------------------------------
    def _read(self) -> ArmState:
        self._check_usable()
        bus = self._bus
        if self._reads % self.status_every == 0:
            self._poll_status()
        pos = self._call("reading Present_Position", self._read_positions)
        timestamp = time.monotonic()
        vel = self._call(
            "reading Present_Velocity",
            sync_read,
            bus,
            "Present_Velocity",
            _ARM_NAMES,
            normalize=False,
        )
        if self._reads % self.effort_every == 0:
            load = self._call("reading Present_Load", sync_read, bus, "Present_Load", _ARM_NAMES, normalize=False)
            self._efforts = np.array([load[n] for n in _ARM_NAMES], dtype=np.float64) / _LOAD_FULL * self._max_effort
        self._reads += 1
        q = np.deg2rad(np.array([pos[n] for n in _ARM_NAMES], dtype=np.float64))
        self._last_q, self._fresh = q, True
        tcp_p, tcp_q = self.kinematics.forward(q)
        return ArmState(
            timestamp=timestamp,
            joint_positions=q,
            joint_velocities=np.array([vel[n] for n in _ARM_NAMES], dtype=np.float64) * _TICK_RAD,
            joint_efforts=self._efforts.copy(),
            gripper=float(np.clip(pos[GRIPPER] / 100.0, 0.0, 1.0)),
            tcp_position=tcp_p,
            tcp_quaternion=tcp_q,
        )

    def _read_positions(self) -> dict[str, float]:
        """Present_Position of all six servos (lerobot units), checked for plausibility.

        A joint reading more than 10 deg outside its calibrated range is not where the arm can be: it is a stray
        reply of another register taken for the position (a late packet after a timeout); it is raised as a
        link error, so the read is retried after the port is drained.
        """
        pos = sync_read(self._bus, "Present_Position")
        for name, (lo, hi) in self._plausible_deg.items():
            if not lo <= pos[name] <= hi:
                raise ConnectionError(
                    f"implausible Present_Position {pos[name]:.1f} deg of {name} (calibrated {lo + 10:.1f}.."
                    f"{hi - 10:.1f} deg)"
                )
        return pos

    @cached_property
    def _max_effort(self) -> np.ndarray:
        return np.array([j.max_effort for j in self.spec.joints])

    def _write_joint_positions(self, q: np.ndarray) -> None:
        self._check_usable()
        # The servo clamps a goal beyond its calibrated range without a word: refuse or clip it here instead. The
        # slack of 2 ticks keeps a target at the spec limit valid when the recorded range ends a tick short of it.
        q = enforce_bounds(
            "joint_positions",
            q,
            self._cal_lower - _CAL_SLACK,
            self._cal_upper + _CAL_SLACK,
            self.limit_policy,
            self.guard_report,
            self.spec.joint_names,
            f"rad (calibrated range of {DEVICE} {self.arm_id!r})",
        )
        if self.max_relative_target is not None:
            if not self._fresh:  # no read since the last command: the step is measured from where the arm is now
                pos = self._call(
                    "reading Present_Position",
                    sync_read,
                    self._bus,
                    "Present_Position",
                    _ARM_NAMES,
                )
                self._last_q = np.deg2rad(np.array([pos[n] for n in _ARM_NAMES], dtype=np.float64))
            step = self.max_relative_target
            limited = np.clip(q, self._last_q - step, self._last_q + step)
            if not np.array_equal(limited, q):
                i = int(np.argmax(np.abs(q - limited)))
                message = (
                    f"clipped joint_positions[{self.spec.joint_names[i]}]={q[i]:.4g} to "
                    f"{limited[i]:.4g} rad (max_relative_target {step} rad from {self._last_q[i]:.4g})"
                )
                self.guard_report.add("max_relative_target", message)
                count = self.guard_report.counts.get("max_relative_target", 0)
                if count in (1, 10, 100) or count % 1000 == 0:  # a far leader clips every tick: log sparsely
                    log.info("%s (%d clips so far)", message, count)
                q = limited
        goals = {name: float(np.rad2deg(v)) for name, v in zip(_ARM_NAMES, q, strict=True)}
        self._fresh = False
        self._call("writing Goal_Position", self._bus.sync_write, "Goal_Position", goals)

    def _write_gripper(self, width: float) -> None:
        self._check_usable()
        self._call("writing the gripper Goal_Position", self._bus.sync_write, "Goal_Position", {GRIPPER: 100.0 * width})

    # -- faults ---------------------------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._bus is None:
            raise NotConnectedError(f"{DEVICE} on {self.port} is not connected")

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one (idempotent) bus operation, retried for ``link_timeout_s``; a lost link is latched."""
        try:
            return with_retry(self._bus, what, fn, *args, timeout_s=self.link_timeout_s, **kwargs)
        except LinkLostError as exc:
            self._failure = exc
            raise
        except RuntimeError as exc:  # lerobot raises this for a status packet with an error bit set
            self._poll_status()  # names the servo and its reason if its Status register says
            self._failure = DeviceFaultError(DEVICE, "bus", f"{what}: {one_line(exc)}")
            self._torque_off()
            raise self._failure from exc

    def _poll_status(self, at_connect: bool = False) -> None:
        """Read every servo's Status; on any fault bit: torque off on all servos, latch and raise
        :class:`DeviceFaultError` naming the first faulty joint (others are named in the reason)."""
        status = self._call("reading Status", sync_read, self._bus, "Status", normalize=False)
        if not any(status.values()):
            return
        # a fault is acted on when a second read confirms it: one stray byte must not stop the arm
        again = self._call("reading Status", sync_read, self._bus, "Status", normalize=False)
        faulty = [(name, s & again[name]) for name, s in status.items() if s & again[name]]
        if not faulty:
            log.warning("%s on %s: Status %s not confirmed by a second read; ignored", DEVICE, self.port, status)
            return
        self._torque_off()
        name, s = faulty[0]
        reason = f"{_status_reason(s)} (servo id {self._bus.motors[name].id})"
        reason += "".join(f"; also {other}: {_status_reason(s2)}" for other, s2 in faulty[1:])
        if at_connect and any(s2 & _LATCHED for _, s2 in faulty):
            # the servo keeps an overload/overcurrent until torque is enabled again, which this driver does not
            # do to a servo in fault; a power cycle clears it
            reason += "; the fault is latched in the servo: power-cycle the arm to clear it"
        self._failure = DeviceFaultError(DEVICE, name, reason + "; torque released on all servos")
        raise self._failure

    def _torque_off(self) -> None:
        """Torque off on every servo: first one sync write (no reply needed, so a faulted servo cannot hold it up:
        all servos let go at once), then an acknowledged write per servo in case that packet was lost. A faulted
        servo acknowledges with its error bit set, which lerobot raises as RuntimeError: the write still took."""
        bus = self._bus
        try:
            bus.sync_write("Torque_Enable", 0)
        except Exception as exc:
            log.error("%s on %s: could not release torque: %s", DEVICE, self.port, one_line(exc))
            return
        for motor in bus.motors:
            try:
                bus.write("Torque_Enable", motor, 0, num_retry=2)
            except RuntimeError:
                pass
            except Exception as exc:
                log.error("%s on %s: releasing torque of %s: %s", DEVICE, self.port, motor, one_line(exc))
                return


def _close_port(bus: Any) -> None:
    try:
        bus.port_handler.closePort()
    except Exception as exc:  # a port whose other end died may fail to close; it is released either way
        log.debug("%s on %s: closing the port: %s", DEVICE, bus.port, one_line(exc))


def make_so101_follower(**config: Any) -> SO101Follower:
    """Registry factory ``"hw/so101"``: the SO-101 follower arm. Keys: :data:`CONFIG_KEYS` (``port`` required)."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{DEVICE}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(CONFIG_KEYS)}")
    if "port" not in config:
        raise ConfigError(f"{DEVICE}: option port is required (the arm's serial port, e.g. /dev/ttyACM0)")
    return SO101Follower(**config)
