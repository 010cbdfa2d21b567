"""``rcs bench record``: recording throughput on the simulated Panda with two rendered cameras.

For ``--seconds`` (default 30) of wall-clock time:

- the control loop (:class:`rcs.control.loop.ControlLoop`, absolute deadlines, real-time setup where permitted)
  runs at ``--state-hz`` (default 500): it reads the arm state, commands a slow joint sway and advances the
  physics by one period;
- two camera threads (``SCHED_FIFO`` 60 with replayed frames, default scheduling when rendering) render the
  scene's ``front`` and ``wrist`` cameras at ``--camera-fps`` (default 30) and
  ``--size`` (default 480x640) from a snapshot of the simulation state, each with its own OpenGL context, the
  way physical cameras deliver frames on their own threads;
- at every dataset frame (``--camera-fps``), the loop hands the recorder the newest image of each camera, the
  newest state, and every state sample since the previous frame (the ``state_stream`` features, see
  :mod:`rcs.recording.features`); videos are encoded off the loop, by default in one worker process per camera
  (``--encoder process``, :mod:`rcs.recording.encoder_process`), or on threads (``--encoder thread``).

Then the episode is committed and the numbers are measured **from the saved dataset, loaded with lerobot**:

- ``state_hz``: state samples stored (``sum(state_stream_count)``) / the time they span;
- ``camera_fps``: distinct camera frames stored per second (the lower of the two cameras);
- ``dropped_frames``: frames lost between capture and file: frame slots where a camera had no new image
  (the camera fell behind, the previous image is repeated), images overwritten before being recorded, and
  images the encoder queue refused;
- ``cpu_percent``: CPU time of this process (all threads) and of its encoder worker processes / wall time during
  the recording, x100 (200 = two cores busy).

Camera source: ``--camera-source render`` (default) renders live; ``replay`` cycles through frames rendered from
the same motion beforehand, which isolates the recording path (capture hand-off, encoding, commit) from the cost
of software rendering. Rendering options: ``--render fast`` (default) turns off the shadow map and multisampling, which otherwise cost
about 250 ms per 480x640 frame on a CPU (llvmpipe) renderer. Targets (issue 5): state >= 250 Hz, cameras 30 fps,
0 dropped frames.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from rcs.control.loop import ControlLoop, RtConfig
from rcs.control.priorities import enable_fifo
from rcs.recording.features import FeatureLayout, frame_features, pack_state_stream

log = logging.getLogger(__name__)

#: SCHED_FIFO and a paused GC for the loop thread; no mlockall (it would pin the whole torch/lerobot address space).
_RT = RtConfig(lock_memory=False)
#: capture threads run SCHED_FIFO below the control loop (80)
CAMERA_FIFO_PRIORITY = 60
TARGETS = {"state_hz": 250.0, "camera_fps": 30.0, "dropped_frames": 0}
CAMERAS = ("front", "wrist")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=30.0, help="recording length (s)")
    parser.add_argument("--state-hz", type=float, default=500.0, help="control loop / state sampling rate (Hz)")
    parser.add_argument("--camera-fps", type=int, default=30, help="camera rate = dataset fps")
    parser.add_argument("--size", default="480x640", help="camera image HxW")
    parser.add_argument(
        "--vcodec", default="h264", help="video codec (lerobot's default libsvtav1 is slower per frame)"
    )
    parser.add_argument(
        "--render", choices=["fast", "model"], default="fast", help="'fast': no shadows, no multisampling"
    )
    parser.add_argument(
        "--camera-source",
        choices=["render", "replay"],
        default="render",
        help="'render': render every frame live (default); 'replay': cycle through 2 s of frames rendered "
        "from the moving scene beforehand, to measure the recording path without the renderer's cost",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the recorded dataset here (default: temporary)")
    parser.add_argument(
        "--encoder",
        choices=["thread", "process"],
        default="process",
        help="video encoders on threads of this process, or in worker processes (shared-memory frames)",
    )
    parser.add_argument("--no-rt", action="store_true", help="no SCHED_FIFO for the loop and camera capture threads")


class _SimCameraThread:
    """Renders one MJCF camera at a fixed rate from snapshots of the shared simulation state."""

    def __init__(
        self,
        model: Any,
        data: Any,
        lock: threading.Lock,
        name: str,
        height: int,
        width: int,
        fps: float,
        replay: list[np.ndarray] | None = None,
        fifo_priority: int | None = None,
    ) -> None:
        self.model, self.data, self.lock = model, data, lock
        self.replay = replay
        self.fifo_priority = fifo_priority
        self.rt_warning: str | None = None
        self.name, self.height, self.width, self.period = name, height, width, 1.0 / fps
        self.latest: tuple[np.ndarray, float, int] | None = None
        self.late = 0  # capture deadlines missed by more than a period (rendering too slow)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{name}", daemon=True)

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread.start()
        self._ready.wait(60)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        import mujoco

        try:
            if self.fifo_priority is not None:  # capture is latency-sensitive, like a camera driver's thread
                _, self.rt_warning = enable_fifo(self.fifo_priority)
            renderer = mujoco.Renderer(self.model, self.height, self.width)
            snap = mujoco.MjData(self.model)
            self._ready.set()
            k, index = 0, 0
            while not self._stop.is_set():
                due = self._t0 + k * self.period
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif -delay > self.period:  # a whole period late: skip the missed capture slots
                    missed = int(-delay // self.period)
                    self.late += missed
                    k += missed
                if self.replay is not None:
                    stamp = time.monotonic()
                    self.latest = (self.replay[index % len(self.replay)].copy(), stamp, index)
                else:
                    with self.lock:
                        snap.qpos[:] = self.data.qpos
                        snap.mocap_pos[:] = self.data.mocap_pos
                        snap.mocap_quat[:] = self.data.mocap_quat
                        stamp = time.monotonic()
                    mujoco.mj_kinematics(self.model, snap)
                    mujoco.mj_camlight(self.model, snap)
                    renderer.update_scene(snap, camera=self.name)
                    self.latest = (renderer.render(), stamp, index)
                index += 1
                k += 1
            renderer.close()
        except BaseException as exc:  # reported by the benchmark
            self.error = exc
            self._ready.set()


class _RecordTask:
    """Per tick: read the state, sway the joints, advance physics; per frame slot: hand a frame to the recorder."""

    def __init__(
        self,
        arm: Any,
        lock: threading.Lock,
        cams: list[_SimCameraThread],
        recorder: Any,
        layout: FeatureLayout,
        fps: int,
        period: float,
    ) -> None:
        self.arm, self.lock, self.cams, self.recorder, self.layout = arm, lock, cams, recorder, layout
        self.frame_period, self.period = 1.0 / fps, period
        self.home = np.asarray(arm.spec.home, dtype=np.float64)
        self.states: list[np.ndarray] = []
        self.times: list[float] = []
        self.last_index = {c.name: -1 for c in cams}
        self.camera_repeats = 0
        self.camera_skipped = 0
        self.frames = 0
        self.t0 = 0.0

    def read(self, tick: int) -> Any:
        s = self.arm.read()
        obs = {
            "joint_positions": s.joint_positions,
            "gripper": np.array([s.gripper]),
            "tcp_position": s.tcp_position,
            "tcp_quaternion": s.tcp_quaternion,
        }
        self.states.append(
            np.concatenate(
                [
                    np.asarray(obs[k], dtype=np.float32).reshape(-1)
                    for k in ("joint_positions", "gripper", "tcp_position", "tcp_quaternion")
                ]
            )
        )
        self.times.append(s.timestamp)
        return obs

    def compute(self, tick: int, obs: Any) -> np.ndarray:
        t = tick * self.period
        return self.home + 0.15 * np.sin(2 * math.pi * 0.25 * t + np.arange(self.home.size))

    def write(self, tick: int, target: np.ndarray) -> None:
        with self.lock:
            self.arm.command_joint_positions(target)
            self.arm.advance(self.period)
        now = time.monotonic()
        if self.t0 == 0.0:
            self.t0 = now  # frame slots start at the first tick (after the loop's real-time setup)
        if now >= self.t0 + self.frames * self.frame_period:
            self._frame(target)

    def _frame(self, target: np.ndarray) -> None:
        images, stamps = {}, []
        for cam in self.cams:
            image, stamp, index = cam.latest
            if index == self.last_index[cam.name]:
                self.camera_repeats += 1
            elif index > self.last_index[cam.name] + 1 and self.last_index[cam.name] >= 0:
                self.camera_skipped += index - self.last_index[cam.name] - 1
            self.last_index[cam.name] = index
            images[f"image_{cam.name}"] = image
            stamps.append(stamp)
        cube_p, cube_q = self.arm.object_pose("cube")
        obs = {
            "joint_positions": self.states[-1][: self.arm.spec.dof],
            "gripper": self.states[-1][self.arm.spec.dof : self.arm.spec.dof + 1],
            "tcp_position": self.states[-1][-7:-4],
            "tcp_quaternion": self.states[-1][-4:],
            "cube_position": cube_p,
            "cube_quaternion": cube_q,
            "target_position": np.zeros(3),
            **images,
        }
        frame = frame_features(self.layout, obs, np.append(target, 1.0), [self.times[-1], *stamps])
        frame.update(pack_state_stream(self.layout, self.states, self.times))
        self.states, self.times = [], []
        self.recorder.add_frame(frame)
        self.frames += 1


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def run(args: argparse.Namespace) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    import sim.mujoco  # noqa: F401  (headless GL before lerobot may import mujoco)
    from rcs.recording.video import VideoOptions
    from rcs.recording.writer import Recorder
    from rcs.registry import make_robot

    logging.getLogger("lerobot").setLevel(logging.WARNING)
    height, width = _size(args.size)
    arm = make_robot("sim/panda", limit_policy="clip")
    arm.connect()
    arm.reset(seed=0)
    model, data = arm.simulation.model, arm.simulation.data
    if args.render == "fast":
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
    lock = threading.Lock()
    replay = _prerender(arm, height, width, args.camera_fps) if args.camera_source == "replay" else {}
    # Replayed frames make a capture thread as light as a camera driver's: it gets SCHED_FIFO (below the loop).
    # Live software rendering is heavy (about 20 ms a frame): at SCHED_FIFO it would starve the encoders.
    capture_priority = CAMERA_FIFO_PRIORITY if args.camera_source == "replay" and not args.no_rt else None
    cams = [
        _SimCameraThread(model, data, lock, name, height, width, args.camera_fps, replay.get(name), capture_priority)
        for name in CAMERAS
    ]
    k = int(math.ceil(args.state_hz / args.camera_fps)) + 2
    layout = FeatureLayout(
        tuple(arm.spec.joint_names),
        (*arm.spec.joint_names, "gripper"),
        tuple((n, height, width) for n in CAMERAS),
        state_stream=k,
    )
    workdir = Path(tempfile.mkdtemp(prefix="rcs-bench-record-"))
    root = args.keep or workdir / "ds"
    recorder = Recorder(
        root,
        fps=args.camera_fps,
        features=layout.features(),
        robot_type="panda",
        realtime=True,
        recording={"benchmark": "rcs bench record", "state_hz": args.state_hz},
        video=VideoOptions(vcodec=args.vcodec, backend=args.encoder),
    )
    task = _RecordTask(arm, lock, cams, recorder, layout, args.camera_fps, 1.0 / args.state_hz)
    loop = ControlLoop(task, args.state_hz, robot=None, paced=True, rt=None if args.no_rt else _RT, log_every_s=0)
    try:
        recorder.wait_encoders_ready()
        recorder.start_episode("bench: joint sway with two cameras")
        t0 = time.monotonic() + 0.5
        for cam in cams:
            cam.start(t0)
        errors = [c.error for c in cams if c.error is not None]
        if errors:
            raise RuntimeError(f"camera thread failed: {errors[0]!r}")
        while any(c.latest is None for c in cams) and time.monotonic() < t0 + 30:
            time.sleep(0.005)
        cpu0, enc0, wall0 = resource.getrusage(resource.RUSAGE_SELF), recorder.encoder_cpu_seconds(), time.monotonic()
        stats = loop.run(duration_s=args.seconds)
        cpu1, enc1, wall1 = resource.getrusage(resource.RUSAGE_SELF), recorder.encoder_cpu_seconds(), time.monotonic()
        for cam in cams:
            cam.stop()
        encoder_dropped = recorder.dropped_frames
        backlog = max((s.backlog for s in recorder._episode.streams.values()), default=0)
        t_commit = time.perf_counter()
        report = recorder.save_episode().result()
        commit_s = time.perf_counter() - t_commit
        recorder.close()
        own_cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        cpu_s = own_cpu_s + (enc1 - enc0)
        result: dict[str, Any] = {"saved": report.saved, "reason": report.reason}
        if report.saved:
            ds = LeRobotDataset(recorder.repo_id, root=root)
            counts = np.asarray(ds.hf_dataset["state_stream_count"]).reshape(-1)
            times = np.asarray(ds.hf_dataset["state_stream_time"])
            capture = np.asarray(ds.hf_dataset["capture_time"])
            first = times[0][0]
            last = times[-1][counts[-1] - 1]
            n_states = int(counts.sum())
            span = capture[-1, 1:].max() - capture[0, 1:].min()
            distinct = [len(np.unique(capture[:, 1 + i])) for i in range(len(CAMERAS))]
            result.update(
                {
                    "frames": ds.num_frames,
                    "state_samples": n_states,
                    "state_stream_monotonic": bool(
                        np.all(np.diff(np.concatenate([t[:c] for t, c in zip(times, counts, strict=True)])) > 0)
                    ),
                    "video_frames_decodable": _check_video(ds),
                }
            )
            state_hz = (n_states - 1) / (last - first)
            camera_fps = (min(distinct) - 1) / span if span > 0 else 0.0
        else:
            state_hz = camera_fps = 0.0
        dropped = task.camera_repeats + task.camera_skipped + encoder_dropped
        result = {
            "state_hz": round(float(state_hz), 1),
            "camera_fps": round(float(camera_fps), 2),
            "dropped_frames": int(dropped),
            "cpu_percent": round(100.0 * cpu_s / (wall1 - wall0), 1),
            "targets": TARGETS,
            "met": bool(state_hz >= TARGETS["state_hz"] and camera_fps >= TARGETS["camera_fps"] - 0.5 and dropped == 0),
            "detail": {
                **result,
                "seconds": args.seconds,
                "size": [height, width],
                "vcodec": args.vcodec,
                "render": args.render,
                "camera_source": args.camera_source,
                "encoder": args.encoder,
                "cpu_percent_loop_process": round(100.0 * own_cpu_s / (wall1 - wall0), 1),
                "camera_slots_repeated": task.camera_repeats,
                "camera_frames_skipped": task.camera_skipped,
                "encoder_dropped": encoder_dropped,
                "camera_deadlines_missed": sum(c.late for c in cams),
                "encoder_backlog_at_stop": backlog,
                "camera_rt": [
                    ("SCHED_FIFO" if c.fifo_priority and not c.rt_warning else c.rt_warning or "default") for c in cams
                ],
                "commit_s": round(commit_s, 2),
                "loop": {
                    "achieved_rate_hz": round(stats.achieved_rate_hz, 1),
                    "lateness_us": stats.lateness_us,
                    "missed_ticks": stats.missed_ticks,
                    "rt_scheduling": stats.rt_scheduling,
                },
                "cpus": os.cpu_count(),
            },
        }
        return result
    finally:
        for cam in cams:
            cam.stop()
        arm.close()
        arm.simulation.close()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _prerender(arm: Any, height: int, width: int, fps: int, seconds: float = 2.0) -> dict[str, list[np.ndarray]]:
    """Frames of both cameras over ``seconds`` of the same joint sway, rendered before the timed run."""
    import mujoco

    model, data = arm.simulation.model, arm.simulation.data
    renderer = mujoco.Renderer(model, height, width)
    home = np.asarray(arm.spec.home, dtype=np.float64)
    out: dict[str, list[np.ndarray]] = {name: [] for name in CAMERAS}
    for k in range(int(seconds * fps)):
        t = k / fps
        arm.command_joint_positions(home + 0.15 * np.sin(2 * math.pi * 0.25 * t + np.arange(home.size)))
        arm.advance(1.0 / fps)
        for name in CAMERAS:
            renderer.update_scene(data, camera=name)
            out[name].append(renderer.render())
    renderer.close()
    arm.reset(seed=0)
    return out


def _check_video(ds: Any) -> bool:
    """Decode the first, middle and last frame of each camera through lerobot."""
    for i in (0, ds.num_frames // 2, ds.num_frames - 1):
        item = ds[i]
        for name in CAMERAS:
            if item[f"observation.images.{name}"].ndim != 3:
                return False
    return True
