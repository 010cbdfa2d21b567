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


def main() -> None:
    """``python -m sim.isaac.throughput '{json keywords of measure}'``: one JSON line on stdout."""
    result = measure(**json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))
    sys.stdout.flush()
    os.write(1, (json.dumps(result) + "\n").encode())
    os._exit(0)  # skip Isaac Lab's interpreter-exit teardown (seconds, and noisy); the result is out


if __name__ == "__main__":
    main()
