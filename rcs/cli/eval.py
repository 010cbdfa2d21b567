"""``rcs eval``: evaluate a policy checkpoint in simulation through the real robot path.

The checkpoint is served by ``rcs serve`` in a separate process; this process runs the simulated robot under
the real-time control loop, the chunk executor, the watchdog and the safety filter, exactly as a physical arm
would (the library is :mod:`rcs.eval`; this module parses the options and prints). Prints one line per
episode, then a summary (``--json``: one JSON object)::

    {"success_rate": ..., "episodes": ..., "mean_steps": ..., "policy_latency_ms": {"p50": ..., "p99": ...}, ...}

``policy_latency_ms`` is the round trip seen by the robot (observation sent -> chunk received), which includes
the server's inference (``infer_ms``); videos of the first ``--videos`` episodes go to ``--out``.

``--workers N`` runs the episodes on N Ray workers (:mod:`rcs.eval.on_ray`), same summary plus ``missing_seeds``:
the exit status is 3 when an episode has no outcome after its reruns.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rcs.cli.main import add_view_option, at_least, check_arm_env, greater_than, json_line
from rcs.control.chunking import STRATEGIES
from rcs.errors import ConfigError, RcsError
from rcs.eval.evaluation import EvalConfig, check_robot, evaluate, evaluate_shift, shifted_robot_config

#: the env ``--env`` defaults to
DEFAULT_ENV = "rcs/PandaPickCube-v0"

#: option defaults are the library's
_DEFAULT = EvalConfig(policy=Path(), env=DEFAULT_ENV)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        required=True,
        type=Path,
        help="checkpoint directory (config.json, model.safetensors, rcs_policy.json)",
    )
    parser.add_argument("--env", default=_DEFAULT.env, help=f"env id (default {_DEFAULT.env})")
    parser.add_argument(
        "--robot",
        default=None,
        help="robot (registry name) the env runs on instead of its own, e.g. isaac/panda: the same task under "
        "Isaac Lab physics (run from .venv-isaac with --endpoint; see docs/eval.md)",
    )
    parser.add_argument(
        "--shift",
        default=None,
        help="a named reality shift of the robot (e.g. reality-a; rcs list shows them): evaluates the policy on the "
        "nominal robot, then on the shifted one, same seeds, and reports both",
    )
    parser.add_argument(
        "--episodes", type=at_least(1), default=_DEFAULT.episodes, help=f"episodes (default {_DEFAULT.episodes})"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=_DEFAULT.seed,
        help=f"seed of the first episode, then +1 (default {_DEFAULT.seed}: "
        "not among the seeds rcs record uses by default)",
    )
    parser.add_argument(
        "--instruction",
        default=None,
        help="task text for language-conditioned policies (default: the env's own instruction of each episode)",
    )
    parser.add_argument(
        "--max-steps", type=at_least(1), default=None, help="episode time limit in env steps (default: the env's)"
    )
    parser.add_argument(
        "--replan-steps",
        type=at_least(1),
        default=None,
        help="policy-rate actions executed from each chunk before the next request (default: the "
        "checkpoint's n_action_steps)",
    )
    parser.add_argument(
        "--strategy",
        default=_DEFAULT.strategy,
        choices=sorted(STRATEGIES),
        help="how a new chunk takes over from the one executing (rcs.control.chunking; default splice)",
    )
    parser.add_argument(
        "--rate",
        type=greater_than(0.0),
        default=_DEFAULT.rate_hz,
        help=f"control loop rate in Hz (default {_DEFAULT.rate_hz:g})",
    )
    parser.add_argument(
        "--realtime-factor",
        type=greater_than(0.0),
        default=_DEFAULT.realtime_factor,
        help="simulated s per wall-clock s, at most 1 (default 1: real time); below 1 for a simulator slower than "
        "real time (isaac/panda on a CPU: 0.15), ticks then never skip; compare backends at the same factor",
    )
    parser.add_argument(
        "--videos",
        type=at_least(0),
        default=_DEFAULT.videos,
        help=f"write videos of the first N episodes (default {_DEFAULT.videos})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=_DEFAULT.out,
        help=f"folder for videos, summary.json and the server log (default {_DEFAULT.out})",
    )
    parser.add_argument(
        "--render",
        choices=["fast", "model"],
        default=_DEFAULT.render,
        help="camera rendering like 'rcs record --render' (default fast: what rcs record uses)",
    )
    parser.add_argument("--endpoint", default=None, help="use an already running server instead of starting one")
    parser.add_argument(
        "--workers",
        type=at_least(1),
        default=None,
        help="run the episodes on N Ray workers, each with its own simulated robot and policy server (default: "
        "all in this process); a worker that dies has its episode rerun, else reported missing",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="an existing Ray cluster for --workers (its head's host:port, or 'auto'; default: a local cluster "
        "started for this run)",
    )
    parser.add_argument("--json", action="store_true", help="print only one JSON object")
    add_view_option(parser)


def config_of(args: argparse.Namespace) -> EvalConfig:
    """The :class:`rcs.eval.evaluation.EvalConfig` of parsed ``rcs eval`` arguments."""
    return EvalConfig(
        policy=args.policy,
        env=args.env,
        robot=args.robot,
        shift=args.shift,
        episodes=args.episodes,
        seed=args.seed,
        instruction=args.instruction,
        max_steps=args.max_steps,
        replan_steps=args.replan_steps,
        strategy=args.strategy,
        rate_hz=args.rate,
        realtime_factor=args.realtime_factor,
        videos=args.videos,
        out=args.out,
        render=args.render,
        endpoint=args.endpoint,
        view=args.view,
    )


def run(args: argparse.Namespace) -> int:
    def say(text: str) -> None:
        if not args.json:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    try:  # argument checks first: one line, before a server is started or an env is built
        check_arm_env("--env", args.env, "rcs eval (of served policies)")
        check_robot(args.robot)
        if args.shift is not None:
            shifted_robot_config(args.env, args.robot, args.shift)
        if args.ray_address is not None and args.workers is None:
            raise ConfigError("--ray-address needs --workers N")
    except RcsError as e:
        raise SystemExit(f"rcs eval: {e}") from None
    # SIGTERM unwinds like Ctrl-C, so the server child process is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    config = config_of(args)
    run_config: Callable[[EvalConfig, Callable[[str], None]], dict[str, Any]] = evaluate
    if args.workers is not None:
        from rcs.eval.on_ray import evaluate_on_ray

        run_config = functools.partial(evaluate_on_ray, workers=args.workers, address=args.ray_address)
    # with --json, stdout carries the JSON alone: anything else printed meanwhile (Ray's driver prints worker
    # deaths to stdout) goes to stderr
    quiet_stdout = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet_stdout:
            summary = run_config(config, say) if args.shift is None else evaluate_shift(config, say, run_config)
    except ConfigError as e:
        raise SystemExit(f"rcs eval: {e}") from None
    if args.json:
        sys.stdout.write(json_line(summary))
    elif args.shift is None:
        say(_line(summary))
    else:
        say(f"nominal: {_line(summary['nominal'])}")
        say(f"{args.shift}: {_line(summary['shifted'])}")
        say(f"success drop under {args.shift}: {summary['success_drop_points']:+.0f} points")
    runs = [summary] if args.shift is None else [summary["nominal"], summary["shifted"]]
    return 3 if any(r.get("missing_seeds") for r in runs) else 0  # episodes without an outcome: not a clean run


def _line(summary: dict[str, Any]) -> str:
    lat = summary["policy_latency_ms"]
    missing = summary.get("missing_seeds") or []
    return (
        f"success rate {summary['success_rate']:.0%} over {summary['episodes']} episodes"
        f"{f' ({len(missing)} missing: seeds {missing})' if missing else ''}, mean steps "
        f"{summary['mean_steps']:.0f}, policy latency p50 {lat['p50']} ms p99 {lat['p99']} ms"
    )
