"""``rcs bench residual-lockstep``: success of composed checkpoints on the residual's training path, and how their
episodes end (:mod:`policies.residual.outcomes`).

Each checkpoint (default: the shipped residual and the same base with a zero residual, made here) runs
``--episodes`` seeds on the robot of ``--shift`` through :func:`policies.residual.train.evaluate_composed`: the
deployed robot path in simulated time with the training latency model (10-20 ms per step, +20 ms on the steps
that ask the base), so the figures do not depend on the machine's load and many episodes are cheap (about
2 s each here). ``rcs eval`` measures the same checkpoints in real time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "policies" / "checkpoints" / "pick_cube_residual_reality_a"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        type=Path,
        nargs="+",
        default=None,
        help="composed checkpoints (default: the shipped residual, and its base through a zero residual)",
    )
    parser.add_argument("--shift", default="reality-a", help="the robot's reality shift (default reality-a)")
    parser.add_argument("--episodes", type=int, default=200, help="episodes per checkpoint (default 200)")
    parser.add_argument("--seed", type=int, default=10_000, help="first seed (default 10000)")


def zero_residual(directory: Path, to: Path) -> Path:
    """The composed checkpoint at ``directory`` with its actor's output layer zeroed: exactly its base."""
    import torch

    from policies.residual.checkpoint import load, save

    composed = load(directory)
    weights = {k: torch.zeros_like(v) if k.startswith("head.") else v for k, v in composed.state_dict.items()}
    return save(to, weights, composed.space, composed.hidden, composed.base, "zero-residual", composed.training)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from policies.residual.train import evaluate_composed
    from rcs.envs.registration import register_envs
    from rcs.eval.evaluation import shifted_robot_config

    env_id = "rcs/PandaPickCube-v0"
    register_envs()
    robot_config = shifted_robot_config(env_id, None, args.shift)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rcs-bench-residual-") as tmp:
        policies = args.policy or [zero_residual(SHIPPED, Path(tmp) / "zero_residual"), SHIPPED]
        for k, policy in enumerate(policies):
            t0 = time.monotonic()
            outcomes = evaluate_composed(
                Path(policy), robot_config, args.episodes, args.seed, Path(tmp) / f"run{k}", env_id
            )
            results[str(policy)] = {
                "success_rate": outcomes["success"] / args.episodes,
                "outcomes": outcomes,
                "episodes": args.episodes,
                "seeds": f"{args.seed}-{args.seed + args.episodes - 1}",
                "wall_s": round(time.monotonic() - t0, 1),
            }
    return {"shift": args.shift, "path": "lockstep (training latency model)", "policies": results}
