"""The device interfaces that simulated and physical robots both implement.

A backend subclasses :class:`Arm`, :class:`Quadrotor` or :class:`Camera` and fills in the ``_``-prefixed
hooks. Validation of every command (shape, dtype, NaN/inf, limits) happens here, once, before a hook sees it.
Specs and feature descriptions are available while disconnected; reading or commanding needs
:meth:`Device.connect` (or ``with device:``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rcs.errors import ActionError, NotConnectedError
from rcs.spec import ArmSpec, CameraSpec, QuadrotorSpec
from rcs.types import ArmState, CameraFrame, CameraIntrinsics, QuadrotorState
from rcs.validation import ClipReport, LimitPolicy, as_scalar, as_vector, enforce_bounds


class Device(ABC):
    """Lifecycle shared by every device: connect, close, context manager."""

    def __init__(self) -> None:
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Open the connection (idempotent)."""
        if not self._connected:
            self._connect()
            self._connected = True

    def close(self) -> None:
        """Stop safely and release the device (idempotent)."""
        if self._connected:
            try:
                self._close()
            finally:
                self._connected = False

    def __enter__(self) -> Device:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_connected(self) -> None:
        if not self._connected:
            raise NotConnectedError(f"{type(self).__name__} is not connected: call connect() or use 'with'")

    @abstractmethod
    def _connect(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...


def _feature(shape: tuple[int, ...], unit: str, names: list[str] | None = None, dtype: str = "float64") -> dict:
    out: dict[str, Any] = {"dtype": dtype, "shape": shape, "unit": unit}
    if names is not None:
        out["names"] = names
    return out


@dataclass(frozen=True)
class IkResult:
    """Outcome of an inverse-kinematics solve.

    Attributes:
        joint_positions: (n,) the solution, always within joint limits.
        position_error: m, distance between the achieved and the requested TCP position.
        orientation_error: rad, angle between the achieved and requested TCP orientation.
        converged: whether both errors are within the solver's tolerance.
    """

    joint_positions: np.ndarray
    position_error: float
    orientation_error: float
    converged: bool


class Kinematics(Protocol):
    """Forward and inverse kinematics of an arm's TCP in its base frame."""

    def forward(self, joint_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP (position (3,) m, quaternion (4,) wxyz) in the base frame."""
        ...

    def inverse(self, position: np.ndarray, quaternion: np.ndarray | None, seed: np.ndarray) -> IkResult:
        """Joint positions within limits that put the TCP at the target (orientation optional)."""
        ...


class Arm(Device):
    """A serial arm with optional gripper.

    Commands are targets for the device's own position servo; Cartesian targets go through IK first.
    ``limit_policy`` decides whether an out-of-limit target raises (default) or is clipped and reported in
    :attr:`clip_report`.

    Attributes:
        sim_twin: registered name of the simulated robot with this arm's spec and kinematics, on which
            ``rcs deploy`` rehearses a policy before it engages this arm (``None``: no twin; a driver sets it).
    """

    sim_twin: str | None = None

    def __init__(self, spec: ArmSpec, limit_policy: LimitPolicy | str = LimitPolicy.RAISE) -> None:
        super().__init__()
        self.spec = spec
        self.limit_policy = LimitPolicy(limit_policy)
        self.clip_report = ClipReport()

    # -- description (works while disconnected) --------------------------------------------------
    @property
    def observation_features(self) -> dict[str, dict]:
        """Plain-dict description of :class:`ArmState` fields (shape, dtype, unit, names)."""
        names = list(self.spec.joint_names)
        n = self.spec.dof
        return {
            "joint_positions": _feature((n,), "rad", names),
            "joint_velocities": _feature((n,), "rad/s", names),
            "joint_efforts": _feature((n,), "N m", names),
            "gripper": _feature((1,), "normalized width (0 closed, 1 open)"),
            "tcp_position": _feature((3,), "m", ["x", "y", "z"]),
            "tcp_quaternion": _feature((4,), "1", ["w", "x", "y", "z"]),
        }

    @property
    def action_features(self) -> dict[str, dict]:
        """Plain-dict description of the commands this arm accepts."""
        return {
            "joint_positions": _feature((self.spec.dof,), "rad", list(self.spec.joint_names)),
            "gripper": _feature((1,), "normalized width (0 closed, 1 open)"),
            "cartesian_position": _feature((3,), "m", ["x", "y", "z"]),
            "cartesian_quaternion": _feature((4,), "1", ["w", "x", "y", "z"]),
        }

    # -- public API ---------------------------------------------------------------------------------
    def read(self) -> ArmState:
        """Current state, with its monotonic capture timestamp."""
        self._require_connected()
        return self._read()

    def command_joint_positions(self, joint_positions: np.ndarray) -> np.ndarray:
        """Set the joint position target (rad). Returns the target actually sent (clipped if allowed)."""
        self._require_connected()
        q = self.check_joint_positions(joint_positions)
        self._write_joint_positions(q)
        return q

    def check_joint_positions(self, joint_positions: np.ndarray, policy: LimitPolicy | None = None) -> np.ndarray:
        """``joint_positions`` (rad) as a finite float vector within the joint limits: out-of-limit values raise or
        are clipped (and counted in :attr:`clip_report`) per ``policy`` (default :attr:`limit_policy`)."""
        q = as_vector("joint_positions", joint_positions, self.spec.dof)
        return enforce_bounds(
            "joint_positions",
            q,
            self.spec.lower,
            self.spec.upper,
            self.limit_policy if policy is None else policy,
            self.clip_report,
            self.spec.joint_names,
            "rad",
        )

    def command_gripper(self, width: float) -> float:
        """Set the gripper target as a normalized width (0 closed, 1 open)."""
        self._require_connected()
        if self.spec.gripper is None:
            raise ActionError("gripper", width, f"no gripper on arm {self.spec.name!r}")
        w = as_scalar("gripper", width)
        if not 0.0 <= w <= 1.0:
            w = float(enforce_bounds("gripper", np.array([w]), 0.0, 1.0, self.limit_policy, self.clip_report)[0])
        self._write_gripper(w)
        return w

    def command_cartesian_pose(self, position: np.ndarray, quaternion: np.ndarray | None = None) -> IkResult:
        """Move the TCP to ``position`` (m) and ``quaternion`` (wxyz) in the base frame, through IK.

        ``quaternion=None`` leaves the orientation free (position-only IK). If IK cannot reach the target
        within tolerance, the policy decides: ``raise`` raises :class:`ActionError`, ``clip`` commands the
        closest joint-limit-respecting solution and records the miss in :attr:`clip_report`.
        """
        self._require_connected()
        p = as_vector("cartesian_position", position, 3)
        qt = None if quaternion is None else as_vector("cartesian_quaternion", quaternion, 4)
        if qt is not None:
            norm = float(np.linalg.norm(qt))
            if not 0.9 < norm < 1.1:
                raise ActionError("cartesian_quaternion", qt.tolist(), "a unit quaternion (|q| within 10% of 1)")
            qt = qt / norm
        result = self.kinematics.inverse(p, qt, self._read().joint_positions)
        if not result.converged:
            limit = (
                f"reachable pose (IK residual {result.position_error * 1000:.1f} mm, "
                f"{np.rad2deg(result.orientation_error):.1f} deg)"
            )
            if self.limit_policy is LimitPolicy.RAISE:
                raise ActionError("cartesian_position", p.tolist(), limit)
            self.clip_report.add("cartesian_pose", f"best-effort IK for unreachable target: {limit}")
        self._write_joint_positions(result.joint_positions)
        return result

    @property
    @abstractmethod
    def kinematics(self) -> Kinematics:
        """The arm's kinematic model (FK/IK of the TCP in the base frame)."""

    # -- backend hooks ------------------------------------------------------------------------------
    @abstractmethod
    def _read(self) -> ArmState: ...

    @abstractmethod
    def _write_joint_positions(self, q: np.ndarray) -> None: ...

    @abstractmethod
    def _write_gripper(self, width: float) -> None: ...


class Quadrotor(Device):
    """A multirotor. Four command interfaces, all validated here:

    - :meth:`command_motor_thrusts`: normalized per-rotor thrust in [0, 1] (1 = ``spec.max_thrust``).
    - :meth:`command_motor_rpms`: normalized per-rotor speed in [0, 1] (1 = the speed giving ``spec.max_thrust``;
      thrust is quadratic in speed), the action of most learned flight policies.
    - :meth:`command_thrust_rates`: collective thrust (N) + body rates (rad/s, FLU).
    - :meth:`command_position`: position setpoint (m, world) + yaw (rad).

    Motors spin only while armed. Disarming in the air is the caller's decision; the safety layer
    lands instead.
    """

    def __init__(self, spec: QuadrotorSpec, limit_policy: LimitPolicy | str = LimitPolicy.RAISE) -> None:
        super().__init__()
        self.spec = spec
        self.limit_policy = LimitPolicy(limit_policy)
        self.clip_report = ClipReport()

    @property
    def observation_features(self) -> dict[str, dict]:
        return {
            "position": _feature((3,), "m", ["x", "y", "z"]),
            "quaternion": _feature((4,), "1", ["w", "x", "y", "z"]),
            "linear_velocity": _feature((3,), "m/s", ["x", "y", "z"]),
            "angular_velocity": _feature((3,), "rad/s", ["roll", "pitch", "yaw"]),
            "motor_thrusts": _feature((self.spec.num_rotors,), "N"),
        }

    @property
    def action_features(self) -> dict[str, dict]:
        return {
            "motor_thrusts": _feature((self.spec.num_rotors,), "normalized thrust (0..1)"),
            "motor_rpms": _feature((self.spec.num_rotors,), "normalized rotor speed (0..1)"),
            "collective_thrust": _feature((1,), "N"),
            "body_rates": _feature((3,), "rad/s", ["roll", "pitch", "yaw"]),
            "position": _feature((3,), "m", ["x", "y", "z"]),
            "yaw": _feature((1,), "rad"),
        }

    def read(self) -> QuadrotorState:
        self._require_connected()
        return self._read()

    def arm(self) -> None:
        """Allow the motors to spin."""
        self._require_connected()
        self._set_armed(True)

    def disarm(self) -> None:
        """Stop the motors (the vehicle falls if airborne)."""
        self._require_connected()
        self._set_armed(False)

    def command_motor_thrusts(self, thrusts: np.ndarray) -> np.ndarray:
        """Normalized per-rotor thrust commands in [0, 1], rotor order of ``spec.rotor_positions``."""
        self._require_connected()
        u = as_vector("motor_thrusts", thrusts, self.spec.num_rotors)
        u = enforce_bounds("motor_thrusts", u, 0.0, 1.0, self.limit_policy, self.clip_report, unit="(normalized)")
        self._write_motor_thrusts(u)
        return u

    def command_motor_rpms(self, rpms: np.ndarray) -> np.ndarray:
        """Normalized per-rotor speed commands in [0, 1], rotor order of ``spec.rotor_positions``.

        A rotor at normalized speed ``w`` gives thrust ``w**2 * spec.max_thrust`` once it has spun up; the rotor
        speed (not its thrust) follows the command with the first-order lag ``spec.motor_time_constant``.
        """
        self._require_connected()
        w = as_vector("motor_rpms", rpms, self.spec.num_rotors)
        w = enforce_bounds("motor_rpms", w, 0.0, 1.0, self.limit_policy, self.clip_report, unit="(normalized)")
        self._write_motor_rpms(w)
        return w

    def command_thrust_rates(self, collective_thrust: float, body_rates: np.ndarray) -> tuple[float, np.ndarray]:
        """Collective thrust (N, along body +z) and body rates (rad/s, body FLU)."""
        self._require_connected()
        t = as_scalar("collective_thrust", collective_thrust)
        t = float(
            enforce_bounds(
                "collective_thrust",
                np.array([t]),
                0.0,
                self.spec.max_collective_thrust,
                self.limit_policy,
                self.clip_report,
                unit="N",
            )[0]
        )
        r = as_vector("body_rates", body_rates, 3)
        lim = np.asarray(self.spec.max_body_rate)
        r = enforce_bounds(
            "body_rates", r, -lim, lim, self.limit_policy, self.clip_report, ("roll", "pitch", "yaw"), "rad/s"
        )
        self._write_thrust_rates(t, r)
        return t, r

    def command_position(self, position: np.ndarray, yaw: float = 0.0) -> None:
        """Position setpoint (m, world frame) and yaw (rad) for the onboard position controller."""
        self._require_connected()
        p = as_vector("position", position, 3)
        y = as_scalar("yaw", yaw)
        self._write_position(p, y)

    @abstractmethod
    def _read(self) -> QuadrotorState: ...

    @abstractmethod
    def _set_armed(self, armed: bool) -> None: ...

    @abstractmethod
    def _write_motor_thrusts(self, u: np.ndarray) -> None: ...

    def _write_motor_rpms(self, w: np.ndarray) -> None:
        """Speed commands for a vehicle whose motors take thrust: the thrust each speed holds at steady state
        (``w**2``); the vehicle's own motors supply the lag. A device that models rotor speed overrides this."""
        self._write_motor_thrusts(np.square(w))

    @abstractmethod
    def _write_thrust_rates(self, thrust: float, rates: np.ndarray) -> None: ...

    @abstractmethod
    def _write_position(self, position: np.ndarray, yaw: float) -> None: ...


class Camera(Device):
    """An RGB camera: the latest frame, its timestamp, intrinsics and extrinsics."""

    def __init__(self, spec: CameraSpec) -> None:
        super().__init__()
        self.spec = spec

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_fovy(self.spec.width, self.spec.height, self.spec.fovy)

    @property
    def observation_features(self) -> dict[str, dict]:
        return {
            "image": _feature((self.spec.height, self.spec.width, 3), "RGB", ["height", "width", "channel"], "uint8")
        }

    def read(self) -> CameraFrame:
        """The latest frame."""
        self._require_connected()
        return self._read()

    @abstractmethod
    def _read(self) -> CameraFrame: ...


@runtime_checkable
class Simulated(Protocol):
    """A device whose time is advanced by the caller instead of the wall clock."""

    @property
    def sim_time(self) -> float:
        """Simulated time since reset (s)."""
        ...

    def advance(self, dt: float) -> None:
        """Integrate ``dt`` seconds of physics with the current commands held."""
        ...

    def reset(self, seed: int | None = None) -> None:
        """Return to the initial state; draw domain randomization from ``seed``."""
        ...


@runtime_checkable
class ObjectTracker(Protocol):
    """Something that knows where named objects are (a simulator, or a mocap / fiducial tracker)."""

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,) m, quaternion (4,) wxyz) of ``name`` in the world frame."""
        ...


@runtime_checkable
class SceneControl(Protocol):
    """Scene manipulation available in simulation only."""

    def set_object_pose(self, name: str, position: np.ndarray, quaternion: np.ndarray) -> None: ...

    def set_marker(self, name: str, position: np.ndarray) -> None: ...


@runtime_checkable
class VehicleStateControl(Protocol):
    """Setting a free-flying vehicle's state directly: available in simulation only."""

    def set_vehicle_state(
        self,
        position: np.ndarray,
        quaternion: np.ndarray,
        linear_velocity: np.ndarray,
        angular_velocity: np.ndarray,
        motor_thrusts: np.ndarray | None = None,
    ) -> None:
        """Place the vehicle (world-frame position m, quaternion wxyz, world velocity m/s, body rates
        rad/s) with rotor thrusts (N) already spun up, e.g. to start an episode in hover."""
        ...
