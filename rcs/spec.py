"""Typed, declarative descriptions of devices: declared once, everything else derives from them.

A spec says what a device *is* (joint names, limits, units, frames, rates). Gymnasium spaces
(:mod:`rcs.spaces`), validation (:mod:`rcs.validation`) and, later, the safety filter and the wire schema
are all computed from it. Units are SI (see :mod:`rcs.geometry` for frames and quaternion order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from rcs.errors import ConfigError


def _readonly(values: list[float]) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class JointSpec:
    """One actuated revolute or prismatic joint.

    Attributes:
        name: joint name, unique within its device.
        lower, upper: position limits (rad, or m for prismatic joints).
        max_velocity: |velocity| limit (rad/s or m/s).
        max_effort: |torque| (N m) or |force| (N) limit.
        max_acceleration: |acceleration| limit (rad/s^2 or m/s^2), ``inf`` if unknown.
        kind: ``"revolute"`` or ``"prismatic"``.
    """

    name: str
    lower: float
    upper: float
    max_velocity: float
    max_effort: float
    max_acceleration: float = float("inf")
    kind: str = "revolute"

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ConfigError(f"joint {self.name!r}: lower={self.lower} must be < upper={self.upper}")
        for attr in ("max_velocity", "max_effort", "max_acceleration"):
            if not getattr(self, attr) > 0:
                raise ConfigError(f"joint {self.name!r}: {attr}={getattr(self, attr)} must be > 0")
        if self.kind not in ("revolute", "prismatic"):
            raise ConfigError(f"joint {self.name!r}: kind={self.kind!r} must be 'revolute' or 'prismatic'")

    @property
    def unit(self) -> str:
        """Position unit: ``"rad"`` or ``"m"``."""
        return "rad" if self.kind == "revolute" else "m"


@dataclass(frozen=True)
class GripperSpec:
    """A gripper commanded and read as a normalized width: 0 = closed, 1 = fully open.

    Attributes:
        min_width, max_width: physical opening (m) at normalized 0 and 1.
        max_force: grasp force limit (N).
    """

    min_width: float
    max_width: float
    max_force: float

    def to_metres(self, normalized: float) -> float:
        """Physical opening (m) of a normalized width."""
        return self.min_width + float(normalized) * (self.max_width - self.min_width)


@dataclass(frozen=True)
class ArmSpec:
    """A serial arm with an optional gripper.

    Attributes:
        name: robot model name, e.g. ``"panda"``.
        joints: actuated arm joints in command order (the gripper is not among them).
        gripper: the gripper, or ``None``.
        base_frame: frame in which Cartesian poses are expressed.
        tcp_frame: the tool centre point frame controlled by Cartesian commands.
        control_rate_hz: nominal rate at which the device accepts commands.
        home: (n,) joint positions of the home/ready pose.
    """

    name: str
    joints: tuple[JointSpec, ...]
    gripper: GripperSpec | None
    base_frame: str
    tcp_frame: str
    control_rate_hz: float
    home: tuple[float, ...]

    def __post_init__(self) -> None:
        names = [j.name for j in self.joints]
        if len(set(names)) != len(names):
            raise ConfigError(f"arm {self.name!r}: duplicate joint names {names}")
        if len(self.home) != len(self.joints):
            raise ConfigError(f"arm {self.name!r}: home has {len(self.home)} values for {len(self.joints)} joints")
        if self.control_rate_hz <= 0:
            raise ConfigError(f"arm {self.name!r}: control_rate_hz={self.control_rate_hz} must be > 0")

    @property
    def dof(self) -> int:
        """Number of arm joints (gripper excluded)."""
        return len(self.joints)

    @cached_property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @cached_property
    def lower(self) -> np.ndarray:
        return _readonly([j.lower for j in self.joints])

    @cached_property
    def upper(self) -> np.ndarray:
        return _readonly([j.upper for j in self.joints])

    @cached_property
    def max_velocity(self) -> np.ndarray:
        return _readonly([j.max_velocity for j in self.joints])

    @cached_property
    def max_effort(self) -> np.ndarray:
        return _readonly([j.max_effort for j in self.joints])

    @cached_property
    def max_acceleration(self) -> np.ndarray:
        return _readonly([j.max_acceleration for j in self.joints])


@dataclass(frozen=True)
class QuadrotorSpec:
    """A multirotor with fixed, vertically thrusting rotors.

    Body frame is FLU (x forward, y left, z up); rotor thrust acts along body +z.

    Attributes:
        name: model name, e.g. ``"crazyflie"``.
        mass: kg.
        inertia: (3,) principal moments of inertia about body x, y, z (kg m^2).
        rotor_positions: (n, 2) rotor centres in the body x-y plane (m), in motor command order.
        rotor_directions: (n,) +1 for a rotor spinning counter-clockwise seen from above (reaction
            torque on the body about -z), -1 for clockwise.
        max_thrust: maximum thrust of one rotor (N); normalized motor command 1 maps to it (linear in thrust).
        torque_to_thrust: rotor drag torque per unit thrust (m), i.e. yaw moment = k * thrust.
        motor_time_constant: first-order motor lag (s); 0 means instantaneous.
        max_body_rate: (3,) |body rate| limits for roll, pitch, yaw commands (rad/s).
        control_rate_hz: nominal command rate.
    """

    name: str
    mass: float
    inertia: tuple[float, float, float]
    rotor_positions: tuple[tuple[float, float], ...]
    rotor_directions: tuple[int, ...]
    max_thrust: float
    torque_to_thrust: float
    motor_time_constant: float
    max_body_rate: tuple[float, float, float]
    control_rate_hz: float

    def __post_init__(self) -> None:
        if len(self.rotor_positions) != len(self.rotor_directions):
            raise ConfigError(f"quadrotor {self.name!r}: rotor_positions and rotor_directions differ in length")
        if any(d not in (-1, 1) for d in self.rotor_directions):
            raise ConfigError(f"quadrotor {self.name!r}: rotor_directions must be +1 or -1")
        if self.mass <= 0 or self.max_thrust <= 0:
            raise ConfigError(f"quadrotor {self.name!r}: mass and max_thrust must be > 0")

    @property
    def num_rotors(self) -> int:
        return len(self.rotor_positions)

    @property
    def max_collective_thrust(self) -> float:
        """Sum of all rotors at full thrust (N)."""
        return self.num_rotors * self.max_thrust

    @property
    def hover_thrust(self) -> float:
        """Collective thrust that balances gravity (N)."""
        return self.mass * 9.81


@dataclass(frozen=True)
class CameraSpec:
    """An RGB camera.

    Attributes:
        name: camera name, unique within its robot or rig.
        width, height: image size (pixels).
        fps: nominal frame rate (Hz).
        fovy: vertical field of view (rad), for pinhole intrinsics.
    """

    name: str
    width: int
    height: int
    fps: float = 30.0
    fovy: float = np.deg2rad(58.0)


@dataclass(frozen=True)
class WorkspaceBox:
    """An axis-aligned box (m) in a named frame: configured per robot *and* scene, never hard-coded."""

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    frame: str = "world"

    @cached_property
    def low(self) -> np.ndarray:
        """``lower`` as a read-only array."""
        return _readonly(list(self.lower))

    @cached_property
    def high(self) -> np.ndarray:
        """``upper`` as a read-only array."""
        return _readonly(list(self.upper))

    def contains(self, p: np.ndarray) -> bool:
        return bool((p >= self.low).all() and (p <= self.high).all())

    def clip(self, p: np.ndarray) -> np.ndarray:
        return np.clip(p, self.low, self.high)


@dataclass(frozen=True)
class DomainRandomization:
    """The one parameter schema for randomizing a simulated device at reset.

    Each entry is a ``(low, high)`` range of a multiplicative scale drawn uniformly per reset from the
    environment's seeded generator; ``(1.0, 1.0)`` disables it. Backends map them to model fields:

    - ``mass``: every body's mass (and inertia, consistently).
    - ``friction``: sliding friction of every geom.
    - ``actuator_gain``: position-servo stiffness of every arm actuator (gain and bias together).
    - ``motor_constant``: rotor thrust at a given command (quadrotors: max thrust and drag torque together).
    - ``motor_time_constant``: first-order motor lag (quadrotors).
    """

    mass: tuple[float, float] = (1.0, 1.0)
    friction: tuple[float, float] = (1.0, 1.0)
    actuator_gain: tuple[float, float] = (1.0, 1.0)
    motor_constant: tuple[float, float] = (1.0, 1.0)
    motor_time_constant: tuple[float, float] = (1.0, 1.0)
    extra: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, rng in self.ranges().items():
            lo, hi = rng
            if not (0 < lo <= hi):
                raise ConfigError(f"randomization {name}={rng}: need 0 < low <= high")

    def ranges(self) -> dict[str, tuple[float, float]]:
        out = {
            "mass": self.mass,
            "friction": self.friction,
            "actuator_gain": self.actuator_gain,
            "motor_constant": self.motor_constant,
            "motor_time_constant": self.motor_time_constant,
        }
        out.update(self.extra)
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        """Draw one scale per parameter."""
        return {k: (lo if lo == hi else float(rng.uniform(lo, hi))) for k, (lo, hi) in self.ranges().items()}


@dataclass(frozen=True)
class TableSceneSpec:
    """Layout of a tabletop manipulation scene, configured per robot *and* scene (world frame, m).

    On hardware this comes from a config file describing the real table; in simulation from the scene.

    Attributes:
        table_height: z of the table surface.
        cube_half_size: half edge length of the manipulated cube(s).
        cube_spawn_low, cube_spawn_high: (x, y) box in which cube centres are sampled at reset.
        target_low, target_high: (x, y, z) box in which the goal position is sampled at reset.
        workspace: box the tool centre point must stay inside (used by the safety layer).
        objects: names of the movable objects in the scene (e.g. ``("cube",)``).
    """

    table_height: float
    cube_half_size: float
    cube_spawn_low: tuple[float, float]
    cube_spawn_high: tuple[float, float]
    target_low: tuple[float, float, float]
    target_high: tuple[float, float, float]
    workspace: WorkspaceBox
    objects: tuple[str, ...] = ("cube",)
