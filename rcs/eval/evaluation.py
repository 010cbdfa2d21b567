"""A policy checkpoint evaluated over seeded episodes: the policy server child process, the episodes and the
JSON summary (the library behind ``rcs eval`` and ``rcs demo``).

The checkpoint is served by ``rcs serve`` in a separate process; this process runs the simulated robot under
the real-time control loop, the chunk executor, the watchdog and the safety filter, exactly as a physical arm
would (:mod:`rcs.eval.episodes`). :func:`evaluate` returns the summary (:func:`summarize`) and writes it, with
per-episode detail (:func:`per_episode`), to ``<out>/summary.json``; videos of the first ``videos`` episodes
and the server's log go to ``out`` too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rcs.control.policy_link import check_replan_steps
from rcs.errors import ConfigError
from rcs.eval.inputs import read_policy_inputs
from rcs.eval.server_process import SERVER_START_TIMEOUT_S, ServerProcess, wait_for_server
from rcs.loopback import free_endpoint


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation run (the fields of ``rcs eval``'s options).

    Attributes:
        policy: checkpoint directory (``config.json``, ``model.safetensors``, ``rcs_policy.json``), or a
            training step folder holding ``pretrained_model``.
        env: env id (an arm env with a simulated robot).
        robot: registry name of the robot the env runs on instead of its own (e.g. ``"isaac/panda"``: the same
            task under Isaac Lab physics); ``None``: the env's.
        shift: a registered reality shift (:mod:`rcs.shifts`, e.g. ``"reality-a"``) applied to the robot;
            ``None``: the nominal robot.
        episodes: number of episodes (> 0), seeds ``seed``, ``seed + 1``, ...
        seed: seed of the first episode.
        instruction: task text for language-conditioned policies (``None``: the env's own of each episode).
        max_steps: episode time limit in env steps (``None``: the env's).
        replan_steps: policy-rate actions executed from each chunk before the next request (``None``: the
            checkpoint's ``n_action_steps``); in [1, chunk length].
        strategy: how a new chunk takes over from the one executing (:data:`rcs.control.chunking.STRATEGIES`).
        rate_hz: control loop rate (Hz).
        realtime_factor: simulated s per wall-clock s, in (0, 1] (:attr:`rcs.eval.episodes.EpisodeConfig.realtime_factor`):
            below 1 for a simulator slower than real time (Isaac Lab on a CPU).
        videos: write videos of the first N episodes.
        out: folder for videos, ``summary.json`` and the server log.
        render: camera rendering, ``"fast"`` (what ``rcs record`` uses) or ``"model"``.
        endpoint: an already running policy server (``None``: start ``rcs serve`` as a child process).
        view: ``None`` (no live view), ``""`` (a running rerun viewer, else the view's default file) or an
            ``.rrd`` path: the robot's state and commands, streamed to ``rcs view`` in its own process.
    """

    policy: Path
    env: str
    robot: str | None = None
    shift: str | None = None
    episodes: int = 10
    seed: int = 10_000
    instruction: str | None = None
    max_steps: int | None = None
    replan_steps: int | None = None
    strategy: str = "splice"
    rate_hz: float = 100.0
    realtime_factor: float = 1.0
    videos: int = 2
    out: Path = Path("outputs/eval")
    render: str = "fast"
    endpoint: str | None = None
    view: str | None = None


def check_robot(robot: str | None) -> None:
    """Raise a one-line :class:`ConfigError` unless ``robot`` is ``None`` or a registered robot name."""
    if robot is None:
        return
    from rcs.registry import robots

    known = robots.names()
    if robot not in known:
        raise ConfigError(f"--robot={robot!r}: unknown robot; known robots: {', '.join(sorted(known))}")


def summarize(outcomes: list[Any], wall_s: float) -> dict[str, Any]:
    """The JSON summary of a run (:class:`rcs.eval.episodes.EpisodeOutcome` list, wall-clock s)."""
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
    return {
        str(o.seed): {
            "success": o.success,
            "reason": o.reason,
            "steps": o.steps,
            "watchdog_ticks": o.report.get("ticks_in_stage", {}),
            "missed_ticks": o.report.get("missed_ticks", 0),
            "chunk_gaps": o.report.get("chunk_gaps", []),
        }
        for o in outcomes
    }


