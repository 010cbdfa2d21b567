"""The STS3215 servo model: firmware semantics of the control table plus the motor physics that drive one joint.

Frames and units: the joint angle ``q`` (rad) is the simulated joint's; the encoder reads
``raw = mounting_offset + q * 4096 / (2 pi)`` ticks (the mounting offset is how the horn was assembled, unknown
to the host); the host sees ``Present_Position = (raw - Homing_Offset) mod 4096`` and its goals are in that same
frame (``raw goal = Goal_Position + Homing_Offset``). Goals are clamped to ``[Min_Position_Limit,
Max_Position_Limit]`` (no clamp when both are 0). Torque (N m) is the motor's output on the joint.

Firmware behaviour modelled: a motion profile (``Goal_Velocity`` ticks/s and ``Acceleration`` x100 ticks/s^2,
0 = servo maximum) moves a setpoint toward the goal; a PD loop (``P_Coefficient``, ``D_Coefficient``) turns the
setpoint error into torque, saturated at ``min(Torque_Limit, Max_Torque_Limit)`` per mille of the stall torque
(scaled by the supply voltage); with torque off the motor is limp and the goal tracks the present position (so
enabling torque holds the pose). Protections: voltage outside the limits (bit 0x01), encoder fault (0x02),
temperature above ``Max_Temperature_Limit`` (0x04), current above ``Protection_Current`` for
``Over_Current_Protection_Time`` (0x08, latched), load above ``Overload_Torque`` % for ``Protection_Time``
(0x20, latched, output limited to ``Protective_Torque`` %); a fault whose bit is set in ``Unloading_Condition``
releases the torque. Latched faults clear when the host enables torque again. Temperature follows a first-order
thermal model heated by the motor current.
"""

from __future__ import annotations

import math

from hardware.emulators.feetech.registers import (
    ERR_ANGLE,
    ERR_OVERELE,
    ERR_OVERHEAT,
    ERR_OVERLOAD,
    ERR_VOLTAGE,
    ControlTable,
)

TICKS_PER_TURN = 4096
TICKS_PER_RAD = TICKS_PER_TURN / (2 * math.pi)
STALL_TORQUE = 2.9  # N m at nominal voltage (the conservative continuous figure of robot-facts.md)
STALL_CURRENT = 2.7  # A
IDLE_CURRENT = 0.03  # A
CURRENT_UNIT = 0.0065  # A per Present_Current count
MAX_SPEED = 3400.0  # ticks/s (about 5.2 rad/s, the no-load speed)
MAX_ACCELERATION = 25400.0  # ticks/s^2 (Acceleration 254)
KP_PER_UNIT = 40.0 / 32  # N m/rad per P_Coefficient count (P = 32 -> 40 N m/rad)
KD_PER_UNIT = 0.03  # N m s/rad per D_Coefficient count
SUPPLY_RESISTANCE = 0.3  # ohm: the supply sags with current
AMBIENT_C = 25.0
THERMAL_RISE_PER_A2 = 60.0 / STALL_CURRENT**2  # deg C steady-state rise per A^2 (stall -> +60 C)
THERMAL_TAU = 60.0  # s
FAULT_KINDS = ("overload", "overheat", "voltage", "angle")


