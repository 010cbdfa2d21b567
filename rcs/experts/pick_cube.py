"""A scripted expert for the pick-cube task, generic over arms.

The expert reads only the task observation and the scene layout (:class:`rcs.spec.TableSceneSpec`), never
robot-specific numbers. It works in the base frame, which the pick-cube scenes put at the world frame
(x forward, y left, z up; quaternions (w, x, y, z), see :mod:`rcs.geometry`).

Grasp orientation. At the first observation after :meth:`PickCubeExpert.reset` (the arm's home pose), the
TCP axis closest to vertical is taken as the approach axis and snapped exactly onto -z (pointing down); that
"top-down" orientation is then turned about the vertical so that the gripper's horizontal axes line up with
the cube's faces, choosing among the four face-aligned yaws the one nearest to the home yaw. That choice is a
continuous function of the cube's yaw except where the cube sits diagonally to the home yaw (45 degrees off),
which the pick-cube scenes put at the edge of their spawn range. A rule that also followed the direction of
the cube as seen from the base (less wrist rotation) moved that 90-degree jump into the middle of the scene
distribution, where a policy regressed on the demonstrations averaged the two grasps into a diagonal one that
misses the cube. The home pose must hold the tool roughly pointing down, which both simulated arms' home poses do.

Motion. The expert keeps its own Cartesian setpoint and moves it toward the current phase's goal at a
bounded speed (``max_speed`` m/s, ``max_angular_speed`` rad/s), so consecutive actions are smooth. Phases:
approach above the cube, descend, close, lift, carry to the target, hold. The close phase ramps the gripper
command down and ends as soon as the fingers stop (blocked by the cube, or closed on nothing: then it starts
over), so the demonstrations hold still for at most a step or two: a policy sees a motionless wait as one
observation repeated and cannot time it. A missed or dropped cube sends it back to the approach. While
carrying, the goal corrects for where the cube sits in the hand (the measured TCP-to-cube offset at grasp), so
the cube centre, not the TCP, is brought to the target.
"""

from __future__ import annotations

import logging
import math
from enum import Enum

import numpy as np

from rcs.geometry import (
    matrix_to_quat,
    quat_multiply,
    quat_normalize,
    quat_to_matrix,
    quat_to_rotvec,
)
from rcs.spec import TableSceneSpec

log = logging.getLogger(__name__)


class Phase(str, Enum):
    """The expert's state machine."""

    APPROACH = "approach"
    DESCEND = "descend"
    CLOSE = "close"
    LIFT = "lift"
    CARRY = "carry"
    HOLD = "hold"
    RETREAT = "retreat"


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation matrix taking unit vector ``a`` onto unit vector ``b``."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-9:  # opposite: turn by pi about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _wrap(angle: float, period: float) -> float:
    """``angle`` wrapped into [-period/2, period/2)."""
    return (angle + period / 2.0) % period - period / 2.0


def _slerp_step(q_from: np.ndarray, q_to: np.ndarray, max_angle: float) -> np.ndarray:
    """Rotate ``q_from`` toward ``q_to`` by at most ``max_angle`` (rad), along the shortest path."""
    rel = quat_multiply(q_to, np.array([q_from[0], -q_from[1], -q_from[2], -q_from[3]]))
    rv = quat_to_rotvec(rel)  # angle in [0, pi], shortest path
    angle = float(np.linalg.norm(rv))
    if angle <= max_angle:
        return quat_normalize(q_to)
    rv *= max_angle / angle
    half = 0.5 * max_angle
    axis = rv / max_angle
    step = np.array([math.cos(half), *(math.sin(half) * axis)])
    return quat_normalize(quat_multiply(step, q_from))


