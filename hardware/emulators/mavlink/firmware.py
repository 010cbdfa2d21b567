"""PX4's commander and offboard logic as the emulator reproduces it, driving a simulated multirotor.

Everything here runs under :attr:`hardware.emulators.vehicle.RealtimeVehicle.lock`: :meth:`Px4Firmware.tick` on the
physics thread before each step, the ``handle_*`` methods on the MAVLink thread. Positions are kept in the rcs
frames (world ENU, body FLU) internally; the MAVLink thread converts to and from PX4's NED/FRD with
:mod:`rcs.geometry`. The simulated vehicle is commanded through its public :class:`rcs.devices.Quadrotor` API
only (``arm``, ``disarm``, ``command_position``, ``command_thrust_rates``, ``command_motor_thrusts``) and, for the
test hand, :class:`rcs.devices.VehicleStateControl`.

What PX4 behaviour is reproduced (numbers are PX4 parameter defaults, all overridable in :class:`Px4Params`):

- Modes: Hold (``AUTO.LOITER``, the mode at boot), Takeoff (``AUTO.TAKEOFF``, climbs to ``MIS_TAKEOFF_ALT`` or the
  command's altitude, then Hold), Land (``AUTO.LAND``, descends at ``MPC_LAND_SPEED``; disarms ``COM_DISARM_LAND``
  s after touchdown), Offboard. Modes that need a manual control input (Manual, Altitude, Position, Stabilized,
  Acro) are refused: the emulator has no RC.
- Arming checks: tilt beyond ``FD_FAIL_R``/``FD_FAIL_P`` (the failure detector) and a vehicle outside the
  geofence (``GF_MAX_HOR_DIST``/``GF_MAX_VER_DIST`` from home) deny arming with a STATUSTEXT reason; arming in
  Offboard needs the offboard signal; ``param2 = 21196`` forces. Disarming in the air is denied unless forced.
- Offboard: the signal is "present" once setpoints have streamed for ``offboard_settle_s`` (PX4's user guide: the
  vehicle accepts offboard after it has received the 2 Hz "proof of life" for more than a second) with no gap
  over 0.5 s (2 Hz) and the last one younger than ``COM_OF_LOSS_T``; the mode switch is refused without it. In
  Offboard, setpoints older than ``COM_OF_LOSS_T`` trigger the failsafe ``offboard_loss_action`` (``"land"``:
  PX4's pre-1.14 ``COM_OBL_ACT`` default for a vehicle without RC; ``"hold"``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.px4 import protocol as px4
from rcs.errors import RcsError
from rcs.geometry import quat_conjugate, quat_multiply, quat_normalize, tilt_of, yaw_of

log = logging.getLogger(__name__)

# MAV_RESULT values (common.xml)
ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED, FAILED = 0, 1, 2, 3, 4
# MAV_CMD values (common.xml)
CMD_NAV_LAND, CMD_NAV_TAKEOFF, CMD_DO_SET_MODE, CMD_ARM_DISARM = 21, 22, 176, 400
#: the longest gap (s) between two setpoints of a "stream": PX4's 2 Hz proof of life
MAX_SETPOINT_GAP_S = 0.5


@dataclass
class Px4Params:
    """The PX4 parameters the emulator honours (PX4 defaults unless noted).

    Attributes:
        com_of_loss_t: s, ``COM_OF_LOSS_T``: offboard setpoints older than this are a lost signal.
        offboard_settle_s: s of streamed setpoints before offboard is available (PX4 user guide: > 1 s).
        offboard_loss_action: ``"land"`` or ``"hold"`` (see the module docstring).
        fd_fail_deg: deg, ``FD_FAIL_R``/``FD_FAIL_P``: tilt beyond which arming is denied.
        gf_max_hor_dist: m from home (0 disables), ``GF_MAX_HOR_DIST`` (PX4 default 0; emulator default 10).
        gf_max_ver_dist: m above home (0 disables), ``GF_MAX_VER_DIST`` (PX4 default 0; emulator default 10).
        takeoff_alt: m, ``MIS_TAKEOFF_ALT`` (PX4 default 2.5; emulator default 1.0 for a small indoor vehicle).
        land_speed: m/s, ``MPC_LAND_SPEED`` (PX4 default 0.7; emulator default 0.5).
        disarm_land_s: s, ``COM_DISARM_LAND``: disarm this long after touchdown.
        attitude_gain: 1/s, ``MC_ROLL_P``/``MC_PITCH_P`` (6.5), attitude error to rate setpoint.
    """

    com_of_loss_t: float = 1.0
    offboard_settle_s: float = 1.0
    offboard_loss_action: str = "land"
    fd_fail_deg: float = 60.0
    gf_max_hor_dist: float = 10.0
    gf_max_ver_dist: float = 10.0
    takeoff_alt: float = 1.0
    land_speed: float = 0.5
    disarm_land_s: float = 2.0
    attitude_gain: float = 6.5


@dataclass
class _Hand:
    """The test hand: holds the vehicle at ``position + velocity * (t - t0)`` (ENU) with orientation ``quat``."""

    position: np.ndarray
    velocity: np.ndarray
    quat: np.ndarray
    t0: float


class Px4Firmware:
    """PX4's commander, navigator and offboard handling around one simulated quadrotor (see module docstring).

    Args:
        robot: the connected simulated :class:`rcs.devices.Quadrotor` (also a ``VehicleStateControl``).
        params: PX4 parameters.
        clock: the time source (s) for setpoint ages and timeouts.
    """

    LANDED_HEIGHT = 0.05  # m above home: below this and slow, the land detector reports landed
    LANDED_SPEED = 0.2  # m/s

    def __init__(self, robot: Any, params: Px4Params | None = None, clock: Any = time.monotonic) -> None:
        self.robot = robot
        self.params = params or Px4Params()
        self.clock = clock
        s = robot.read()
        self.home = s.position.copy()
        self.main, self.sub = px4.MAIN_AUTO, px4.SUB_AUTO_LOITER
        self.texts: deque[tuple[int, str]] = deque(maxlen=32)  # (MAV_SEVERITY, text) for the MAVLink thread
        self.failsafe = False
        # offboard setpoint stream
        self._sp_kind: str | None = None  # "position" | "velocity" | "attitude" | "actuators"
        self._sp: dict[str, Any] = {}
        self._sp_stream_start = -math.inf
        self._sp_last = -math.inf
        self.setpoint_applied_at = -math.inf
        self._sp_seq = 0  # increments per received setpoint; the benchmark reads which one was applied
        self.applied_seq = 0
        # flight state
        self._hold: tuple[np.ndarray, float] | None = None  # (position ENU, yaw) in Hold
        self._target: tuple[np.ndarray, float] | None = None  # takeoff target
        self._land_z: float | None = None
        self._landed_since: float | None = None
        self._vel_sp_pos: np.ndarray | None = None
        self.hand: _Hand | None = None
        self._takeoff_alt = self.params.takeoff_alt
        #: benchmark: when the newest setpoint arrived and when the vehicle first used it (clock s)
        self.setpoint_received_at = -math.inf

    # -- state --------------------------------------------------------------------------------------------------
    @property
    def armed(self) -> bool:
        return bool(self.robot.read().armed)

    def landed(self, state: Any | None = None) -> bool:
        s = state or self.robot.read()
        return bool(
            s.position[2] - self.home[2] < self.LANDED_HEIGHT and np.linalg.norm(s.linear_velocity) < self.LANDED_SPEED
        )

    def offboard_signal(self, now: float | None = None) -> bool:
        """Whether PX4 would consider the offboard control signal present."""
        now = self.clock() if now is None else now
        p = self.params
        return (
            self._sp_kind is not None
            and now - self._sp_last < p.com_of_loss_t
            and self._sp_last - self._sp_stream_start >= p.offboard_settle_s
        )

    def _say(self, severity: int, text: str) -> None:
        log.info("statustext: %s", text)
        self.texts.append((severity, text))

    def _set_mode(self, main: int, sub: int = 0) -> None:
        s = self.robot.read()
        self.main, self.sub = main, sub
        self._target = self._land_z = None
        self._landed_since = None
        self._hold = (s.position.copy(), yaw_of(s.quaternion))
        if main == px4.MAIN_AUTO and sub == px4.SUB_AUTO_TAKEOFF:
            self._target = (np.array([s.position[0], s.position[1], self.home[2] + self._takeoff_alt]), self._hold[1])
        if main == px4.MAIN_AUTO and sub == px4.SUB_AUTO_LAND:
            self._land_z = float(s.position[2])
        if main == px4.MAIN_OFFBOARD:
            self._vel_sp_pos = None
            self.setpoint_applied_at = -math.inf
        log.info("mode %s", px4.mode_name(main, sub))

    # -- commands (MAVLink thread) ---------------------------------------------------------------------------------
    def handle_command(self, command: int, params: tuple[float, ...]) -> int:
        """Execute a COMMAND_LONG; returns the MAV_RESULT (reasons go to :attr:`texts` as STATUSTEXT)."""
        if command == CMD_ARM_DISARM:
            return self._arm_disarm(params[0] > 0.5, params[1] == px4.FORCE_MAGIC)
        if command == CMD_NAV_TAKEOFF:
            alt = params[6]
            # param7 is AMSL; the emulator's home is at 0 m AMSL, so it is the height above home
            self._takeoff_alt = self.params.takeoff_alt if not math.isfinite(alt) or alt <= 0 else float(alt)
            self._set_mode(px4.MAIN_AUTO, px4.SUB_AUTO_TAKEOFF)
            return ACCEPTED
        if command == CMD_NAV_LAND:
            self._set_mode(px4.MAIN_AUTO, px4.SUB_AUTO_LAND)
            return ACCEPTED
        if command == CMD_DO_SET_MODE:
            return self._do_set_mode(params)
        return UNSUPPORTED

    def _arm_disarm(self, arm: bool, force: bool) -> int:
        s = self.robot.read()
        if not arm:
            if s.armed and not force and not self.landed(s):
                self._say(4, "Disarming denied: not landed")
                return DENIED
            self.robot.disarm()
            return ACCEPTED
        if s.armed:
            return ACCEPTED
        if not force:
            reason = self._arming_check(s)
            if reason is not None:
                self._say(2, f"Arming denied: {reason}")
                return DENIED
        self.robot.arm()
        if self.main == px4.MAIN_AUTO and self.sub == px4.SUB_AUTO_LAND:
            self.main, self.sub = px4.MAIN_AUTO, px4.SUB_AUTO_LOITER  # armed after a landing: into Hold
        self._set_mode(self.main, self.sub)  # re-anchor Hold/Takeoff at the present position
        return ACCEPTED

    def _arming_check(self, s: Any) -> str | None:
        p = self.params
        tilt = math.degrees(tilt_of(s.quaternion))
        if tilt > p.fd_fail_deg:
            return f"tilt {tilt:.0f} deg > FD_FAIL_R/P {p.fd_fail_deg:.0f} deg"
        offset = s.position - self.home
        horizontal = float(np.hypot(offset[0], offset[1]))
        if p.gf_max_hor_dist > 0 and horizontal > p.gf_max_hor_dist:
            return f"outside geofence ({horizontal:.1f} m > {p.gf_max_hor_dist:g} m)"
        if p.gf_max_ver_dist > 0 and offset[2] > p.gf_max_ver_dist:
            return f"above geofence ({offset[2]:.1f} m > {p.gf_max_ver_dist:g} m)"
        if self.main == px4.MAIN_OFFBOARD and not self.offboard_signal():
            return "no offboard signal"
        return None

    def _do_set_mode(self, params: tuple[float, ...]) -> int:
        base, main, sub = int(params[0]), int(params[1]), int(params[2])
        if not base & 1:  # MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
            self._say(4, "Mode change denied: custom modes only")
            return DENIED
        name = px4.mode_name(main, sub)
        if main == px4.MAIN_OFFBOARD:
            if not self.offboard_signal():
                self._say(4, "Offboard rejected: no offboard signal")
                return TEMPORARILY_REJECTED
            self._set_mode(main)
            self.failsafe = False
            return ACCEPTED
        if main == px4.MAIN_AUTO and sub in (px4.SUB_AUTO_LOITER, px4.SUB_AUTO_TAKEOFF, px4.SUB_AUTO_LAND):
            self._set_mode(main, sub)
            self.failsafe = False
            return ACCEPTED
        if main in (px4.MAIN_MANUAL, px4.MAIN_ALTCTL, px4.MAIN_POSCTL, px4.MAIN_STABILIZED, px4.MAIN_ACRO):
            self._say(4, f"{name} rejected: no manual control input")
            return TEMPORARILY_REJECTED
        self._say(4, f"{name} rejected: not emulated")
        return TEMPORARILY_REJECTED

    # -- setpoints (MAVLink thread; already converted to ENU/FLU and checked finite) ----------------------------------
    def handle_setpoint(self, kind: str, **values: Any) -> None:
        """Store an offboard setpoint of ``kind`` (``position``: ``position`` ENU m + ``yaw`` rad or None;
        ``velocity``: ``velocity`` ENU m/s + ``yaw``; ``attitude``: ``quat`` (FLU in ENU) or None, ``rates`` FLU
        rad/s or None, ``thrust`` normalized 0..1; ``actuators``: ``motors`` (n,) 0..1 in the spec's order)."""
        now = self.clock()
        if now - self._sp_last > MAX_SETPOINT_GAP_S:
            self._sp_stream_start = now  # a gap over 2 Hz: the proof of life starts again
        self._sp_last = self.setpoint_received_at = now
        if kind == "velocity" and self._sp_kind != "velocity":
            self._vel_sp_pos = None
        self._sp_kind, self._sp = kind, values
        self._sp_seq += 1

    # -- physics thread ------------------------------------------------------------------------------------------
    def tick(self, robot: Any, sim_time: float) -> None:
        """One firmware cycle before a physics step of ``dt`` = the vehicle period (called by RealtimeVehicle)."""
        try:
            self._tick(robot)
        except RcsError as e:  # a setpoint the vehicle refuses must not stop the physics
            log.warning("firmware: %s", e)

    def _tick(self, robot: Any) -> None:
        now = self.clock()
        if self.hand is not None:
            h = self.hand
            robot.set_vehicle_state(h.position + h.velocity * (now - h.t0), h.quat, h.velocity, np.zeros(3))
            return
        s = robot.read()
        if not s.armed:
            return
        if self.main == px4.MAIN_OFFBOARD:
            if now - self._sp_last > self.params.com_of_loss_t:
                action = self.params.offboard_loss_action
                self._say(2, f"Failsafe: offboard lost, {'landing' if action == 'land' else 'holding'}")
                self._set_mode(px4.MAIN_AUTO, px4.SUB_AUTO_LAND if action == "land" else px4.SUB_AUTO_LOITER)
                self.failsafe = True
            else:
                self._offboard(robot, s, now)
                return
        if self.main == px4.MAIN_AUTO and self.sub == px4.SUB_AUTO_TAKEOFF and self._target is not None:
            target, yaw = self._target
            robot.command_position(target, yaw)
            if abs(s.position[2] - target[2]) < 0.1:
                self._say(6, "Takeoff detected, holding")
                self._set_mode(px4.MAIN_AUTO, px4.SUB_AUTO_LOITER)
                self._hold = (target, yaw)
            return
        if self.main == px4.MAIN_AUTO and self.sub == px4.SUB_AUTO_LAND:
            self._land(robot, s, now)
            return
        # Hold: keep the anchored position in the air; on the ground the motors idle
        if self._hold is not None and not self.landed(s):
            robot.command_position(*self._hold)

    def _land(self, robot: Any, s: Any, now: float) -> None:
        if self._land_z is None:
            self._land_z = float(s.position[2])
        if self.landed(s):
            if self._landed_since is None:
                self._landed_since = now
                self._say(6, "Landing detected")
                robot.command_thrust_rates(0.0, np.zeros(3))  # ground contact: motors stop
            elif now - self._landed_since >= self.params.disarm_land_s:
                robot.disarm()
                self._say(6, "Disarmed by landing")
                self._set_mode(px4.MAIN_AUTO, px4.SUB_AUTO_LOITER)
            return
        self._landed_since = None
        dt = getattr(robot, "onboard_dt", 0.002)
        self._land_z = max(self._land_z - self.params.land_speed * dt, float(self.home[2]) - 0.2)
        assert self._hold is not None
        xy = self._hold[0]
        robot.command_position(np.array([xy[0], xy[1], self._land_z]), self._hold[1])

    def _offboard(self, robot: Any, s: Any, now: float) -> None:
        sp, spec = self._sp, robot.spec
        if self.setpoint_applied_at < self._sp_last:
            self.setpoint_applied_at = now
            self.applied_seq = self._sp_seq
        yaw = sp.get("yaw")
        yaw = yaw_of(s.quaternion) if yaw is None else yaw
        if self._sp_kind == "position":
            robot.command_position(sp["position"], yaw)
        elif self._sp_kind == "velocity":
            if self._vel_sp_pos is None:
                self._vel_sp_pos = s.position.copy()
            self._vel_sp_pos = self._vel_sp_pos + sp["velocity"] * getattr(robot, "onboard_dt", 0.002)
            robot.command_position(self._vel_sp_pos, yaw)
        elif self._sp_kind == "attitude":
            rates = np.zeros(3) if sp["rates"] is None else np.asarray(sp["rates"], dtype=float)
            if sp["quat"] is not None:
                # PX4's attitude controller (quaternion P law): rate = 2 k sign(w) vec(q^-1 q_sp)
                e = quat_multiply(quat_conjugate(s.quaternion), quat_normalize(sp["quat"]))
                rates = rates + 2.0 * self.params.attitude_gain * np.sign(e[0] or 1.0) * e[1:]
            lim = np.asarray(spec.max_body_rate)
            thrust = float(np.clip(sp["thrust"], 0.0, 1.0)) * spec.max_collective_thrust
            robot.command_thrust_rates(thrust, np.clip(rates, -lim, lim))
        elif self._sp_kind == "actuators":
            robot.command_motor_thrusts(np.clip(sp["motors"], 0.0, 1.0))

    # -- test hand (control channel) ---------------------------------------------------------------------------------
    def hold_by_hand(self, position: np.ndarray, quat: np.ndarray, velocity: np.ndarray) -> None:
        """Carry the vehicle: from ``position`` (ENU m) at ``velocity`` (ENU m/s) with orientation ``quat``."""
        self.hand = _Hand(np.asarray(position, float), np.asarray(velocity, float), quat_normalize(quat), self.clock())
        self.robot.set_vehicle_state(self.hand.position, self.hand.quat, self.hand.velocity, np.zeros(3))

    def release(self) -> None:
        """Let go of the vehicle (it falls, or rests where it is)."""
        if self.hand is not None:
            h = self.hand
            self.robot.set_vehicle_state(
                h.position + h.velocity * (self.clock() - h.t0), h.quat, np.zeros(3), np.zeros(3)
            )
        self.hand = None
