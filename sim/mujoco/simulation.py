"""One MuJoCo model + data with a physics step decoupled from the control rate.

:class:`MujocoSimulation` is the shared engine under every simulated device: it loads an MJCF file,
advances physics by whole physics steps (``advance(dt)`` runs ``round(dt / timestep)`` steps in one call),
resets to a keyframe, applies :class:`rcs.spec.DomainRandomization` from a seeded generator, and renders
named cameras offscreen. Everything is deterministic given the seed.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import mujoco
import numpy as np

from rcs.errors import ConfigError, SimulationDivergedError
from rcs.geometry import quat_from_euler_rpy, quat_multiply
from rcs.spec import DomainRandomization

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

#: MuJoCo warnings that mean the integration broke down. On bad accelerations MuJoCo itself resets the state to
#: the model's default pose and carries on, which would teleport a device silently.
_DIVERGENCE_WARNINGS = {
    mujoco.mjtWarning.mjWARN_BADQACC: "non-finite or huge accelerations (MuJoCo reset the state)",
    mujoco.mjtWarning.mjWARN_BADQVEL: "non-finite or huge velocities",
    mujoco.mjtWarning.mjWARN_BADQPOS: "non-finite or huge positions",
    mujoco.mjtWarning.mjWARN_BADCTRL: "non-finite controls",
}
#: Their positions in ``data.warning.number`` (contiguous in MuJoCo 3: a slice reads a view, no copy).
_DIVERGENCE_IDS = sorted(int(w) for w in _DIVERGENCE_WARNINGS)
_DIVERGENCE_INDEX: slice | np.ndarray = (
    slice(_DIVERGENCE_IDS[0], _DIVERGENCE_IDS[-1] + 1)
    if _DIVERGENCE_IDS[-1] - _DIVERGENCE_IDS[0] + 1 == len(_DIVERGENCE_IDS)
    else np.array(_DIVERGENCE_IDS)
)


def _route_mujoco_warnings() -> None:
    """Send MuJoCo's own warnings to this module's logger. By default MuJoCo prints them and appends them to
    ``MUJOCO_LOG.TXT`` in the working directory, which a user's repository or a robot's disk should not collect.
    Process-wide (MuJoCo has one handler); installed when the first simulation is built, not at import."""
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(lambda message: log.warning("MuJoCo: %s", message))


class MujocoSimulation:
    """A loaded MJCF model with its data, nominal parameters and randomization.

    Args:
        model_path: MJCF file (absolute, or relative to ``sim/models``).
        physics_dt: physics time step (s); overrides the file's ``<option timestep>``.
        randomization: parameter ranges drawn at each :meth:`reset`.
        keyframe: name of the keyframe to reset to (``None``: the model's default pose).
        gain_actuators: names of position-servo actuators whose gains ``actuator_gain`` scales (stiffness and
            damping together) and whose damping alone the extra ``actuator_damping`` scales.
        object_bodies: names of bodies (the scene's loose objects) whose mass and inertia the extra
            ``object_mass`` scales, on top of ``mass``.
        camera_offsets: camera name -> (dx, dy, dz (m, in the camera's parent body frame), droll, dpitch, dyaw
            (rad, about the camera's own axes)): a camera mounted slightly off its modelled pose.
    """

    def __init__(
        self,
        model_path: str | Path,
        physics_dt: float | None = None,
        randomization: DomainRandomization | None = None,
        keyframe: str | None = "home",
        gain_actuators: tuple[str, ...] = (),
        object_bodies: tuple[str, ...] = (),
        camera_offsets: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        path = Path(model_path)
        if not path.is_absolute():
            path = MODELS_DIR / path
        if not path.is_file():
            raise ConfigError(f"model_path={str(path)!r}: no such MJCF file")
        _route_mujoco_warnings()
        self.model = mujoco.MjModel.from_xml_path(str(path))
        if physics_dt is not None:
            if not physics_dt > 0:
                raise ConfigError(f"physics_dt={physics_dt} must be > 0")
            self.model.opt.timestep = physics_dt
        self.data = mujoco.MjData(self.model)
        # Live views for check_diverged (MjData's buffers never move; reset and MuJoCo's auto-reset write in place).
        # Reading them through the properties each check costs as much as the check itself.
        self._warning_counts: np.ndarray = self.data.warning.number
        self._qpos: np.ndarray = self.data.qpos
        self._qvel: np.ndarray = self.data.qvel
        self._steps_cache: dict[float, int] = {}  # dt -> physics steps (the timestep is fixed after load)
        self._rk4 = self.model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4  # no step1/step2 split for RK4
        self.randomization = randomization or DomainRandomization()
        self._keyframe = None
        if keyframe is not None:
            kid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_KEY, keyframe)
            self._keyframe = kid if kid >= 0 else None
        self._gain_ids = np.array([self.actuator_id(n) for n in gain_actuators], dtype=int)
        self._object_ids = np.array([self.body_id(n) for n in object_bodies], dtype=int)
        self._offset_cameras(camera_offsets or {})
        self._nominal = {
            "body_mass": self.model.body_mass.copy(),
            "body_inertia": self.model.body_inertia.copy(),
            "geom_friction": self.model.geom_friction.copy(),
            "actuator_gainprm": self.model.actuator_gainprm.copy(),
            "actuator_biasprm": self.model.actuator_biasprm.copy(),
        }
        self.scales: dict[str, float] = {}
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.reset(seed=None)

    # -- names ------------------------------------------------------------------------------------
    def _id(self, obj: mujoco.mjtObj, name: str, kind: str) -> int:
        i = mujoco.mj_name2id(self.model, obj, name)
        if i < 0:
            raise ConfigError(f"{kind} {name!r} not found in model")
        return i

    def body_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_BODY, name, "body")

    def joint_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_JOINT, name, "joint")

    def actuator_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_ACTUATOR, name, "actuator")

    def site_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_SITE, name, "site")

    def camera_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_CAMERA, name, "camera")

    # -- time ---------------------------------------------------------------------------------------
    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def steps_for(self, dt: float) -> int:
        """Number of physics steps in ``dt`` seconds (at least 1)."""
        n = self._steps_cache.get(dt)
        if n is None:
            if not (math.isfinite(dt) and dt > 0):
                raise ConfigError(f"dt={dt} must be a finite number of seconds > 0")
            n = self._steps_cache[dt] = max(1, int(round(dt / self.model.opt.timestep)))
        return n

    def advance(self, dt: float) -> None:
        """Integrate ``dt`` seconds (rounded to whole physics steps) with controls held.

        Invariant between calls: ``data`` holds the state at :attr:`time` with every position- and
        velocity-dependent quantity computed (site poses, contacts, actuator lengths), so readers never need
        an extra ``mj_forward``. We keep it by splitting the last step (MuJoCo's documented
        ``mj_step1``/``mj_step2`` pattern): controls written by the caller take effect in the pending
        ``mj_step2``. Forces (``qfrc_actuator``, ``actuator_force``) are those of the last physics step.
        RK4 does not support the split; there we step fully and call ``mj_forward``.
        """
        self.step(self.steps_for(dt))

    def step(self, n: int, check: bool = True) -> None:
        """Integrate ``n`` physics steps with controls held, keeping the invariant described in :meth:`advance`.

        Args:
            n: physics steps (>= 1).
            check: run :meth:`check_diverged` afterwards. A device that integrates one control period in several
                calls (sub-steps between onboard ticks) passes ``False`` and checks once at the end of the period,
                before anything reads the state: MuJoCo's warning counters accumulate until checked, so no
                instability in between is missed.
        """
        m, d = self.model, self.data
        if self._rk4:
            mujoco.mj_step(m, d, n)
            mujoco.mj_forward(m, d)
        else:
            mujoco.mj_step2(m, d)
            if n > 1:
                mujoco.mj_step(m, d, n - 1)
            mujoco.mj_step1(m, d)
        if check:
            self.check_diverged()

    def step_controls(
        self,
        controls: np.ndarray,
        actuators: slice | np.ndarray,
        activations: slice | np.ndarray | None = None,
        check: bool = True,
    ) -> None:
        """Integrate ``len(controls)`` physics steps with a control sequence, keeping the invariant of :meth:`advance`.

        Before physics step ``k`` row ``controls[k]`` is written to ``data.ctrl[actuators]`` and, when
        ``activations`` is given, to ``data.act[activations]`` as well: setting a filter actuator's state equal to
        its control makes its own lag a no-op for that step, so the caller dictates the actuator force exactly
        (a device that models an actuator's dynamics itself). One Python iteration per physics step, no more.

        Args:
            controls: (steps, len(actuators)) controls, one row per physics step.
            actuators: actuator indices (a slice is cheapest).
            activations: activation indices (``model.actuator_actadr`` of the actuators) or ``None``.
            check: run :meth:`check_diverged` afterwards (see :meth:`step`).
        """
        m, d = self.model, self.data
        ctrl, act = d.ctrl, d.act
        for row in controls:
            ctrl[actuators] = row
            if activations is not None:
                act[activations] = row
            if self._rk4:
                mujoco.mj_step(m, d)
            else:  # the pending mj_step2 of each step runs after its controls are written (see advance)
                mujoco.mj_step2(m, d)
                mujoco.mj_step1(m, d)
        if self._rk4:
            mujoco.mj_forward(m, d)
        if check:
            self.check_diverged()

    def check_diverged(self) -> None:
        """Raise :class:`SimulationDivergedError` if MuJoCo reported an instability since the last check, or the
        state is not finite.

        About 1 us: one ``count_nonzero`` over MuJoCo's warning counters (they accumulate between checks, so a
        check per control period sees every instability since the previous one) and one dot product per state
        vector. A sum of squares cannot cancel, so ``q . q + v . v`` is non-finite iff some entry is non-finite or
        the squared norm overflows (|x| beyond ~1e154); MuJoCo itself flags and resets beyond 1e10, so anything
        the overflow adds is absurd anyway.
        """
        counts = self._warning_counts
        if np.count_nonzero(counts[_DIVERGENCE_INDEX]):
            for warning, what in _DIVERGENCE_WARNINGS.items():
                if counts[int(warning)] > 0:
                    counts[int(warning)] = 0  # the next instability is reported again
                    raise SimulationDivergedError(
                        f"{self.model_name}: simulation diverged by t={self.time:.3f} s: {what} "
                        f"({warning.name}, index {self.data.warning[warning].lastinfo}); reset it"
                    )
        qpos, qvel = self._qpos, self._qvel
        if not math.isfinite(qpos.dot(qpos) + qvel.dot(qvel)):
            raise SimulationDivergedError(
                f"{self.model_name}: simulation diverged by t={self.time:.3f} s: non-finite state; reset it"
            )

    @property
    def model_name(self) -> str:
        """The MJCF model's name (``<mujoco model=...>``)."""
        return str(self.model.names[: self.model.names.index(b"\0")].decode() or "model")

    def step_raw(self, n: int) -> None:
        """Plain ``mj_step(model, data, n)``: the raw-physics reference of ``rcs bench sim``.

        Unlike :meth:`step` it leaves derived quantities one step stale; use it for measurement only.
        """
        mujoco.mj_step(self.model, self.data, n)

    def forward(self) -> None:
        """Recompute derived quantities after editing the state directly (qpos, qvel, mocap)."""
        mujoco.mj_forward(self.model, self.data)

    # -- reset and randomization ----------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Reset state to the keyframe and redraw randomized parameters from ``seed``."""
        self._apply_randomization(np.random.default_rng(seed) if seed is not None else None)
        if self._keyframe is not None:
            mujoco.mj_resetDataKeyframe(self.model, self.data, self._keyframe)
        else:
            mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)

    def _apply_randomization(self, rng: np.random.Generator | None) -> None:
        m, nom = self.model, self._nominal
        scales = self.randomization.sample(rng) if rng is not None else {k: 1.0 for k in self.randomization.ranges()}
        self.scales = scales
        m.body_mass[:] = nom["body_mass"] * scales["mass"]
        m.body_inertia[:] = nom["body_inertia"] * scales["mass"]
        if len(self._object_ids):
            k = scales.get("object_mass", 1.0)
            m.body_mass[self._object_ids] *= k
            m.body_inertia[self._object_ids] *= k
        # MuJoCo caches mass-derived constants at compile time (dof_M0, used instead of body_mass/body_inertia
        # for "simple" bodies such as free-floating objects and vehicles; invweights; subtree masses): without
        # this call a mass change has no effect on those bodies. It overwrites data, which reset() then resets.
        mujoco.mj_setConst(m, self.data)
        m.geom_friction[:, 0] = nom["geom_friction"][:, 0] * scales["friction"]
        m.actuator_gainprm[:] = nom["actuator_gainprm"]
        m.actuator_biasprm[:] = nom["actuator_biasprm"]
        if len(self._gain_ids):
            g = scales["actuator_gain"]
            m.actuator_gainprm[self._gain_ids, 0] *= g
            m.actuator_biasprm[self._gain_ids, 1:3] *= g
            m.actuator_biasprm[self._gain_ids, 2] *= scales.get("actuator_damping", 1.0)

    def _offset_cameras(self, offsets: Mapping[str, Sequence[float]]) -> None:
        """Move cameras off their modelled poses (see ``camera_offsets``); once, at load."""
        m = self.model
        for name, offset in offsets.items():
            cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, name)
            if cid < 0:
                known = ", ".join(m.camera(i).name for i in range(m.ncam))
                raise ConfigError(f"camera_offsets.{name}: no such camera; cameras: {known}")
            d = np.asarray(offset, dtype=float)
            if d.shape != (6,) or not np.all(np.isfinite(d)):
                raise ConfigError(
                    f"camera_offsets.{name}={list(offset)}: expected 6 finite numbers (dx dy dz m, droll dpitch dyaw rad)"
                )
            m.cam_pos[cid] += d[:3]
            m.cam_quat[cid] = quat_multiply(m.cam_quat[cid], quat_from_euler_rpy(*d[3:]))

    # -- rendering ----------------------------------------------------------------------------------
    def snapshot(self) -> mujoco.MjData:
        """A copy of the current state (render it later with ``render(..., data=snapshot)``, off the loop thread)."""
        return copy.copy(self.data)

    def render(self, camera: str, width: int, height: int, data: mujoco.MjData | None = None) -> np.ndarray:
        """RGB image (height, width, 3) uint8 from a named camera (of ``data``, default the live state).

        Renderers are cached per size; a renderer must be used from one thread at a time."""
        key = (width, height)
        renderer = self._renderers.get(key)
        if renderer is None:
            if width > self.model.vis.global_.offwidth or height > self.model.vis.global_.offheight:
                raise ConfigError(
                    f"camera {camera!r}: {width}x{height} exceeds the model's offscreen buffer "
                    f"{self.model.vis.global_.offwidth}x{self.model.vis.global_.offheight} (<visual><global offwidth/offheight>)"
                )
            renderer = mujoco.Renderer(self.model, height, width)
            self._renderers[key] = renderer
        renderer.update_scene(self.data if data is None else data, camera)
        return renderer.render()

    def camera_pose_world(self, camera: str) -> np.ndarray:
        """4x4 pose of the camera's ROS optical frame (z forward, x right, y down) in the world frame.

        MuJoCo cameras look along their -z with +y up; the optical frame is that rotated by pi about x.
        """
        cid = self.camera_id(camera)
        t = np.eye(4)
        r_mj = self.data.cam_xmat[cid].reshape(3, 3)
        t[:3, :3] = r_mj @ np.diag([1.0, -1.0, -1.0])
        t[:3, 3] = self.data.cam_xpos[cid]
        return t

    def close(self) -> None:
        """Release GL contexts (explicitly: MuJoCo's renderer errors if collected at interpreter exit)."""
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def now() -> float:
    """Monotonic capture timestamp (s) for observations."""
    return time.monotonic()
