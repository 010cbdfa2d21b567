"""The quadrotor safety filter: geofence, altitude ceiling, tilt, thrust and body-rate limits for every mode.

Limits come from the vehicle's spec (body-rate and thrust limits); everything site-specific (geofence,
ceiling, speeds) comes from :class:`QuadrotorSafetyConfig`, never from constants in this file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rcs.errors import ConfigError
from rcs.geometry import quat_to_matrix, tilt_of, yaw_of
from rcs.safety.base import hold_reason, short_repr
from rcs.safety.interventions import REPORT_TOL, InterventionLog, format_distinct
from rcs.safety.limits import AxisLimiter
from rcs.spec import QuadrotorSpec, WorkspaceBox
from rcs.types import Command, QuadrotorState


@dataclass(frozen=True)
class QuadrotorSafetyConfig:
    """Per-vehicle, per-site settings of :class:`QuadrotorSafetyFilter` (world frame, SI units).

    Attributes:
        control_dt: control period (s).
        geofence: box (``frame="world"``) the vehicle and its position setpoints must stay in.
        max_altitude: ceiling (m, world z) for the vehicle and its setpoints; lowers the geofence top.
        max_tilt: largest angle (rad) between body z and world z before the filter levels the vehicle.
        max_speed: largest setpoint speed (m/s): position setpoints move at most ``max_speed * dt`` per tick.
        max_acceleration: largest setpoint acceleration (m/s^2).
        max_yaw_rate: largest yaw setpoint rate (rad/s); ``None`` uses the spec's yaw body-rate limit.
        max_thrust_ratio: fraction (0, 1] of the spec's maximum collective thrust allowed.
        min_airborne_thrust_ratio: while airborne, collective thrust stays >= this fraction of hover thrust
            (thrust is never cut in the air).
        ground_z: world z (m) of the ground under the vehicle.
        airborne_height: the vehicle counts as airborne above ``ground_z + airborne_height`` (m).
        fence_lookahead_s: the fence is enforced on ``position + velocity * lookahead`` (s) for direct
            thrust modes, where the filter has no setpoint to clip.
        level_gain: body-rate gain (1/s) used to level the vehicle when the tilt limit is exceeded.
    """

    control_dt: float
    geofence: WorkspaceBox
    max_altitude: float
    max_tilt: float = math.radians(35.0)
    max_speed: float = 1.0
    max_acceleration: float = 4.0
    max_yaw_rate: float | None = None
    max_thrust_ratio: float = 1.0
    min_airborne_thrust_ratio: float = 0.3
    ground_z: float = 0.0
    airborne_height: float = 0.03
    fence_lookahead_s: float = 0.5
    level_gain: float = 5.0

    def __post_init__(self) -> None:
        if not self.control_dt > 0:
            raise ConfigError(f"control_dt={self.control_dt} must be > 0")
        if self.geofence.frame != "world":
            raise ConfigError(f"geofence.frame={self.geofence.frame!r} must be 'world'")
        if not self.max_altitude > self.geofence.lower[2]:
            raise ConfigError(f"max_altitude={self.max_altitude} must be above the geofence floor")
        if not 0 < self.max_tilt < math.pi / 2:
            raise ConfigError(f"max_tilt={self.max_tilt} must be in (0, pi/2) rad")
        if not 0 < self.max_thrust_ratio <= 1:
            raise ConfigError(f"max_thrust_ratio={self.max_thrust_ratio} must be in (0, 1]")
        for name in ("max_speed", "max_acceleration", "level_gain"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be > 0")


def _wrap(angle: float) -> float:
    return float((angle + math.pi) % (2.0 * math.pi) - math.pi)


class _QuadMode(Protocol):
    names: tuple[str, ...]

    def limit(self, values: np.ndarray, state: QuadrotorState, log: InterventionLog) -> np.ndarray: ...


class _PositionMode:
    """``"position"`` setpoints: geofence and ceiling, speed/acceleration limits and yaw-rate limit."""

    names: tuple[str, ...] = ("x", "y", "z", "yaw")

    def __init__(self, spec: QuadrotorSpec, cfg: QuadrotorSafetyConfig) -> None:
        dt = cfg.control_dt
        lower = np.array([*cfg.geofence.lower, -np.inf])
        upper = np.array([*cfg.geofence.upper[:2], min(cfg.geofence.upper[2], cfg.max_altitude), np.inf])
        yaw_rate = spec.max_body_rate[2] if cfg.max_yaw_rate is None else cfg.max_yaw_rate
        self.dt = dt
        self.max_tilt = cfg.max_tilt
        self.limiter = AxisLimiter(
            self.names,
            lower,
            upper,
            np.array([cfg.max_speed * dt] * 3 + [yaw_rate * dt]),
            np.array([cfg.max_acceleration * dt * dt] * 3 + [np.inf]),
        )
        self.active = False

    def reset(self, state: QuadrotorState) -> None:
        pos = np.asarray(state.position, dtype=np.float64)
        start = np.clip(pos, self.limiter.lower[:3], self.limiter.upper[:3])
        vel = np.asarray(state.linear_velocity, dtype=np.float64) * self.dt
        # The vehicle's own velocity is kept only if it is within the setpoint limits.
        step = np.clip(vel, -self.limiter.max_step[:3], self.limiter.max_step[:3])
        self.limiter.reset(np.array([*start, yaw_of(state.quaternion)]), np.array([*step, 0.0]))
        self.active = True

    def limit(self, values: np.ndarray, state: QuadrotorState, log: InterventionLog) -> np.ndarray:
        if not self.active:
            self.reset(state)
        target = values.copy()
        target[3] = self.limiter.q[3] + _wrap(target[3] - self.limiter.q[3])  # shortest way round
        if tilt_of(state.quaternion) > self.max_tilt:
            log.record("tilt", f"tilt {math.degrees(tilt_of(state.quaternion)):.1f} deg: setpoint held")
            target = self.limiter.q.copy()
        out = self.limiter.limit(target, log)
        self.limiter.commit(out)
        out = out.copy()
        out[3] = _wrap(out[3])
        return out


class _ThrustRatesMode:
    """``"thrust_rates"``: thrust within [airborne minimum, maximum], body rates within the spec, levelling."""

    names: tuple[str, ...] = ("collective_thrust", "roll_rate", "pitch_rate", "yaw_rate")

    def __init__(self, spec: QuadrotorSpec, cfg: QuadrotorSafetyConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.rate_limit = np.asarray(spec.max_body_rate, dtype=np.float64)

    def limit(self, values: np.ndarray, state: QuadrotorState, log: InterventionLog) -> np.ndarray:
        lo_t = _min_thrust(self.spec, self.cfg, state)
        hi_t = self.cfg.max_thrust_ratio * self.spec.max_collective_thrust
        lower = np.array([lo_t, *(-self.rate_limit)])
        upper = np.array([hi_t, *self.rate_limit])
        out = _clip_logged(values, lower, upper, self.names, log, {0: "thrust"}, "body_rate")
        tilt = tilt_of(state.quaternion)
        if tilt > self.cfg.max_tilt:
            level = _levelling_rates(state.quaternion, self.cfg.level_gain)
            out[1:3] = np.clip(level, -self.rate_limit[:2], self.rate_limit[:2])
            log.record("tilt", f"tilt {math.degrees(tilt):.1f} deg > {math.degrees(self.cfg.max_tilt):.1f}: levelling")
        return out


class _MotorMode:
    """``"motor_thrusts"``: normalized rotor commands within [airborne minimum, maximum ratio]; with ``speed``,
    ``"motor_rpms"``: normalized rotor speeds, whose thrust is the square, within the square roots of those."""

    def __init__(self, spec: QuadrotorSpec, cfg: QuadrotorSafetyConfig, speed: bool = False) -> None:
        self.spec, self.cfg, self.speed = spec, cfg, speed
        self.names: tuple[str, ...] = tuple(f"motor_{i}" for i in range(spec.num_rotors))

    def limit(self, values: np.ndarray, state: QuadrotorState, log: InterventionLog) -> np.ndarray:
        n = self.spec.num_rotors
        lo = _min_thrust(self.spec, self.cfg, state) / (n * self.spec.max_thrust)
        lower, upper = np.full(n, lo), np.full(n, self.cfg.max_thrust_ratio)
        if self.speed:
            lower, upper = np.sqrt(lower), np.sqrt(upper)
        return _clip_logged(values, lower, upper, self.names, log, {}, "thrust")


def _min_thrust(spec: QuadrotorSpec, cfg: QuadrotorSafetyConfig, state: QuadrotorState) -> float:
    airborne = float(state.position[2]) > cfg.ground_z + cfg.airborne_height
    return cfg.min_airborne_thrust_ratio * spec.hover_thrust if airborne else 0.0


def _levelling_rates(quaternion: np.ndarray, gain: float) -> np.ndarray:
    """Body rates (roll, pitch) that rotate body z back towards world z."""
    rot = quat_to_matrix(np.asarray(quaternion, dtype=np.float64))
    z_body_in_world = rot[:, 2]
    axis_world = np.cross(z_body_in_world, np.array([0.0, 0.0, 1.0]))
    s = float(np.linalg.norm(axis_world))
    if s < 1e-9:
        return np.zeros(2)
    angle = math.atan2(s, float(z_body_in_world[2]))
    axis_body = rot.T @ (axis_world / s)
    return gain * angle * axis_body[:2]


def _clip_logged(
    values: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    names: tuple[str, ...],
    log: InterventionLog,
    reason_by_index: dict[int, str],
    default_reason: str,
) -> np.ndarray:
    out = np.clip(values, lower, upper)
    changed = np.flatnonzero(np.abs(out - values) > REPORT_TOL)
    for reason in sorted({reason_by_index.get(int(i), default_reason) for i in changed}):
        i = int(next(j for j in changed if reason_by_index.get(int(j), default_reason) == reason))
        value, low, high = format_distinct(values[i], lower[i], upper[i])
        log.record(reason, f"{names[i]}={value} outside [{low}, {high}]; clipped to the bound")
    return out


#: The modes that command the rotors directly (no body rates to level the vehicle with).
_MOTOR_MODES = ("motor_thrusts", "motor_rpms")


class QuadrotorSafetyFilter:
    """Safety filter for every quadrotor command mode.

    Shared by all modes: non-finite or malformed commands become a position hold; a ``"disarm"`` command
    while airborne becomes a landing setpoint (thrust is never cut in the air). Per mode:

    - ``"position"``: setpoints clipped to the geofence and ceiling, speed/acceleration/yaw-rate limited;
      a tilt beyond ``max_tilt`` freezes the setpoint.
    - ``"thrust_rates"``: thrust within [airborne minimum, maximum], body rates within the spec; a tilt beyond
      ``max_tilt`` overrides roll/pitch rates with levelling rates.
    - ``"motor_thrusts"`` and ``"motor_rpms"``: rotor commands within [airborne minimum, maximum] (speeds: their
      square roots); a tilt beyond ``max_tilt`` hands over to a position hold (the onboard position loop levels
      the vehicle).

    For the direct modes, a predicted fence or ceiling violation (position + velocity * lookahead) hands the
    vehicle to a position hold at the nearest point inside the fence until the policy's commands are safe
    again.
    """

    def __init__(self, spec: QuadrotorSpec, config: QuadrotorSafetyConfig) -> None:
        self.spec = spec
        self.config = config
        self.position = _PositionMode(spec, config)
        self.modes: dict[str, _QuadMode] = {
            "position": self.position,
            "thrust_rates": _ThrustRatesMode(spec, config),
            "motor_thrusts": _MotorMode(spec, config),
            "motor_rpms": _MotorMode(spec, config, speed=True),
        }
        self.log = InterventionLog(f"quadrotor safety ({spec.name})")
        fence = config.geofence
        self._fence_lower = np.asarray(fence.lower, dtype=np.float64)
        self._fence_upper = np.array([*fence.upper[:2], min(fence.upper[2], config.max_altitude)])

    def names(self, mode: str) -> tuple[str, ...]:
        """Element names of a mode's command vector."""
        return self.modes[mode].names

    def reset(self, state: QuadrotorState) -> None:
        """Start from a measured state (position setpoints start at the current position)."""
        self.position.reset(state)
        self.position.active = False

    def airborne(self, state: QuadrotorState) -> bool:
        """Whether the vehicle is above the ground by more than ``airborne_height``."""
        return float(state.position[2]) > self.config.ground_z + self.config.airborne_height

    def filter(self, command: Command, state: QuadrotorState) -> Command:
        """Return a command within every limit for the measured ``state``."""
        if command.mode == "disarm":
            if not self.airborne(state):
                self.position.active = False
                return Command("disarm", np.zeros(0))
            self.log.record("disarm_in_air", f"disarm refused at z={float(state.position[2]):.2f} m: landing")
            return self._position(self._landing_setpoint(state), state)
        mode = self.modes.get(command.mode)
        reason = "bad_mode" if mode is None else hold_reason(command.values, len(mode.names))
        if mode is None or reason is not None:
            detail = f"replaced {command.mode!r} command {short_repr(command.values)} by a position hold"
            self.log.record(reason or "bad_mode", detail)
            return self._position(self._hold_setpoint(state), state)
        values = np.asarray(command.values, dtype=np.float64)
        if command.mode != "position":
            breach = self._fence_breach(state)
            if breach is not None:
                self.log.record(breach, f"predicted position outside the geofence/ceiling at {state.position}: holding")
                return self._position(self._fence_setpoint(state), state)
            if command.mode in _MOTOR_MODES and tilt_of(state.quaternion) > self.config.max_tilt:
                # No body rates to level with: hand over to the onboard position loop, which levels the
                # vehicle (the position mode records the "tilt" intervention and holds).
                return self._position(self._fence_setpoint(state), state)
            self.position.active = False
            return Command(command.mode, mode.limit(values, state, self.log))
        return self._position(values, state)

    def _position(self, values: np.ndarray, state: QuadrotorState) -> Command:
        return Command("position", self.position.limit(values, state, self.log))

    def _hold_setpoint(self, state: QuadrotorState) -> np.ndarray:
        if self.position.active:
            return self.position.limiter.q.copy()
        return np.array([*state.position, yaw_of(state.quaternion)], dtype=np.float64)

    def _landing_setpoint(self, state: QuadrotorState) -> np.ndarray:
        sp = self._hold_setpoint(state)
        sp[2] = self.config.ground_z
        return sp

    def _fence_setpoint(self, state: QuadrotorState) -> np.ndarray:
        p = np.clip(np.asarray(state.position, dtype=np.float64), self._fence_lower, self._fence_upper)
        return np.array([*p, yaw_of(state.quaternion)])

    def _fence_breach(self, state: QuadrotorState) -> str | None:
        p = np.asarray(state.position, dtype=np.float64)
        ahead = p + np.asarray(state.linear_velocity, dtype=np.float64) * self.config.fence_lookahead_s
        for point in (p, ahead):
            if point[2] > self.config.max_altitude:
                return "altitude"
            if np.any(point < self._fence_lower) or np.any(point > self._fence_upper):
                return "geofence"
        return None
