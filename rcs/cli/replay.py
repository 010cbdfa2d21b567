"""``rcs replay``: play a recorded episode's actions on a simulated robot and report the tracking error.

The env is rebuilt from the dataset's recording metadata (``meta/rcs_recording.json``: env id, control mode,
relative, control rate) and reset with the episode's scene seed (``meta/rcs_episodes.jsonl``), so the scene is
the recorded one. Each recorded action is applied in turn; the observed state is compared with the recorded
``observation.state`` of the next frame (and the last action's result is not compared: the recording has no frame
after it). Reported (SI): joint position error (rad), TCP position error (m), cube position error (m) as RMS and
max, plus the initial-state error (a nonzero value means the scene was not reproduced).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from rcs.cli.main import at_least, json_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, required=True, help="dataset folder")
    parser.add_argument("--episode", type=at_least(0), default=0, help="episode index (default 0)")
    parser.add_argument("--repo-id", default=None, help="lerobot repo id (default local/<root name>)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def read_recording(root: Path, episode: int) -> tuple[dict, dict]:
    """The recording metadata and the episode's line of ``rcs_episodes.jsonl`` (JSON files only: a bad ``--root``
    or ``--episode`` is refused before gymnasium, MuJoCo and lerobot are imported)."""
    from rcs.errors import ConfigError
    from rcs.recording.writer import EPISODES_META, RECORDING_META

    if not root.exists():
        raise ConfigError(f"--root={root} does not exist")
    if not root.is_dir():
        raise ConfigError(f"--root={root}: not a directory (a dataset is a folder with meta/info.json)")
    meta_path = root / RECORDING_META
    if not meta_path.is_file():
        raise ConfigError(
            f"--root={root}: {RECORDING_META} is missing: replay needs a dataset recorded by rcs record "
            "(env id, control mode)"
        )
    try:
        recording = json.loads(meta_path.read_text())
        lines = [json.loads(x) for x in (root / EPISODES_META).read_text().splitlines() if x.strip()]
    except (OSError, ValueError) as e:
        raise ConfigError(f"--root={root}: unreadable recording metadata ({e})") from None
    for key in ("env_id", "control_mode", "relative", "control_rate_hz"):
        if key not in recording:
            raise ConfigError(f"{meta_path}: no {key!r}; replay cannot rebuild the env")
    info = next((x for x in lines if x.get("episode_index") == episode), None)
    if info is None:
        raise ConfigError(f"--episode={episode}: the dataset has episodes 0..{len(lines) - 1}")
    return recording, info


def replay(root: Path, episode: int, repo_id: str) -> dict:
    """Replay ``episode`` of the dataset at ``root``; returns the report (see the module docstring)."""
    recording, info = read_recording(root, episode)

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from rcs.envs.pick_cube import PickCubeEnv
    from rcs.envs.registration import build_env, register_envs
    from rcs.errors import ConfigError
    from rcs.recording.features import ACTION, ENV_STATE, STATE, FeatureLayout, features_to_observation

    ds = LeRobotDataset(repo_id, root=root, episodes=[episode])
    rows = ds.hf_dataset.with_format("numpy")
    actions = np.asarray(rows[ACTION], dtype=np.float32)
    states = np.asarray(rows[STATE], dtype=np.float64)
    env_states = np.asarray(rows[ENV_STATE], dtype=np.float64)

    register_envs()
    env = build_env(
        recording["env_id"],
        control_mode=recording["control_mode"],
        relative=recording["relative"],
        control_rate_hz=recording["control_rate_hz"],
        max_episode_steps=len(actions) + 1,
    )
    if not isinstance(env, PickCubeEnv):
        env.close()
        raise ConfigError(f"env_id={recording['env_id']!r} in the recording metadata: replay supports arm envs only")
    try:
        layout = FeatureLayout.for_env(env)
        n = env.arm.spec.dof
        obs, _ = env.reset(seed=info.get("seed"))
        first = features_to_observation({STATE: states[0], ENV_STATE: env_states[0]}, layout)
        initial = {
            "joint_rad": float(np.abs(obs["joint_positions"] - first["joint_positions"]).max()),
            "cube_m": float(np.linalg.norm(obs["cube_position"] - first["cube_position"])),
        }
        joint_err, tcp_err, cube_err = [], [], []
        for k in range(len(actions) - 1):
            obs, *_ = env.step(actions[k])
            ref = states[k + 1]
            joint_err.append(np.abs(obs["joint_positions"] - ref[:n]).max())
            tcp_err.append(np.linalg.norm(obs["tcp_position"] - ref[n + 1 : n + 4]))
            cube_err.append(np.linalg.norm(obs["cube_position"] - env_states[k + 1][:3]))
    finally:
        env.close()

    def summary(values: list) -> dict:
        a = np.asarray(values, dtype=np.float64)
        return {"rms": float(np.sqrt(np.mean(a**2))) if a.size else 0.0, "max": float(a.max()) if a.size else 0.0}

    return {
        "root": str(root),
        "episode": episode,
        "frames": int(len(actions)),
        "seed": info.get("seed"),
        "env_id": recording["env_id"],
        "control_mode": recording["control_mode"],
        "relative": recording["relative"],
        "initial_error": initial,
        "joint_error_rad": summary(joint_err),
        "tcp_error_m": summary(tcp_err),
        "cube_error_m": summary(cube_err),
    }


def run(args: argparse.Namespace) -> int:
    from rcs.errors import RcsError

    logging.getLogger("lerobot").setLevel(logging.WARNING)
    root = args.root.absolute()
    try:
        result = replay(root, args.episode, args.repo_id or f"local/{root.name}")
    except (RcsError, OSError) as exc:
        sys.stderr.write(f"rcs replay: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json_line(result))
        return 0
    sys.stdout.write(
        f"replayed episode {result['episode']} ({result['frames']} frames, seed {result['seed']}) on {result['env_id']}\n"
        f"  initial state error: joints {result['initial_error']['joint_rad']:.2e} rad, cube {result['initial_error']['cube_m'] * 1000:.3f} mm\n"
        f"  joint error  RMS {result['joint_error_rad']['rms']:.2e} rad, max {result['joint_error_rad']['max']:.2e} rad\n"
        f"  TCP error    RMS {result['tcp_error_m']['rms'] * 1000:.3f} mm, max {result['tcp_error_m']['max'] * 1000:.3f} mm\n"
        f"  cube error   RMS {result['cube_error_m']['rms'] * 1000:.3f} mm, max {result['cube_error_m']['max'] * 1000:.3f} mm\n"
    )
    return 0
