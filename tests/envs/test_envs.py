"""Every registered env passes gymnasium's checker, is deterministic under a seed, vectorizes, and rejects
bad actions with a clear error."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rcs
import rcs.envs  # noqa: F401  (registers the ids)
from rcs.clock import WallClock
from rcs.devices import Quadrotor, Simulated
from rcs.envs.base import CameraConfig
from rcs.envs.pick_cube import PickCubeConfig
from rcs.envs.registration import ENVS
from rcs.errors import ActionError, RcsError

VARIANTS = [
    ("rcs/PandaPickCube-v0", {}),
    ("rcs/PandaPickCube-v0", {"control_mode": "joint"}),
    ("rcs/PandaPickCube-v0", {"control_mode": "joint", "relative": True}),
    ("rcs/PandaPickCube-v0", {"control_mode": "cartesian", "relative": True}),
    ("rcs/SO101PickCube-v0", {}),
    ("rcs/SO101PickCube-v0", {"control_mode": "joint", "relative": True}),
    ("rcs/PandaPickTwoCubes-v0", {}),
    ("rcs/PandaPickRedCube-v0", {}),
    ("rcs/PandaPickBlueCube-v0", {"control_mode": "joint"}),
    ("rcs/QuadrotorHover-v0", {}),
    ("rcs/QuadrotorHover-v0", {"action_mode": "thrust_rates"}),
    ("rcs/QuadrotorHover-v0", {"action_mode": "position"}),
    ("rcs/QuadrotorTrack-v0", {}),
    ("rcs/ArmTeleop-v0", {"robot": "sim/so101"}),
    ("rcs/ArmTeleop-v0", {"robot": "sim/panda", "control_mode": "cartesian", "relative": True}),
]
#: ids whose robot is the caller's choice (no registered default): the robot the per-id tests use.
ROBOT_OF_ID = {"rcs/ArmTeleop-v0": "sim/so101"}


def _make(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **kwargs)


def test_all_registered_ids_are_covered():
    assert {v[0] for v in VARIANTS} == set(ENVS)


@pytest.mark.parametrize("env_id, kwargs", VARIANTS, ids=lambda v: str(v))
def test_gymnasium_env_checker(env_id, kwargs):
    env = _make(env_id, **kwargs)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def _rollout(env: gym.Env, seed: int, steps: int) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [np.concatenate([np.ravel(v) for k, v in sorted(obs.items())])]
    for _ in range(steps):
        obs, *_ = env.step(env.action_space.sample())
        out.append(np.concatenate([np.ravel(v) for k, v in sorted(obs.items())]))
    return out


@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_deterministic_under_seed(env_id):
    env = _make(env_id, **({"robot": ROBOT_OF_ID[env_id]} if env_id in ROBOT_OF_ID else {}))
    try:
        a = _rollout(env, seed=7, steps=15)
        b = _rollout(env, seed=7, steps=15)
        c = _rollout(env, seed=8, steps=15)
    finally:
        env.close()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_image_observations_are_rendered_and_not_blank():
    env = _make("rcs/PandaPickCube-v0", cameras=(CameraConfig("front", 96, 96), CameraConfig("wrist", 96, 96)))
    try:
        obs, _ = env.reset(seed=0)
        for key in ("image_front", "image_wrist"):
            img = obs[key]
            assert img.shape == (96, 96, 3) and img.dtype == np.uint8
            assert img.std() > 10, f"{key} looks blank"
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_render_rgb_array():
    env = _make("rcs/QuadrotorTrack-v0", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        frame = env.render()
        assert frame.shape == (480, 640, 3) and frame.std() > 5
    finally:
        env.close()


def test_config_pickles_and_vector_env_runs():
    config = PickCubeConfig(robot="sim/so101", control_mode="joint", relative=True)
    assert pickle.loads(pickle.dumps(config)) == config
    envs = gym.vector.AsyncVectorEnv([lambda: gym.make("rcs/SO101PickCube-v0", config=config)] * 2, context="spawn")
    try:
        obs, _ = envs.reset(seed=[1, 2])
        assert obs["joint_positions"].shape == (2, 5)
        obs, reward, term, trunc, info = envs.step(envs.action_space.sample())
        assert reward.shape == (2,) and "is_success" in info
    finally:
        envs.close()


@pytest.mark.parametrize(
    "action, field",
    [
        (np.zeros(3, dtype=np.float32), "action.shape"),
        (np.array(["a"] * 8), "action.dtype"),
        (np.array([np.nan] + [0.0] * 7, dtype=np.float32), "action[0]"),
    ],
)
def test_bad_actions_raise_naming_the_field(action, field):
    env = _make("rcs/PandaPickCube-v0", control_mode="joint")
    try:
        env.reset(seed=0)
        with pytest.raises(ActionError) as e:
            env.step(action)
        assert e.value.field == field
    finally:
        env.close()


def test_out_of_bounds_actions_clip_and_report_or_raise():
    env = _make("rcs/PandaPickCube-v0", control_mode="joint")
    try:
        env.reset(seed=0)
        too_big = env.action_space.high + 1.0
        *_, info = env.step(too_big)
        assert info["clipped_actions"] == 1
    finally:
        env.close()
    env = _make("rcs/PandaPickCube-v0", control_mode="joint", limit_policy="raise")
    try:
        env.reset(seed=0)
        with pytest.raises(ActionError) as e:
            env.step(env.action_space.high + 1.0)
        first_joint = env.unwrapped.arm.spec.joint_names[0]
        assert e.value.field == f"action[{first_joint}]" and "limit [" in e.value.limit
    finally:
        env.close()


def test_action_space_derives_from_spec():
    env = _make("rcs/SO101PickCube-v0", control_mode="joint")
    try:
        spec = env.unwrapped.arm.spec
        np.testing.assert_allclose(env.action_space.low[:-1], spec.lower.astype(np.float32))
        np.testing.assert_allclose(env.action_space.high[:-1], spec.upper.astype(np.float32))
    finally:
        env.close()


class _PhysicalLikeQuadrotor(Quadrotor):
    """A quadrotor that is not Simulated (no advance/reset), as a hardware driver would be: it delegates
    every hook to a simulated vehicle whose time nobody advances."""

    def __init__(self, **config) -> None:
        self._inner = rcs.make_robot("sim/crazyflie", **config)
        super().__init__(self._inner.spec, self._inner.limit_policy)

    def _connect(self) -> None:
        self._inner.connect()

    def _close(self) -> None:
        self._inner.close()
        self._inner.simulation.close()

    def _read(self):
        return self._inner.read()

    def _set_armed(self, armed: bool) -> None:
        self._inner._set_armed(armed)

    def _write_motor_thrusts(self, u) -> None:
        self._inner._write_motor_thrusts(u)

    def _write_thrust_rates(self, thrust, rates) -> None:
        self._inner._write_thrust_rates(thrust, rates)

    def _write_position(self, position, yaw) -> None:
        self._inner._write_position(position, yaw)


def test_env_never_arms_a_physical_vehicle_by_itself():
    rcs.robots.register("test/physical-crazyflie", _PhysicalLikeQuadrotor, replace=True)
    try:
        env = gym.make("rcs/QuadrotorHover-v0", robot="test/physical-crazyflie", control_rate_hz=100.0)
        try:
            u = env.unwrapped
            assert not isinstance(u.robot, Simulated) and isinstance(u._clock, WallClock)
            with pytest.raises(RcsError, match="disarmed; arm it"):
                env.reset(seed=0)
            u.vehicle.arm()  # the operator arms it
            obs, _ = env.reset(seed=0)
            assert u.vehicle.read().armed and env.observation_space.contains(obs)
        finally:
            env.close()
    finally:
        rcs.robots.unregister("test/physical-crazyflie")