def _sum_counts(dicts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + int(v)
    return total


class EvalWorker:
    """One process's share of an evaluation: the env (``config``'s robot, shifted if asked), its policy server
    (``rcs serve`` as a child, or ``config.endpoint``) and the episode runner; :func:`evaluate` runs one,
    :mod:`rcs.eval.on_ray` one per Ray worker.

    Raises:
        ConfigError: a bad setting, a checkpoint that does not fit the robot, or a server that never answers
            (everything is closed again).
    """

    def __init__(self, config: EvalConfig, say: Callable[[str], None] | None = None) -> None:
        from rcs.control.task import make_policy_task
        from rcs.devices import Arm, Quadrotor
        from rcs.envs.registration import build_env, register_envs
        from rcs.eval.episodes import EpisodeConfig, EpisodeRunner
        from rcs.eval.inputs import expected_schema
        from rcs.shifts import plain

        say = say or (lambda text: None)
        check_config(config)
        self.directory = checkpoint_directory(config.policy)
        inputs = read_policy_inputs(self.directory)
        if config.replan_steps is not None:
            steps = check_replan_steps("--replan-steps", config.replan_steps, inputs.chunk_size)
            inputs = dataclasses.replace(inputs, replan_steps=steps)
        register_envs()
        overrides: dict[str, Any] = {"max_episode_steps": config.max_steps} if config.max_steps else {}
        if config.robot is not None:
            overrides["robot"] = config.robot
        if config.shift is not None:
            overrides["robot_config"] = shifted_robot_config(config.env, config.robot, config.shift)
        self.env: Any = build_env(config.env, **overrides)
        # what close() undoes, last made first closed
        self._closing = contextlib.ExitStack()
        self._closing.callback(self.env.close)
        self.server: ServerProcess | None = None
        self.runner: Any = None
        stream: Any = None
        #: what the summary records of the robot and the policy (:func:`summary_of`)
        self.description = {
            "policy": str(self.directory),
            "env": config.env,
            "robot": str(self.env.config.robot),
            "shift": config.shift,
            "robot_config": plain(self.env.config.robot_config),
            "replan_steps": inputs.replan_steps,
            "strategy": config.strategy,
            "realtime_factor": config.realtime_factor,
        }
        episodes = EpisodeConfig(
            rate_hz=config.rate_hz, executor={"strategy": config.strategy}, realtime_factor=config.realtime_factor
        )
        try:
            self.endpoint = config.endpoint or free_endpoint()
            if config.endpoint is None:
                # on the loop's control path: real-time when the loop is, as under rcs deploy
                log_path = Path(config.out) / "server.log"
                self.server = ServerProcess(self.directory, self.endpoint, log_path, realtime=episodes.loop_realtime)
                self._closing.callback(self.server.stop)
            robot = self.env.robot
            if not isinstance(robot, (Arm, Quadrotor)):
                raise ConfigError(
                    f"--env={config.env!r}: its robot is a {type(robot).__name__}, not an arm or quadrotor"
                )
            names = make_policy_task(robot, config.rate_hz).executor.names
            schema = expected_schema(self.env, inputs, names)
            say(
                f"rcs eval: {self.directory} on {config.env}, {config.episodes} episodes from seed {config.seed}; "
                "waiting for the server"
            )
            #: the served checkpoint's id
            self.checkpoint = wait_for_server(self.endpoint, schema, self.server, SERVER_START_TIMEOUT_S)
            say(f"  serving {self.checkpoint} at {self.endpoint}")
            if config.view is not None:
                stream, viewer = _start_view(config.view, robot, config.env, config.rate_hz, names)
                self._closing.callback(stream.close)
                self._closing.callback(viewer.stop)
            self.runner = EpisodeRunner(
                self.env,
                self.endpoint,
                inputs,
                episodes,
                config.instruction,
                fast_render=config.render == "fast",
                stream=stream,
            )
            self._closing.callback(self.runner.close)
        except BaseException:
            self.close()
            raise

    @property
    def video_fps(self) -> float:
        """Frames per simulated second of the episode videos."""
        return float(self.runner.config.video_fps)

    def run(self, seed: int, video: bool = False) -> Any:
        """One episode (:class:`rcs.eval.episodes.EpisodeOutcome`); raises ConfigError if the server died."""
        outcome = self.runner.run(seed, video=video)
        if self.server is not None:
            self.server.check_alive()
        return outcome

    def close(self) -> None:
        """Stop the runner, the live view and the server; close the env (idempotent)."""
        self._closing.close()


def check_config(config: EvalConfig) -> None:
    """Raise a one-line :class:`ConfigError` for a setting no episode could run with."""
    if config.episodes <= 0:
        raise ConfigError(f"--episodes={config.episodes} must be > 0")
    check_robot(config.robot)
    if not 0.0 < config.realtime_factor <= 1.0:
        raise ConfigError(f"--realtime-factor={config.realtime_factor}: expected 0 < factor <= 1")


def checkpoint_directory(policy: Path) -> Path:
    """The checkpoint folder of ``policy``: itself, or a training step folder's ``pretrained_model``."""
    directory = Path(policy)
    return directory / "pretrained_model" if (directory / "pretrained_model").is_dir() else directory


def episode_line(i: int, n: int, outcome: Any, video: str = "", where: str = "") -> str:
    """The progress line of episode ``i`` (0-based) of ``n``; ``video``: the file written; ``where``: who ran it."""
    lat = np.percentile(outcome.latency_ms, 50) if outcome.latency_ms else float("nan")
    return (
        f"  episode {i + 1}/{n} seed={outcome.seed}: {'success' if outcome.success else 'failure'} "
        f"({outcome.reason}; {outcome.steps} steps, policy latency p50 {lat:.1f} ms"
        f"{f', video {video}' if video else ''}){f' [{where}]' if where else ''}"
    )


def write_video(out: Path, outcome: Any, fps: float) -> str:
    """Write ``outcome``'s frames to ``out/episode_<seed>.mp4``; returns the path ("" without frames)."""
    from rcs.mp4 import write_mp4

    if not outcome.frames:
        return ""
    return str(write_mp4(Path(out) / f"episode_{outcome.seed}.mp4", outcome.frames, fps=fps))


def summary_of(
    config: EvalConfig, outcomes: list[Any], wall_s: float, description: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """The summary of ``outcomes`` (in seed order) with the worker's ``description`` and ``extra`` fields; also
    written, with per-episode detail, to ``<out>/summary.json``."""
    from rcs.cli.main import json_safe  # the CLI's JSON rules (NaN -> null), so summary.json matches --json

    outcomes = sorted(outcomes, key=lambda o: o.seed)
    summary = {**summarize(outcomes, wall_s), **description, **extra}
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    detail = {**summary, "per_episode": per_episode(outcomes)}
    (out / "summary.json").write_text(json.dumps(json_safe(detail), indent=2, allow_nan=False))
    return summary


def evaluate(config: EvalConfig, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the evaluation ``config`` describes in this process; ``say`` gets one progress line per episode.
    Returns the summary (:func:`summarize` plus the robot and policy, :attr:`EvalWorker.description`) and writes
    ``summary.json``.

    Raises:
        ConfigError: a bad setting, a checkpoint that does not fit the robot, or a server that never answers.
    """
    say = say or (lambda text: None)
    t0 = time.monotonic()
    worker = EvalWorker(config, say)
    outcomes = []
    try:
        for i in range(config.episodes):
            outcome = worker.run(config.seed + i, video=i < config.videos)
            outcomes.append(outcome)
            say(episode_line(i, config.episodes, outcome, write_video(config.out, outcome, worker.video_fps)))
    finally:
        worker.close()
    return summary_of(config, outcomes, time.monotonic() - t0, worker.description)


def evaluate_shift(
    config: EvalConfig,
    say: Callable[[str], None],
    run: Callable[[EvalConfig, Callable[[str], None]], dict[str, Any]] = evaluate,
) -> dict[str, Any]:
    """``config`` evaluated by ``run`` on the nominal robot, then under its shift, on the same seeds
    (``out/nominal``, ``out/<shift>``); both summaries and the drop in success rate (points)."""
    from rcs.shifts import make_shift

    if config.shift is None:
        raise ConfigError("evaluate_shift needs a shift")
    say(f"rcs eval: nominal robot, then shift {config.shift}")
    nominal = run(dataclasses.replace(config, shift=None, out=Path(config.out) / "nominal"), say)
    shifted = run(dataclasses.replace(config, out=Path(config.out) / config.shift), say)
    return {
        "shift": config.shift,
        "description": make_shift(config.shift).description,
        "nominal": nominal,
        "shifted": shifted,
        "success_drop_points": round(100.0 * (nominal["success_rate"] - shifted["success_rate"]), 1),
    }


def shifted_robot_config(env_id: str, robot: str | None, shift: str) -> dict[str, Any]:
    """The robot options of ``env_id`` (on ``robot``, or its own) with the reality shift ``shift`` applied."""
    import gymnasium as gym

    from rcs.shifts import make_shift

    kwargs = gym.spec(env_id).kwargs
    return make_shift(shift).apply(str(robot or kwargs.get("robot")), kwargs.get("robot_config"))


def _start_view(save: str, robot: Any, env_id: str, rate_hz: float, names: Any) -> tuple[Any, Any]:
    """A stream of the evaluated robot and ``rcs view`` subscribed to it, in its own process
    (:func:`rcs.viewer.process.view_of_stream`)."""
    from rcs.control.task import device_kind
    from rcs.remote.description import describe
    from rcs.viewer.process import view_of_stream

    mode = device_kind(robot).default_mode
    return view_of_stream(save, describe(robot, env_id, rate_hz, names, mode, [], []))
