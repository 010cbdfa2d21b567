"""The baselines of the foundation issue, run through the real envs exactly as users run them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rcs.envs  # noqa: F401  (registers the ids)
from rcs.envs.quadrotor import QuadrotorConfig
from rcs.envs.rollout import run_episode
from rcs.experts import PickCubeExpert
from rcs.experts.quadrotor import QuadrotorTrackingExpert

PICK_ENVS = ["rcs/PandaPickCube-v0", "rcs/SO101PickCube-v0"]


class CheckedExpert:
    """Wraps the expert and checks each action: in the workspace, setpoint speed bounded (smooth)."""

    def __init__(self, env: gym.Env) -> None:
        u = env.unwrapped
        self.expert = PickCubeExpert(u.scene, u.dt)
        self.workspace, self.dt = u.scene.workspace, u.dt
        self.previous: np.ndarray | None = None

    def reset(self) -> None:
        self.expert.reset()
        self.previous = None

    def __call__(self, obs: dict) -> np.ndarray:
        action = self.expert(obs)
        assert action.shape == (7,) and action.dtype == np.float32
        assert self.workspace.contains(action[:3].astype(np.float64))
        if self.previous is not None:
            assert np.linalg.norm(action[:3] - self.previous[:3]) <= 0.5 * self.dt + 1e-6
        self.previous = action
        return action


def _successes(env_id: str, seeds: range) -> tuple[int, list[tuple[int, float]]]:
    env = gym.make(env_id)
    policy = CheckedExpert(env)
    failures = []
    try:
        for seed in seeds:
            result = run_episode(env, policy, seed=seed, reset_policy=policy.reset)
            if not result.success:
                failures.append((seed, result.infos[-1]["cube_to_target"]))
    finally:
        env.close()
    return len(seeds) - len(failures), failures


@pytest.mark.parametrize("env_id", PICK_ENVS)
def test_expert_picks_the_cube_10_seeds(env_id):
    successes, failures = _successes(env_id, range(10))
    assert successes >= 9, f"{env_id}: {successes}/10, failures (seed, distance m): {failures}"


@pytest.mark.slow
@pytest.mark.parametrize("env_id", PICK_ENVS)
def test_expert_picks_the_cube_100_seeds(env_id):
    """Acceptance criterion: >= 95 of 100 seeds for each arm."""
    successes, failures = _successes(env_id, range(100))
    assert successes >= 95, f"{env_id}: {successes}/100, failures (seed, distance m): {failures}"


def test_baseline_tracks_figure_eight_through_the_env():
    """The classical controller on the thrust + body-rate action mode, after the reference's speed ramp."""
    base = QuadrotorConfig()
    period = base.figure_eight[2]
    config = QuadrotorConfig(task="track", action_mode="thrust_rates", max_episode_steps=int(2 * period * 100))
    env = gym.make("rcs/QuadrotorTrack-v0", config=config)
    u = env.unwrapped
    expert = QuadrotorTrackingExpert(u.vehicle.spec, u.reference, u.dt)
    try:
        result = run_episode(env, expert, seed=3, reset_policy=expert.reset)
    finally:
        env.close()
    assert result.steps == config.max_episode_steps  # never left the geofence or crashed
    errors = np.array([i["position_error"] for i in result.infos])[int(period * 100) :]
    assert np.sqrt(np.mean(errors**2)) < 0.01 and errors.max() < 0.02
    assert all(i["is_success"] for i in result.infos[int(period * 100) :])
