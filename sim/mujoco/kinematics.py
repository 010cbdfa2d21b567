"""Forward and inverse kinematics of an arm's TCP with mink (differential IK as a QP, solved by daqp).

:class:`MinkKinematics` implements :class:`rcs.devices.Kinematics` on a private copy of a MuJoCo model, so
solving never touches a simulation's state. Poses are expressed in the arm's base frame (a body of the
model); quaternions are (w, x, y, z) as everywhere in rcs (see :mod:`rcs.geometry`).

Inverse kinematics iterates mink's QP step (a :class:`mink.FrameTask` on the TCP site, Levenberg-Marquardt
damping, a :class:`mink.ConfigurationLimit` so every iterate stays within the joint limits) from the seed
until the TCP is within tolerance or the iteration budget is spent. Optional random restarts (drawn from a
fixed-seed generator, so results are reproducible) help when the seed is far from any solution.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import mink
import mujoco
import numpy as np

from rcs.devices import IkResult
from rcs.errors import ConfigError
from rcs.geometry import quat_angle, quat_normalize

log = logging.getLogger(__name__)

# Iterate until the errors are this fraction of the tolerances (Newton steps converge fast near a solution,
# so one more step buys a solution well inside the tolerance for about 0.1 ms).
_REFINE = 0.1


class MinkKinematics:
    """TCP kinematics of the joints ``joint_names`` of ``model`` (other joints stay at ``qpos0``).

    Args:
        model: a MuJoCo model containing the arm (copied: the caller's model and data are never touched).
        joint_names: the arm joints, in the order of the joint vectors this class takes and returns.
        tcp_site: name of the site that is the tool centre point.
        base_body: name of the body whose frame is the base frame of all poses.
        position_tolerance: m, convergence threshold on the TCP position error.
        orientation_tolerance: rad, convergence threshold on the TCP orientation error (when requested).
        max_iterations: QP steps per attempt.
        local_restarts: if the attempt from the seed fails, extra attempts from the seed perturbed by
            0.05, 0.1, 0.2, ... rad (escapes singular and limit-locked seeds while staying near the seed).
        restarts: then, extra attempts from joint configurations drawn uniformly within the limits (finds
            far-away solutions; a solution may then be far from the seed).
        max_step: rad (or m), largest change of any joint in one QP step (keeps steps in the linear regime).
        damping: Levenberg-Marquardt damping of the QP (regularizes steps near singularities).
        solver: qpsolvers backend.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        joint_names: Sequence[str],
        tcp_site: str,
        base_body: str,
        *,
        position_tolerance: float = 1e-3,
        orientation_tolerance: float = 1e-2,
        max_iterations: int = 60,
        local_restarts: int = 3,
        restarts: int = 0,
        max_step: float = 0.4,
        damping: float = 1e-4,
        solver: str = "daqp",
    ) -> None:
        self.model = copy.deepcopy(model)
        self.joint_names = tuple(joint_names)
        self.tcp_site = tcp_site
        self.base_body = base_body
        self.position_tolerance = float(position_tolerance)
        self.orientation_tolerance = float(orientation_tolerance)
        self.max_iterations = int(max_iterations)
        self.local_restarts = int(local_restarts)
        self.restarts = int(restarts)
        self.max_step = float(max_step)
        self.damping = float(damping)
        self.solver = solver

        m = self.model
        self._site_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, tcp_site)
        if self._site_id < 0:
            raise ConfigError(f"tcp_site={tcp_site!r} not found in model")
        base_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, base_body)
        if base_id < 0:
            raise ConfigError(f"base_body={base_body!r} not found in model")
        qadr, dadr, lower, upper = [], [], [], []
        for name in self.joint_names:
            jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
            if jid < 0:
                raise ConfigError(f"joint {name!r} not found in model")
            if int(m.jnt_type[jid]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                raise ConfigError(f"joint {name!r}: only hinge and slide joints are supported")
            if not m.jnt_limited[jid]:
                raise ConfigError(f"joint {name!r}: IK needs joint limits")
            qadr.append(int(m.jnt_qposadr[jid]))
            dadr.append(int(m.jnt_dofadr[jid]))
            lower.append(float(m.jnt_range[jid, 0]))
            upper.append(float(m.jnt_range[jid, 1]))
        self._qadr = np.array(qadr)
        self._dadr = np.array(dadr)
        #: (n,) joint limits (rad or m), from the model.
        self.lower = np.array(lower)
        self.upper = np.array(upper)

        self._configuration = mink.Configuration(m)
        self._q0 = m.qpos0.copy()
        # Other dofs (fingers, free objects) do not move the TCP, so the damping keeps them where they are.
        self._limits = [mink.ConfigurationLimit(m, gain=0.95)]
        self._pose_task = mink.FrameTask(tcp_site, "site", position_cost=1.0, orientation_cost=1.0, lm_damping=1e-3)
        self._position_task = mink.FrameTask(tcp_site, "site", position_cost=1.0, orientation_cost=0.0, lm_damping=1e-3)

        # The base body is welded to the world in any arm model, so its pose is a constant.
        data = mujoco.MjData(m)
        mujoco.mj_kinematics(m, data)
        self._base_pos = data.xpos[base_id].copy()
        self._base_rot = data.xmat[base_id].reshape(3, 3).copy()
        self._base_quat = data.xquat[base_id].copy()
        self.last_iterations = 0  #: QP steps used by the most recent :meth:`inverse` call (all attempts).

    # -- frames -------------------------------------------------------------------------------------
    def _full_q(self, joint_positions: np.ndarray) -> np.ndarray:
        q = self._q0.copy()
        q[self._qadr] = joint_positions
        return q

    def _tcp_in_base(self) -> tuple[np.ndarray, np.ndarray]:
        d = self._configuration.data
        p_w = d.site_xpos[self._site_id]
        r_w = d.site_xmat[self._site_id].reshape(3, 3)
        p = self._base_rot.T @ (p_w - self._base_pos)
        r = self._base_rot.T @ r_w
        q = np.empty(4)
        mujoco.mju_mat2Quat(q, r.ravel())
        return p, q

    def _target_in_world(self, position: np.ndarray, quaternion: np.ndarray) -> mink.SE3:
        p_w = self._base_pos + self._base_rot @ position
        q_w = np.empty(4)
        mujoco.mju_mulQuat(q_w, self._base_quat, quaternion)
        return mink.SE3(wxyz_xyz=np.concatenate([q_w, p_w]))

    # -- public API ---------------------------------------------------------------------------------
    def forward(self, joint_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP (position (3,) m, quaternion (4,) wxyz) in the base frame at ``joint_positions`` (n,)."""
        q = np.asarray(joint_positions, dtype=np.float64).reshape(len(self.joint_names))
        self._configuration.update(self._full_q(q))
        p, quat = self._tcp_in_base()
        return p.copy(), quat_normalize(quat)

    def tcp_lipschitz(self) -> np.ndarray:
        """Per-joint bounds ``L`` (m per rad; 1 for a slide joint) with ``|tcp(q1) - tcp(q2)| <= sum_i L_i *
        |q1_i - q2_i|`` for *all* configurations, from the model's geometry.

        A hinge moves the TCP at most at the speed ``|dq_i|`` times the TCP's distance from its axis; that
        distance is at most the perpendicular part of the (rigid) offset to the next arm joint's anchor plus the
        lengths of the later anchor-to-anchor offsets and of the last anchor-to-TCP offset (triangle inequality;
        each length is invariant under the hinges). A slide joint later in the chain can lengthen an offset by at
        most its range, which is added. Joints that are not ancestors of the TCP get (almost) 0.
        """
        m = self.model
        data = mujoco.MjData(m)
        data.qpos[:] = self._full_q(np.clip(np.zeros(len(self.joint_names)), self.lower, self.upper))
        mujoco.mj_kinematics(m, data)
        site_body = int(m.site_bodyid[self._site_id])
        chain = {site_body}
        body = site_body
        while body > 0:
            body = int(m.body_parentid[body])
            chain.add(body)
        jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name) for name in self.joint_names]
        on_chain = [j for j in jids if int(m.jnt_bodyid[j]) in chain]
        on_chain.sort(key=lambda j: (_depth(m, int(m.jnt_bodyid[j])), j))  # base to TCP
        slide = int(mujoco.mjtJoint.mjJNT_SLIDE)
        points = [data.xanchor[j].copy() for j in on_chain] + [data.site_xpos[self._site_id].copy()]
        lengths = [float(np.linalg.norm(points[i + 1] - points[i])) for i in range(len(on_chain))]
        bounds = dict.fromkeys(jids, 0.0)
        for k, j in enumerate(on_chain):
            later = on_chain[k + 1 :]
            stretch = sum(float(m.jnt_range[s, 1] - m.jnt_range[s, 0]) for s in later if int(m.jnt_type[s]) == slide)
            if int(m.jnt_type[j]) == slide:
                bounds[j] = 1.0
                continue
            offset = points[k + 1] - points[k]
            axis = data.xaxis[j] / np.linalg.norm(data.xaxis[j])
            first = lengths[k] if stretch else float(np.linalg.norm(offset - axis * float(offset @ axis)))
            bounds[j] = first + sum(lengths[k + 1 :]) + stretch
        # + 1 um per rad: the model's own rounding (a TCP on a joint's axis would otherwise get exactly 0).
        return np.array([bounds[j] for j in jids]) + 1e-6

    def inverse(self, position: np.ndarray, quaternion: np.ndarray | None, seed: np.ndarray) -> IkResult:
        """Joint positions within limits that put the TCP at ``position`` (m, base frame).

        Args:
            position: (3,) target TCP position in the base frame (m).
            quaternion: (4,) target TCP orientation (w, x, y, z) in the base frame, or ``None`` for
                position-only IK (the orientation is then free and ``orientation_error`` is 0).
            seed: (n,) joint positions to start from (clipped into the limits first); the solution found is
                the one the iteration reaches from here, so it is close to the seed when one exists nearby.

        Returns:
            The first converged solution, else the best (smallest error) of the attempts near the seed;
            ``converged`` when the position error is within
            ``position_tolerance`` and (if an orientation was given) the orientation error within
            ``orientation_tolerance``. ``joint_positions`` always respects the joint limits.
        """
        p_target = np.asarray(position, dtype=np.float64).reshape(3)
        q_target = None if quaternion is None else quat_normalize(np.asarray(quaternion, dtype=np.float64).reshape(4))
        task = self._position_task if q_target is None else self._pose_task
        task.set_target(self._target_in_world(p_target, q_target if q_target is not None else np.array([1.0, 0, 0, 0])))
        self.last_iterations = 0
        start = np.clip(np.asarray(seed, dtype=np.float64).reshape(len(self.joint_names)), self.lower, self.upper)
        best = self._solve(start, task, p_target, q_target)
        if best.converged:
            return best
        rng = np.random.default_rng(0)  # fixed: the same call always gives the same answer
        for i in range(self.local_restarts):
            noise = rng.normal(scale=0.05 * 2**i, size=start.shape)
            attempt = self._solve(np.clip(start + noise, self.lower, self.upper), task, p_target, q_target)
            if attempt.converged:
                return attempt
            if _cost(attempt) < _cost(best):
                best = attempt
        for _ in range(self.restarts):
            attempt = self._solve(rng.uniform(self.lower, self.upper), task, p_target, q_target)
            if attempt.converged:
                return attempt
        return best

    # -- internals ----------------------------------------------------------------------------------
    def _errors(self, p_target: np.ndarray, q_target: np.ndarray | None) -> tuple[float, float]:
        p, q = self._tcp_in_base()
        e_pos = float(np.linalg.norm(p - p_target))
        e_rot = 0.0 if q_target is None else quat_angle(q, q_target)
        return e_pos, e_rot

    def _converged(self, e_pos: float, e_rot: float, margin: float = 1.0) -> bool:
        return e_pos <= margin * self.position_tolerance and e_rot <= margin * self.orientation_tolerance

    def _solve(
        self, start: np.ndarray, task: mink.FrameTask, p_target: np.ndarray, q_target: np.ndarray | None
    ) -> IkResult:
        cfg = self._configuration
        cfg.update(self._full_q(start))
        e_pos, e_rot = self._errors(p_target, q_target)
        for _ in range(self.max_iterations):
            if self._converged(e_pos, e_rot, _REFINE):
                break
            try:
                v = mink.solve_ik(cfg, [task], dt=1.0, solver=self.solver, damping=self.damping, limits=self._limits)
            except mink.NoSolutionFound:
                log.debug("IK QP infeasible; returning the last iterate")
                break
            largest = float(np.max(np.abs(v)))
            if largest > self.max_step:
                v *= self.max_step / largest
            cfg.integrate_inplace(v, 1.0)
            self.last_iterations += 1
            e_pos, e_rot = self._errors(p_target, q_target)
        q = np.clip(cfg.data.qpos[self._qadr], self.lower, self.upper)
        return IkResult(q.copy(), e_pos, e_rot, self._converged(e_pos, e_rot))


def _depth(model: mujoco.MjModel, body: int) -> int:
    """Number of bodies between ``body`` and the world body."""
    depth = 0
    while body > 0:
        body = int(model.body_parentid[body])
        depth += 1
    return depth


def _cost(result: IkResult) -> float:
    """Scalar error of an unconverged attempt (m; 1 rad counts as 0.1 m)."""
    return result.position_error + 0.1 * result.orientation_error
