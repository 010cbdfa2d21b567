"""A recording session: env + teleop device + cameras -> :class:`~rcs.recording.writer.Recorder` episodes.

Episode rules (docs/record.md):

- Devices with episode controls (keyboard, gamepad buttons): the robot can be driven while idle; START begins an
  episode (START again, or SAVE, stops and saves it), RERECORD discards it and resets the same scene, DISCARD discards it and moves
  on to the next scene, QUIT discards the episode in progress and ends the session.
- Devices without controls (the scripted expert) record back to back: each episode starts at reset and ends at
  the env's termination/truncation.
- The env ending the episode (time limit, cube fell) stops it; it is saved if ``keep`` allows (``"all"``, or
  ``"success"``: only if ``info["is_success"]``).
- With ``end_after_success_s`` set, an episode also ends once ``info["is_success"]`` has held for that long (env
  time), so demonstrations stop shortly after the task is done instead of filling the time limit with a robot
  holding still (which a policy trained on them would learn as "stop here", wherever "here" is).
- A device or camera failure (unplugged, stopped delivering) discards the episode in progress, since a cut-off
  demonstration is not a demonstration, and ends the session. Saved episodes are never touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rcs.clock import WallClock
from rcs.devices import Camera
from rcs.errors import RcsError
from rcs.recording.features import OBS_IMAGE_PREFIX, FeatureLayout, frame_features
from rcs.recording.writer import EpisodeReport, Recorder
from rcs.teleop.base import EpisodeEvent, PolicyTeleop, Teleop
from rcs.teleop.mapping import ActionMapper

if TYPE_CHECKING:
    from rcs.remote.publisher import StreamPublisher

log = logging.getLogger(__name__)


class DeviceFailure(RcsError):
    """A teleop device or camera stopped working mid-session."""


@dataclass
class Progress:
    """What the live progress line shows."""

    episode: int
    episodes: int
    frames: int
    rate_hz: float
    dropped: int
    saved: int
    state: str


@dataclass
class SessionResult:
    """Outcome of a session."""

    reports: list[EpisodeReport] = field(default_factory=list)
    stopped_by: str = "done"

    @property
    def saved(self) -> int:
        return sum(r.saved for r in self.reports)


class CameraSet:
    """The recording's cameras, read once per frame, with a freshness check (a camera that stops delivering).

    Args:
        cameras: name -> connected :class:`rcs.devices.Camera`.
        max_age: s; a frame older than this at read time means the camera stopped delivering.
    """

    def __init__(self, cameras: dict[str, Camera], max_age: float = 1.0) -> None:
        self.cameras = cameras
        self.max_age = max_age
        self._last_index: dict[str, int] = {}

    def read(self) -> tuple[dict[str, np.ndarray], list[float]]:
        images, times = {}, []
        for name, cam in self.cameras.items():
            try:
                frame = cam.read()
            except Exception as exc:
                raise DeviceFailure(f"camera {name!r}: read failed ({type(exc).__name__}: {exc})") from exc
            age = time.monotonic() - frame.timestamp
            if age > self.max_age:
                raise DeviceFailure(
                    f"camera {name!r} stopped delivering: newest frame is {age:.2f} s old (limit {self.max_age} s)"
                )
            images[f"{OBS_IMAGE_PREFIX}{name}"] = frame.image
            times.append(float(frame.timestamp))
        return images, times


def state_time(env: Any, obs: dict) -> float:
    """Capture time (host monotonic s) of the state in ``obs``: its ``timestamp`` if it has one, else the env's
    :attr:`~rcs.envs.base.RobotEnv.state_time` (when the observation's device reading was taken). Never reads the
    device again: on hardware that would cost a bus transaction and stamp a later reading than the one recorded."""
    if "timestamp" in obs:
        return float(np.asarray(obs["timestamp"]).reshape(-1)[0])
    t = getattr(env, "state_time", None)
    if t is None:
        raise RuntimeError(f"{type(env).__name__}: no state_time for the observation (its _observe must stamp it)")
    return float(t)


class RecordSession:
    """Runs episodes of ``env`` driven by ``teleop`` into ``recorder``.

    Args:
        env: unwrapped pick-cube-style env (``reset``/``step`` gymnasium API).
        teleop: the device.
        recorder: the dataset writer.
        layout: the dataset's feature layout.
        cameras: the recording's cameras.
        task: task text of every episode.
        episodes: episodes to save.
        first_seed: scene seed of the first scene (the env reset seed: randomized cube pose and target); each new
            scene takes the next seed (a re-record keeps the seed).
        keep: ``"all"`` or ``"success"`` (unsuccessful episodes are discarded and do not count).
        max_attempts: stop after this many scenes (default ``3 * episodes + 10``).
        end_after_success_s: s of env time; if set, an episode ends (as if the env had truncated it) once the task
            has succeeded for this long without interruption; ``None`` runs to the env's time limit.
        progress: called with a :class:`Progress` after every frame (the CLI's live line).
        stream: publishes every step's device reading and camera images for a live view (``rcs record --view``).
    """

    def __init__(
        self,
        env: Any,
        teleop: Teleop,
        recorder: Recorder,
        layout: FeatureLayout,
        cameras: CameraSet,
        task: str,
        episodes: int,
        first_seed: int = 0,
        keep: str = "all",
        progress: Callable[[Progress], None] | None = None,
        max_attempts: int | None = None,
        end_after_success_s: float | None = None,
        stream: StreamPublisher | None = None,
    ) -> None:
        if keep not in ("all", "success"):
            raise ValueError(f"keep={keep!r}: 'all' or 'success'")
        if end_after_success_s is not None and not end_after_success_s >= 0:
            raise ValueError(f"end_after_success_s={end_after_success_s!r}: a duration in s, >= 0")
        self.env, self.teleop, self.recorder, self.layout = env, teleop, recorder, layout
        self.cameras, self.task, self.episodes, self.first_seed, self.keep = cameras, task, episodes, first_seed, keep
        self.max_attempts = max_attempts if max_attempts is not None else 3 * episodes + 10
        # env steps the task must succeed for before the episode ends (None: never ends on success)
        self.success_steps = None if end_after_success_s is None else int(round(end_after_success_s / env.dt)) + 1
        self.progress = progress
        self.stream = stream
        self._steps = 0
        self.mapper = None if isinstance(teleop, PolicyTeleop) else ActionMapper(env)
        self.clock = WallClock(env.dt) if teleop.realtime else None
        self.has_controls = not isinstance(teleop, PolicyTeleop)

    def _action(self, obs: dict) -> tuple[np.ndarray, tuple[EpisodeEvent, ...]]:
        try:
            if isinstance(self.teleop, PolicyTeleop):  # then self.mapper is None
                return self.teleop.action(obs), ()
            cmd = self.teleop.command(obs)
        except DeviceFailure:
            raise
        except (OSError, RcsError) as exc:
            raise DeviceFailure(f"teleop {self.teleop.name!r}: {type(exc).__name__}: {exc}") from exc
        if self.mapper is None:  # __init__ makes one for every device but a PolicyTeleop
            raise RuntimeError(f"teleop {self.teleop.name!r}: no action mapper")
        return self.mapper.action(cmd), cmd.events

    def _reset(self, seed: int) -> dict:
        obs, _ = self.env.reset(seed=seed)
        self.teleop.reset(obs)
        if self.mapper is not None:
            self.mapper.reset(obs)
        if self.clock is not None:
            self.clock.reset()
        return obs

    def run(self) -> SessionResult:
        result = SessionResult()
        i, scene = 0, 0  # episodes saved, scenes used
        rate = _Rate()
        try:
            while i < self.episodes:
                if scene >= self.max_attempts:
                    result.stopped_by = f"{scene} scenes used for {i} kept episodes (max_attempts)"
                    break
                seed = self.first_seed + scene
                obs = self._reset(seed)
                recording = not self.has_controls
                if recording:
                    self.recorder.start_episode(self.task, seed=seed)
                outcome, info, succeeded = None, {}, 0
                while outcome is None:
                    images, cam_times = self.cameras.read()
                    t_state = state_time(self.env, obs)
                    action, events = self._action(obs)
                    for event in events:
                        outcome = self._on_event(event, recording)
                        if event is EpisodeEvent.START and not recording:
                            self.recorder.start_episode(self.task, seed=seed)
                            recording, outcome = True, None
                        if outcome is not None:
                            break
                    if outcome is not None:
                        break
                    if recording:
                        self.recorder.add_frame(
                            frame_features(self.layout, {**obs, **images}, action, [t_state, *cam_times])
                        )
                    if isinstance(self.teleop, PolicyTeleop):  # a scripted demonstrator may perturb the command
                        action = self.teleop.executed(action)
                    obs, _, terminated, truncated, info = self.env.step(action)
                    rate.tick()
                    if self.stream is not None:
                        self._publish(images, cam_times)
                    if self.progress is not None:
                        self.progress(
                            Progress(
                                i + 1,
                                self.episodes,
                                self.recorder.frames,
                                rate.hz,
                                self.recorder.dropped_frames,
                                self.recorder.episodes_saved,
                                "recording" if recording else "idle (start to record)",
                            )
                        )
                    succeeded = succeeded + 1 if recording and info.get("is_success") else 0
                    if self.success_steps is not None and succeeded >= self.success_steps:
                        truncated = True
                    if terminated or truncated:
                        outcome = "ended" if recording else "idle-reset"
                    if self.clock is not None:
                        self.clock.tick()
                success = bool(info.get("is_success", False))
                if outcome == "ended":
                    if self.keep == "all" or success:
                        self.recorder.save_episode(seed=seed, success=success, teleop=self.teleop.name)
                        i += 1
                    else:
                        self.recorder.discard_episode("not successful (keep=success)")
                    scene += 1
                elif outcome == "save":
                    self.recorder.save_episode(seed=seed, success=success, teleop=self.teleop.name)
                    i += 1
                    scene += 1
                elif outcome == "rerecord":
                    self.recorder.discard_episode("re-record requested")
                elif outcome == "discard":
                    self.recorder.discard_episode("discarded by the operator")
                    scene += 1
                elif outcome == "quit":
                    if self.recorder.recording_episode:
                        self.recorder.discard_episode("quit during the episode")
                    result.stopped_by = "quit"
                    break
                # "idle-reset": the env timed out while idle; reset the same scene
                if self._commit_failed():
                    result.stopped_by = f"commit failed: {self.recorder.fatal}"
                    break
        except DeviceFailure as exc:
            log.error("%s; the episode in progress is discarded, saved episodes are intact", exc)
            if self.recorder.recording_episode:
                self.recorder.discard_episode(f"device failure: {exc}")
            result.stopped_by = f"device failure: {exc}"
        self.recorder.wait()
        result.reports = sorted(self.recorder.reports, key=lambda r: r.sequence)
        return result

    def _publish(self, images: dict[str, np.ndarray], cam_times: list[float]) -> None:
        """The step's device reading and the images recorded with it, to the live view's stream."""
        assert self.stream is not None
        self._steps += 1
        self.stream.publish(self._steps, self.env.last_reading, dt=float(self.env.dt))
        for (key, image), captured in zip(images.items(), cam_times, strict=False):
            self.stream.publish_image(self._steps, key.removeprefix(OBS_IMAGE_PREFIX), image, captured)

    def _on_event(self, event: EpisodeEvent, recording: bool) -> str | None:
        table = {
            EpisodeEvent.SAVE: "save" if recording else None,
            EpisodeEvent.RERECORD: "rerecord" if recording else None,
            EpisodeEvent.DISCARD: "discard" if recording else None,
            EpisodeEvent.QUIT: "quit",
            EpisodeEvent.START: "save" if recording else None,  # a start/stop toggle (keyboard Enter) saves
        }
        return table[event]

    def _commit_failed(self) -> bool:
        """Stop after a failed commit (full disk, I/O error): later episodes would fail the same way."""
        return self.recorder.fatal is not None


class _Rate:
    """Exponentially smoothed loop rate (Hz)."""

    def __init__(self) -> None:
        self._last: float | None = None
        self.hz = 0.0

    def tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            dt = now - self._last
            if dt > 0:
                self.hz = 1.0 / dt if self.hz == 0.0 else 0.9 * self.hz + 0.1 / dt
        self._last = now
