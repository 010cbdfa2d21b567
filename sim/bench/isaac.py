"""``rcs bench isaac``: physics throughput of the pick-cube Panda under Isaac Lab 3 (kit-less: Newton with the
MuJoCo-Warp solver) next to MuJoCo, for 1 and 16 copies of the scene, on the same machine in the same run.

Isaac: each measurement is its own ``.venv-isaac`` process (:mod:`sim.isaac.throughput`; Isaac Lab allows one
simulation per process) with every env commanded the same joint targets (:data:`sim.isaac.throughput.REACH`); warm-up
steps (warp's kernel compile or cache load) are excluded. MuJoCo: the same MJCF scene (``sim/panda``, pick-cube) in
this process, ``n`` ``MjData`` of one model stepped in turn with ``mj_step`` and the same targets held (CPU MuJoCo
has no batch dimension: ``n`` envs cost ``n`` steps). Figures: physics steps/s summed over the envs, and each
engine's real-time factor per env. The physics step is 2 ms in both.

Task level (``--task-steps``, default 10): the pick-cube env stepped with joint actions at 20 Hz (25 physics steps
each): Isaac's batched env (``gym.make_vec``, every env in one world: :mod:`sim.isaac.pick_cube_vector`) next to
``n`` MuJoCo envs in gymnasium's SyncVectorEnv (what ``gym.make_vec`` gives for ``sim/panda``); env steps/s summed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from rcs.errors import ConfigError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
ISAAC_PYTHON = REPO / ".venv-isaac" / "bin" / "python"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 16], help="copies of the scene (default 1 16)")
    parser.add_argument("--steps", type=int, default=200, help="timed physics steps per measurement (default 200)")
    parser.add_argument("--device", default="cpu", help="Isaac Lab device: cpu (default) or cuda:0")
    parser.add_argument(
        "--task-steps", type=int, default=10, help="timed pick-cube env steps per measurement (default 10; 0: none)"
    )
    parser.add_argument("--isaac-python", default=str(ISAAC_PYTHON), help="the Python of .venv-isaac")


def measure_isaac(python: str, num_envs: int, steps: int, device: str, task_steps: int = 0) -> dict[str, Any]:
    """One :mod:`sim.isaac.throughput` process; raises ConfigError naming the setup command when it cannot run."""
    if not Path(python).is_file():
        raise ConfigError(f"--isaac-python={python}: not found; run `bash scripts/setup_isaac.sh` first")
    request = {"num_envs": num_envs, "device": device, "steps": steps, "task_steps": task_steps}
    done = subprocess.run(
        [python, "-m", "sim.isaac.throughput", json.dumps(request)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"isaac throughput ({num_envs} envs, {device}) failed with code {done.returncode}: {last}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure_mujoco(num_envs: int, steps: int) -> dict[str, Any]:
    """``num_envs`` MjData of the MuJoCo pick-cube Panda stepped in turn, the same targets held."""
    import rcs
    from sim.isaac.throughput import REACH

    arm = rcs.make_robot("sim/panda")
    with arm:
        arm.command_joint_positions(np.asarray(REACH))
        sim = arm.simulation
        model = sim.model
        datas = []
        for _ in range(num_envs):
            d = mujoco.MjData(model)
            d.qpos[:], d.qvel[:], d.ctrl[:] = sim.data.qpos, sim.data.qvel, sim.data.ctrl
            if model.na:
                d.act[:] = sim.data.act
            datas.append(d)
        for d in datas:  # warm-up, as the Isaac side's
            mujoco.mj_step(model, d, 20)
        t0 = time.perf_counter()
        for d in datas:
            mujoco.mj_step(model, d, steps)
        wall = time.perf_counter() - t0
        joints = [model.joint(n).qposadr[0] for n in arm.spec.joint_names]
        start_error = float(np.abs(sim.data.qpos[joints] - np.asarray(REACH)).max())
        error = max(float(np.abs(d.qpos[joints] - np.asarray(REACH)).max()) for d in datas)
        dt = float(model.opt.timestep)
    return {
        "num_envs": num_envs,
        "physics_dt": dt,
        "env_steps_per_s": round(num_envs * steps / wall, 1),
        "realtime_factor": round(steps * dt / (wall / num_envs), 3),
        "start_error": start_error,
        "max_error": error,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sim.isaac.throughput import time_task

    out: dict[str, Any] = {"scene": "pick-cube Panda, REACH targets held", "steps": args.steps, "results": {}}
    for n in args.envs:
        if n < 1:
            raise ConfigError(f"--envs {n}: expected >= 1")
        log.info("rcs bench isaac: %d env(s): Isaac Lab (%s)", n, args.device)
        isaac = measure_isaac(args.isaac_python, n, args.steps, args.device, args.task_steps)
        log.info("rcs bench isaac: %d env(s): MuJoCo", n)
        ref = measure_mujoco(n, args.steps)
        row: dict[str, Any] = {
            "isaac": isaac,
            "mujoco": ref,
            "isaac_over_mujoco": round(isaac["env_steps_per_s"] / ref["env_steps_per_s"], 4),
        }
        if args.task_steps > 0:
            task = {"isaac": isaac.pop("task"), "mujoco": time_task(n, args.task_steps)}
            task["isaac_over_mujoco"] = round(task["isaac"]["env_steps_per_s"] / task["mujoco"]["env_steps_per_s"], 4)
            row["task"] = task
        out["results"][str(n)] = row
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out
