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

from sim.isaac import throughput

REPO = Path(__file__).resolve().parents[2]
PANDA_MJCF = REPO / "sim" / "models" / "panda" / "panda.xml"

#: moves every arm joint, away from the table all the way (TCP >= 0.39 m on the straight joint path), with a
#: gravity load that the servos alone hold only to 6.8 mrad (MuJoCo, gravity compensation off)
REACH = throughput.REACH


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
    """``num_envs`` Pandas on ``device`` all commanded REACH (:func:`sim.isaac.throughput.measure`, the benchmark's
    own measurement): throughput and the worst joint error over every env at the end (rad)."""
    return throughput.measure(
        num_envs=int(args.get("num_envs", 4)), device=str(args.get("device", "cpu")), steps=int(args.get("steps", 300))
    )


def _image_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean absolute difference over pixels and channels (0-255) and the fraction of pixels with some channel
    differing by more than 30."""
    d = np.abs(a.astype(int) - b.astype(int))
    return {"mean_abs": float(d.mean()), "changed": float((d.max(axis=2) > 30).mean())}


def mirror_pixels(args: dict[str, Any]) -> dict[str, Any]:
    """The ``front`` camera of isaac/panda (Isaac physics, MuJoCo mirror pixels) next to sim/panda (MuJoCo):

    1. both at home with the cube and the target marker at the same poses: ``same_state`` difference;
    2. both commanded REACH with the gripper closed for 1 s of their own physics: ``after_move`` difference
       (the arm is drawn where Isaac put it), and ``moved`` (Isaac's image before vs after: the arm moved).

    ``stale_mirror``: the mirror never synchronises (what the test must catch).
    """
    import rcs
    from rcs.registry import make_camera

    if args.get("stale_mirror"):
        import sim.isaac.mirror as mirror

        mirror.IsaacMirror.sync = lambda self: None
    size = int(args.get("size", 128))
    cube_p, cube_q = np.array([0.55, 0.12, 0.02]), np.array([0.9238795, 0.0, 0.0, 0.3826834])  # 45 deg yaw
    target = np.array([0.45, -0.15, 0.25])
    isaac, mj = rcs.make_robot("isaac/panda"), rcs.make_robot("sim/panda")
    cams = [make_camera("sim/mujoco", robot=r, name="front", width=size, height=size) for r in (isaac, mj)]
    out: dict[str, Any] = {}
    with isaac, mj:
        for r in (isaac, mj):
            r.reset()
            r.set_object_pose("cube", cube_p, cube_q)
            r.set_marker("target", target)
        for c in cams:
            c.connect()
        before = [c.read().image for c in cams]
        out["same_state"] = _image_difference(*before)
        out["extrinsics_error"] = float(np.abs(cams[0].read().extrinsics - cams[1].read().extrinsics).max())
        for r in (isaac, mj):
            r.command_joint_positions(np.asarray(REACH))
            r.command_gripper(0.0)
            r.advance(1.0)
        out["joint_error"] = float(np.abs(isaac.read().joint_positions - mj.read().joint_positions).max())
        after = [c.read().image for c in cams]
        out["after_move"] = _image_difference(*after)
        out["moved"] = _image_difference(before[0], after[0])
        out["syncs"] = isaac.simulation.syncs
        cams[0].read()  # the same state again: drawn without copying it from Isaac again
        out["syncs_after_reread"] = isaac.simulation.syncs
        try:
            isaac.simulation.advance(0.01)
            out["mirror_steps"] = True
        except Exception as e:  # the mirror must refuse to integrate physics of its own
            out["mirror_steps"] = False
            out["mirror_step_error"] = str(e)
        for c in cams:
            c.close()
    return out


def env_steps(args: dict[str, Any]) -> dict[str, Any]:
    """``rcs/PandaPickCube-v0`` on ``robot`` with the shipped policy's camera (front 96x96): the cube and target
    placed by ``reset(seed)`` for each of ``seeds``, then ``steps`` env steps of an absolute Cartesian action 5 cm
    below the start TCP with the gripper open (observation keys, image checks, task measures)."""
    import gymnasium as gym

    import rcs.envs  # noqa: F401  (registers the env ids)
    from rcs.envs.base import CameraConfig

    env = gym.make(
        "rcs/PandaPickCube-v0", robot=args.get("robot", "isaac/panda"), cameras=(CameraConfig("front", 96, 96),)
    )
    out: dict[str, Any] = {"placements": {}}
    try:
        for seed in args.get("seeds", [10000, 10001, 10002]):
            obs, _ = env.reset(seed=seed)
            out["placements"][str(seed)] = {
                k: obs[k].tolist() for k in ("cube_position", "cube_quaternion", "target_position")
            }
        obs0 = obs
        action = np.concatenate([obs0["tcp_position"] - [0.0, 0.0, 0.05], [np.pi, 0.0, 0.0], [1.0]]).astype(np.float32)
        images = [obs0["image_front"]]
        for _ in range(int(args.get("steps", 10))):
            obs, reward, terminated, truncated, info = env.step(action)
            images.append(obs["image_front"])
        out["keys"] = sorted(obs)
        out["image"] = {"shape": list(obs["image_front"].shape), "dtype": str(obs["image_front"].dtype)}
        out["image_change"] = _image_difference(images[0], images[-1])
        out["tcp_dz"] = float(obs["tcp_position"][2] - obs0["tcp_position"][2])
        out["info"] = {k: (bool(v) if isinstance(v, (bool, np.bool_)) else float(v)) for k, v in info.items()}
        out["reward"] = float(reward)
        out["terminated"], out["truncated"] = bool(terminated), bool(truncated)
        out["in_space"] = bool(env.observation_space.contains(obs))
    finally:
        env.close()
    return out


def expert_grasp(args: dict[str, Any]) -> dict[str, Any]:
    """The scripted expert (rcs.experts.pick_cube) on ``rcs/PandaPickCube-v0`` with ``robot``, one episode per seed
    of ``seeds`` (at most ``steps`` env steps, no cameras): per seed the outcome and contact figures to compare
    engines: ``push_mm`` (how far the cube slid on the table before the fingers closed), ``grip_width`` (the
    normalized finger opening once closed on the cube), ``slip_mm`` (how far the cube moved relative to the TCP
    while carried), ``lift_mm`` (highest cube lift)."""
    import gymnasium as gym

    import rcs.envs  # noqa: F401  (registers the env ids)
    from rcs.experts.pick_cube import PickCubeExpert

    env = gym.make("rcs/PandaPickCube-v0", robot=args.get("robot", "isaac/panda"))
    u = env.unwrapped
    out: dict[str, Any] = {}
    try:
        for seed in args.get("seeds", [10000, 10001, 10002]):
            obs, _ = env.reset(seed=seed)
            expert = PickCubeExpert(u.scene, u.dt)
            cube0 = obs["cube_position"].copy()
            push, width, offsets, lift, steps, success = 0.0, float("nan"), [], 0.0, 0, False
            for step in range(1, int(args.get("steps", 200)) + 1):
                steps = step
                action = expert(obs)
                obs, _, terminated, _, info = env.step(action)
                cube, tcp = obs["cube_position"], obs["tcp_position"]
                lift = max(lift, float(cube[2] - cube0[2]))
                closed = action[-1] < 0.5 and obs["gripper"][0] < 0.9
                if not closed and not offsets:
                    push = max(push, float(np.linalg.norm(cube[:2] - cube0[:2])))
                if closed and cube[2] - cube0[2] > 0.01:  # carried
                    offsets.append((cube - tcp).astype(float))
                    width = float(obs["gripper"][0])
                if info["is_success"] or terminated:
                    success = bool(info["is_success"])
                    break
            off = np.array(offsets) if offsets else np.zeros((1, 3))
            out[str(seed)] = {
                "success": success,
                "steps": steps,
                "push_mm": 1e3 * push,
                "grip_width": width,
                "slip_mm": 1e3 * float(np.linalg.norm(off.max(axis=0) - off.min(axis=0))),
                "lift_mm": 1e3 * lift,
                "final_cube_to_target_mm": 1e3 * float(info["cube_to_target"]),
            }
    finally:
        env.close()
    return out


def _space(box: Any) -> dict[str, Any]:
    return {"shape": list(box.shape), "dtype": str(box.dtype), "low": box.low.tolist(), "high": box.high.tolist()}


def vector_env(args: dict[str, Any]) -> dict[str, Any]:
    """``gym.make_vec("rcs/PandaPickCube-v0", num_envs=4, robot="isaac/panda", control_mode="joint")``:

    spaces; seeded placements (twice); env 1 alone commanded away from home; TCP against MuJoCo's kinematics per
    env; env 2's cube put at its goal (success there only); a per-env restart that leaves the others running;
    same-step autoreset at ``max_episode_steps``; bad actions and options.
    """
    import gymnasium as gym

    import rcs.envs  # noqa: F401  (registers the ids)
    from rcs.errors import ActionError, ConfigError
    from rcs.geometry import quat_angle

    n, horizon = 4, 6
    out: dict[str, Any] = {}
    env = gym.make_vec(
        "rcs/PandaPickCube-v0", num_envs=n, robot="isaac/panda", control_mode="joint", max_episode_steps=horizon
    )
    out["type"] = type(env).__name__
    out["single_observation_space"] = {k: _space(b) for k, b in env.single_observation_space.spaces.items()}
    out["single_action_space"] = _space(env.single_action_space)
    obs, _ = env.reset(seed=3)
    first = {k: v.tolist() for k, v in obs.items() if k in ("cube_position", "target_position")}
    obs, info = env.reset(seed=3)
    out["reset_repeats"] = all(np.array_equal(obs[k], np.asarray(v, np.float32)) for k, v in first.items())
    out["distinct_cubes"] = len({tuple(p) for p in obs["cube_position"].round(6).tolist()})
    out["obs_in_space"] = bool(env.observation_space.contains(obs))
    home = np.r_[env.arm_spec.home, 1.0].astype(np.float32)
    actions = np.tile(home, (n, 1))
    actions[1, 0] += 0.4  # env 1's joint1 turns 0.4 rad; the others hold home
    world = env.world
    cube_p, cube_q = world.cube_poses()
    cube_p[2] = obs["target_position"][2]
    world.set_cube_poses([2], cube_p[2:3], cube_q[2:3])  # env 2's cube at its goal (it falls ~1 cm in one step)
    obs, reward, terminated, truncated, info = env.step(actions)
    out["success_after_placing"] = info["is_success"].tolist()
    out["reward"] = reward.tolist()
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(actions)
    q = obs["joint_positions"].astype(float)
    out["joint1"] = q[:, 0].tolist()
    out["others_from_home"] = float(np.abs(q[[0, 3]] - env.arm_spec.home).max())
    kin = env.arm.kinematics
    tcp_err, tcp_angle = [], []
    for i in range(n):
        p, quat = kin.forward(q[i])
        tcp_err.append(float(np.abs(p - obs["tcp_position"][i]).max()))
        tcp_angle.append(quat_angle(quat, obs["tcp_quaternion"][i].astype(float)))
    out["tcp_error"], out["tcp_angle"] = max(tcp_err), max(tcp_angle)
    # a restart of env 1 alone (what autoreset does): env 0 and 3 run on from where they were
    act_before = world.ctrl_all()
    q_before = world.joint_positions()
    world.reset_envs([1], env.map.home_joint_row[None], env.map.home_ctrl[None], cube_p[1:2], cube_q[1:2])
    after = world.joint_positions()
    out["restart_others_jump"] = float(np.abs(after[[0, 2, 3]] - q_before[[0, 2, 3]]).max())
    out["restart_others_ctrl"] = float(np.abs(world.ctrl_all()[[0, 2, 3]] - act_before[[0, 2, 3]]).max())
    out["restarted_joint1"] = float(after[1, env.map.joints[0]])
    # steps 5 and 6 of the episode: truncation at the horizon restarts every env within the step
    obs, reward, terminated, truncated, info = env.step(actions)
    out["truncated_before"] = truncated.tolist()
    obs, reward, terminated, truncated, info = env.step(actions)
    out["truncated_at_horizon"] = truncated.tolist()
    out["final_mask"] = info["_final_obs"].tolist()
    out["final_joint1"] = info["final_obs"]["joint_positions"][:, 0].tolist()
    out["final_info_keys"] = sorted(info["final_info"])
    out["restarted_from_home"] = float(np.abs(obs["joint_positions"] - env.arm_spec.home).max())
    out["new_targets_differ"] = bool(np.abs(obs["target_position"] - info["final_obs"]["target_position"]).max() > 1e-3)
    errors = {}
    bad = {
        "shape": np.zeros((n - 1, 8), np.float32),
        "nan": np.where(np.arange(8) == 3, np.nan, actions),
    }
    for name, a in bad.items():
        try:
            env.step(a)
            errors[name] = "accepted"
        except ActionError as e:
            errors[name] = str(e)
    clipped = actions.copy()
    clipped[0, 0] = 10.0
    env.step(clipped)
    out["clipped_counts"] = env.clipped_actions.tolist()
    env.close()
    for name, kwargs in {
        "cartesian": {"control_mode": "cartesian"},
        "num_envs_zero": {"control_mode": "joint", "num_envs": 0},
    }.items():
        try:
            gym.make_vec("rcs/PandaPickCube-v0", robot="isaac/panda", **kwargs)
            errors[name] = "accepted"
        except ConfigError as e:
            errors[name] = str(e)
    out["errors"] = errors
    return out


SCENARIOS = {
    "vector_env": vector_env,
    "expert_grasp": expert_grasp,
    "reach_and_hold": reach_and_hold,
    "mirror_pixels": mirror_pixels,
    "env_steps": env_steps,
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
