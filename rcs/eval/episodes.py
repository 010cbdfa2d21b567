"""Episodes of an env's robot driven by a served policy through the real-time path: the robot side of
``rcs eval`` and ``rcs demo``.

This is exactly the path a physical arm uses, with the simulator standing in for the hardware::

    policy server process (rcs serve) <-- ZeroMQ --> PolicyLink: PolicyClient / ChunkFeed (feed thread)
        -> ChunkExecutor -> Watchdog -> SafetyFilter -> robot   (ControlLoop thread, paced, absolute deadlines)

The chain is :class:`rcs.control.policy_link.PolicyLink`, the same object the robot server links a policy with.
The env is used for what a task definition gives on hardware too, through its public task interface
(:class:`rcs.envs.base.RobotEnv`): resetting the scene from a seed, its observation (``observe``), its
measures and success test (``task_measures``) and its failure reasons (``failure_reason``). It is never
stepped: the control loop advances the simulated robot by one period per tick.

Threads and consistency. Physics, state reads and command writes happen under one lock held per tick by the
loop. The feed thread takes the observation under that lock (state vectors and, for a simulated robot, a
copy of the physics state, tens of microseconds) and renders camera images from the copy afterwards in a
dedicated render thread, so a slow CPU renderer never stalls the loop. The observation's tick is the tick
of the state it was taken from; chunks start at that tick (docs/control.md).

Outcome of an episode: ``success`` once the task's ``is_success`` holds for ``success_hold_s``; failure on
timeout (the env's ``max_episode_steps`` at its control rate, in simulated time), on the task's failure reason
(``"terminated: <reason>"``), or when the policy never delivers a valid chunk (the reason names the server's
errors, the executor's rejections and the safety filter's interventions: a NaN-returning policy is held by
the safety layer and fails with that reason).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rcs.control.loop import NO_RT, ControlLoop, RtConfig, ScaledPacer
from rcs.control.policy_link import LinkSchedule, PolicyLink
from rcs.control.task import PolicyTask, make_policy_task
from rcs.errors import ConfigError
from rcs.eval.inputs import PolicyInputs, expected_schema
from rcs.recording.features import FeatureLayout, observation_to_features
from rcs.safety.watchdog import DEFAULT_CHUNK_OVERDUE_S
from rcs.serving.chunk_feed import FeedState
from rcs.serving.client import ChunkReply, PolicyClient

if TYPE_CHECKING:
    from rcs.remote.publisher import StreamPublisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeConfig:
    """Settings of the robot side.

    Attributes:
        rate_hz: control loop rate (Hz).
        budget_s: server time budget per request (s).
        success_hold_s: s of simulated time ``is_success`` must hold to count.
        arm_timeout_s: wall-clock s to wait for the first accepted chunk before failing the episode.
        realtime: SCHED_FIFO + mlockall for the loop thread when permitted (``RtConfig()``), else none.
        video_fps: frames per simulated second of the episode video.
        video_size: (height, width) of video frames.
        executor: extra :class:`rcs.control.chunking.ExecutorConfig` fields.
        chunk_overdue_s: s past the expected arrival of the next chunk (one request period after the last)
            after which the watchdog stops the arm (see :func:`rcs.safety.watchdog.watchdog_for`).
        realtime_factor: simulated s per wall-clock s the loop is paced at, in (0, 1]. 1 (default): real time,
            a late tick skips its missed deadlines like on hardware. Below 1: a simulator slower than real time
            (Isaac Lab on a CPU) is paced at that factor instead (:class:`ScaledPacer`: every tick advances one
            period, nothing is skipped), without SCHED_FIFO; the policy then takes ``1 / realtime_factor`` less
            simulated time per request, so compare backends at the same factor.
    """

    rate_hz: float = 100.0
    budget_s: float = 0.3
    success_hold_s: float = 0.25
    arm_timeout_s: float = 30.0
    realtime: bool = True
    video_fps: float = 10.0
    video_size: tuple[int, int] = (240, 320)
    executor: dict[str, Any] = field(default_factory=dict)
    chunk_overdue_s: float = DEFAULT_CHUNK_OVERDUE_S
    realtime_factor: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.realtime_factor <= 1.0:
            raise ConfigError(f"realtime_factor={self.realtime_factor}: expected 0 < realtime_factor <= 1")

    @property
    def loop_realtime(self) -> bool:
        """The loop thread asks for SCHED_FIFO: ``realtime`` and paced at real time (a scaled pacer never is). A
        policy server this process starts for the loop is then real-time too (below the loop)."""
        return self.realtime and self.realtime_factor == 1.0


@dataclass
class EpisodeOutcome:
    """One served episode.

    Attributes:
        seed: scene seed.
        success: see the module docstring.
        steps: simulated time at the end in env steps (control periods of the env).
        sim_time_s: simulated time at the end (s).
        reason: why it ended (``"success"``, ``"timeout"``, ``"terminated: ..."``, ``"no valid chunk: ..."``).
        latency_ms: round trip per answered request, observation sent to chunk received (ms).
        infer_ms: server-side inference time per answered request (ms).
        frames: video frames (when asked for).
        report: the control pipeline's counters (:meth:`PolicyTask.report`) and the link's.
    """

    seed: int
    success: bool
    steps: int
    sim_time_s: float
    reason: str
    latency_ms: list[float] = field(default_factory=list)
    infer_ms: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


class TimedClient(PolicyClient):
    """A :class:`PolicyClient` that keeps the round trip and server inference time of every answered request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.latency_ms: list[float] = []
        self.infer_ms: list[float] = []

    def request(
        self, observation: Mapping[str, np.ndarray], tick: int, capture_time: float | None = None, budget_s: float = 0.1
    ) -> ChunkReply:
        reply = super().request(observation, tick, capture_time, budget_s)
        self.latency_ms.append(1e3 * reply.rtt_s)
        self.infer_ms.append(reply.infer_ms)
        return reply


