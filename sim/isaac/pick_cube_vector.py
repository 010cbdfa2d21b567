"""``rcs/PandaPickCube-v0`` batched in one Isaac Lab simulation: ``num_envs`` copies of the pick-cube scene
stepped together by Isaac Lab's own vectorization (one Newton model, one MuJoCo-Warp solve per physics step for
every env; on ``device="cuda:0"`` thousands of envs share a GPU).

Made by ``gym.make_vec("rcs/PandaPickCube-v0", num_envs=N, robot="isaac/panda", control_mode="joint")``
(:func:`rcs.envs.vector.make_pick_cube_vector` finds it through the ``rcs.vector_envs`` entry points).

Same task as :class:`rcs.envs.pick_cube.PickCubeEnv`: the same observation keys and spaces (state only), the same
joint action spaces, success test, reward and failure (:func:`rcs.envs.pick_cube.pick_cube_measures`); episode
starts drawn from the same ranges (cube position and yaw, goal). What differs:

- joint actions only (absolute or relative): Cartesian targets need an IK solve per env, which stays on the
  one-env path (``gym.make``);
- no cameras: pixels come from the MuJoCo mirror of env 0 only (:mod:`sim.isaac.mirror`);
- TCP poses come from Isaac's body poses (hand body + the MJCF site offset), not from MuJoCo's kinematics: the
  same model, checked against each other in ``tests/isaac``;
- finished envs restart within the same ``step`` (gymnasium's same-step autoreset): the returned observation is
  the new episode's first, the finished one's last is in ``infos["final_obs"]`` and its measures in
  ``infos["final_info"]`` (rows where ``infos["_final_obs"]`` is true);
- observations and infos are numpy arrays on the host (one device-to-host copy per step).

Frames and units as in the one-env task: arm base frame (the env's world frame), m, rad, quaternions (w, x, y, z).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rcs.envs.arm_actions import JointAbsolute, JointRelative
from rcs.envs.base import resolve_config
from rcs.envs.pick_cube import (
    PickCubeConfig,
    cube_off_table,
    pick_cube_measures,
    pick_cube_reward,
    pick_cube_state_spaces,
)
from rcs.errors import ActionError, ConfigError
from rcs.geometry import quat_from_euler_rpy
from rcs.registry import make_robot
from rcs.validation import LimitPolicy
from sim.isaac.arm import IsaacArm


class IsaacPickCubeVectorEnv(VectorEnv):
    """``num_envs`` pick-cube episodes in one Isaac Lab world (see the module docstring).

    Args:
        num_envs: scenes simulated together.
        config: the task (:class:`rcs.envs.pick_cube.PickCubeConfig`); or its fields as keywords. ``robot`` must
            be an Isaac arm; ``robot_config`` may set ``device`` and ``physics_dt``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, config: PickCubeConfig | None = None, **overrides: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"num_envs={num_envs!r}: expected an integer >= 1")
        cfg = resolve_config(PickCubeConfig, config, overrides)
        if cfg.control_mode != "joint":
            raise ConfigError(
                f"control_mode={cfg.control_mode!r}: the batched Isaac env takes joint actions only "
                "(Cartesian targets need IK per env: use gym.make for one env)"
            )
        if cfg.cameras:
            raise ConfigError("cameras: the batched Isaac env has no image observations (state only)")
        if "num_envs" in cfg.robot_config:
            raise ConfigError("robot_config.num_envs: set num_envs of the vector env instead")
        self.config = cfg
        self.num_envs = num_envs
        self._policy = LimitPolicy(cfg.limit_policy)
        robot = make_robot(cfg.robot, **{**cfg.robot_config, "num_envs": num_envs, "limit_policy": cfg.limit_policy})
        if not isinstance(robot, IsaacArm):
            raise ConfigError(f"robot={cfg.robot!r} is not an Isaac arm: the batched env needs one (e.g. isaac/panda)")
        self.arm = robot
        self.world = robot.world
        self.map = robot.map
        self.scene = robot.scene
        self.arm_spec = robot.spec  # (VectorEnv.spec is the gymnasium EnvSpec)
        self.dt = 1.0 / cfg.control_rate_hz
        self._substeps = max(1, round(self.dt / self.world.config.physics_dt))
        mode = (JointRelative if cfg.relative else JointAbsolute)(robot, self.scene, self.dt, cfg.action_limits)
        self.single_action_space: spaces.Box = mode.space
        self.single_observation_space = spaces.Dict(pick_cube_state_spaces(self.arm_spec))
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._labels = (*self.arm_spec.joint_names, "gripper")
        n = num_envs
        self._targets = np.zeros((n, 3))  # m: each env's goal
        self._joint_targets = np.zeros((n, self.arm_spec.dof))  # rad: relative actions integrate these
        self._steps = np.zeros(n, dtype=np.int64)
        self._ctrl = self.world.ctrl_all()
        #: per env: actions clipped into the action space since the env's episode began
        self.clipped_actions = np.zeros(n, dtype=np.int64)
        self._rng = np.random.default_rng()

    # -- gymnasium VectorEnv ------------------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int] | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict]:
        """Every env starts a new episode: home pose, fingers open, the cube and the goal drawn per env."""
        if isinstance(seed, list):
            raise ConfigError("seed: one int seeds every env of the batched Isaac env (a list is not supported)")
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._restart(np.arange(self.num_envs))
        obs = self._observe()
        return obs, self._infos(obs)

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply one action per env for ``1 / control_rate_hz`` s; finished envs restart (same-step autoreset)."""
        a = self._check(actions)
        q_cmd = a[:, :-1] + (self._joint_targets if self.config.relative else 0.0)
        q_cmd = self._joint_limits(q_cmd)
        self._joint_targets = q_cmd
        self._ctrl[:, self.map.actuators] = q_cmd
        if self.map.grip_actuator >= 0:
            self._ctrl[:, self.map.grip_actuator] = self.map.grip_ctrl(a[:, -1])
        self.world.set_ctrl_rows(self._ctrl)
        self.world.step(self._substeps)
        self._steps += 1
        obs = self._observe()
        infos = self._infos(obs)
        rewards = pick_cube_reward(infos)
        terminated = cube_off_table(obs, self.scene)
        truncated = self._steps >= self.config.max_episode_steps
        done = terminated | truncated
        if done.any():
            infos["final_obs"] = {k: v.copy() for k, v in obs.items()}
            infos["final_info"] = {k: np.copy(v) for k, v in infos.items() if k != "final_obs"}
            infos["_final_obs"] = infos["_final_info"] = done.copy()
            self._restart(np.flatnonzero(done))
            fresh = self._observe()
            for key, value in fresh.items():
                obs[key][done] = value[done]
            infos.update(self._infos(obs))  # the restarted rows' measures describe their new first observation
        return obs, rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.arm.close()

    # -- internals ----------------------------------------------------------------------------------
    def _restart(self, ids: np.ndarray) -> None:
        """New episodes for the envs ``ids``: the arm at home at rest, cube and goal drawn as the one-env task."""
        k, sc, rng = len(ids), self.scene, self._rng
        xy = rng.uniform(sc.cube_spawn_low, sc.cube_spawn_high, size=(k, 2))
        yaw = rng.uniform(-np.pi / 4, np.pi / 4, size=k)
        cube_p = np.column_stack([xy, np.full(k, sc.table_height + sc.cube_half_size)])
        cube_q = np.stack([quat_from_euler_rpy(0.0, 0.0, float(y)) for y in yaw])
        self._targets[ids] = rng.uniform(sc.target_low, sc.target_high, size=(k, 3))
        home_q = np.tile(self.map.home_joint_row, (k, 1))
        home_ctrl = np.tile(self.map.home_ctrl, (k, 1))
        self.world.reset_envs(ids, home_q, home_ctrl, cube_p, cube_q)
        self._ctrl[ids] = home_ctrl
        self._joint_targets[ids] = self.arm_spec.home
        self._steps[ids] = 0
        self.clipped_actions[ids] = 0

    def _observe(self) -> dict[str, np.ndarray]:
        w, m = self.world, self.map
        q = w.joint_positions()
        tcp_p, tcp_q = m.tcp_poses(w)
        cube_p, cube_q = w.cube_poses()
        gripper = m.grip_width(q)
        f32 = np.float32
        return {
            "joint_positions": q[:, m.joints].astype(f32),
            "joint_velocities": w.joint_velocities()[:, m.joints].astype(f32),
            "gripper": np.nan_to_num(gripper, nan=0.0)[:, None].astype(f32),
            "tcp_position": tcp_p.astype(f32),
            "tcp_quaternion": tcp_q.astype(f32),
            "cube_position": cube_p.astype(f32),
            "cube_quaternion": cube_q.astype(f32),
            "target_position": self._targets.astype(f32),
        }

    def _infos(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        infos: dict[str, Any] = dict(pick_cube_measures(obs, self.config.success_threshold))
        infos["clipped_actions"] = self.clipped_actions.copy()
        return infos

    def _check(self, actions: Any) -> np.ndarray:
        """Shape, dtype and NaN/inf are errors; bounds clip (counted per env) or raise, per ``limit_policy``."""
        space = self.single_action_space
        shape = (self.num_envs, space.shape[0])
        raw = np.asarray(actions)
        if raw.dtype.kind not in "fiu":
            raise ActionError("actions.dtype", str(raw.dtype), "a real numeric dtype (float or int)")
        if raw.shape != shape:
            raise ActionError("actions.shape", raw.shape, f"shape {shape} (num_envs, action size)")
        a = raw.astype(np.float64)
        bad = ~np.isfinite(a)
        if bad.any():
            env, i = map(int, np.argwhere(bad)[0])
            raise ActionError(f"actions[{env}].{self._labels[i]}", float(a[env, i]), "a finite value (no NaN or inf)")
        out = (a < space.low) | (a > space.high)
        if out.any():
            if self._policy is LimitPolicy.RAISE:
                env, i = map(int, np.argwhere(out)[0])
                raise ActionError(
                    f"actions[{env}].{self._labels[i]}", float(a[env, i]), f"[{space.low[i]:.4g}, {space.high[i]:.4g}]"
                )
            self.clipped_actions += out.any(axis=1)
            a = np.clip(a, space.low, space.high)
        return a

    def _joint_limits(self, q: np.ndarray) -> np.ndarray:
        """Joint targets within the spec's limits (relative actions can integrate past them): clipped, or an error
        under ``limit_policy="raise"``, as the one-env arm's ``command_joint_positions``."""
        lower, upper = self.arm_spec.lower, self.arm_spec.upper
        out = (q < lower) | (q > upper)
        if out.any() and self._policy is LimitPolicy.RAISE:
            env, i = map(int, np.argwhere(out)[0])
            raise ActionError(
                f"joint_positions[{env}].{self.arm_spec.joint_names[i]}",
                float(q[env, i]),
                f"the joint limits [{lower[i]:.4g}, {upper[i]:.4g}] rad",
            )
        return np.clip(q, lower, upper)


def make_pick_cube_vector(num_envs: int = 1, **config: Any) -> IsaacPickCubeVectorEnv:
    """Entry point ``rcs.vector_envs`` ``"pick_cube@isaac/panda"``: the batched pick-cube on an Isaac arm."""
    return IsaacPickCubeVectorEnv(num_envs, **config)
