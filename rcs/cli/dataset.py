"""``rcs dataset info|repair``: inspect a LeRobotDataset, or finish/undo an interrupted commit of ``rcs record``.

- ``info``: episodes, lengths, fps, features (dtype, shape, names), tasks, per-feature statistics, and the
  recording metadata ``rcs record`` stores (env id, control mode, rate, cameras).
- ``repair``: takes the recorder's lock and applies :func:`rcs.recording.storage.recover` (the same thing the
  next ``rcs record`` does on open), then checks that lerobot loads the dataset. It repairs only what the rcs
  recorder's commit protocol can leave behind; a dataset broken by lerobot's own writer (upstream #3522) is
  reported, not rewritten.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from rcs.cli.main import json_line
from rcs.errors import RcsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["info", "repair"], help="what to do")
    parser.add_argument("--root", type=Path, required=True, help="dataset folder")
    parser.add_argument("--repo-id", default=None, help="lerobot repo id (default local/<root name>)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _stats_summary(stats: dict, key: str) -> dict:
    s = stats.get(key, {})
    return {
        k: np.round(np.asarray(s[k], dtype=np.float64).reshape(-1), 4).tolist()
        for k in ("mean", "std", "min", "max")
        if k in s
    }


def info(root: Path, repo_id: str) -> dict:
    """Everything ``rcs dataset info`` prints, as plain data (reads metadata only, no video decoding)."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    from rcs.recording.writer import EPISODES_META, RECORDING_META, read_info

    if not root.exists():
        raise RcsError(f"{root} does not exist (no episode has been saved there)")
    raw = read_info(root)  # clear error if this is not a dataset
    meta = LeRobotDatasetMetadata(repo_id, root=root)
    episodes = meta.episodes
    lengths = [int(x) for x in episodes["length"]] if episodes is not None else []
    out = {
        "root": str(root),
        "codebase_version": raw.get("codebase_version"),
        "robot_type": raw.get("robot_type"),
        "fps": meta.fps,
        "episodes": meta.total_episodes,
        "frames": meta.total_frames,
        "episode_lengths": lengths,
        "tasks": list(meta.tasks.index) if meta.tasks is not None else [],
        "features": {
            k: {"dtype": v["dtype"], "shape": list(v["shape"]), "names": v.get("names")}
            for k, v in meta.features.items()
        },
        "stats": {
            k: _stats_summary(meta.stats or {}, k)
            for k, v in meta.features.items()
            if v["dtype"] in ("float32", "float64")
        },
    }
    rec = root / RECORDING_META
    if rec.exists():
        out["recording"] = json.loads(rec.read_text())
    eps = root / EPISODES_META
    if eps.exists():
        out["episode_info"] = [json.loads(line) for line in eps.read_text().splitlines() if line.strip()]
    return out


def repair(root: Path, repo_id: str) -> dict:
    """Recover the recorder's work area, then check that lerobot loads every episode's metadata and data."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from rcs.recording.storage import DatasetStore

    store = DatasetStore(root)
    done = store.open()  # takes the lock: refuses while a recorder is writing
    try:
        if not store.root.exists():
            return {
                "root": str(root),
                "actions": done,
                "loads": False,
                "episodes": 0,
                "message": "no dataset: no episode was ever saved here",
            }
        ds = LeRobotDataset(repo_id, root=store.root)
        return {"root": str(root), "actions": done, "loads": True, "episodes": ds.num_episodes, "frames": ds.num_frames}
    finally:
        store.close()


def _repair_hint(root: Path) -> str:
    """A pointer to ``rcs dataset repair``, only where an interrupted recording left its work area next to ``root``."""
    from rcs.recording.storage import work_dir

    work = work_dir(root)
    return f" ({work} is left from a recording: rcs dataset repair --root {root})" if work.is_dir() else ""


def check_root(action: str, root: Path) -> str | None:
    """The one-line problem with ``--root`` for ``action``, or None; file-system checks only, so a bad path is
    refused before lerobot (seconds of imports) is loaded."""
    if root.exists() and not root.is_dir():
        return f"--root={root}: not a directory (a dataset is a folder with meta/info.json)"
    for parent in root.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"--root={root}: {parent} is not a directory"
            break
    if action == "info":
        if not root.exists():
            return f"--root={root} does not exist (no episode has been saved there)" + _repair_hint(root)
        if not (root / "meta" / "info.json").is_file():
            return f"--root={root} is not a LeRobot dataset: no meta/info.json" + _repair_hint(root)
    return None


def run(args: argparse.Namespace) -> int:
    logging.getLogger("lerobot").setLevel(logging.WARNING)
    root = args.root.absolute()
    problem = check_root(args.action, root)
    if problem:
        sys.stderr.write(f"rcs dataset {args.action}: {problem}\n")
        return 2
    repo_id = args.repo_id or f"local/{root.name}"
    try:
        result = (info if args.action == "info" else repair)(root, repo_id)
    except (RcsError, OSError) as exc:
        hint = "" if args.action == "repair" else _repair_hint(root)
        sys.stderr.write(f"rcs dataset {args.action}: {exc}{hint}\n")
        return 1
    if args.json:
        _out(json_line(result, default=str).rstrip("\n"))
        return 0
    if args.action == "repair":
        for line in result["actions"] or ["nothing to repair"]:
            _out(f"  {line}")
        _out(
            f"{root}: {result['episodes']} episodes"
            + (", loads with lerobot" if result["loads"] else f" ({result.get('message')})")
        )
        return 0
    _out(f"{root}  (LeRobotDataset {result['codebase_version']}, robot {result['robot_type']}, {result['fps']} fps)")
    lengths = result["episode_lengths"]
    _out(
        f"episodes: {result['episodes']}, frames: {result['frames']}"
        + (f", length min/mean/max {min(lengths)}/{np.mean(lengths):.1f}/{max(lengths)}" if lengths else "")
    )
    _out(f"tasks: {result['tasks']}")
    if "recording" in result:
        r = result["recording"]
        _out(
            "recording: "
            + ", ".join(
                f"{k}={r[k]}" for k in ("env_id", "control_mode", "relative", "control_rate_hz", "teleop") if k in r
            )
        )
    _out("features:")
    for key, ft in result["features"].items():
        names = ft["names"]
        shown = names if isinstance(names, list) and len(names) <= 16 else f"{len(names) if names else 0} names"
        _out(f"  {key:34s} {ft['dtype']:8s} {str(tuple(ft['shape'])):14s} {shown}")
    _out("stats (mean / std):")
    for key, s in result["stats"].items():
        if "mean" in s:
            _out(f"  {key:34s} mean {s['mean']}\n  {'':34s} std  {s['std']}")
    return 0
