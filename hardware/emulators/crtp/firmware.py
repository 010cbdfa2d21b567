"""The emulated Crazyflie firmware: CRTP services, the supervisor and the commander on a simulated quadrotor.

Everything here runs under the :class:`hardware.emulators.vehicle.RealtimeVehicle` lock: :meth:`Firmware.handle`
from the link thread (one CRTP packet in, replies out), :meth:`Firmware.tick` from the physics thread before each
physics step (the firmware's stabilizer loop: watchdog, setpoint -> vehicle command, log streaming).

Services answered (what ``cflib.crazyflie.Crazyflie.open_link`` needs, then flight):

- link control (port 15): echo (cflib's latency pings), source (the "Bitcraze Crazyflie" magic), the null packet;
- platform (port 13): protocol version :data:`PROTOCOL_VERSION` (12: the supervisor port exists, so cflib 0.1.34
  arms through ``supervisor.send_arming_request``), firmware version string, legacy arming request;
- log (port 5, :mod:`.logblocks`), parameters (port 2, :mod:`.params`), memory (port 4: zero memories);
- commander (ports 3, 7, 8, :mod:`.commander`), localization emergency stop (port 6), supervisor (port 9:
  arming, state bit field, emergency stop and its watchdog), console (port 0: the supervisor's messages).

Supervisor: motors run only when armed. Arming is refused (reply ``success=0`` and a console line
``SUPERVISOR: arming refused: <reason>``) when locked after an emergency stop, tilted more than
``max_arm_tilt`` or outside ``geofence``. The tilt/geofence checks are this emulator's configuration: the real
firmware refuses arming when tumbled and has no geofence. An emergency stop cuts the motors and locks the
supervisor until the firmware restarts (here: the control channel's ``reset``).

Commander watchdog (``commander.c``): a low-level setpoint older than :data:`WDT_TIMEOUT_STABILIZE` (0.5 s) is
replaced by a levelling one (roll = pitch = 0, yaw rate 0, thrust kept; in position/velocity modes the altitude is
held), older than :data:`WDT_TIMEOUT_SHUTDOWN` (2 s) by the null setpoint (motors off). High-level commander
trajectories are generated onboard and are not subject to the watchdog; a low-level setpoint disables the
high-level commander until ``notify_setpoint_stop``.

Mapping to the simulated vehicle's command modes (:class:`rcs.devices.Quadrotor`):

- position / full state / high-level trajectory -> ``command_position`` (full state: position and yaw only);
- velocity (world) -> ``command_position`` of a reference integrated from the velocity (starting where the
  vehicle is when velocity mode begins);
- legacy attitude -> ``command_thrust_rates``: body rates ``K_ATTITUDE * (attitude setpoint - attitude)`` for roll
  and pitch (a proportional attitude loop, as the firmware's attitude PID with kp 6) and the yaw rate as given;
  thrust ``value / 65535 * max collective thrust`` (linear; the real motors' PWM -> thrust map is not);
  in rate mode (``flightmode.stabModeRoll/Pitch`` = 0) the roll/pitch values are the body rates;
- ``motorPowerSet.enable`` = 1 -> ``command_motor_thrusts(m_i / 65535)`` (bypasses the controllers and the
  watchdog, as in the firmware; still only while armed).
"""

from __future__ import annotations

import collections
import logging
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.emulators.crtp import commander as cmd
from hardware.emulators.crtp import packets as p
from hardware.emulators.crtp.logblocks import LogService
from hardware.emulators.crtp.packets import Packet
from hardware.emulators.crtp.params import ParamService
from hardware.emulators.crtp.tables import log_toc, param_toc
from rcs.errors import ActionError
from rcs.geometry import quat_to_euler_rpy, tilt_of, yaw_of

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 12
FIRMWARE_VERSION = "2025.02+rcs-emulator"
WDT_TIMEOUT_STABILIZE = 0.5  # s, COMMANDER_WDT_TIMEOUT_STABILIZE
WDT_TIMEOUT_SHUTDOWN = 2.0  # s, COMMANDER_WDT_TIMEOUT_SHUTDOWN
ESTOP_WATCHDOG_TIMEOUT = 1.0  # s, the localization service's emergency-stop watchdog
K_ATTITUDE = 6.0  # rad/s of body rate per rad of attitude error (the firmware's attitude kp is 6)
Z_HOLD_KP, Z_HOLD_KD = 4.0, 4.0  # 1/s^2, 1/s: altitude hold while levelling (critically damped, 2 rad/s)
TUMBLE_TILT = math.radians(60.0)  # the supervisor's "tumbled" bit (the firmware uses the accelerometer)
FLYING_THRUST = 0.02  # N per rotor: above this the supervisor reports "is flying"

