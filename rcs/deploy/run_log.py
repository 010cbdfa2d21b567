"""The deploy run log: a robot server's whole run, logged into a crash-safe LeRobot v3 dataset.

:class:`RunLogger` subscribes to what a robot server (:class:`rcs.remote.server.RobotServer`) publishes anyway
(STATE every tick, STATUS every ``status_period_s``, camera frames; docs/ros2.md "Robot channel"), so logging adds
nothing to the control loop. It writes with :class:`rcs.recording.writer.Recorder`: one episode ("segment") per
``segment_s`` seconds of robot time, each committed atomically, so a crash of the robot, the server or the logger
loses at most the open segment.

Frames are sampled on *robot time* (the STATE header's ``capture_time``, host monotonic s): slot ``k`` of a
stream begins at ``t0 + k / fps`` (``t0``: capture time of the stream's first logged state), and a frame is
emitted by the first state whose capture time falls in a slot not yet logged, with the newest STATUS and camera
frame received before it. A slot no state fell into (states lost or the loop stalled) is skipped, not filled
in: it is counted as ``missed_slots`` in the segment's info. Segment ``s`` holds slots
``s * segment_frames .. (s + 1) * segment_frames - 1`` (``segment_frames = round(segment_s * fps)``).

Features (float32 unless stated; :func:`run_log_features`):

- ``observation.state`` (n + 1,): measured joint positions (rad) + gripper (normalized width); names: the
  description's ``joint_names`` + ``gripper``.
- ``action`` (n + 1,): the STATE's ``command``, the filtered command the loop wrote at the previous tick (joint
  targets, rad, + gripper); names: the description's ``command_names``.
- ``observation.images.<camera>``: video (H, W, 3) uint8, the newest frame of that camera.
- ``safety.interventions`` (1,): safety-filter interventions (all reasons) first seen with this frame: the
  increase of the STATUS's cumulative counts (a STATUS comes every 0.2 s, so an intervention is attributed to the
  first frame after the STATUS that reports it, not to the tick it happened at).
- ``loop.lateness_us`` (2,) names ``p50``, ``p99``: the control loop's wake-up lateness (us) from the newest STATUS.
- ``stage`` int64 (1,): the watchdog stage as its index in ``list(rcs.safety.watchdog.Stage)`` (0 idle, 1 running,
  2 hold, 3 stopping, 4 disarmed, 5 estop); -1 for a stage string this version does not know.
- ``capture_time`` float64 (1 + cameras,) names ``state``, <camera>...: capture times, handed to the recorder as
  absolute monotonic s and stored relative to the segment's earliest (``capture_time_origin`` per segment in
  ``meta/rcs_episodes.jsonl``, :mod:`rcs.recording.features`).

Each segment's info (``meta/rcs_episodes.jsonl``): ``segment_start``/``segment_end`` (capture times of its first and
last frame's state, monotonic s), ``interventions`` (reason -> count seen during the segment), ``stages`` (stage
strings seen, in order of first appearance), ``missed_slots``, ``first_tick``/``last_tick``, ``end``
(``"segment_s"``, ``"silence"``, ``"restart"`` or ``"stop"``).

The first segment starts once a STATE with a command, a STATUS (the interventions baseline and the lateness) and
every camera's first frame have arrived. When no STATE arrives for ``silence_s`` the open segment is saved and the
logger waits for the stream to come back (a restarting server), until stopped.

Process entry point (``python -m rcs.deploy.run_log --state-endpoint E --command-endpoint C --out DIR --fps N``):
prints ``{"ready": true, ...}`` on stdout once the first segment started, logs until SIGTERM/SIGINT, then saves
the open segment and prints one JSON line with the :class:`RunLogReport`. Bad input: one line on stderr, exit 2.

Light at import: numpy and the light core only; the recorder (and through it lerobot) is imported when a
:class:`RunLogger` is built.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from rcs.child_process import report_to_parent
from rcs.errors import ConfigError, RcsError
from rcs.recording.features import ACTION, CAPTURE_TIME, IMAGE_PREFIX, STATE
from rcs.remote.wire import TOPIC_CAMERA, TOPIC_STATE, TOPIC_STATUS, RobotMessage
from rcs.safety.watchdog import Stage

log = logging.getLogger(__name__)

INTERVENTIONS = "safety.interventions"
LATENESS = "loop.lateness_us"
STAGE = "stage"
#: watchdog stage strings in the order of their ``stage`` feature index.
STAGES: tuple[str, ...] = tuple(s.value for s in Stage)
#: received messages ZeroMQ queues for the logger before it drops new ones (a slow commit can stall the reader).
RECEIVE_HWM = 20000


def run_log_features(
    joint_names: list[str], command_names: list[str], cameras: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, dict]:
    """The lerobot ``features`` dict of a run log (module docstring): arm joints, command names, cameras
    (name -> (height, width) px)."""
    cams = dict(cameras or {})
    out: dict[str, dict] = {
        STATE: {"dtype": "float32", "shape": (len(joint_names) + 1,), "names": [*joint_names, "gripper"]},
        ACTION: {"dtype": "float32", "shape": (len(command_names),), "names": list(command_names)},
    }
    for name, (height, width) in cams.items():
        out[IMAGE_PREFIX + name] = {
            "dtype": "video",
            "shape": (int(height), int(width), 3),
            "names": ["height", "width", "channels"],
        }
    out[INTERVENTIONS] = {"dtype": "float32", "shape": (1,), "names": ["all_reasons"]}
    out[LATENESS] = {"dtype": "float32", "shape": (2,), "names": ["p50", "p99"]}
    out[STAGE] = {"dtype": "int64", "shape": (1,), "names": ["stage"]}
    out[CAPTURE_TIME] = {"dtype": "float64", "shape": (1 + len(cams),), "names": ["state", *cams]}
    return out


@dataclass
class RunLogReport:
    """What a run log holds at the end of :meth:`RunLogger.run`.

    Attributes:
        frames: frames in the segments saved during this run.
        segments_saved: segments saved during this run.
        root: the dataset folder.
        interventions_by_reason: safety interventions seen during this run, per reason (counts).
        last_status: the newest STATUS metadata received (``RobotServer.status()``), or None.
        segments_lost: why each segment handed to the recorder was not saved (normally empty).
        missed_slots: frame slots of this run no state fell into (not logged).
        silences: times the stream went silent for ``silence_s`` while a segment was open.
        commit_backlog_max: most segments still committing when another closed; above 0, a crash at that moment
            would have lost those too (commits slower than ``segment_s``: use longer segments).
        error: why logging stopped early (the recorder hit a disk-full or I/O error), else "".
    """

    frames: int
    segments_saved: int
    root: str
    interventions_by_reason: dict[str, int]
    last_status: dict[str, Any] | None
    segments_lost: list[str] = field(default_factory=list)
    missed_slots: int = 0
    silences: int = 0
    commit_backlog_max: int = 0
    error: str = ""


@dataclass
class _Segment:
    index: int  # slot // segment_frames
    start: float
    end: float
    first_tick: int
    last_tick: int
    frames: int = 0
    missed_slots: int = 0
    interventions: dict[str, int] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)


class RunLogger:
    """Logs a robot server's stream into a LeRobot v3 dataset, one crash-safe episode per segment.

    Args:
        client: a :class:`rcs.remote.client.RobotClient` subscribed to ``state``, ``status`` and
            ``camera/<name>`` of each camera logged (only its ``receive`` is used); may be set as
            :attr:`client` after construction, before :meth:`run`.
        description: the server's DESCRIBE reply (an arm's: ``joint_names``, ``command_names``).
        root: dataset folder (created by the first saved segment; a compatible dataset there is appended to).
        fps: frames per second of robot time (positive integer: lerobot's frame rate).
        segment_s: robot-time seconds per segment (episode).
        task: lerobot's per-frame task text.
        robot_type: stored in ``meta/info.json`` (default: the description's ``name``).
        cameras: cameras to log, name -> (height, width) px, as published.
        silence_s: s without a STATE after which the open segment is saved.
        video: encoder options (:class:`rcs.recording.video.VideoOptions`; default lerobot's).
        on_start: called once with a dict (``start_capture_time``, ``cameras``...) when the first segment starts.

    Raises:
        ConfigError: bad ``fps``, ``segment_s``, ``silence_s`` or a description that is not an arm's.
        rcs.recording.writer.IncompatibleDatasetError: ``root`` holds a dataset of another layout or rate.
    """

    def __init__(
        self,
        client: Any,
        description: Mapping[str, Any],
        root: str | Path,
        *,
        fps: int,
        segment_s: float = 10.0,
        task: str = "deploy",
        robot_type: str | None = None,
        cameras: Mapping[str, tuple[int, int]] | None = None,
        silence_s: float = 1.0,
        video: Any = None,
        on_start: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps != int(fps) or fps <= 0:
            raise ConfigError(f"fps={fps!r}: must be a positive integer (frames per second of robot time)")
        if not isinstance(segment_s, (int, float)) or not math.isfinite(segment_s) or segment_s * fps < 1:
            raise ConfigError(f"segment_s={segment_s!r}: must be at least one frame (>= {1 / fps:g} s at fps={fps})")
        if not isinstance(silence_s, (int, float)) or not math.isfinite(silence_s) or silence_s <= 0:
            raise ConfigError(f"silence_s={silence_s!r}: must be a positive number of seconds")
        if description.get("kind", "arm") != "arm" or not description.get("joint_names"):
            raise ConfigError(
                f"description: kind={description.get('kind')!r}; the run log records arms (joint_names + gripper)"
            )
        self.client = client
        self.description = dict(description)
        self.fps = int(fps)
        self.segment_s = float(segment_s)
        self.segment_frames = max(1, round(self.segment_s * self.fps))
        self.task = task
        self.silence_s = float(silence_s)
        self.cameras = {str(k): (int(v[0]), int(v[1])) for k, v in (cameras or {}).items()}
        self.joint_names = [str(n) for n in description["joint_names"]]
        self.command_names = [str(n) for n in description.get("command_names") or [*self.joint_names, "gripper"]]
        self.features = run_log_features(self.joint_names, self.command_names, self.cameras)
        self.on_start = on_start

        # The recorder's commit imports lerobot's dataset module (torch, datasets: seconds on a loaded machine).
        # Imported here, before the first segment starts, the first commit is as quick as the others instead of
        # keeping several segments waiting uncommitted (and exposed to a crash) for its import.
        import lerobot.datasets.lerobot_dataset  # noqa: F401

        from rcs.recording.video import VideoOptions
        from rcs.recording.writer import Recorder

        self.recorder = Recorder(
            root,
            fps=self.fps,
            features=self.features,
            robot_type=robot_type or str(description.get("name") or "unknown"),
            recording={
                "source": "rcs.deploy.run_log",
                "robot": description.get("name"),
                "state_rate_hz": description.get("rate_hz"),
                "segment_s": self.segment_s,
                "stages": list(STAGES),
                "cameras": {k: list(v) for k, v in self.cameras.items()},
            },
            video=video or VideoOptions(),
            realtime=False,  # back-pressure: a segment never loses video frames (ZeroMQ queues the stream meanwhile)
        )
        self.root = self.recorder.root
        # newest messages
        self._state: RobotMessage | None = None
        self._status: dict[str, Any] | None = None
        self._images: dict[str, tuple[np.ndarray, float]] = {}
        # interventions: last cumulative counts, increase not yet attributed to a frame, run totals
        self._counts: dict[str, int] | None = None
        self._status_tick = -1
        self._pending: dict[str, int] = {}
        self.interventions_by_reason: dict[str, int] = {}
        # the stream being sampled: anchor capture time, next slot, last capture time and tick
        self._anchor: float | None = None
        self._next_slot = 0
        self._last_capture = -math.inf
        self._last_tick = -1
        self._last_state_arrival = time.monotonic()
        self._segment: _Segment | None = None
        self._started = False
        self.missed_slots = 0
        self.silences = 0
        self._commits: list[Any] = []  # futures of the segments handed to the recorder and not yet committed
        #: most segments waiting for their commit when another one closed (0: commits kept up)
        self.commit_backlog_max = 0

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, duration_s: float | None = None) -> RunLogReport:
        """Log until ``stop`` is set (or ``duration_s`` s of host time passed); then save the open segment (if it
        has a frame), close the recorder (waits for the commits) and return the report."""
        end = None if duration_s is None else time.monotonic() + duration_s
        error = ""
        try:
            while not stop.is_set() and (end is None or time.monotonic() < end):
                got = self.client.receive(timeout_s=0.1)
                if got is not None:
                    self.handle(*got)
                if got is None or got[0] != TOPIC_STATE:
                    self.check_silence(time.monotonic())
                if self.recorder.fatal:
                    error = self.recorder.fatal
                    log.error("run log stopped: %s", error)
                    break
        finally:
            if self._segment is not None:
                self._save("stop")
            self.recorder.close()
        reports = list(self.recorder.reports)
        saved = [r for r in reports if r.saved]
        lost = [f"segment {r.info.get('segment_start')}: {r.reason}" for r in reports if not r.saved]
        return RunLogReport(
            frames=sum(r.frames for r in saved),
            segments_saved=len(saved),
            root=str(self.root),
            interventions_by_reason=dict(self.interventions_by_reason),
            last_status=self._status,
            segments_lost=lost,
            missed_slots=self.missed_slots,
            silences=self.silences,
            commit_backlog_max=self.commit_backlog_max,
            error=error or self.recorder.fatal or "",
        )

    def handle(self, topic: bytes, message: RobotMessage) -> None:
        """Take one published message (what :meth:`run` does with each received)."""
        if topic == TOPIC_STATE:
            self._on_state(message)
        elif topic == TOPIC_STATUS:
            self._on_status(message.meta)
        elif topic.startswith(TOPIC_CAMERA):
            name = topic[len(TOPIC_CAMERA) :].decode(errors="replace")
            image = message.tensors.get("image")
            if name in self.cameras and image is not None:
                self._images[name] = (np.asarray(image), float(message.header.capture_time))

    def check_silence(self, now: float) -> None:
        """Save the open segment if no STATE arrived for ``silence_s`` (host monotonic ``now``, s); the next
        state then starts a new stream (fresh camera frames and STATUS needed first)."""
        if now - self._last_state_arrival <= self.silence_s or self._anchor is None:
            return
        log.warning("no state for %.1f s: saving the open segment, waiting for the stream", self.silence_s)
        self.silences += 1
        self._new_stream("silence")

    # -- messages --------------------------------------------------------------------------------------------
    def _on_status(self, meta: Mapping[str, Any]) -> None:
        counts = {str(k): int(v) for k, v in (meta.get("safety_interventions") or {}).items()}
        tick = int(meta.get("tick", -1))
        if self._counts is not None:
            restarted = tick < self._status_tick  # a new server: its counts start at 0
            for reason, count in counts.items():
                before = 0 if restarted else self._counts.get(reason, 0)
                if count < before:  # counts never decrease within a server's life
                    before = 0
                if count > before:
                    self._pending[reason] = self._pending.get(reason, 0) + count - before
                    self.interventions_by_reason[reason] = self.interventions_by_reason.get(reason, 0) + count - before
        self._counts = counts  # the first STATUS is the baseline: interventions before the log are not counted
        self._status_tick = tick
        self._status = dict(meta)

    def _on_state(self, msg: RobotMessage) -> None:
        self._last_state_arrival = time.monotonic()
        capture, tick = float(msg.header.capture_time), int(msg.header.tick)
        if self._anchor is not None and (capture <= self._last_capture or tick <= self._last_tick):
            log.warning("state stream restarted (tick %d after %d): saving the open segment", tick, self._last_tick)
            self._new_stream("restart")
        self._last_capture, self._last_tick = capture, tick
        command = msg.tensors.get("command")
        if command is None or msg.meta.get("command_mode") != "joint_positions" or "joint_positions" not in msg.tensors:
            return  # no command written yet (first tick) or not an arm's: cannot make a frame of it
        if self._anchor is None:
            if self._status is None or any(name not in self._images for name in self.cameras):
                return
            self._anchor, self._next_slot = capture, 0
        slot = math.floor((capture - self._anchor) * self.fps + 1e-9)
        if slot < self._next_slot:
            return  # this slot is logged already: keep only the newest state until the next one
        index, per = slot // self.segment_frames, self.segment_frames
        if self._segment is not None and index != self._segment.index:
            self._segment.missed_slots += (self._segment.index + 1) * per - self._next_slot  # its last slots
            self._save("segment_s")
        if self._segment is None:
            self._start(index, capture, tick)
        assert self._segment is not None
        self._segment.missed_slots += slot - max(self._next_slot, index * per)
        self.missed_slots += slot - self._next_slot
        self._next_slot = slot + 1
        self._add_frame(msg, command)

    # -- segments ------------------------------------------------------------------------------------------
    def _new_stream(self, reason: str) -> None:
        if self._segment is not None:
            self._save(reason)
        self._anchor = None
        self._images.clear()
        self._status = None if reason == "silence" else self._status
        self._last_capture, self._last_tick = -math.inf, -1

    def _start(self, index: int, capture: float, tick: int) -> None:
        self.recorder.start_episode(self.task)
        self._segment = _Segment(index, capture, capture, tick, tick)
        if not self._started:
            self._started = True
            if self.on_start is not None:
                self.on_start(
                    {
                        "root": str(self.root),
                        "fps": self.fps,
                        "segment_s": self.segment_s,
                        "cameras": list(self.cameras),
                        "start_capture_time": capture,
                        "segments_in_dataset": self.recorder.episodes_saved,
                    }
                )

    def _add_frame(self, msg: RobotMessage, command: np.ndarray) -> None:
        seg = self._segment
        assert seg is not None and self._status is not None
        t = msg.tensors
        state = np.concatenate([np.asarray(t["joint_positions"]).reshape(-1), np.asarray(t["gripper"]).reshape(-1)])
        stage = str(msg.meta.get("stage"))
        lateness = (self._status.get("loop") or {}).get("lateness_us") or {}
        interventions = sum(self._pending.values())
        for reason, n in self._pending.items():
            seg.interventions[reason] = seg.interventions.get(reason, 0) + n
        self._pending.clear()
        frame: dict[str, np.ndarray] = {
            STATE: state.astype(np.float32),
            ACTION: np.asarray(command, dtype=np.float32).reshape(-1),
            INTERVENTIONS: np.array([interventions], dtype=np.float32),
            LATENESS: np.array([lateness.get("p50", 0.0), lateness.get("p99", 0.0)], dtype=np.float32),
            STAGE: np.array([STAGES.index(stage) if stage in STAGES else -1], dtype=np.int64),
            CAPTURE_TIME: np.array(
                [msg.header.capture_time, *(self._images[n][1] for n in self.cameras)], dtype=np.float64
            ),
        }
        for name in self.cameras:
            frame[IMAGE_PREFIX + name] = self._images[name][0]
        self.recorder.add_frame(frame)
        seg.frames += 1
        seg.end, seg.last_tick = float(msg.header.capture_time), int(msg.header.tick)
        if stage not in seg.stages:
            seg.stages.append(stage)

    def _save(self, end: str) -> None:
        seg, self._segment = self._segment, None
        assert seg is not None
        self._commits = [f for f in self._commits if not f.done()]
        if self._commits and end != "stop":  # at the stop, close() waits for every commit anyway
            # a crash loses every segment not yet committed, not only the open one: commits must keep up
            self.commit_backlog_max = max(self.commit_backlog_max, len(self._commits))
            log.warning(
                "%d segment(s) still committing when the next one closed: a crash now could lose them too; "
                "use a longer segment_s (%g s)",
                len(self._commits),
                self.segment_s,
            )
        self._commits.append(
            self.recorder.save_episode(  # commits in the background; report in recorder.reports
                segment_start=seg.start,
                segment_end=seg.end,
                interventions=seg.interventions,
                stages=seg.stages,
                missed_slots=seg.missed_slots,
                first_tick=seg.first_tick,
                last_tick=seg.last_tick,
                end=end,
            )
        )


# ---------------------------------------------------------------------------------------------------------
# Process entry point
# ---------------------------------------------------------------------------------------------------------

PROG = "python -m rcs.deploy.run_log"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        _fail(message)


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def _positive(name: str, value: str, integer: bool = False) -> float:
    try:
        number = float(value)
    except ValueError:
        _fail(f"{name}={value!r}: not a number")
    if not math.isfinite(number) or number <= 0 or (integer and number != int(number)):
        kind = "a positive integer" if integer else "a positive number"
        _fail(f"{name}={value}: must be {kind}")
    return number


def _without_root(message: str, root: Path) -> str:
    """``message`` without a leading ``<root>: `` (the error line names ``--out`` already)."""
    for prefix in (f"{root}: ", f"{root.resolve()}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def main(argv: list[str] | None = None) -> int:
    """``python -m rcs.deploy.run_log``: log a robot server's run until SIGTERM/SIGINT (module docstring)."""
    parser = _Parser(prog=PROG, description="Log a robot server's run into a crash-safe LeRobot dataset.")
    parser.add_argument("--state-endpoint", required=True, help="the robot server's PUB endpoint")
    parser.add_argument("--command-endpoint", required=True, help="the robot server's command (ROUTER) endpoint")
    parser.add_argument("--out", required=True, help="dataset folder (a compatible dataset there is appended to)")
    parser.add_argument("--fps", required=True, help="frames per second of robot time (positive integer)")
    parser.add_argument("--segment-s", default="10", help="robot-time seconds per saved segment (default 10)")
    parser.add_argument("--silence-s", default="1", help="s without state before the open segment is saved")
    parser.add_argument("--task", default="deploy", help="lerobot task text of every frame (default 'deploy')")
    parser.add_argument("--timeout-s", default="5", help="how long to wait for the server's description (s)")
    parser.add_argument("--vcodec", default=None, help="video codec (default lerobot's, libsvtav1)")
    args = parser.parse_args(argv)
    fps = int(_positive("--fps", args.fps, integer=True))
    segment_s = _positive("--segment-s", args.segment_s)
    silence_s = _positive("--silence-s", args.silence_s)
    timeout_s = _positive("--timeout-s", args.timeout_s)
    if not args.task:
        _fail("--task: must not be empty (lerobot's task text)")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=f"{PROG}: %(levelname)s: %(message)s")

    from rcs.recording.video import VideoOptions
    from rcs.recording.writer import IncompatibleDatasetError
    from rcs.remote.client import RobotClient, RobotServerTimeout

    with RobotClient(args.command_endpoint, None, timeout_s=timeout_s) as describer:
        try:
            description = describer.describe()
        except (RobotServerTimeout, RcsError) as e:
            _fail(f"--command-endpoint={args.command_endpoint}: {e}")
    client: RobotClient | None = None
    try:
        cameras = {str(c["name"]): (int(c["height"]), int(c["width"])) for c in description.get("cameras") or []}

        def ready(info: dict[str, Any]) -> None:
            sys.stdout.write(json.dumps({"ready": True, "robot": description.get("name"), **info}) + "\n")
            sys.stdout.flush()

        try:
            logger = RunLogger(
                client,
                description,
                Path(args.out),
                fps=fps,
                segment_s=segment_s,
                task=args.task,
                cameras=cameras,
                silence_s=silence_s,
                video=VideoOptions(vcodec=args.vcodec),
                on_start=ready,
            )
        except IncompatibleDatasetError as e:
            _fail(f"--out={args.out}: {_without_root(str(e), Path(args.out))}")
        except (RcsError, OSError, ValueError) as e:
            _fail(str(e))
        # subscribed only now that the recorder is open (importing lerobot takes seconds): the log starts live
        # at "ready" instead of working through a backlog queued meanwhile
        client = logger.client = RobotClient(
            args.command_endpoint,
            args.state_endpoint,
            topics=(TOPIC_STATE, TOPIC_STATUS, TOPIC_CAMERA),
            timeout_s=timeout_s,
            receive_hwm=RECEIVE_HWM,
        )
        # installed only now: until here a signal ends the process at once, with nothing of this run to save
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        report = logger.run(stop)
    finally:
        if client is not None:
            client.close()
    report_to_parent(json.dumps({"done": True, **asdict(report)}, default=str) + "\n", sys.stdout)
    if report.error:
        report_to_parent(f"{PROG}: {report.error}\n", sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
