"""``rcs bench sim``: cost of the env layer over raw physics, for an arm and a quadrotor, next to gymnasium's
own MuJoCo env ``Pusher-v5`` measured the same way in the same run.

For each robot, in the same process and the same state: ``raw`` steps MuJoCo directly
(``mj_step(model, data, nstep=substeps)`` with controls held, through ``simulation.step_raw``), ``env`` calls ``env.step(action)`` with a
constant action at the same physics substeps per step. Rounds alternate raw/env to share machine noise; the
best round of each is kept. ``overhead = raw physics steps/s / env physics steps/s - 1``.

``batched_quadrotor`` (learning path, :mod:`sim.batch`): ``raw`` is :meth:`sim.batch.quadrotor.BatchQuadrotor.step`
of ``--batch`` vehicles with motor commands held for the env's substeps (vehicle physics steps/s over the whole
batch); ``env`` is :meth:`sim.batch.hover_env.HoverVectorEnv.step` (observation, reward, termination and
autoreset on top) from the same reset state, same alternation. ``mujoco_rollout`` is, for the choice of backend
only, ``mujoco.rollout`` stepping the same number of Crazyflie MuJoCo models (one per vehicle, so parameters can
differ) from a hover state, with the threads given by ``--rollout-threads`` (key ``batched_quadrotor_mujoco_rollout``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable

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
    parser.add_argument("--batch", type=int, default=256, help="vehicles of the batched quadrotor (default 256)")
    parser.add_argument("--batch-steps", type=int, default=500, help="batched env steps per round (default 500)")
    parser.add_argument("--rollout-threads", type=int, default=1, help="threads of mujoco.rollout (default 1)")


def _hold_action(env: gym.Env) -> np.ndarray:
    """A constant, in-bounds action that keeps the robot where it is (arm: home; quadrotor: hover)."""
    u = env.unwrapped
    if hasattr(u, "arm"):
        return np.append(np.asarray(u.arm.spec.home), 1.0).astype(np.float32)
    spec = u.vehicle.spec
    return np.full(spec.num_rotors, spec.hover_thrust / spec.max_collective_thrust, dtype=np.float32)


def compare(
    env: gym.Env,
    action: np.ndarray,
    raw_step: Callable[[], None],
    substeps: int,
    physics_dt: float,
    steps: int,
    rounds: int,
) -> dict:
    """Best-of-``rounds`` rates of ``raw_step`` (one env step's physics) and ``env.step(action)``, alternating,
    each round from the same reset state."""
    raw_best = env_best = float("inf")
    for _ in range(rounds):
        for is_raw in (True, False):
            env.reset(seed=0)
            env.step(action)  # controls now hold the action
            t0 = time.perf_counter()
            for _ in range(steps):
                if is_raw:
                    raw_step()
                else:
                    env.step(action)
            elapsed = time.perf_counter() - t0
            if is_raw:
                raw_best = min(raw_best, elapsed)
            else:
                env_best = min(env_best, elapsed)
    raw_rate, env_rate = steps * substeps / raw_best, steps / env_best
    return {
        "env": env.spec.id if env.spec else type(env.unwrapped).__name__,
        "substeps": substeps,
        "physics_dt": physics_dt,
        "raw_steps_per_s": round(raw_rate, 1),
        "env_steps_per_s": round(env_rate, 1),
        "env_physics_steps_per_s": round(env_rate * substeps, 1),
        "overhead": round(raw_rate / (env_rate * substeps) - 1.0, 4),
    }


def measure(env_id: str, kwargs: dict, steps: int, rounds: int) -> dict:
    """One rcs env against ``MujocoSimulation.step_raw`` at the env's substeps."""
    env = gym.make(env_id, **kwargs)
    try:
        sim = env.unwrapped.robot.simulation
        substeps = sim.steps_for(env.unwrapped.dt)
        return compare(env, _hold_action(env), lambda: sim.step_raw(substeps), substeps, sim.timestep, steps, rounds)
    finally:
        env.close()


def measure_pusher(steps: int, rounds: int) -> dict:
    """gymnasium's ``Pusher-v5`` (frame_skip 5): raw ``mj_step(model, data, 5)`` vs ``env.step``."""
    env = gym.make("Pusher-v5")
    try:
        u = env.unwrapped
        action = np.zeros(env.action_space.shape, dtype=np.float32)
        return compare(
            env,
            action,
            lambda: mujoco.mj_step(u.model, u.data, u.frame_skip),
            u.frame_skip,
            float(u.model.opt.timestep),
            steps,
            rounds,
        )
    finally:
        env.close()


def measure_batched(num_envs: int, steps: int, rounds: int) -> dict:
    """The batched quadrotor: raw :class:`BatchQuadrotor` steps vs :class:`HoverVectorEnv` steps (module docs)."""
    from sim.batch.hover_env import HoverVectorEnv
    from sim.mujoco.quadrotor import CRAZYFLIE_RANDOMIZATION, CRAZYFLIE_SPEC

    env = HoverVectorEnv(CRAZYFLIE_SPEC, num_envs, CRAZYFLIE_RANDOMIZATION)
    spec, k = env.spec, env.substeps
    hover = np.full((num_envs, spec.num_rotors), spec.hover_thrust / spec.max_collective_thrust)
    action = 2.0 * hover - 1.0
    raw_best = env_best = float("inf")
    for _ in range(rounds):
        for is_raw in (True, False):
            env.reset(seed=0)
            t0 = time.perf_counter()
            for _ in range(steps):
                if is_raw:
                    env.sim.step(hover, k)
                else:
                    env.step(action)
            elapsed = time.perf_counter() - t0
            raw_best, env_best = (min(raw_best, elapsed), env_best) if is_raw else (raw_best, min(env_best, elapsed))
    raw_rate = steps * k * num_envs / raw_best
    env_rate = steps * num_envs / env_best
    return {
        "compared": "raw: BatchQuadrotor.step (numpy physics only); env: HoverVectorEnv.step (+ observation, "
        "reward, termination, autoreset); rates are vehicle steps/s summed over the batch",
        "vehicles": num_envs,
        "substeps": k,
        "physics_dt": env.sim.dt,
        "raw_steps_per_s": round(raw_rate, 1),
        "env_steps_per_s": round(env_rate, 1),
        "env_physics_steps_per_s": round(env_rate * k, 1),
        "overhead": round(raw_rate / (env_rate * k) - 1.0, 4),
        "goal_overhead": 0.15,
    }


def measure_rollout(num_envs: int, substeps: int, steps: int, threads: int) -> dict:
    """``mujoco.rollout`` of ``num_envs`` Crazyflie models from a hover state, ``substeps`` physics steps per call."""
    from mujoco import rollout

    from sim.mujoco.quadrotor import CRAZYFLIE_SPEC, make_crazyflie

    vehicle = make_crazyflie()
    vehicle.connect()
    try:
        vehicle.arm()
        hover = np.full(4, CRAZYFLIE_SPEC.hover_thrust / 4)
        vehicle.set_vehicle_state(np.array([0, 0, 1.0]), np.array([1.0, 0, 0, 0]), np.zeros(3), np.zeros(3), hover)
        m, d = vehicle.simulation.model, vehicle.simulation.data
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        state = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, d, state, spec)
        models = [m] * num_envs
        datas = [mujoco.MjData(m) for _ in range(max(1, threads))]
        init = np.tile(state, (num_envs, 1))
        ctrl = np.tile(hover / CRAZYFLIE_SPEC.max_thrust, (num_envs, substeps, 1))
        rollout.rollout(models, datas, init, ctrl)  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            out, _ = rollout.rollout(models, datas, init, ctrl)
            init = out[:, -1, :]
        elapsed = time.perf_counter() - t0
    finally:
        vehicle.close()
    return {
        "compared": "mujoco.rollout of one Crazyflie MjModel per vehicle (raw physics, state copied out each call)",
        "vehicles": num_envs,
        "threads": threads,
        "substeps": substeps,
        "raw_steps_per_s": round(steps * substeps * num_envs / elapsed, 1),
    }


def run(args: argparse.Namespace) -> dict:
    out = {}
    for name, (env_id, kwargs) in CASES.items():
        log.info("measuring %s (%s)", name, env_id)
        out[name] = measure(env_id, kwargs, args.steps, args.rounds)
    log.info("measuring the reference: gymnasium Pusher-v5")
    out["reference_gymnasium_pusher_v5"] = measure_pusher(args.steps, args.rounds)
    log.info("measuring the batched quadrotor (%d vehicles)", args.batch)
    out["batched_quadrotor"] = measure_batched(args.batch, args.batch_steps, args.rounds)
    out["batched_quadrotor_mujoco_rollout"] = measure_rollout(
        args.batch, out["batched_quadrotor"]["substeps"], max(1, args.batch_steps // 4), args.rollout_threads
    )
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out
