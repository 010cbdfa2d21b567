"""Physics throughput of the Isaac Lab pick-cube scene, one process per measurement (Isaac Lab allows one
simulation per process).

Run in ``.venv-isaac``: ``python -m sim.isaac.throughput '{"num_envs": 16, "device": "cpu", "steps": 200}'`` prints
one JSON line with the result of :func:`measure` (``rcs bench isaac`` runs it from the main venv).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

#: rad: joint targets that move every Panda joint away from home, clear of the table (the tests' REACH pose)
REACH = (0.3, 0.2, 0.2, -1.7, 0.3, 2.0, 1.0)


def measure(num_envs: int = 1, device: str = "cpu", steps: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Build ``isaac/panda`` with ``num_envs`` copies of the scene on ``device``, command :data:`REACH` in every env,
    run ``warmup`` steps (they compile or load warp's kernels), then time ``steps`` physics steps.

    Returns:
        ``num_envs``, ``device``, ``physics_dt`` (s), ``build_s``, ``warmup_s`` (s), ``steps_per_s`` (batch
        steps/s), ``env_steps_per_s`` (physics steps/s summed over the envs), ``realtime_factor`` (simulated s
        per wall s, per env), ``start_error`` and ``max_error`` (rad: worst joint error to REACH over every env before
        the warm-up and at the end).
    """
    import rcs

    t0 = time.monotonic()
    arm = rcs.make_robot("isaac/panda", device=device, num_envs=num_envs)
    world = arm.world
    build_s = time.monotonic() - t0
    ctrl = world.ctrl(0)
    for name, q in zip(arm.spec.joint_names, REACH, strict=True):
        ctrl[world.actuator_names.index(name)] = q
    world.set_ctrl_all(ctrl)
    joints = [world.joint_names.index(name) for name in arm.spec.joint_names]
    start_error = float(np.abs(world.joint_positions()[:, joints] - np.asarray(REACH)).max())
    t1 = time.monotonic()
    world.step(warmup)
    world.joint_positions()  # waits for the device
    warmup_s = time.monotonic() - t1
    t2 = time.monotonic()
    world.step(steps)
    q = world.joint_positions()[:, joints]  # waits for the device
    wall = time.monotonic() - t2
    dt = world.config.physics_dt
    return {
        "num_envs": num_envs,
        "device": device,
        "physics_dt": dt,
        "build_s": round(build_s, 2),
        "warmup_s": round(warmup_s, 2),
        "steps_per_s": round(steps / wall, 1),
        "env_steps_per_s": round(num_envs * steps / wall, 1),
        "realtime_factor": round(steps * dt / wall, 3),
        "start_error": start_error,
        "max_error": float(np.abs(q - np.asarray(REACH)).max()),
    }


def measure_task(num_envs: int = 1, device: str = "cpu", steps: int = 20, warmup: int = 2) -> dict[str, Any]:
    """:func:`time_task` of the batched pick-cube env on ``isaac/panda`` (reuses the process's world when
    :func:`measure` built the same one)."""
    return time_task(num_envs, steps, warmup, robot="isaac/panda", robot_config={"device": device})


def time_task(num_envs: int, steps: int, warmup: int = 2, **env_config: Any) -> dict[str, Any]:
    """``gym.make_vec("rcs/PandaPickCube-v0", num_envs, control_mode="joint", **env_config)`` with every env commanded
    :data:`REACH` (joint actions at the env's 20 Hz: 25 physics steps per env step): ``warmup`` steps, then ``steps``
    timed ones. The same measurement for Isaac's batched env and MuJoCo's one-env copies (``rcs bench isaac``).

    Returns:
        ``num_envs``, ``steps_per_s`` (batch steps/s), ``env_steps_per_s`` (env steps/s summed over the envs).
    """
    import gymnasium as gym

    import rcs.envs  # noqa: F401  (registers the ids)

    env = gym.make_vec(
        "rcs/PandaPickCube-v0", num_envs=num_envs, control_mode="joint", max_episode_steps=10_000, **env_config
    )
    env.reset(seed=0)
    action = np.tile(np.r_[REACH, 1.0], (num_envs, 1)).astype(np.float32)
    for _ in range(warmup):
        env.step(action)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    wall = time.perf_counter() - t0
    env.close()
    return {
        "num_envs": num_envs,
        "steps_per_s": round(steps / wall, 2),
        "env_steps_per_s": round(num_envs * steps / wall, 2),
    }


def main() -> None:
    """``python -m sim.isaac.throughput '{json keywords of measure, "task_steps": K}'``: one JSON line on stdout;
    with ``task_steps`` > 0 it also holds :func:`measure_task` of ``K`` steps under ``"task"``."""
    kwargs = json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}")
    task_steps = int(kwargs.pop("task_steps", 0))
    result = measure(**kwargs)
    if task_steps > 0:
        result["task"] = measure_task(kwargs.get("num_envs", 1), kwargs.get("device", "cpu"), task_steps)
    sys.stdout.flush()
    os.write(1, (json.dumps(result) + "\n").encode())
    os._exit(0)  # skip Isaac Lab's interpreter-exit teardown (seconds, and noisy); the result is out


if __name__ == "__main__":
    main()
