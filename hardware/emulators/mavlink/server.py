"""The PX4 emulator's MAVLink 2 link: one thread that streams telemetry and serves commands and setpoints.

Out (system id ``sysid``, component ``MAV_COMP_ID_AUTOPILOT1``): HEARTBEAT and SYS_STATUS at 1 Hz;
ATTITUDE_QUATERNION (FRD body in the NED world, body rates FRD) and LOCAL_POSITION_NED (m, m/s, NED; origin: the
simulation's world origin, the ground under the start position, as an EKF origin set on the ground) at
``telemetry_hz``; SERVO_OUTPUT_RAW (PX4 motor order, 1000..2000 us linear in thrust) at 10 Hz; STATUSTEXT as the
firmware speaks; COMMAND_ACK for every COMMAND_LONG/COMMAND_INT addressed to it.

In: COMMAND_LONG / COMMAND_INT (see :class:`hardware.emulators.mavlink.firmware.Px4Firmware`; others are answered
``MAV_RESULT_UNSUPPORTED``), SET_POSITION_TARGET_LOCAL_NED (``MAV_FRAME_LOCAL_NED``; position, or velocity when the
position bits are ignored; yaw unless ignored; acceleration, force and yaw rate are not emulated), SET_ATTITUDE_TARGET
(quaternion and/or body rates, normalized thrust), SET_ACTUATOR_CONTROL_TARGET (group 0 as with a pass-through mixer:
``controls[i]`` is PX4 motor ``i + 1``, 0..1). A setpoint with a non-finite used field, a wrong frame or target, or
nothing usable is ignored (and is no proof of life). Malformed bytes are dropped by pymavlink's parser (bad CRC,
unknown id); nothing a peer sends stops the thread.
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from typing import Any

import numpy as np

from hardware.emulators.mavlink.firmware import ACCEPTED, UNSUPPORTED, Px4Firmware
from hardware.px4 import protocol as px4
from rcs.geometry import (
    enu_to_ned,
    flu_to_frd,
    frd_to_flu,
    ned_to_enu,
    quat_enu_flu_to_ned_frd,
    quat_ned_frd_to_enu_flu,
    yaw_ned_to_enu,
)

log = logging.getLogger(__name__)

MAV_TYPE_QUADROTOR, MAV_AUTOPILOT_PX4 = 2, 12
MAV_STATE_STANDBY, MAV_STATE_ACTIVE, MAV_STATE_CRITICAL = 3, 4, 5
MODE_FLAG_CUSTOM, MODE_FLAG_AUTO, MODE_FLAG_GUIDED, MODE_FLAG_STABILIZE, MODE_FLAG_ARMED = 1, 4, 8, 16, 128
#: SYS_STATUS sensors present/enabled/healthy: 3D gyro, accel, mag, abs pressure, attitude, local position (z, xy),
#: motor outputs, pre-arm check
SENSORS = 0x1 | 0x2 | 0x4 | 0x8 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x10000000


class MavlinkServer:
    """Serve ``firmware`` (and its vehicle, under ``lock``) on the pymavlink connection ``conn``.

    Args:
        conn: an open pymavlink connection (``udpin``: replies go to whoever sent last; ``udpout``: to the peer).
        firmware: the emulated PX4.
        lock: the vehicle lock (RealtimeVehicle.lock).
        sysid: the autopilot's MAVLink system id.
        telemetry_hz: rate of ATTITUDE_QUATERNION and LOCAL_POSITION_NED.
        boot_time: monotonic time (s) of "boot": ``time_boot_ms`` counts from it.
    """

    def __init__(
        self, conn: Any, firmware: Px4Firmware, lock: Any, sysid: int, telemetry_hz: float, boot_time: float
    ) -> None:
        self.conn, self.fw, self.lock = conn, firmware, lock
        self.sysid = sysid
        self.period = 1.0 / telemetry_hz
        self.boot_time = boot_time
        self.order = px4.px4_motor_order(firmware.robot.spec.rotor_positions)
        self.bad_packets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="px4-mavlink", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self.conn.close()

    def _ms(self) -> int:
        return int((time.monotonic() - self.boot_time) * 1000) & 0xFFFFFFFF

    # -- loop ------------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        next_telemetry = next_heartbeat = next_servo = time.monotonic()
        fd = self.conn.port.fileno()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_telemetry:
                self._send_telemetry()
                next_telemetry = max(next_telemetry + self.period, now)
            if now >= next_heartbeat:
                self._send_heartbeat()
                next_heartbeat = max(next_heartbeat + 1.0, now)
            if now >= next_servo:
                self._send_servo()
                next_servo = max(next_servo + 0.1, now)
            self._send_texts()
            timeout = max(min(next_telemetry, next_heartbeat, next_servo) - time.monotonic(), 0.0)
            try:
                readable, _, _ = select.select([fd], [], [], timeout)
            except (OSError, ValueError):
                return  # the socket was closed: shutting down
            if readable:
                self._drain()

    def _drain(self) -> None:
        """Read every waiting datagram and parse each on its own: MAVLink over UDP puts whole frames in a datagram,
        so a truncated or corrupt one must not swallow the bytes of the next (a byte-stream parser would wait for
        the length a bad header promised)."""
        sock = self.conn.port
        for _ in range(256):  # bounded: a flood cannot starve the telemetry
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP port unreachable from a vanished peer, or the socket closed on shutdown
            if self.conn.udp_server:  # replies go to the peers heard from lately (pymavlink's udpin bookkeeping)
                self.conn.clients.add(addr)
                self.conn.clients_last_alive[addr] = time.time()
            parser = type(self.conn.mav)(None)
            parser.robust_parsing = True
            try:
                messages = parser.parse_buffer(data) or []
            except Exception as e:  # noqa: BLE001 - a peer's bytes must never stop the link
                self.bad_packets += 1
                log.debug("dropped unparsable datagram: %s", e)
                continue
            for msg in messages:
                try:
                    self._handle(msg)
                except Exception as e:  # noqa: BLE001 - as PX4, ignore what it cannot use
                    self.bad_packets += 1
                    log.warning("ignored %s: %s", msg.get_type(), e)
            if parser.buf_len() > 0:  # an incomplete frame at the end of the datagram
                self.bad_packets += 1

    # -- input -----------------------------------------------------------------------------------------------------
    def _for_me(self, msg: Any) -> bool:
        return getattr(msg, "target_system", 0) in (0, self.sysid)

    def _handle(self, msg: Any) -> None:
        kind = msg.get_type()
        if kind == "BAD_DATA":
            self.bad_packets += 1
        elif kind == "COMMAND_LONG" and self._for_me(msg):
            params = (msg.param1, msg.param2, msg.param3, msg.param4, msg.param5, msg.param6, msg.param7)
            self._command(msg, msg.command, params)
        elif kind == "COMMAND_INT" and self._for_me(msg):
            params = (msg.param1, msg.param2, msg.param3, msg.param4, float(msg.x), float(msg.y), msg.z)
            self._command(msg, msg.command, params)
        elif kind == "SET_POSITION_TARGET_LOCAL_NED" and self._for_me(msg):
            self._position_target(msg)
        elif kind == "SET_ATTITUDE_TARGET" and self._for_me(msg):
            self._attitude_target(msg)
        elif kind == "SET_ACTUATOR_CONTROL_TARGET" and self._for_me(msg):
            self._actuator_target(msg)

    def _command(self, msg: Any, command: int, params: tuple[float, ...]) -> None:
        with self.lock:
            result = self.fw.handle_command(int(command), tuple(float(p) for p in params))
        if result == UNSUPPORTED:
            log.info("command %d unsupported", command)
        self._send_texts()  # the reason first, so that it is there when the ACK arrives
        self.conn.mav.command_ack_send(
            int(command), result, target_system=msg.get_srcSystem(), target_component=msg.get_srcComponent()
        )

    def _position_target(self, msg: Any) -> None:
        if msg.coordinate_frame != px4.MAV_FRAME_LOCAL_NED:
            return
        mask = int(msg.type_mask)
        yaw = None if mask & px4.PT_YAW else float(msg.yaw)
        if yaw is not None and not math.isfinite(yaw):
            return
        yaw_enu = None if yaw is None else yaw_ned_to_enu(yaw)
        if not mask & px4.PT_POSITION:
            p = np.array([msg.x, msg.y, msg.z], dtype=float)
            if np.isfinite(p).all():
                with self.lock:
                    self.fw.handle_setpoint("position", position=ned_to_enu(p), yaw=yaw_enu)
        elif not mask & px4.PT_VELOCITY:
            v = np.array([msg.vx, msg.vy, msg.vz], dtype=float)
            if np.isfinite(v).all():
                with self.lock:
                    self.fw.handle_setpoint("velocity", velocity=ned_to_enu(v), yaw=yaw_enu)

    def _attitude_target(self, msg: Any) -> None:
        mask = int(msg.type_mask)
        if mask & px4.AT_THROTTLE or not math.isfinite(msg.thrust):
            return
        quat = None
        if not mask & px4.AT_ATTITUDE:
            q = np.array(msg.q, dtype=float)
            if not np.isfinite(q).all() or not 0.9 < np.linalg.norm(q) < 1.1:
                return
            quat = quat_ned_frd_to_enu_flu(q)
        rates = None
        if (mask & px4.AT_RATES) != px4.AT_RATES:
            r = np.array([msg.body_roll_rate, msg.body_pitch_rate, msg.body_yaw_rate], dtype=float)
            r[[bool(mask & b) for b in (px4.AT_ROLL_RATE, px4.AT_PITCH_RATE, px4.AT_YAW_RATE)]] = 0.0
            if not np.isfinite(r).all():
                return
            rates = frd_to_flu(r)
        if quat is None and rates is None:
            return
        with self.lock:
            self.fw.handle_setpoint("attitude", quat=quat, rates=rates, thrust=float(msg.thrust))

    def _actuator_target(self, msg: Any) -> None:
        if msg.group_mlx != 0:
            return
        controls = np.array(msg.controls[: len(self.order)], dtype=float)
        if not np.isfinite(controls).all():
            return
        motors = np.zeros(len(self.order))
        motors[list(self.order)] = controls
        with self.lock:
            self.fw.handle_setpoint("actuators", motors=motors)

    # -- output ----------------------------------------------------------------------------------------------------
    def _send_telemetry(self) -> None:
        with self.lock:
            s = self.fw.robot.read()
        q = quat_enu_flu_to_ned_frd(s.quaternion)
        w = flu_to_frd(s.angular_velocity)
        p = enu_to_ned(s.position)  # local origin: the world origin (ground level under the start position)
        v = enu_to_ned(s.linear_velocity)
        ms = self._ms()
        mav = self.conn.mav
        mav.attitude_quaternion_send(ms, *(float(x) for x in q), *(float(x) for x in w))
        mav.local_position_ned_send(ms, *(float(x) for x in p), *(float(x) for x in v))

    def _send_heartbeat(self) -> None:
        with self.lock:
            armed = self.fw.armed
            main, sub, failsafe = self.fw.main, self.fw.sub, self.fw.failsafe
        base = MODE_FLAG_CUSTOM | MODE_FLAG_STABILIZE | (MODE_FLAG_ARMED if armed else 0)
        if main == px4.MAIN_AUTO:
            base |= MODE_FLAG_AUTO | MODE_FLAG_GUIDED
        elif main == px4.MAIN_OFFBOARD:
            base |= MODE_FLAG_GUIDED
        status = MAV_STATE_CRITICAL if failsafe else (MAV_STATE_ACTIVE if armed else MAV_STATE_STANDBY)
        mav = self.conn.mav
        mav.heartbeat_send(MAV_TYPE_QUADROTOR, MAV_AUTOPILOT_PX4, base, px4.custom_mode(main, sub), status)
        # battery unknown: voltage UINT16_MAX, current -1, remaining -1 (MAVLink's "not sent" values)
        mav.sys_status_send(SENSORS, SENSORS, SENSORS, 0, 0xFFFF, -1, -1, 0, 0, 0, 0, 0, 0)

    def _send_servo(self) -> None:
        with self.lock:
            thrusts = self.fw.robot.read().motor_thrusts
            max_thrust = self.fw.robot.spec.max_thrust
        pwm = [0] * 8
        for i, rotor in enumerate(self.order):
            level = float(np.clip(thrusts[rotor] / max_thrust, 0.0, 1.0))
            pwm[i] = int(round(px4.PWM_MIN + level * (px4.PWM_MAX - px4.PWM_MIN)))
        self.conn.mav.servo_output_raw_send(self._ms() * 1000, 0, *pwm)

    def _send_texts(self) -> None:
        while True:
            with self.lock:
                if not self.fw.texts:
                    return
                severity, text = self.fw.texts.popleft()
            self.conn.mav.statustext_send(severity, text.encode()[:50])


__all__ = ["ACCEPTED", "MavlinkServer"]