# supervisor port
SUP_CH_INFO, SUP_CH_COMMAND = 0, 1
SUP_GET_STATE, SUP_ARM, SUP_RECOVER, SUP_ESTOP, SUP_ESTOP_WATCHDOG = 0x0C, 0x01, 0x02, 0x03, 0x04
BIT_CAN_ARM, BIT_ARMED, BIT_CAN_FLY, BIT_FLYING, BIT_TUMBLED, BIT_LOCKED = 0, 1, 3, 4, 5, 6
BIT_HL_ACTIVE, BIT_HL_FINISHED, BIT_HL_DISABLED = 8, 9, 10
# localization port
LOC_GENERIC_CH, LOC_ESTOP, LOC_ESTOP_WATCHDOG = 1, 3, 4
# platform port
PLAT_COMMAND_CH, PLAT_VERSION_CH = 0, 1
PLAT_REQUEST_ARMING = 1
VERSION_GET_PROTOCOL, VERSION_GET_FIRMWARE = 0, 1
MAGIC = b"Bitcraze Crazyflie"


@dataclass(frozen=True)
class FirmwareConfig:
    """Emulator-only checks of the supervisor: ``max_arm_tilt`` (rad) and ``geofence`` ((3,) lower, (3,) upper
    corners, m, world) outside which arming is refused."""

    max_arm_tilt: float = math.radians(30.0)
    geofence: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-5.0, -5.0, -0.5), (5.0, 5.0, 3.0))


