"""``rcs bench sim``: cost of the env layer over raw physics, for an arm and a quadrotor, next to gymnasium's
own MuJoCo env ``Pusher-v5`` measured the same way in the same run.

For each robot, in the same process and the same state: ``raw`` steps MuJoCo directly
(``mj_step(model, data, nstep=substeps)`` with controls held, through ``simulation.step_raw``), ``env`` calls ``env.step(action)`` with a
constant action at the same physics substeps per step. Rounds alternate raw/env to share machine noise; the
best round of each is kept. ``overhead = raw physics steps/s / env physics steps/s - 1``.
"""

from __future__ import annotations

import argparse
import logging
import time

import gymnasium as gym
import mujoco
import numpy as np

import rcs.envs  # noqa: F401  (registers the ids)

log = logging.getLogger(__name__)

CASES: dict[str, tuple[str, dict]] = {
    "arm": ("rcs/PandaPickCube-v0", {"control_mode": "joint"}),
    "quadrotor": ("rcs/QuadrotorHover-v0", {"action_mode": "motor_thrusts"}),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=2000, help="env steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating raw/env rounds")


def _hold_action(env: gym.Env) -> np.ndarray:
    """A constant, in-bounds action that keeps the robot where it is (arm: home; quadrotor: hover)."""
    u = env.unwrapped
    if hasattr(u, "arm"):
        return np.append(np.asarray(u.arm.spec.home), 1.0).astype(np.float32)
    spec = u.vehicle.spec
    return np.full(spec.num_rotors, spec.hover_thrust / spec.max_collective_thrust, dtype=np.float32)


def measure(env_id: str, kwargs: dict, steps: int, rounds: int) -> dict:
    env = gym.make(env_id, **kwargs)
    try:
        u = env.unwrapped
        sim = u.robot.simulation
        substeps = sim.steps_for(u.dt)
        action = _hold_action(env)
        env.reset(seed=0)
        env.step(action)  # controls now hold the action
        raw_best = env_best = float("inf")
        for _ in range(rounds):
            env.reset(seed=0)
            env.step(action)
            t0 = time.perf_counter()
            for _ in range(steps):
                sim.step_raw(substeps)
            raw_best = min(raw_best, time.perf_counter() - t0)
            env.reset(seed=0)
            env.step(action)
            t0 = time.perf_counter()
            for _ in range(steps):
                env.step(action)
            env_best = min(env_best, time.perf_counter() - t0)
        raw_rate = steps * substeps / raw_best
        env_rate = steps / env_best
        return {
            "env": env_id,
            "substeps": substeps,
            "physics_dt": sim.timestep,
            "raw_steps_per_s": round(raw_rate, 1),
            "env_steps_per_s": round(env_rate, 1),
            "env_physics_steps_per_s": round(env_rate * substeps, 1),
            "overhead": round(raw_rate / (env_rate * substeps) - 1.0, 4),
        }
    finally:
        env.close()


def measure_pusher(steps: int, rounds: int) -> dict:
    """gymnasium's ``Pusher-v5`` (frame_skip 5): raw ``mj_step(model, data, 5)`` vs ``env.step``."""
    env = gym.make("Pusher-v5")
    try:
        u = env.unwrapped
        substeps = u.frame_skip
        action = np.zeros(env.action_space.shape, dtype=np.float32)
        raw_best = env_best = float("inf")
        for _ in range(rounds):
            env.reset(seed=0)
            env.step(action)
            t0 = time.perf_counter()
            for _ in range(steps):
                mujoco.mj_step(u.model, u.data, substeps)
            raw_best = min(raw_best, time.perf_counter() - t0)
            env.reset(seed=0)
            t0 = time.perf_counter()
            for _ in range(steps):
                env.step(action)
            env_best = min(env_best, time.perf_counter() - t0)
        raw_rate, env_rate = steps * substeps / raw_best, steps / env_best
        return {
            "env": "Pusher-v5",
            "substeps": substeps,
            "physics_dt": float(u.model.opt.timestep),
            "raw_steps_per_s": round(raw_rate, 1),
            "env_steps_per_s": round(env_rate, 1),
            "env_physics_steps_per_s": round(env_rate * substeps, 1),
            "overhead": round(raw_rate / (env_rate * substeps) - 1.0, 4),
        }
    finally:
        env.close()


def run(args: argparse.Namespace) -> dict:
    out = {}
    for name, (env_id, kwargs) in CASES.items():
        log.info("measuring %s (%s)", name, env_id)
        out[name] = measure(env_id, kwargs, args.steps, args.rounds)
    log.info("measuring the reference: gymnasium Pusher-v5")
    out["reference_gymnasium_pusher_v5"] = measure_pusher(args.steps, args.rounds)
    return out