class _Locked:
    """The loop's task and simulated robot behind one lock; counts the tick of the state in the simulator."""

    def __init__(self, task: Any, robot: Any, lock: threading.Lock) -> None:
        self.task, self.robot, self.lock = task, robot, lock
        self.state_tick = 0
        self._tick = 0

    # ControlTask
    def read(self, tick: int) -> Any:
        with self.lock:
            self._tick = tick
            return self.task.read(tick)

    def compute(self, tick: int, state: Any) -> Any:
        return self.task.compute(tick, state)

    def write(self, tick: int, command: Any) -> None:
        with self.lock:
            self.task.write(tick, command)

    # Simulated
    @property
    def sim_time(self) -> float:
        return self.robot.sim_time

    def advance(self, dt: float) -> None:
        with self.lock:
            self.robot.advance(dt)
            self.state_tick = self._tick + 1

    def reset(self, seed: int | None = None) -> None:
        self.robot.reset(seed)


class _SnapshotSimulation(Protocol):
    """What :class:`SnapshotRenderer` uses of a simulated robot's ``simulation`` (sim.mujoco.simulation.Simulation)."""

    model: Any

    def snapshot(self) -> Any: ...

    def render(self, camera: str, width: int, height: int, data: Any = None) -> np.ndarray: ...


