"""``rcs eval``: evaluate a policy checkpoint in simulation through the real robot path.

The checkpoint is served by ``rcs serve`` in a separate process; this process runs the simulated robot under
the real-time control loop, the chunk executor, the watchdog and the safety filter, exactly as a physical arm
would (:mod:`rcs.envs.served`). Prints one line per episode, then a summary (``--json``: one JSON object)::

    {"success_rate": ..., "episodes": ..., "mean_steps": ..., "policy_latency_ms": {"p50": ..., "p99": ...}, ...}

``policy_latency_ms`` is the round trip seen by the robot (observation sent -> chunk received), which includes
the server's inference (``infer_ms``); videos of the first ``--videos`` episodes go to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rcs.cli.main import at_least, check_arm_env, greater_than, json_safe, json_line
from rcs.control.chunking import STRATEGIES
from rcs.errors import ConfigError, RcsError
from rcs.serving.policy import replan_steps_of

SERVER_START_TIMEOUT_S = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, type=Path, help="checkpoint directory (config.json, model.safetensors, rcs_policy.json)")
    parser.add_argument("--env", default="rcs/PandaPickCube-v0", help="env id (default rcs/PandaPickCube-v0)")
    parser.add_argument("--episodes", type=at_least(1), default=10, help="episodes (default 10)")
    parser.add_argument("--seed", type=int, default=10_000, help="seed of the first episode, then +1 (default 10000: "
                        "not among the seeds rcs record uses by default)")
    parser.add_argument("--instruction", default=None, help="task text for language-conditioned policies "
                        "(default: the env's own instruction of each episode)")
    parser.add_argument("--max-steps", type=at_least(1), default=None, help="episode time limit in env steps (default: the env's)")
    parser.add_argument("--replan-steps", type=at_least(1), default=None,
                        help="policy-rate actions executed from each chunk before the next request (default: the "
                             "checkpoint's n_action_steps)")
    parser.add_argument("--strategy", default="splice", choices=sorted(STRATEGIES),
                        help="how a new chunk takes over from the one executing (rcs.control.chunking; default splice)")
    parser.add_argument("--rate", type=greater_than(0.0), default=100.0, help="control loop rate in Hz (default 100)")
    parser.add_argument("--videos", type=at_least(0), default=2, help="write videos of the first N episodes (default 2)")
    parser.add_argument("--out", type=Path, default=Path("outputs/eval"),
                        help="folder for videos, summary.json and the server log (default outputs/eval)")
    parser.add_argument("--render", choices=["fast", "model"], default="fast",
                        help="camera rendering like 'rcs record --render' (default fast: what rcs record uses)")
    parser.add_argument("--endpoint", default=None, help="use an already running server instead of starting one")
    parser.add_argument("--json", action="store_true", help="print only one JSON object")


def read_policy_inputs(directory: Path) -> Any:
    """:class:`rcs.envs.served.PolicyInputs` from a checkpoint's ``config.json`` and ``rcs_policy.json`` (JSON only)."""
    from rcs.envs.served import PolicyInputs

    try:
        cfg = json.loads((directory / "config.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"--policy {directory}: no config.json (not a lerobot checkpoint directory)") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"--policy {directory}/config.json: unreadable ({e})") from None
    manifest: dict[str, Any] = {}
    if (directory / "rcs_policy.json").is_file():
        manifest = json.loads((directory / "rcs_policy.json").read_text())
    features = cfg.get("input_features") or {}
    vectors = tuple(k for k, f in features.items() if f.get("type") in ("STATE", "ENV"))
    cameras = []
    for key, f in features.items():
        if f.get("type") == "VISUAL":
            c, h, w = f["shape"]
            cameras.append((key.split(".")[-1], int(h), int(w)))
    chunk = cfg.get("horizon") or cfg.get("chunk_size") or cfg.get("n_action_steps")
    if not isinstance(chunk, int):
        raise ConfigError(f"--policy {directory}/config.json: no chunk length (horizon / chunk_size)")
    text = manifest.get("text") if isinstance(manifest.get("text"), dict) else None
    replan = replan_steps_of(directory, chunk)
    names = manifest.get("names") if isinstance(manifest.get("names"), dict) else {}
    action_names = names.get("action") or cfg.get("action_names") or ()
    return PolicyInputs(vectors, tuple(cameras), chunk, text["name"] if text else None,
                        int(text.get("max_bytes", 256)) if text else 256, replan, tuple(map(str, action_names)))


def free_endpoint() -> str:
    """A loopback endpoint on a port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class ServerProcess:
    """``rcs serve --policy DIR`` as a child process, its output in ``log_path``."""

    def __init__(self, policy: Path, endpoint: str, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = log_path.open("w")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rcs.cli.main", "serve", "--policy", str(policy), "--bind", endpoint],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )

    def check_alive(self) -> None:
        """Raise with the tail of the server log if the process exited."""
        if self.proc.poll() is not None:
            tail = self.log_path.read_text()[-2000:]
            raise ConfigError(f"rcs serve exited with code {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_for_server(endpoint: str, schema: Any, server: ServerProcess | None, timeout_s: float) -> str:
    """Handshake until the server answers (its schema checked against the robot's); returns its checkpoint id."""
    from rcs.serving.client import HandshakeTimeout, PolicyClient, SchemaMismatchError

    client = PolicyClient(endpoint, schema, name="rcs-eval probe")
    end = time.monotonic() + timeout_s
    try:
        while True:
            if server is not None:
                server.check_alive()
            try:
                return client.handshake(1.0).checkpoint_id
            except SchemaMismatchError as e:
                raise ConfigError(f"the served checkpoint does not fit this robot, refusing to run it: {e}") from None
            except HandshakeTimeout:
                if time.monotonic() > end:
                    raise ConfigError(f"no policy server answered at {endpoint} within {timeout_s:.0f} s") from None
    finally:
        client.close()


def summarize(outcomes: list[Any], wall_s: float) -> dict[str, Any]:
    """The JSON summary of a run."""
    lat = np.array([x for o in outcomes for x in o.latency_ms])
    inf = np.array([x for o in outcomes for x in o.infer_ms])

    def pct(a: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(a, q)), 2) if a.size else None

    n = len(outcomes)
    return {
        "success_rate": sum(o.success for o in outcomes) / n if n else 0.0,
        "episodes": n,
        "mean_steps": float(np.mean([o.steps for o in outcomes])) if n else 0.0,
        "policy_latency_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99)},
        "server_infer_ms": {"p50": pct(inf, 50), "p99": pct(inf, 99)},
        "requests": int(lat.size),
        "seeds": [o.seed for o in outcomes],
        "failures": {str(o.seed): o.reason for o in outcomes if not o.success},
        "failures_final": {str(o.seed): o.report.get("final", {}) for o in outcomes if not o.success},
        "safety_interventions": _sum_counts(o.report.get("safety_interventions", {}) for o in outcomes),
        "chunk_rejections": _sum_counts(o.report.get("chunk_rejections", {}) for o in outcomes),
        # control ticks per watchdog stage over all episodes: "stopping"/"hold" ticks mean chunks came late
        "watchdog_ticks": _sum_counts(o.report.get("ticks_in_stage", {}) for o in outcomes),
        # pose policies: chunk waypoints converted by the robot's IK, and those it could not reach exactly
        "ik": _sum_counts(o.report.get("ik", {}) for o in outcomes),
        "wrong_object_lifted": sum(bool(o.report.get("wrong_object_lifted")) for o in outcomes),
        "instructions": {str(o.seed): o.report["instruction"] for o in outcomes if "instruction" in o.report},
        # how long the robot waited for chunks (control ticks; the watchdog stops the arm past its stop_ticks)
        "chunk_gap_ticks": _gap_stats(outcomes),
        "watchdog": outcomes[0].report.get("watchdog", {}) if outcomes else {},
        "wall_s": round(wall_s, 1),
    }


def _gap_stats(outcomes: list[Any]) -> dict[str, int | None]:
    gaps = np.array([g for o in outcomes for g in o.report.get("chunk_gaps", [])])
    if not gaps.size:
        return {"p50": None, "max": None}
    return {"p50": int(np.percentile(gaps, 50)), "max": int(gaps.max())}


def per_episode(outcomes: list[Any]) -> dict[str, dict[str, Any]]:
    """Per-seed detail for ``summary.json``: outcome, watchdog ticks per stage and the chunk gaps (ticks)."""
    return {str(o.seed): {"success": o.success, "reason": o.reason, "steps": o.steps,
                          "watchdog_ticks": o.report.get("ticks_in_stage", {}),
                          "missed_ticks": o.report.get("missed_ticks", 0),
                          "chunk_gaps": o.report.get("chunk_gaps", [])} for o in outcomes}


def _sum_counts(dicts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + int(v)
    return total


def evaluate(args: argparse.Namespace, say: Any = None) -> dict[str, Any]:
    """Run the evaluation described by the parsed ``rcs eval`` arguments; returns the summary dict."""
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    import rcs.envs  # noqa: F401  (registers the env ids)
    from rcs.envs.served import ServedConfig, ServedRunner, expected_schema
    from rcs.video import write_mp4

    say = say or (lambda text: None)
    if args.episodes <= 0:
        raise ConfigError(f"--episodes={args.episodes} must be > 0")
    directory = Path(args.policy)
    if (directory / "pretrained_model").is_dir():  # a training step folder: take its model
        directory = directory / "pretrained_model"
    inputs = read_policy_inputs(directory)
    if args.replan_steps is not None:
        if not 1 <= args.replan_steps <= inputs.chunk_size:
            raise ConfigError(f"--replan-steps={args.replan_steps}: must be in [1, {inputs.chunk_size}] (the chunk length)")
        inputs = dataclasses.replace(inputs, replan_steps=args.replan_steps)
    spec = gym.spec(args.env)  # built directly: gym.make would turn max_episode_steps into a TimeLimit wrapper
    overrides = {"max_episode_steps": args.max_steps} if args.max_steps else {}
    env = load_env_creator(spec.entry_point)(**{**spec.kwargs, **overrides})
    server = None
    runner = None
    outcomes = []
    t0 = time.monotonic()
    try:
        endpoint = args.endpoint or free_endpoint()
        if args.endpoint is None:
            server = ServerProcess(directory, endpoint, Path(args.out) / "server.log")
        from rcs.control.task import make_policy_task

        names = make_policy_task(env.unwrapped.arm, args.rate).executor.names
        schema = expected_schema(env, inputs, names)
        say(f"rcs eval: {directory} on {args.env}, {args.episodes} episodes from seed {args.seed}; waiting for the server")
        checkpoint = wait_for_server(endpoint, schema, server, SERVER_START_TIMEOUT_S)
        say(f"  serving {checkpoint} at {endpoint}")
        runner = ServedRunner(env, endpoint, inputs, ServedConfig(rate_hz=args.rate, executor={"strategy": args.strategy}), args.instruction,
                              fast_render=args.render == "fast")
        for i in range(args.episodes):
            seed = args.seed + i
            outcome = runner.run(seed, video=i < args.videos)
            outcomes.append(outcome)
            video = ""
            if outcome.frames:
                path = write_mp4(Path(args.out) / f"episode_{seed}.mp4", outcome.frames, fps=runner.config.video_fps)
                video = f", video {path}"
            lat = np.percentile(outcome.latency_ms, 50) if outcome.latency_ms else float("nan")
            say(f"  episode {i + 1}/{args.episodes} seed={seed}: {'success' if outcome.success else 'failure'} "
                f"({outcome.reason}; {outcome.steps} steps, policy latency p50 {lat:.1f} ms{video})")
            if server is not None:
                server.check_alive()
    finally:
        if runner is not None:
            runner.close()
        env.close()
        if server is not None:
            server.stop()
    summary = summarize(outcomes, time.monotonic() - t0)
    summary["policy"] = str(directory)
    summary["env"] = args.env
    summary["replan_steps"] = inputs.replan_steps
    summary["strategy"] = args.strategy
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    detail = {**summary, "per_episode": per_episode(outcomes)}
    (out / "summary.json").write_text(json.dumps(json_safe(detail), indent=2, allow_nan=False))
    return summary


def run(args: argparse.Namespace) -> int:
    def say(text: str) -> None:
        if not args.json:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    try:  # argument checks first: one line, before a server is started or an env is built
        check_arm_env("--env", args.env, "rcs eval (of served policies)")
    except RcsError as e:
        raise SystemExit(f"rcs eval: {e}") from None
    # SIGTERM unwinds like Ctrl-C, so the server child process is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        summary = evaluate(args, say)
    except ConfigError as e:
        raise SystemExit(f"rcs eval: {e}") from None
    if args.json:
        sys.stdout.write(json_line(summary))
    else:
        lat = summary["policy_latency_ms"]
        say(f"success rate {summary['success_rate']:.0%} over {summary['episodes']} episodes, mean steps "
            f"{summary['mean_steps']:.0f}, policy latency p50 {lat['p50']} ms p99 {lat['p99']} ms")
    return 0