class PickCubeExpert:
    """Scripted pick-and-place policy producing Cartesian-absolute actions.

    Args:
        scene: the task's table layout (table height, cube size, workspace box).
        control_dt: s, period between calls (the env's control period).
        seed: if given, each :meth:`reset` draws small variations (speed, hover height, timing) from a
            generator seeded with it, for more diverse demonstrations; ``None`` gives the nominal behaviour.
        max_speed: m/s, TCP setpoint speed bound (descending uses half of it).
        max_angular_speed: rad/s, TCP setpoint rotation speed bound.

    Calling the expert with an observation dict (keys ``tcp_position``, ``tcp_quaternion``, ``gripper``,
    ``cube_position``, ``cube_quaternion``, ``target_position``; base frame, m, wxyz) returns a float32 (7,)
    action ``[x, y, z, rx, ry, rz, gripper]``: TCP target position (m), TCP target orientation as a rotation
    vector (rad), and gripper target as a normalized width (0 closed, 1 open).
    """

    #: normalized gripper readings below this after closing mean "closed on nothing".
    EMPTY_GRIPPER = 0.02
    #: normalized width by which a settled gripper reading above the closing command means "blocked by the cube".
    BLOCKED_MARGIN = 0.05

    def __init__(
        self,
        scene: TableSceneSpec,
        control_dt: float,
        seed: int | None = None,
        *,
        max_speed: float = 0.3,
        max_angular_speed: float = 2.0,
    ) -> None:
        if not control_dt > 0:
            raise ValueError(f"control_dt={control_dt} must be > 0")
        self.scene = scene
        self.dt = float(control_dt)
        self.seed = seed
        self.nominal_speed = float(max_speed)
        self.max_angular_speed = float(max_angular_speed)
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self.reset()

    # -- episode ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new episode (call after the env reset, before the first observation)."""
        h = self.scene.cube_half_size
        rng = self._rng
        jitter = (lambda lo, hi: float(rng.uniform(lo, hi))) if rng is not None else (lambda lo, hi: 1.0)
        self.speed = self.nominal_speed * jitter(0.8, 1.0)
        #: m above the cube centre where the approach ends (the fingertips clear the cube top).
        self.hover = (2.0 * h + 0.03) * jitter(0.9, 1.2)
        self.close_time = 0.4 * jitter(0.9, 1.3)
        self.phase = Phase.APPROACH
        self.attempts = 0
        self._initialized = False
        self._phase_steps = 0
        self._position: np.ndarray = np.zeros(3)
        self._quaternion = np.array([1.0, 0.0, 0.0, 0.0])
        self._gripper = 1.0
        self._top_down = np.eye(3)
        self._ref_axis = 0
        self._grasp_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self._grasp_yaw: float | None = None
        self._grasp_azimuth = 0.0
        self._offset: np.ndarray = np.zeros(3)
        self._last_gripper = 1.0
        #: m, offset the caller adds to the commanded TCP position (noise injection, see
        #: :class:`rcs.teleop.expert.ExpertTeleop`); the phase changes wait for the arm to track the command
        #: actually executed, so a perturbed arm does not wait for the time-out at every phase.
        self.command_offset = np.zeros(3)

    # -- helpers ------------------------------------------------------------------------------------
    def _init_from(self, tcp_p: np.ndarray, tcp_q: np.ndarray) -> None:
        r0 = quat_to_matrix(quat_normalize(tcp_q))
        k = int(np.argmax(np.abs(r0[2, :])))
        approach = r0[:, k] * (1.0 if r0[2, k] < 0 else -1.0)
        self._top_down = _align(approach, np.array([0.0, 0.0, -1.0])) @ r0
        self._ref_axis = (k + 1) % 3  # a horizontal axis of the top-down orientation
        self._position = tcp_p.copy()
        self._quaternion = quat_normalize(tcp_q)
        self._initialized = True

    def _grasp_orientation(self, cube_q: np.ndarray) -> np.ndarray:
        """Top-down TCP orientation aligned with the cube's faces (see the module docstring).

        The first choice of the approach takes the face-aligned yaw nearest to the home yaw; later calls keep
        the face-aligned yaw nearest to the previous choice (no flipping between faces while the cube turns).
        """
        h_axis = self._top_down[:, self._ref_axis]
        yaw_h = math.atan2(h_axis[1], h_axis[0])
        rc = quat_to_matrix(quat_normalize(cube_q))
        yaw_cube = math.atan2(rc[1, 0], rc[0, 0])
        reference = yaw_h if self._grasp_yaw is None else self._grasp_yaw
        self._grasp_yaw = reference + _wrap(yaw_cube - reference, math.pi / 2)
        return matrix_to_quat(_rot_z(self._grasp_yaw - yaw_h) @ self._top_down)

    def _turn(self, position: np.ndarray) -> np.ndarray:
        """Rotation about the vertical by the change of azimuth (seen from the base) since the grasp."""
        return _rot_z(_wrap(math.atan2(position[1], position[0]) - self._grasp_azimuth, 2 * math.pi))

    def _step_toward(self, goal: np.ndarray, quat: np.ndarray, speed: float) -> bool:
        """Move the setpoint toward ``goal``/``quat``; True once the setpoint is there."""
        goal = self.scene.workspace.clip(goal)
        delta = goal - self._position
        dist = float(np.linalg.norm(delta))
        step = speed * self.dt
        self._position = goal.copy() if dist <= step else self._position + delta * (step / dist)
        self._quaternion = _slerp_step(self._quaternion, quat, self.max_angular_speed * self.dt)
        return dist <= step and abs(float(np.dot(self._quaternion, quat_normalize(quat)))) > 1 - 1e-9

    def _enter(self, phase: Phase) -> None:
        log.debug("pick-cube expert: %s -> %s", self.phase.value, phase.value)
        self.phase = phase
        self._phase_steps = 0

    def _elapsed(self) -> float:
        return self._phase_steps * self.dt

    # -- policy -------------------------------------------------------------------------------------
    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One Cartesian-absolute action ``[x, y, z, rx, ry, rz, gripper]`` (float32) for ``obs``."""
        tcp_p = np.asarray(obs["tcp_position"], dtype=np.float64).reshape(3)
        tcp_q = np.asarray(obs["tcp_quaternion"], dtype=np.float64).reshape(4)
        cube_p = np.asarray(obs["cube_position"], dtype=np.float64).reshape(3)
        cube_q = np.asarray(obs["cube_quaternion"], dtype=np.float64).reshape(4)
        target = np.asarray(obs["target_position"], dtype=np.float64).reshape(3)
        grip = float(np.asarray(obs["gripper"]).reshape(-1)[0])
        if not self._initialized:
            self._init_from(tcp_p, tcp_q)

        h = self.scene.cube_half_size
        hover_z = self.scene.table_height + h + self.hover  # above a cube resting on the table
        # tracking error against what was executed: the setpoint, plus a perturbation the caller added to it
        tcp_err = float(np.linalg.norm(tcp_p - self._position - self.command_offset))
        self._phase_steps += 1

        if self.phase is Phase.APPROACH:
            self._gripper = 1.0
            self._grasp_quat = self._grasp_orientation(cube_q)
            self._grasp_azimuth = math.atan2(cube_p[1], cube_p[0])
            there = self._step_toward(np.array([cube_p[0], cube_p[1], hover_z]), self._grasp_quat, self.speed)
            if there and (tcp_err < 0.005 or self._elapsed() > 3.0):
                self._enter(Phase.DESCEND)

        elif self.phase is Phase.DESCEND:
            self._gripper = 1.0
            there = self._step_toward(cube_p.copy(), self._grasp_quat, 0.5 * self.speed)
            if np.linalg.norm(cube_p[:2] - self._position[:2]) > 2.0 * h:  # the cube moved away: start over
                self._enter(Phase.RETREAT)
            elif there and (tcp_err < 0.003 or self._elapsed() > 2.0):
                self._enter(Phase.CLOSE)

        elif self.phase is Phase.CLOSE:
            ramp = min(1.0, self._elapsed() / self.close_time)
            self._gripper = 1.0 - ramp
            # the fingers have stopped: on the cube (blocked above the command) or closed on nothing (ramp done);
            # lifting right away keeps the motionless wait short, which a policy cannot time from one observation
            settled = abs(grip - self._last_gripper) < 0.002 and self._elapsed() > 2.0 * self.dt
            blocked = grip > self._gripper + self.BLOCKED_MARGIN
            if settled and (blocked or ramp >= 1.0):
                if grip < self.EMPTY_GRIPPER:
                    self._enter(Phase.RETREAT)
                else:
                    self._offset = tcp_p - cube_p
                    self._enter(Phase.LIFT)

        elif self.phase is Phase.LIFT:
            self._gripper = 0.0
            lift_z = max(hover_z, target[2] + self._offset[2])
            goal = np.array([self._position[0], self._position[1], lift_z])
            there = self._step_toward(goal, self._grasp_quat, self.speed)
            if there:
                self._enter(Phase.CARRY)

        elif self.phase in (Phase.CARRY, Phase.HOLD):
            # the hand turns with the azimuth (a wrist-friendly carry), and the cube's offset in the hand with it
            self._gripper = 0.0
            goal = target + self._turn(target) @ self._offset
            quat = matrix_to_quat(self._turn(self._position) @ quat_to_matrix(self._grasp_quat))
            there = self._step_toward(goal, quat, self.speed)
            if self.phase is Phase.CARRY and there:
                self._enter(Phase.HOLD)

        elif self.phase is Phase.RETREAT:
            self._gripper = 1.0
            goal = np.array([self._position[0], self._position[1], hover_z])
            if self._step_toward(goal, self._quaternion, self.speed) and grip > 0.8:
                self.attempts += 1
                self._grasp_yaw = None
                self._enter(Phase.APPROACH)

        if self.phase in (Phase.LIFT, Phase.CARRY, Phase.HOLD):
            # the cube should move with the hand; if it does not, it slipped out: try again
            expected = tcp_p - self._offset
            if np.linalg.norm(cube_p - expected) > 2.0 * h + 0.01 or grip < self.EMPTY_GRIPPER:
                self._enter(Phase.RETREAT)

        self._last_gripper = grip
        rotvec = quat_to_rotvec(self._quaternion)
        return np.array([*self._position, *rotvec, self._gripper], dtype=np.float32)