class SnapshotRenderer:
    """Renders camera images from simulator snapshots in one long-lived thread (GL contexts stay in it).

    Args:
        robot: a simulated robot (its ``simulation`` takes snapshots and renders them).
        fast: render like ``rcs record --render fast`` (no shadow map, no multisampling): what the recorded
            datasets, and so the policies trained on them, saw.
    """

    def __init__(self, robot: Any, fast: bool) -> None:
        sim = getattr(robot, "simulation", None)
        if sim is None or not hasattr(sim, "snapshot"):
            raise NotImplementedError(
                "served episodes render images from a simulator snapshot; a physical "
                "robot's cameras are read by their own drivers (not wired here yet)"
            )
        self.sim: _SnapshotSimulation = sim
        if fast:  # the same camera settings as `rcs record --render fast` (no shadow map, no multisampling)
            quality = self.sim.model.vis.quality
            quality.shadowsize = 0
            quality.offsamples = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rcs-render")

    def snapshot(self) -> Any:
        return self.sim.snapshot()

    def render(self, snapshot: Any, cameras: Sequence[tuple[str, int, int]]) -> dict[str, np.ndarray]:
        def job() -> dict[str, np.ndarray]:
            return {name: self.sim.render(name, w, h, data=snapshot) for name, h, w in cameras}

        return self.pool.submit(job).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class EpisodeRunner:
    """Runs episodes of ``env`` with the policy served at ``endpoint`` (see the module docstring).

    Args:
        env: a gymnasium env whose ``unwrapped`` is a :class:`rcs.envs.base.RobotEnv` with a simulated robot,
            made without cameras (images are rendered here at the policy's sizes).
        endpoint: the policy server, e.g. ``tcp://127.0.0.1:5555``.
        inputs: what the policy reads.
        config: robot-side settings.
        instruction: the task text sent with every observation (policies that take one); ``None`` takes
            ``env.unwrapped.instruction`` after each reset.
        fast_render: render like ``rcs record --render fast``.
        stream: publishes the robot's state and the command the loop wrote, once per env step, for a live view
            (``rcs eval --view``); from the supervising thread, never the control loop's.
    """

    def __init__(
        self,
        env: Any,
        endpoint: str,
        inputs: PolicyInputs,
        config: EpisodeConfig | None = None,
        instruction: str | None = None,
        fast_render: bool = True,
        stream: StreamPublisher | None = None,
    ) -> None:
        self.env = env
        self.stream = stream
        self.u = env.unwrapped
        self.robot = self.u.robot
        self.layout = FeatureLayout.for_env(self.u)
        self.endpoint = endpoint
        self.inputs = inputs
        self.config = config or EpisodeConfig()
        self.instruction = instruction
        self.renderer = SnapshotRenderer(self.robot, fast_render)
        # the first render creates the GL context (slow): do it now, not inside the first episode's deadline
        h, w = self.config.video_size
        self.renderer.render(self.renderer.snapshot(), [*inputs.cameras, (self.u.config.render_camera.name, h, w)])

    def close(self) -> None:
        """Stop the render thread (the env is the caller's)."""
        self.renderer.close()

    # -- one episode -----------------------------------------------------------------------------------
    def run(self, seed: int, video: bool = False, on_tick: Callable[[float], None] | None = None) -> EpisodeOutcome:
        """One episode from ``env.reset(seed=seed)``; see the module docstring for success and failure."""
        cfg, u, robot = self.config, self.u, self.robot
        self.env.reset(seed=seed)
        instruction = self.instruction if self.instruction is not None else u.instruction
        schedule = LinkSchedule(self.inputs.replan_steps, u.dt)
        task = make_policy_task(
            robot, cfg.rate_hz, executor=cfg.executor or None, watchdog=schedule.watchdog(overdue_s=cfg.chunk_overdue_s)
        )
        lock = threading.Lock()
        locked = _Locked(task, robot, lock)
        client = TimedClient(
            self.endpoint, expected_schema(self.env, self.inputs, task.executor.names), name=f"rcs-eval seed {seed}"
        )
        control_dt = 1.0 / cfg.rate_hz
        cameras = [c[0] for c in self.inputs.cameras]

        def read() -> tuple[int, float, dict[str, np.ndarray]]:
            with lock:
                tick = locked.state_tick
                captured = time.monotonic()
                obs = u.observe()
                snap = self.renderer.snapshot()
            images = self.renderer.render(snap, self.inputs.cameras)
            obs.update({f"image_{name}": img for name, img in images.items()})
            return tick, captured, observation_to_features(obs, cameras, self.layout.env_state)

        def measured_state() -> Any:
            with lock:
                return robot.read()

        link = PolicyLink(
            task,
            robot,
            client,
            schedule,
            read,
            budget_s=cfg.budget_s,
            instruction=instruction,
            measured_state=measured_state,
        )
        scaled = cfg.realtime_factor < 1.0
        loop = ControlLoop(
            locked,
            cfg.rate_hz,
            robot=locked,
            paced=True,
            rt=RtConfig() if cfg.loop_realtime else NO_RT,
            pacer=ScaledPacer(cfg.realtime_factor) if scaled else None,
            log_every_s=0,
        )
        max_time = u.config.max_episode_steps * u.dt
        frames: list[np.ndarray] = []
        next_frame = 0.0
        hold_needed = max(1, int(round(cfg.success_hold_s / u.dt)))
        held, reason, success, wrong_object = 0, "timeout", False, False
        last_info: dict[str, Any] = {}
        started = time.monotonic()
        loop.start()
        link.start()
        try:
            last_check = -1.0
            while True:
                time.sleep(0.5 * u.dt)
                with lock:
                    t = locked.state_tick * control_dt
                    state = u.observe() if t - last_check >= u.dt else None
                    snap = self.renderer.snapshot() if video and t >= next_frame else None
                if snap is not None:
                    frames.append(self._video_frame(snap))
                    next_frame += 1.0 / cfg.video_fps
                if on_tick is not None:
                    on_tick(t)
                if link.state is FeedState.REFUSED:
                    reason = f"refused to arm: {link.refusal}"
                    break
                if task.executor.accepted == 0 and time.monotonic() - started > cfg.arm_timeout_s:
                    reason = "no valid chunk: " + _why_no_chunk(link, task)
                    break
                if state is None:
                    continue
                last_check = t
                if self.stream is not None:
                    self.stream.publish(locked.state_tick, u.last_reading, task.history.last, task.stage.value, u.dt)
                info = u.task_measures(state)
                last_info = info
                if u.wrong_object_lifted(info):
                    wrong_object = True
                held = held + 1 if info.get("is_success") else 0
                if held >= hold_needed:
                    success, reason = True, "success"
                    break
                failure = u.failure_reason(state, info)
                if failure is not None:
                    reason = f"terminated: {failure}"
                    break
                if t >= max_time:
                    reason = "timeout" if task.executor.accepted else "no valid chunk: " + _why_no_chunk(link, task)
                    break
        finally:
            # the loop first: ticks after the episode's end (while the feed thread finishes a request) would
            # otherwise run the watchdog on a link that is being closed and count as the policy's lateness
            loop.stop()
            stats = loop.join(10.0)
            link.stop()
        task.end_episode(f"seed {seed}")
        report = task.report()
        report["missed_ticks"] = stats.missed_ticks  # deadlines the loop skipped (woke over a period late)
        link_report = link.report()
        report["bridge"] = link_report["bridge"]
        report["chunk_gaps"] = chunk_gaps(task.watchdog.transitions, task.executor.seam_ticks, task.executor.tick)
        wd = task.watchdog.config
        report["watchdog"] = {
            "stop_after_s": wd.stop_after_s,
            "disarm_after_s": wd.disarm_after_s,
            "stop_ticks": wd.ticks(wd.stop_after_s),
            "disarm_ticks": wd.ticks(wd.disarm_after_s),
        }
        if "ik" in link_report:
            report["ik"] = link_report["ik"]
        report["wrong_object_lifted"] = wrong_object  # tasks with distractors declare it (wrong_object_lifted)
        # the task's numeric measures at the last check (e.g. distances in m): how far a failure got
        report["final"] = {
            k: round(float(v), 4)
            for k, v in last_info.items()
            if isinstance(v, (int, float, np.floating)) and not isinstance(v, (bool, np.bool_))
        }
        if instruction is not None:
            report["instruction"] = instruction
        sim_time = locked.state_tick * control_dt
        return EpisodeOutcome(
            seed,
            success,
            int(round(sim_time / u.dt)),
            sim_time,
            reason,
            list(client.latency_ms),
            list(client.infer_ms),
            frames,
            report,
        )

    def _video_frame(self, snapshot: Any) -> np.ndarray:
        h, w = self.config.video_size
        camera = self.u.config.render_camera.name
        return self.renderer.render(snapshot, [(camera, h, w)])[camera]


