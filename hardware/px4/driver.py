"""A PX4 multicopter as an :class:`rcs.devices.Quadrotor` (registry name ``hw/px4``), over MAVLink 2 with pymavlink.

Frames: PX4 speaks NED (local world, origin where its estimator started) and FRD (body); rcs speaks ENU/FLU. The
driver converts once, here, with :mod:`rcs.geometry` (:func:`~rcs.geometry.ned_to_enu`,
:func:`~rcs.geometry.quat_ned_frd_to_enu_flu`, :func:`~rcs.geometry.yaw_enu_to_ned`...).

On the wire, per call:

- :meth:`connect`: opens the pymavlink connection (``connection``; PX4 SITL's offboard link is ``udpin:0.0.0.0:14540``,
  the port MAVSDK and MAVROS listen on; ``udpout:host:port`` sends first, e.g. to PX4 SITL's 14580 or the emulator),
  sends our heartbeat (1 Hz, MAV_TYPE_ONBOARD_CONTROLLER) and waits ``connect_timeout_s`` for a PX4 heartbeat.
- :meth:`read`: waits (up to ``link_timeout_s``) for a LOCAL_POSITION_NED newer than the last one read, and returns
  it with the newest ATTITUDE_QUATERNION as a :class:`rcs.types.QuadrotorState` in ENU/FLU, timestamped with the
  monotonic time the position message was received. Motor thrusts come from SERVO_OUTPUT_RAW (PX4 motor order,
  ``(pwm - 1000) / 1000 * spec.max_thrust``, i.e. assuming thrust linear in the output: a PX4 with
  ``THR_MDL_FAC = 0``); ``armed`` from the heartbeat.
- :meth:`arm` / :meth:`disarm`: COMMAND_LONG ``MAV_CMD_COMPONENT_ARM_DISARM`` and its COMMAND_ACK; a refusal raises
  :class:`rcs.errors.DeviceFaultError` with PX4's result and STATUSTEXT reason. Disarm is sent forced (param2 21196):
  rcs's ``disarm`` stops the motors even in the air (its safety layer lands instead). A command is sent at most
  ``COMMAND_TRIES`` times, ``command_timeout_s`` apart, as the MAVLink command protocol retries; no ACK at all is a
  :class:`rcs.errors.LinkLostError`.
- :meth:`command_position`: SET_POSITION_TARGET_LOCAL_NED (position + yaw; velocity, acceleration, yaw rate ignored).
- :meth:`command_thrust_rates`: SET_ATTITUDE_TARGET with the attitude ignored, body rates (FRD) and the normalized
  thrust ``collective_thrust / (spec.num_rotors * spec.max_thrust)`` (0..1, PX4's ``thrust`` field).
- :meth:`command_motor_thrusts`: SET_ACTUATOR_CONTROL_TARGET group 0 with ``controls[i]`` = PX4 motor ``i + 1``
  (0..1). PX4 up to v1.13 applies this in offboard mode through the mixer: with a pass-through mixer loaded the
  controls are the motor outputs. PX4 v1.14 and later removed it (direct motor control there is ROS 2's
  ``ActuatorMotors``, not MAVLink): against such a PX4 these commands do nothing.

Offboard: every setpoint is also PX4's proof of life. Once setpoints have streamed for ``offboard_settle_s`` (PX4
wants the stream present for more than a second before it accepts the mode) the driver asks once for OFFBOARD
(``MAV_CMD_DO_SET_MODE``, main mode 6). A refusal raises :class:`rcs.errors.DeviceFaultError` with PX4's reason from
the setpoint call that notices it, and is not asked again until the stream restarts (a pause over 0.5 s, PX4's
2 Hz). If PX4 leaves offboard on its own (a failsafe, a pilot's switch) the driver does not take it back within the
same stream either. The driver never resends a setpoint by itself: when the caller stops, PX4's offboard-loss
failsafe (``COM_OF_LOSS_T``) takes over, as it should.

Link loss: no message from the autopilot for ``link_timeout_s`` raises :class:`rcs.errors.LinkLostError` naming
``hw/px4`` and the connection on the next call, latched; :meth:`close` always works (it asks PX4 to land if the
vehicle is armed, without waiting).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from hardware.px4 import protocol as px4
from hardware.px4.link import MAV_AUTOPILOT_PX4, MavlinkLink
from rcs.devices import Quadrotor
from rcs.errors import ActionError, ConfigError, DeviceFaultError, LinkLostError, RcsError
from rcs.geometry import (
    enu_to_ned,
    flu_to_frd,
    frd_to_flu,
    ned_to_enu,
    quat_ned_frd_to_enu_flu,
    yaw_enu_to_ned,
)
from rcs.spec import QuadrotorSpec
from rcs.types import QuadrotorState
from rcs.validation import LimitPolicy, limit_policy_of, positive_seconds

log = logging.getLogger(__name__)

DEVICE = "hw/px4"
CONFIG_KEYS = (
    "connection",
    "system_id",
    "spec",
    "limit_policy",
    "link_timeout_s",
    "connect_timeout_s",
    "command_timeout_s",
    "offboard_settle_s",
    "source_system",
    "source_component",
    "baud",
)
#: pymavlink connection schemes the driver accepts (besides a serial device path ``/dev/...``)
CONNECTION_SCHEMES = ("udpin", "udpout", "udp", "tcp", "tcpin")
COMMAND_TRIES = 3
MAV_CMD_NAV_LAND, MAV_CMD_DO_SET_MODE, MAV_CMD_ARM_DISARM = 21, 176, 400
MAV_RESULTS = {0: "ACCEPTED", 1: "TEMPORARILY_REJECTED", 2: "DENIED", 3: "UNSUPPORTED", 4: "FAILED", 5: "IN_PROGRESS"}
MODE_FLAG_ARMED, MODE_FLAG_CUSTOM = 128, 1
#: s: a longer pause between setpoints ends a stream (PX4's 2 Hz proof of life)
STREAM_GAP_S = 0.5


def _resolve_spec(spec: QuadrotorSpec | str | None) -> QuadrotorSpec:
    if isinstance(spec, QuadrotorSpec):
        return spec
    from sim.mujoco.quadrotor import CRAZYFLIE_SPEC

    if spec is None or spec == "crazyflie":
        return CRAZYFLIE_SPEC
    if isinstance(spec, str):
        from rcs.registry import make_robot

        try:
            twin = make_robot(spec)
        except RcsError as e:
            raise ConfigError(f"{DEVICE}: spec={spec!r}: {e}") from None
        try:
            if not isinstance(getattr(twin, "spec", None), QuadrotorSpec):
                raise ConfigError(f"{DEVICE}: spec={spec!r} is not a quadrotor")
            return twin.spec
        finally:
            twin.close()
    raise ConfigError(f"{DEVICE}: spec={spec!r}: expected a QuadrotorSpec, 'crazyflie' or a simulated quadrotor name")


class _OffboardRequest:
    """When to ask PX4 for OFFBOARD within one setpoint stream (see the module docstring)."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self.stream_start = -math.inf
        self.last = -math.inf
        self.state = "waiting"  # waiting | requested | engaged | done
        self.requested_at = -math.inf
        self.tries = 0

    def on_setpoint(self, now: float) -> None:
        if now - self.last > STREAM_GAP_S:
            self.stream_start, self.state, self.tries = now, "waiting", 0
        self.last = now