class Firmware:
    """One emulated Crazyflie firmware on ``robot`` (a connected simulated :class:`rcs.devices.Quadrotor`).

    Args:
        robot: the simulated vehicle (called only under the caller's lock).
        send: sends one packet to the host.
        config: the supervisor's emulator-only checks.
    """

    def __init__(self, robot: Any, send: Callable[[Packet], None], config: FirmwareConfig | None = None) -> None:
        self.robot = robot
        self.config = config or FirmwareConfig()
        self._send = send
        self.time = 0.0  # firmware time (s): the simulated time of the last tick
        self.logs = LogService(log_toc(), lambda: self.time)
        self.params = ParamService(param_toc())
        self.armed = False
        self.locked: str | None = None  # why the supervisor is locked (emergency stop)
        self._setpoint: cmd.Setpoint | None = None
        self._setpoint_time = -math.inf
        self._hl: cmd.Trajectory | None = None
        self._hl_active = False
        self._hl_finished = False
        self._hl_blocked = False  # a low-level setpoint disabled the high-level commander
        self._vel_ref: tuple[np.ndarray, float] | None = None
        self._last_tick = 0.0
        self._thrust_cmd = 0.0  # collective thrust commanded (N), for stabilizer.thrust
        self._estop_deadline: float | None = None
        self.watchdog = "none"  #: "none" (setpoints fresh or none), "level", "shutdown"
        #: (host monotonic s, setpoint kind, values) of the last setpoints received: latency measurements
        self.setpoint_history: collections.deque[tuple[float, str, list[float]]] = collections.deque(maxlen=256)
        #: (firmware ms, host monotonic s) of the last log packets sent
        self.log_history: collections.deque[tuple[int, float]] = collections.deque(maxlen=256)
        self.malformed = 0  #: packets ignored as malformed (bad length, bad values)
        self.unsupported = 0  #: well-formed packets of services or types not emulated

    # -- link -------------------------------------------------------------------------------------------------
    def handle(self, packet: Packet) -> None:
        """Process one packet from the host; malformed packets are counted and ignored, as the firmware drops them."""
        handler = self._handlers.get(packet.port)
        if handler is None:
            self.unsupported += 1
            return
        try:
            replies = handler(self, packet)
        except (struct.error, IndexError, ValueError, UnicodeDecodeError):
            self.malformed += 1
            return
        for reply in replies or ():
            self._send(reply)

    def console(self, text: str) -> None:
        """Print ``text`` on the firmware console (port 0), in packets of at most 30 bytes."""
        raw = text.encode()
        for i in range(0, len(raw), p.MAX_PAYLOAD):
            self._send(Packet(p.CONSOLE, 0, raw[i : i + p.MAX_PAYLOAD]))

    def _linkctrl(self, packet: Packet) -> list[Packet]:
        if packet.channel == 0:  # echo
            return [packet]
        if packet.channel == 1:  # source: the magic string tells cflib to ask for the protocol version
            return [Packet(p.LINKCTRL, 1, MAGIC.ljust(p.MAX_PAYLOAD, b"\0"))]
        if packet.channel == 3:  # null packet (keep-alive, scan probe)
            return [Packet(p.LINKCTRL, 3, b"")]
        return []

    def _platform(self, packet: Packet) -> list[Packet]:
        data = packet.data
        if packet.channel == PLAT_VERSION_CH:
            if data[0] == VERSION_GET_PROTOCOL:
                return [Packet(p.PLATFORM, PLAT_VERSION_CH, bytes([VERSION_GET_PROTOCOL, PROTOCOL_VERSION]))]
            if data[0] == VERSION_GET_FIRMWARE:
                return [Packet(p.PLATFORM, PLAT_VERSION_CH, bytes([VERSION_GET_FIRMWARE]) + FIRMWARE_VERSION.encode())]
            return []
        if packet.channel == PLAT_COMMAND_CH and data[0] == PLAT_REQUEST_ARMING:
            self._request_arming(bool(data[1]))
        return []

    def _mem(self, packet: Packet) -> list[Packet]:
        if packet.channel == 0 and packet.data[0] == 1:  # CMD_INFO_NBR: no memories
            return [Packet(p.MEM, 0, bytes([1, 0]))]
        if packet.channel == 0 and packet.data[0] == 0:  # CMD_INFO_VER
            return [Packet(p.MEM, 0, bytes([0, 1]))]
        self.unsupported += 1
        return []

    def _log(self, packet: Packet) -> list[Packet]:
        return self.logs.handle(packet)

    def _param(self, packet: Packet) -> list[Packet]:
        return self.params.handle(packet)

    # -- supervisor -------------------------------------------------------------------------------------------
    def _supervisor(self, packet: Packet) -> list[Packet]:
        c = packet.data[0]
        if packet.channel == SUP_CH_INFO and c == SUP_GET_STATE:
            return [Packet(p.SUPERVISOR, SUP_CH_INFO, struct.pack("<BH", 0x80 | c, self.bitfield()))]
        if packet.channel == SUP_CH_COMMAND:
            if c == SUP_ARM:
                ok = self._request_arming(bool(packet.data[1]))
                return [Packet(p.SUPERVISOR, SUP_CH_COMMAND, bytes([0x80 | c, int(ok), int(self.armed)]))]
            if c == SUP_RECOVER:
                return [Packet(p.SUPERVISOR, SUP_CH_COMMAND, bytes([0x80 | c, 0, 0]))]
            if c == SUP_ESTOP:
                self.emergency_stop("emergency stop")
            elif c == SUP_ESTOP_WATCHDOG:
                self._estop_deadline = self.time + ESTOP_WATCHDOG_TIMEOUT
        return []

    def _localization(self, packet: Packet) -> list[Packet]:
        if packet.channel == LOC_GENERIC_CH:
            if packet.data[0] == LOC_ESTOP:
                self.emergency_stop("emergency stop")
            elif packet.data[0] == LOC_ESTOP_WATCHDOG:
                self._estop_deadline = self.time + ESTOP_WATCHDOG_TIMEOUT
            else:
                self.unsupported += 1
        else:
            self.unsupported += 1  # external position/pose: the emulator's estimate is the physics
        return []

    def arming_refusal(self) -> str | None:
        """Why arming would be refused now, or ``None``."""
        if self.locked is not None:
            return f"locked after {self.locked}: restart the Crazyflie"
        s = self.robot.read()
        tilt = tilt_of(s.quaternion)
        if tilt > self.config.max_arm_tilt:
            return f"tilted {math.degrees(tilt):.1f} deg > {math.degrees(self.config.max_arm_tilt):.1f} deg"
        lo, hi = np.asarray(self.config.geofence[0]), np.asarray(self.config.geofence[1])
        if np.any(s.position < lo) or np.any(s.position > hi):
            return f"position {np.round(s.position, 2).tolist()} m outside the geofence {lo.tolist()}..{hi.tolist()} m"
        return None

    def _request_arming(self, arm: bool) -> bool:
        if not arm:
            self._disarm()
            return True
        if self.armed:
            return True
        reason = self.arming_refusal()
        if reason is not None:
            self.console(f"SUPERVISOR: arming refused: {reason}\n")
            return False
        self.armed = True
        self._clear_setpoints()
        self.robot.arm()
        self.console("SUPERVISOR: armed\n")
        return True

    def _disarm(self) -> None:
        self.armed = False
        self._clear_setpoints()
        self.robot.disarm()

    def emergency_stop(self, why: str) -> None:
        """Cut the motors and lock the supervisor (until :meth:`restart`)."""
        self._disarm()
        self.locked = why
        self._estop_deadline = None
        self.console(f"SUPERVISOR: {why}, motors stopped, locked\n")

    def restart(self) -> None:
        """A power cycle of the firmware: unlocked, disarmed, log blocks and parameters reset."""
        self._disarm()
        self.locked = None
        self._estop_deadline = None
        self.logs.blocks.clear()
        self.params = ParamService(param_toc())

    def bitfield(self) -> int:
        """The supervisor state bit field (``supervisor.info``, cflib's ``Supervisor.read_bitfield``)."""
        s = self.robot.read()
        bits = 0
        if self.locked is None and not self.armed and self.arming_refusal() is None:
            bits |= 1 << BIT_CAN_ARM
        if self.armed:
            bits |= 1 << BIT_ARMED | 1 << BIT_CAN_FLY
            if float(np.max(s.motor_thrusts)) > FLYING_THRUST:
                bits |= 1 << BIT_FLYING
        if tilt_of(s.quaternion) > TUMBLE_TILT:
            bits |= 1 << BIT_TUMBLED
        if self.locked is not None:
            bits |= 1 << BIT_LOCKED
        if self._hl_active:
            bits |= 1 << BIT_HL_ACTIVE
        if self._hl_finished:
            bits |= 1 << BIT_HL_FINISHED
        if self._hl_blocked or not self.params.get("commander.enHighLevel"):
            bits |= 1 << BIT_HL_DISABLED
        return bits

    # -- commander --------------------------------------------------------------------------------------------
    def _record(self, kind: str, values: list[float]) -> None:
        self.setpoint_history.append((time.monotonic(), kind, values))

    def _set_low_level(self, setpoint: cmd.Setpoint | None, kind: str, values: list[float]) -> None:
        if setpoint is None:
            self.malformed += 1
            return
        self._record(kind, values)
        if isinstance(setpoint, cmd.Velocity) and not isinstance(self._setpoint, cmd.Velocity):
            self._vel_ref = None  # velocity mode begins where the vehicle is
        self._setpoint, self._setpoint_time = setpoint, self.time
        self._hl_active, self._hl, self._hl_blocked = False, None, True

    def _commander(self, packet: Packet) -> list[Packet]:
        if packet.channel != 0:
            self.unsupported += 1
            return []
        sp = cmd.decode_rpyt(
            packet.data,
            rate_roll=self.params.get("flightmode.stabModeRoll") == 0,
            rate_pitch=self.params.get("flightmode.stabModePitch") == 0,
        )
        self._set_low_level(sp, "rpyt", list(struct.unpack("<fffH", packet.data[:14])))
        return []

    def _generic(self, packet: Packet) -> list[Packet]:
        if packet.channel == 1:  # meta commands
            if packet.data[0] == cmd.META_NOTIFY_SETPOINT_STOP:
                (valid_ms,) = struct.unpack("<I", packet.data[1:5])
                # the low-level setpoint stays valid for valid_ms, then the high-level commander may take over
                self._setpoint_time = min(self._setpoint_time, self.time - WDT_TIMEOUT_STABILIZE + valid_ms / 1000)
                self._hl_blocked = False
            return []
        sp = cmd.decode_generic(packet.data)
        if sp is None and packet.data[0] not in (cmd.TYPE_POSITION, cmd.TYPE_VELOCITY_WORLD, cmd.TYPE_FULL_STATE):
            self.unsupported += 1
            return []
        values = list(struct.unpack("<ffff", packet.data[1:17])) if len(packet.data) >= 17 else []
        self._set_low_level(sp, f"generic{packet.data[0]}", values)
        return []

    def _high_level(self, packet: Packet) -> list[Packet]:
        hl = cmd.decode_high_level(packet.data)
        if hl is None:
            self.unsupported += 1
            return []
        self._record(f"hl_{hl.kind}", hl.target.tolist())
        if not self.params.get("commander.enHighLevel"):
            return []
        if hl.kind == "stop":
            self._hl, self._hl_active, self._hl_finished = None, False, True
            self._setpoint, self._setpoint_time = cmd.Stop(), self.time
            return []
        s = self.robot.read()
        here, yaw_here = s.position.copy(), yaw_of(s.quaternion)
        if self._hl is not None and self._hl_active:  # continue from the current reference, as the planner does
            here, yaw_here = self._hl.sample(self.time)
        goal = hl.target.copy()
        if hl.kind in ("takeoff", "land"):
            goal[:2] = here[:2]
        elif hl.relative:
            goal = here + goal
        yaw = yaw_here if hl.yaw is None else hl.yaw
        self._hl = cmd.Trajectory(here, goal, yaw_here, yaw, self.time, hl.duration, hl.linear, hl.kind == "land")
        self._hl_active, self._hl_finished, self._hl_blocked = True, False, False
        self._setpoint, self._setpoint_time = None, -math.inf
        return []

    def _clear_setpoints(self) -> None:
        self._setpoint, self._setpoint_time = None, -math.inf
        self._hl, self._hl_active = None, False
        self._vel_ref = None
        self.watchdog = "none"

    # -- the stabilizer loop ----------------------------------------------------------------------------------
    def tick(self, robot: Any, t: float) -> None:
        """One firmware step at simulated time ``t`` (s): safety, setpoint -> vehicle command, log streaming."""
        self.time = t
        dt = max(t - self._last_tick, 0.0)
        self._last_tick = t
        if self._estop_deadline is not None and t > self._estop_deadline:
            self.emergency_stop("emergency stop watchdog timeout")
        if not self.armed:
            self._thrust_cmd = 0.0
        else:
            try:
                self._control(robot, t, dt)
            except ActionError as e:  # a setpoint the vehicle refuses: motors off rather than a dead firmware
                log.warning("setpoint refused by the vehicle (%s): motors off", e)
                self._setpoint = cmd.Stop()
                robot.command_thrust_rates(0.0, np.zeros(3))
        due = self.logs.due(t)
        if due:
            values = self.log_values(robot)
            ms = int(round(t * 1000))
            for block in due:
                self._send(LogService.data_packet(block, ms, values))
                self.log_history.append((ms, time.monotonic()))

    def _control(self, robot: Any, t: float, dt: float) -> None:
        spec = robot.spec
        if self.params.get("stabilizer.stop"):  # the firmware's "stop the motors" parameter
            self._stop_motors(robot)
            return
        if self.params.get("motorPowerSet.enable"):
            u = np.array([self.params.get(f"motorPowerSet.m{i}") for i in range(1, 5)]) / 65535.0
            robot.command_motor_thrusts(np.clip(u, 0.0, 1.0))
            self._thrust_cmd = float(np.sum(u) * spec.max_thrust)
            return
        if self._hl is not None and self._hl_active:
            position, yaw = self._hl.sample(t)
            if self._hl.finished(t):
                self._hl_finished = True
                if self._hl.landing:  # landed: the planner stops and the motors with it
                    self._hl, self._hl_active = None, False
                    self._stop_motors(robot)
                    return
            robot.command_position(position, yaw)
            self._thrust_cmd = spec.hover_thrust
            return
        sp, age = self._setpoint, t - self._setpoint_time
        if sp is None or isinstance(sp, cmd.Stop) or age > WDT_TIMEOUT_SHUTDOWN:
            self.watchdog = "shutdown" if sp is not None and not isinstance(sp, cmd.Stop) else "none"
            self._stop_motors(robot)
            return
        if age > WDT_TIMEOUT_STABILIZE:
            self.watchdog = "level"
            self._level(robot, sp)
            return
        self.watchdog = "none"
        if isinstance(sp, cmd.Position):
            robot.command_position(sp.position, sp.yaw)
        elif isinstance(sp, cmd.Velocity):
            if self._vel_ref is None:
                s = robot.read()
                self._vel_ref = (s.position.copy(), yaw_of(s.quaternion))
            pos, yaw = self._vel_ref
            self._vel_ref = (pos + sp.velocity * dt, yaw + sp.yaw_rate * dt)
            robot.command_position(*self._vel_ref)
        elif isinstance(sp, cmd.Attitude):
            self._attitude(robot, sp)

    def _stop_motors(self, robot: Any) -> None:
        robot.command_thrust_rates(0.0, np.zeros(3))
        self._thrust_cmd = 0.0

    def _attitude(self, robot: Any, sp: cmd.Attitude) -> None:
        spec = robot.spec
        thrust = sp.thrust * spec.max_collective_thrust
        if sp.rate_mode:
            rates = np.array([sp.roll, sp.pitch, sp.yaw_rate])
        else:
            roll, pitch, _ = quat_to_euler_rpy(robot.read().quaternion)
            rates = np.array([K_ATTITUDE * (sp.roll - roll), K_ATTITUDE * (sp.pitch - pitch), sp.yaw_rate])
        lim = np.asarray(spec.max_body_rate)
        robot.command_thrust_rates(min(thrust, spec.max_collective_thrust), np.clip(rates, -lim, lim))
        self._thrust_cmd = thrust

    def _level(self, robot: Any, sp: cmd.Setpoint) -> None:
        """The watchdog's levelling setpoint: roll = pitch = 0, no yaw rate, thrust kept / altitude held."""
        spec = robot.spec
        if isinstance(sp, cmd.Attitude):
            self._attitude(robot, cmd.Attitude(0.0, 0.0, 0.0, sp.thrust, False))
            return
        s = robot.read()
        z_ref = float(sp.position[2]) if isinstance(sp, cmd.Position) else float(s.position[2])
        if isinstance(sp, cmd.Velocity) and self._vel_ref is not None:
            z_ref = float(self._vel_ref[0][2])
        accel = 9.81 + Z_HOLD_KP * (z_ref - s.position[2]) - Z_HOLD_KD * s.linear_velocity[2]
        tilt = min(tilt_of(s.quaternion), math.radians(60.0))
        thrust = float(np.clip(spec.mass * accel / math.cos(tilt), 0.0, spec.max_collective_thrust))
        roll, pitch, _ = quat_to_euler_rpy(s.quaternion)
        lim = np.asarray(spec.max_body_rate)
        rates = np.clip(np.array([-K_ATTITUDE * roll, -K_ATTITUDE * pitch, 0.0]), -lim, lim)
        robot.command_thrust_rates(thrust, rates)
        self._thrust_cmd = thrust

    # -- telemetry --------------------------------------------------------------------------------------------
    def log_values(self, robot: Any) -> dict[str, float]:
        """Every log variable's value now, in the firmware's units and conventions."""
        s = robot.read()
        spec = robot.spec
        roll, pitch, yaw = np.degrees(quat_to_euler_rpy(s.quaternion))
        w, x, y, z = s.quaternion
        ratios = np.clip(np.asarray(s.motor_thrusts) / spec.max_thrust, 0.0, 1.0) * 65535.0
        gyro = np.degrees(s.angular_velocity)
        return {
            "stateEstimate.x": s.position[0],
            "stateEstimate.y": s.position[1],
            "stateEstimate.z": s.position[2],
            "stateEstimate.vx": s.linear_velocity[0],
            "stateEstimate.vy": s.linear_velocity[1],
            "stateEstimate.vz": s.linear_velocity[2],
            "stateEstimate.roll": roll,
            "stateEstimate.pitch": -pitch,  # the firmware logs the legacy pitch (positive nose up)
            "stateEstimate.yaw": yaw,
            "stateEstimate.qx": x,
            "stateEstimate.qy": y,
            "stateEstimate.qz": z,
            "stateEstimate.qw": w,
            "gyro.x": gyro[0],
            "gyro.y": gyro[1],
            "gyro.z": gyro[2],
            "pm.vbat": 4.1 - 0.4 * float(np.mean(ratios)) / 65535.0,  # a full battery sagging under load
            "pm.state": 0,
            "motor.m1": ratios[0],
            "motor.m2": ratios[1],
            "motor.m3": ratios[2],
            "motor.m4": ratios[3],
            "supervisor.info": self.bitfield(),
            "stabilizer.thrust": self._thrust_cmd / spec.max_collective_thrust * 65535.0,
            "sys.armed": int(self.armed),
        }

    _handlers: dict[int, Callable[[Firmware, Packet], list[Packet]]] = {
        p.LINKCTRL: _linkctrl,
        p.PLATFORM: _platform,
        p.MEM: _mem,
        p.LOG: _log,
        p.PARAM: _param,
        p.SUPERVISOR: _supervisor,
        p.LOCALIZATION: _localization,
        p.COMMANDER: _commander,
        p.COMMANDER_GENERIC: _generic,
        p.SETPOINT_HL: _high_level,
    }