class Servo:
    """One STS3215 on the bus: its :class:`ControlTable` and, when :meth:`step` is called, its motor physics.

    Args:
        servo_id: bus id (1..253).
        mounting_offset: raw encoder ticks at joint angle 0.
        supply_voltage: nominal supply (V): 12 for the follower's servos, 7.4 for the leader's.
    """

    def __init__(self, servo_id: int, mounting_offset: float = 2048.0, supply_voltage: float = 12.0) -> None:
        self.table = ControlTable(servo_id)
        self.mounting_offset = float(mounting_offset)
        self.supply_voltage = float(supply_voltage)
        self.voltage_override: float | None = None  # injected supply fault (V)
        self.sensor_fault = False  # injected encoder fault
        self.blocked = False  # injected overload: an external load the arm process applies
        self.temperature = AMBIENT_C
        self.torque = 0.0  # N m output on the joint
        self._setpoint = 0.0  # profiled setpoint, present frame, ticks
        self._setpoint_vel = 0.0  # ticks/s
        self._latched = 0  # latched fault bits
        self._overload_time = 0.0
        self._overcurrent_time = 0.0
        self._present = 2048.0
        self._angle: float | None = None  # last joint angle from the physics (None: no physics attached)
        self.pending: tuple[int, bytes] | None = None  # REG_WRITE waiting for ACTION
        self.table.set("Present_Voltage", round(10 * supply_voltage))

    @property
    def id(self) -> int:
        return self.table.get("ID")

    # -- host side (called by the bus with its lock held) ---------------------------------------------------
    def bus_write(self, address: int, data: bytes) -> None:
        """Apply a WRITE (or an ACTION of a REG_WRITE) with the firmware's side effects."""
        touched = self.table.host_write(address, data)
        t = self.table
        if "Homing_Offset" in touched and self._angle is not None:  # the next read already uses the new offset
            self._present = (self._raw() - t.get("Homing_Offset")) % TICKS_PER_TURN
            t.set("Present_Position", round(self._present) % TICKS_PER_TURN)
        if "Goal_Position" in touched:
            t.set("Goal_Position", self._clamp_goal(t.get("Goal_Position")))
        if "Torque_Enable" in touched:
            value = t.get("Torque_Enable")
            if value == 128:  # "set the current position as 2048": the firmware rewrites the homing offset
                raw = self._raw()
                t.set("Homing_Offset", round(raw - 2048))
                t.set("Torque_Enable", 0)
            elif value:
                t.set("Torque_Enable", 1)
                self._latched = 0
                self._overload_time = self._overcurrent_time = 0.0
                self._setpoint, self._setpoint_vel = self._present, 0.0
                t.set("Goal_Position", self._clamp_goal(round(self._present)))

    def error_bits(self) -> int:
        """The error byte of this servo's status packets (the Status register)."""
        return self.table.get("Status")

    # -- physics side ---------------------------------------------------------------------------------------
    def _raw(self) -> float:
        if self._angle is None:  # a register-only servo: its raw position is the present one plus the offset
            return self.table.get("Present_Position") + self.table.get("Homing_Offset")
        return self._angle * TICKS_PER_RAD + self.mounting_offset

    def _clamp_goal(self, goal: int) -> int:
        lo, hi = self.table.get("Min_Position_Limit"), self.table.get("Max_Position_Limit")
        if lo == 0 and hi == 0:
            return goal
        return min(max(goal, lo), hi)

    def step(self, angle: float, velocity: float, dt: float) -> float:
        """Advance the firmware by ``dt`` s given the joint ``angle`` (rad) and ``velocity`` (rad/s); update the
        feedback registers; return the motor torque (N m) to apply on the joint until the next step."""
        t = self.table
        self._angle = angle
        raw = angle * TICKS_PER_RAD + self.mounting_offset
        present = (raw - t.get("Homing_Offset")) % TICKS_PER_TURN
        self._present = present
        vel_ticks = velocity * TICKS_PER_RAD
        voltage_nominal = self.voltage_override if self.voltage_override is not None else self.supply_voltage

        torque = 0.0
        enabled = t.get("Torque_Enable") == 1
        if enabled:
            goal = t.get("Goal_Position")
            vmax = float(t.get("Goal_Velocity")) or MAX_SPEED
            vmax = min(abs(vmax), MAX_SPEED)
            amax = 100.0 * t.get("Acceleration") or MAX_ACCELERATION
            self._profile(goal, vmax, amax, dt)
            kp = t.get("P_Coefficient") * KP_PER_UNIT
            kd = t.get("D_Coefficient") * KD_PER_UNIT
            torque = kp * (self._setpoint - present) / TICKS_PER_RAD - kd * velocity
            per_mille = min(t.get("Torque_Limit"), t.get("Max_Torque_Limit"))
            if self._latched & ERR_OVERLOAD:
                per_mille = min(per_mille, 10 * t.get("Protective_Torque"))
            limit = per_mille / 1000.0 * STALL_TORQUE * min(1.0, voltage_nominal / self.supply_voltage)
            torque = max(-limit, min(limit, torque))
        else:
            self._setpoint, self._setpoint_vel = present, 0.0
            t.set("Goal_Position", round(present) % TICKS_PER_TURN)

        current = IDLE_CURRENT + abs(torque) / STALL_TORQUE * STALL_CURRENT
        voltage = voltage_nominal - current * SUPPLY_RESISTANCE
        rise = THERMAL_RISE_PER_A2 * current**2
        self.temperature += dt * (AMBIENT_C + rise - self.temperature) / THERMAL_TAU
        load = round(1000 * torque / STALL_TORQUE)

        # protections
        if abs(load) > 10 * t.get("Overload_Torque") and enabled:
            self._overload_time += dt
            if self._overload_time >= 0.01 * t.get("Protection_Time"):
                self._latched |= ERR_OVERLOAD
        else:
            self._overload_time = 0.0
        if current / CURRENT_UNIT > t.get("Protection_Current") and enabled:
            self._overcurrent_time += dt
            if self._overcurrent_time >= 0.01 * t.get("Over_Current_Protection_Time"):
                self._latched |= ERR_OVERELE
        else:
            self._overcurrent_time = 0.0
        status = self._latched
        if not 0.1 * t.get("Min_Voltage_Limit") <= voltage <= 0.1 * t.get("Max_Voltage_Limit"):
            status |= ERR_VOLTAGE
        if self.temperature > t.get("Max_Temperature_Limit"):
            status |= ERR_OVERHEAT
        if self.sensor_fault:
            status |= ERR_ANGLE
        if status & t.get("Unloading_Condition") and enabled:
            t.set("Torque_Enable", 0)  # the firmware releases the motor
            torque = 0.0
            load = 0

        t.set("Status", status)
        t.set("Present_Position", round(present) % TICKS_PER_TURN)
        t.set("Present_Velocity", round(vel_ticks))
        t.set("Present_Load", load)
        t.set("Present_Voltage", round(10 * voltage))
        t.set("Present_Temperature", round(self.temperature))
        t.set("Present_Current", round(current / CURRENT_UNIT))
        moving = enabled and (abs(self._setpoint - t.get("Goal_Position")) > 0.5 or abs(vel_ticks) > 20)
        t.set("Moving", int(moving))
        self.torque = torque
        return torque

    def _profile(self, goal: float, vmax: float, amax: float, dt: float) -> None:
        """Trapezoidal profile: move the setpoint toward ``goal`` (ticks) within ``vmax``/``amax``."""
        dist = goal - self._setpoint
        if abs(dist) < 0.5 and abs(self._setpoint_vel) < amax * dt:
            self._setpoint, self._setpoint_vel = float(goal), 0.0
            return
        wanted = math.copysign(min(vmax, math.sqrt(2 * amax * abs(dist))), dist)
        dv = max(-amax * dt, min(amax * dt, wanted - self._setpoint_vel))
        self._setpoint_vel += dv
        step = self._setpoint_vel * dt
        if abs(step) >= abs(dist) and step * dist > 0:
            self._setpoint, self._setpoint_vel = float(goal), 0.0
        else:
            self._setpoint += step

    # -- fault injection (emulator side channel) -------------------------------------------------------------
    def inject(self, kind: str) -> None:
        """Cause a fault: ``overload`` (the joint is blocked by an external load), ``overheat`` (the motor is
        10 C above its limit), ``voltage`` (the supply drops below the minimum) or ``angle`` (encoder fault)."""
        if kind == "overload":
            self.blocked = True
        elif kind == "overheat":
            self.temperature = self.table.get("Max_Temperature_Limit") + 10.0
        elif kind == "voltage":
            self.voltage_override = 0.1 * self.table.get("Min_Voltage_Limit") - 1.0
        elif kind == "angle":
            self.sensor_fault = True
        else:
            raise ValueError(f"fault kind={kind!r}: expected one of {', '.join(FAULT_KINDS)}")

    def clear_faults(self) -> None:
        """Remove every injected cause (the motor cooled, supply restored, load removed); latched bits stay
        until the host enables torque again, as on the servo."""
        self.blocked = self.sensor_fault = False
        self.voltage_override = None
        self.temperature = min(self.temperature, AMBIENT_C)