class Px4Quadrotor(Quadrotor):
    """A PX4 autopilot's vehicle over MAVLink (see the module docstring for the wire behaviour).

    Args:
        connection: pymavlink connection string (default ``udpin:0.0.0.0:14540``, PX4 SITL's offboard port).
        system_id: the autopilot's MAVLink system id (0: the first PX4 heard).
        spec: the vehicle: a :class:`rcs.spec.QuadrotorSpec`, ``"crazyflie"`` (default) or a registered simulated
            quadrotor whose spec to use.
        limit_policy: ``"raise"`` or ``"clip"`` for out-of-limit commands.
        link_timeout_s: s without any message from the autopilot before the link counts as lost.
        connect_timeout_s: s to wait for the first heartbeat.
        command_timeout_s: s to wait for a COMMAND_ACK before resending (``COMMAND_TRIES`` tries in all).
        offboard_settle_s: s of streamed setpoints before asking for OFFBOARD.
        source_system, source_component: our MAVLink ids (default 245 / 191, an onboard computer).
        baud: bit/s when ``connection`` is a serial device (default 921600, PX4's usual TELEM2 rate for a
            companion computer).
    """

    def __init__(
        self,
        connection: str = "udpin:0.0.0.0:14540",
        system_id: int = 0,
        spec: QuadrotorSpec | str | None = None,
        limit_policy: LimitPolicy | str = LimitPolicy.RAISE,
        link_timeout_s: float = 1.0,
        connect_timeout_s: float = 10.0,
        command_timeout_s: float = 1.0,
        offboard_settle_s: float = 1.2,
        source_system: int = 245,
        source_component: int = 191,
        baud: int = 921600,
    ) -> None:
        scheme = connection.split(":", 1)[0] if isinstance(connection, str) else None
        if scheme not in CONNECTION_SCHEMES and not (isinstance(connection, str) and connection.startswith("/dev/")):
            raise ConfigError(
                f"{DEVICE}: connection={connection!r}: expected udpin:host:port, udpout:host:port, tcp:host:port "
                "or a serial device"
            )
        for name, value, low, high in (
            ("system_id", system_id, 0, 255),
            ("source_system", source_system, 1, 255),
            ("source_component", source_component, 0, 255),
            ("baud", baud, 1200, 12_000_000),
        ):
            if type(value) is not int or not low <= value <= high:
                raise ConfigError(f"{DEVICE}: {name}={value!r} must be an integer in {low}..{high}")
        link_timeout_s = positive_seconds(DEVICE, "link_timeout_s", link_timeout_s, 30.0)
        connect_timeout_s = positive_seconds(DEVICE, "connect_timeout_s", connect_timeout_s, 300.0)
        command_timeout_s = positive_seconds(DEVICE, "command_timeout_s", command_timeout_s, 30.0)
        offboard_settle_s = positive_seconds(DEVICE, "offboard_settle_s", offboard_settle_s, 30.0)
        policy = limit_policy_of(DEVICE, limit_policy)
        resolved = _resolve_spec(spec)
        try:
            self._motor_order = px4.px4_motor_order(resolved.rotor_positions)
        except ValueError as e:
            raise ConfigError(f"{DEVICE}: spec {resolved.name!r}: {e}") from None
        super().__init__(resolved, policy)
        self.connection = connection
        self.system_id = system_id
        self.link_timeout_s = link_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self.offboard_settle_s = offboard_settle_s
        self.source_system, self.source_component = source_system, source_component
        self.baud = baud
        self._link: MavlinkLink | None = None
        self._failure: RcsError | None = None
        self._last_read = 0
        self._offboard = _OffboardRequest(self.offboard_settle_s)

    @property
    def _name(self) -> str:
        return f"{DEVICE} on {self.connection}"

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        self._failure = None
        self._offboard = _OffboardRequest(self.offboard_settle_s)
        try:
            link = MavlinkLink(self.connection, self.system_id, self.source_system, self.source_component, self.baud)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{self._name}: cannot open the connection: {e}") from None
        deadline = time.monotonic() + self.connect_timeout_s
        with link.cv:
            while link.heartbeat is None and time.monotonic() < deadline:
                link.cv.wait(0.1)
            heartbeat = link.heartbeat
        if heartbeat is None:
            link.close()
            who = f"system {self.system_id}" if self.system_id else "any autopilot"
            raise LinkLostError(f"{self._name}: no heartbeat from {who} within {self.connect_timeout_s} s")
        if heartbeat.msg.autopilot != MAV_AUTOPILOT_PX4:
            link.close()
            raise ConfigError(
                f"{self._name}: system {link.target_system} is autopilot type {heartbeat.msg.autopilot}, not PX4 (12)"
            )
        self._link = link
        self._last_read = link.position_count
        log.info("%s: PX4 system %d", self._name, link.target_system)

    def _close(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        try:
            hb = link.heartbeat
            alive = time.monotonic() - link.last_rx < self.link_timeout_s
            if alive and hb is not None and hb.msg.base_mode & MODE_FLAG_ARMED:
                # leave the vehicle to PX4's Land mode: it descends, detects touchdown and disarms by itself
                self._send_command(link, MAV_CMD_NAV_LAND, (0, 0, 0, math.nan, math.nan, math.nan, math.nan))
        except Exception as e:  # noqa: BLE001 - close() must always work
            log.warning("%s: close: %s", self._name, e)
        finally:
            link.close()

    # -- link health -------------------------------------------------------------------------------------------
    def _live_link(self) -> MavlinkLink:
        if self._failure is not None:
            raise self._failure
        link = self._link
        assert link is not None
        age = time.monotonic() - link.last_rx
        if age > self.link_timeout_s:
            self._failure = LinkLostError(
                f"{self._name}: nothing from system {link.target_system} for {age:.1f} s "
                f"(link_timeout_s {self.link_timeout_s} s)"
            )
            raise self._failure
        return link

    # -- read --------------------------------------------------------------------------------------------------
    def _read(self) -> QuadrotorState:
        link = self._live_link()
        deadline = time.monotonic() + self.link_timeout_s
        with link.cv:
            while (link.position_count == self._last_read or link.attitude is None) and time.monotonic() < deadline:
                link.cv.wait(min(0.05, self.link_timeout_s))
            pos, att, servo, hb = link.position, link.attitude, link.servo, link.heartbeat
            count = link.position_count
        if count == self._last_read or pos is None or att is None:
            link = self._live_link()  # raises if the autopilot went silent
            raise LinkLostError(f"{self._name}: no LOCAL_POSITION_NED/ATTITUDE_QUATERNION for {self.link_timeout_s} s")
        self._last_read = count
        p, a = pos.msg, att.msg
        thrusts = np.zeros(self.spec.num_rotors)
        if servo is not None:
            pwm = [servo.msg.servo1_raw, servo.msg.servo2_raw, servo.msg.servo3_raw, servo.msg.servo4_raw]
            for i, rotor in enumerate(self._motor_order):
                level = (pwm[i] - px4.PWM_MIN) / (px4.PWM_MAX - px4.PWM_MIN)
                thrusts[rotor] = float(np.clip(level, 0.0, 1.0)) * self.spec.max_thrust
        return QuadrotorState(
            timestamp=pos.t,
            position=ned_to_enu(np.array([p.x, p.y, p.z])),
            quaternion=quat_ned_frd_to_enu_flu(np.array([a.q1, a.q2, a.q3, a.q4])),
            linear_velocity=ned_to_enu(np.array([p.vx, p.vy, p.vz])),
            angular_velocity=frd_to_flu(np.array([a.rollspeed, a.pitchspeed, a.yawspeed])),
            motor_thrusts=thrusts,
            armed=bool(hb is not None and hb.msg.base_mode & MODE_FLAG_ARMED),
        )

    # -- commands ----------------------------------------------------------------------------------------------
    def _send_command(self, link: MavlinkLink, command: int, params: tuple[float, ...]) -> tuple[int, float]:
        """COMMAND_LONG with retries; returns (MAV_RESULT, monotonic send time of the first try)."""
        first = time.monotonic()
        for confirmation in range(COMMAND_TRIES):
            sent = time.monotonic()
            link.send("command_long", link.target_system, px4.MAV_COMP_ID_AUTOPILOT1, command, confirmation, *params)
            deadline = sent + self.command_timeout_s
            with link.cv:
                while time.monotonic() < deadline:
                    ack = link.acks.get(command)
                    if ack is not None and ack.t >= sent and ack.msg.result != 5:  # 5: IN_PROGRESS
                        return int(ack.msg.result), first
                    link.cv.wait(0.05)
            self._live_link()
        raise LinkLostError(f"{self._name}: no COMMAND_ACK for command {command} after {COMMAND_TRIES} tries")

    def _refusal(self, link: MavlinkLink, what: str, result: int, since: float) -> DeviceFaultError:
        texts = link.texts_since(since)
        if not texts:  # PX4 sends the reason on its own stream: give it a moment
            time.sleep(0.2)
            texts = link.texts_since(since)
        reason = "; ".join(texts) if texts else "no reason given"
        return DeviceFaultError(
            self._name, "commander", f"{what} refused ({MAV_RESULTS.get(result, result)}): {reason}"
        )

    def _set_armed(self, armed: bool) -> None:
        link = self._live_link()
        force = 0.0 if armed else px4.FORCE_MAGIC
        result, since = self._send_command(link, MAV_CMD_ARM_DISARM, (1.0 if armed else 0.0, force, 0, 0, 0, 0, 0))
        if result != 0:
            raise self._refusal(link, "arming" if armed else "disarming", result, since)
        self._offboard = _OffboardRequest(self.offboard_settle_s)

    def _after_setpoint(self, link: MavlinkLink) -> None:
        """Offboard bookkeeping after each setpoint (see the module docstring)."""
        ob, now = self._offboard, time.monotonic()
        ob.on_setpoint(now)
        hb = link.heartbeat
        in_offboard = hb is not None and px4.split_custom_mode(hb.msg.custom_mode)[0] == px4.MAIN_OFFBOARD
        if ob.state == "waiting" and now - ob.stream_start >= ob.settle_s:
            if in_offboard:
                ob.state = "engaged"
                return
            ob.state, ob.requested_at, ob.tries = "requested", now, ob.tries + 1
            mode = (float(MODE_FLAG_CUSTOM), float(px4.MAIN_OFFBOARD), 0.0, 0.0, 0.0, 0.0, 0.0)
            link.send("command_long", link.target_system, px4.MAV_COMP_ID_AUTOPILOT1, MAV_CMD_DO_SET_MODE, 0, *mode)
            return
        if ob.state == "requested":
            ack = link.acks.get(MAV_CMD_DO_SET_MODE)
            if ack is not None and ack.t >= ob.requested_at:
                if ack.msg.result == 0:
                    ob.state = "engaged"
                    log.info("%s: OFFBOARD", self._name)
                    return
                ob.state = "done"
                raise self._refusal(link, "OFFBOARD mode", int(ack.msg.result), ob.requested_at)
            if now - ob.requested_at > self.command_timeout_s:
                if ob.tries >= COMMAND_TRIES:
                    ob.state = "done"
                    raise LinkLostError(f"{self._name}: no COMMAND_ACK for OFFBOARD after {COMMAND_TRIES} tries")
                ob.state = "waiting"  # resend on the next setpoint
        elif ob.state == "engaged" and not in_offboard and now - ob.requested_at > 2.0:
            ob.state = "done"
            mode = px4.mode_name(*px4.split_custom_mode(hb.msg.custom_mode)) if hb is not None else "?"
            log.warning("%s: PX4 left OFFBOARD (now %s); not asking again in this setpoint stream", self._name, mode)

    def _write_position(self, position: np.ndarray, yaw: float) -> None:
        link = self._live_link()
        p = enu_to_ned(position)
        y = yaw_enu_to_ned(yaw)
        if not (np.isfinite(p).all() and math.isfinite(y)):  # the base class checked; a NaN must never leave
            raise ActionError("position", position.tolist(), "finite values")
        link.send(
            "set_position_target_local_ned",
            link.boot_ms(),
            link.target_system,
            px4.MAV_COMP_ID_AUTOPILOT1,
            px4.MAV_FRAME_LOCAL_NED,
            px4.MASK_POSITION_YAW,
            *(float(x) for x in p),
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            y,
            0.0,
        )
        self._after_setpoint(link)

    def _write_thrust_rates(self, thrust: float, rates: np.ndarray) -> None:
        link = self._live_link()
        normalized = float(thrust) / self.spec.max_collective_thrust
        r = flu_to_frd(rates)
        if not (np.isfinite(r).all() and math.isfinite(normalized)):
            raise ActionError("body_rates", rates.tolist(), "finite values")
        link.send(
            "set_attitude_target",
            link.boot_ms(),
            link.target_system,
            px4.MAV_COMP_ID_AUTOPILOT1,
            px4.AT_ATTITUDE,
            [1.0, 0.0, 0.0, 0.0],
            *(float(x) for x in r),
            normalized,
        )
        self._after_setpoint(link)

    def _write_motor_thrusts(self, u: np.ndarray) -> None:
        link = self._live_link()
        controls = [0.0] * 8
        for i, rotor in enumerate(self._motor_order):
            controls[i] = float(u[rotor])
        if not np.isfinite(controls).all():
            raise ActionError("motor_thrusts", u.tolist(), "finite values")
        link.send(
            "set_actuator_control_target",
            link.boot_ms() * 1000,
            0,
            link.target_system,
            px4.MAV_COMP_ID_AUTOPILOT1,
            controls,
        )
        self._after_setpoint(link)


def make_px4(**config: Any) -> Px4Quadrotor:
    """Registry factory ``hw/px4``: a PX4 vehicle over MAVLink (keys: see :data:`CONFIG_KEYS`)."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{DEVICE}: unknown config key {unknown[0]!r}; accepted keys: {', '.join(CONFIG_KEYS)}")
    return Px4Quadrotor(**config)
