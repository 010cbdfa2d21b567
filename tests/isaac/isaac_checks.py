"""Scenarios run inside .venv-isaac by tests/isaac (one process each: Isaac Lab allows one simulation per process).

Usage: .venv-isaac/bin/python tests/isaac/isaac_checks.py SCENARIO '{"json": "args"}'
Prints one JSON line ``{"ok": true, "result": {...}}`` (or ``{"ok": false, "error": "..."}``) last on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PANDA_MJCF = REPO / "sim" / "models" / "panda" / "panda.xml"

#: moves every arm joint, away from the table all the way (TCP >= 0.39 m on the straight joint path), with a
#: gravity load that the servos alone hold only to 6.8 mrad (MuJoCo, gravity compensation off)
REACH = (0.3, 0.2, 0.2, -1.7, 0.3, 2.0, 1.0)


def reach_and_hold(args: dict[str, Any]) -> dict[str, Any]:
    """Build isaac/panda, command REACH and the gripper closed, run ``steps`` physics steps, then hold 0.2 s.

    ``disable_gravcomp_fix`` / ``disable_self_collision_fix``: skip that conversion fix (run with a fresh
    ``RCS_ISAAC_CACHE``, or the fixed file in the cache is reused), to show what each fix is for.
    """
    if args.get("disable_gravcomp_fix"):
        import sim.isaac.convert as convert

        convert.rename_gravcomp_for_newton = lambda stage: 0  # the converter's output as Newton gets it unfixed
    if args.get("disable_self_collision_fix"):
        import sim.isaac.convert as convert

        convert.keep_mjcf_self_collision_rule = lambda stage, model, mjcf: False
    import rcs
    from sim.isaac.convert import cached_usd_path

    cached_before = cached_usd_path(PANDA_MJCF).is_file()
    t0 = time.monotonic()
    arm = rcs.make_robot("isaac/panda", device=args.get("device", "cpu"))
    build_s = time.monotonic() - t0
    out: dict[str, Any] = {"build_s": build_s, "usd": str(cached_usd_path(PANDA_MJCF)), "cached_before": cached_before}
    with arm:
        s0 = arm.read()
        out["start_error"] = float(np.abs(s0.joint_positions - np.asarray(arm.spec.home)).max())
        out["start_gripper"] = s0.gripper
        t1 = time.monotonic()
        arm.advance(0.02)  # the first steps compile (or load) warp's kernels
        out["first_steps_s"] = time.monotonic() - t1
        out["home_drift"] = float(np.abs(arm.read().joint_positions - np.asarray(arm.spec.home)).max())
        target = np.asarray(REACH)
        arm.command_joint_positions(target)
        arm.command_gripper(0.0)
        steps = int(args.get("steps", 400))
        t2 = time.monotonic()
        arm.advance(steps * 0.002)
        out["steps_per_s"] = steps / (time.monotonic() - t2)
        s1 = arm.read()
        out["reach_error"] = (s1.joint_positions - target).tolist()
        arm.advance(0.2)
        s2 = arm.read()
        out["hold_error"] = (s2.joint_positions - target).tolist()
        out["hold_drift"] = float(np.abs(s2.joint_positions - s1.joint_positions).max())
        out["gripper"] = s2.gripper
        out["sim_time"] = arm.sim_time
        out["cube"] = arm.object_pose("cube")[0].tolist()
        tcp, _ = arm.kinematics.forward(target)
        out["tcp_error"] = float(np.linalg.norm(s2.tcp_position - tcp))
    return out


def convert_twice(args: dict[str, Any]) -> dict[str, Any]:
    """Convert ``mjcf`` twice into ``cache``: the second call must find the first one's file."""
    from sim.isaac.convert import convert_mjcf

    cache = Path(args["cache"])
    mjcf = Path(args.get("mjcf", PANDA_MJCF))
    first = convert_mjcf(mjcf, cache)
    stat1 = first.stat()
    second = convert_mjcf(mjcf, cache)
    stat2 = second.stat()
    return {
        "first": str(first),
        "second": str(second),
        "same_inode": (stat1.st_ino, stat1.st_mtime_ns) == (stat2.st_ino, stat2.st_mtime_ns),
        "entries": sorted(p.name for p in cache.iterdir()),
        "gravcomp_attrs": _gravcomp_attrs(second),
    }


def _gravcomp_attrs(usd: Path) -> dict[str, int]:
    from pxr import Usd

    stage = Usd.Stage.Open(str(usd))
    counts = {"mjc:gravcomp": 0, "mjc:body:gravcomp": 0}
    for prim in stage.Traverse():
        for name in counts:
            if prim.GetAttribute(name) and prim.GetAttribute(name).HasAuthoredValue():
                counts[name] += 1
    return counts


def convert_error(args: dict[str, Any]) -> dict[str, Any]:
    """Convert ``mjcf`` (expected to fail): the error's type and message."""
    from rcs.errors import RcsError
    from sim.isaac.convert import convert_mjcf

    try:
        convert_mjcf(Path(args["mjcf"]), Path(args["cache"]))
    except RcsError as e:
        return {"type": type(e).__name__, "message": str(e)}
    return {"type": None, "message": ""}


def batched_reach(args: dict[str, Any]) -> dict[str, Any]:
    """``num_envs`` Pandas on ``device`` (Isaac Lab's vectorization) all commanded REACH: physics steps/s of the
    whole batch over ``steps`` steps (after 20 warm-up steps that compile or load the kernels) and the worst
    joint error over every env at the end (rad)."""
    import rcs

    n, device, steps = int(args.get("num_envs", 4)), str(args.get("device", "cpu")), int(args.get("steps", 300))
    t0 = time.monotonic()
    arm = rcs.make_robot("isaac/panda", device=device, num_envs=n)
    out: dict[str, Any] = {"num_envs": n, "device": device, "build_s": time.monotonic() - t0}
    world = arm.world
    ctrl = world.ctrl(0)
    for name, q in zip(arm.spec.joint_names, REACH, strict=True):
        ctrl[world.actuator_names.index(name)] = q
    world.set_ctrl_all(ctrl)
    joints = [world.joint_names.index(name) for name in arm.spec.joint_names]
    t1 = time.monotonic()
    world.step(20)
    world.joint_positions()  # waits for the device
    out["first_steps_s"] = time.monotonic() - t1
    t2 = time.monotonic()
    world.step(steps)
    q = world.joint_positions()[:, joints]  # waits for the device
    wall = time.monotonic() - t2
    out["steps_per_s"] = steps / wall
    out["env_steps_per_s"] = n * steps / wall
    out["realtime_factor_per_env"] = steps * world.config.physics_dt / wall
    out["max_error"] = float(np.abs(q - np.asarray(REACH)).max())
    out["sim_time"] = (steps + 20) * world.config.physics_dt
    return out


SCENARIOS = {
    "reach_and_hold": reach_and_hold,
    "batched_reach": batched_reach,
    "convert_twice": convert_twice,
    "convert_error": convert_error,
}


def main() -> None:
    scenario, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    try:
        result = SCENARIOS[scenario](json.loads(raw))
        line = json.dumps({"ok": True, "result": result})
    except Exception as e:  # reported to the test as one JSON line, with the traceback on stderr
        traceback.print_exc()
        line = json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"})
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, (line + "\n").encode())
    os._exit(0)  # skip Isaac Lab's interpreter-exit teardown (seconds, and noisy); the result is out


if __name__ == "__main__":
    main()