def chunk_gaps(transitions: Sequence[tuple[int, Any]], merge_ticks: Sequence[int], last_tick: int) -> list[int]:
    """Control ticks the robot waited for each chunk while engaged: from engaging to the first merge, between
    consecutive merges, and from the last merge to ``last_tick`` (the episode's end).

    This is measured independently of the watchdog (from the executor's merge ticks), so a test can check that
    the watchdog stopped the arm only for as long as a chunk was really overdue.

    Args:
        transitions: the watchdog's ``(tick, stage)`` changes; the first one leaves IDLE when engaging.
        merge_ticks: ticks at which the executor merged an accepted chunk (``ChunkExecutor.seam_ticks``).
        last_tick: the last tick the loop ran.
    """
    engaged = next((tick for tick, stage in transitions if getattr(stage, "value", stage) != "idle"), None)
    if engaged is None:
        return []
    marks = [engaged, *(t for t in merge_ticks if t >= engaged), last_tick + 1]
    return [b - a for a, b in itertools.pairwise(marks)]


def _why_no_chunk(link: PolicyLink, task: PolicyTask) -> str:
    report = task.report()
    parts = [f"bridge {dict(link.counters)}"]
    if report["chunk_rejections"]:
        parts.append(f"executor rejected {report['chunk_rejections']}")
    if report["safety_interventions"]:
        parts.append(f"safety filter {report['safety_interventions']}")
    parts.append(f"robot held (stage {report['stage']})")
    return "; ".join(parts)
