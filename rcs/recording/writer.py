"""Crash-safe episode recording into a LeRobotDataset v3 written by lerobot 0.6.1's own dataset code.

How an episode travels (docs/record.md):

1. In the control loop, :meth:`Recorder.add_frame` appends the non-image features to in-memory lists and hands
   each image to its camera's :class:`~rcs.recording.video.VideoStream` (encoded on a background thread).
2. :meth:`Recorder.save_episode` hands the finished episode to the commit thread and returns at once.
3. The commit thread clones the dataset into a staging folder (hard links; see :mod:`rcs.recording.storage`),
   lets lerobot append the episode there (``LeRobotDataset.create``/``resume``, ``add_frame``,
   ``save_episode``, ``finalize``), fsyncs it and swaps it in atomically.

Before step 3, the commit thread writes the finished episode (data, videos, statistics) durably as a package in
the work area (:func:`write_package`); recovery rolls a complete package forward (:func:`roll_forward`).

So the dataset folder is always a complete, finalized dataset that ``LeRobotDataset(repo_id, root=...)`` loads,
and a crash loses only the episode in progress: an episode handed to :meth:`Recorder.save_episode` is lost only
if the crash comes before its package is durable (while its encoders flush their last queued frames), never
once its commit has started.

lerobot internals used (pinned to lerobot 0.6.1, checked at import): ``DatasetWriter`` reads pre-encoded
videos and their statistics from its ``_streaming_encoder`` attribute, which the commit sets to the finished
videos of the episode. Everything else is lerobot's public API.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rcs.errors import RcsError
from rcs.recording.features import TIME_KEYS
from rcs.recording.storage import DatasetStore, count_commit, fsync_path, fsync_tree, generation, kill_point
from rcs.recording.video import EpisodeVideo, VideoOptions, VideoResult, VideoStream

log = logging.getLogger(__name__)

LEROBOT_VERSION = "0.6.1"
CODEBASE_VERSION = "v3.0"
RECORDING_META = "meta/rcs_recording.json"
EPISODES_META = "meta/rcs_episodes.jsonl"


class IncompatibleDatasetError(RcsError):
    """The folder holds a dataset this recorder cannot append to (other format version, features, fps...)."""


class DiskFullError(RcsError, OSError):
    """The disk filled up while saving an episode; saved episodes are intact."""


@dataclass
class EpisodeReport:
    """Outcome of one episode.

    Attributes:
        index: the episode's index in the dataset if saved, else the index it would have had.
        frames: frames recorded.
        saved: whether it is in the dataset now.
        reason: why not, if not saved.
        dropped_frames: camera frames the encoders could not take (0 for a saved episode).
        commit_s: s spent committing.
        info: what the caller attached (seed, success...).
        sequence: the episode's position among the episodes started in this session (reports of background
            commits can arrive after later discards).
    """

    index: int
    frames: int
    saved: bool
    reason: str = ""
    dropped_frames: int = 0
    commit_s: float = 0.0
    info: dict = field(default_factory=dict)
    sequence: int = 0


@dataclass
class _Episode:
    index: int
    task: str
    columns: dict[str, list]
    streams: dict[str, EpisodeVideo]
    folder: Path
    frames: int = 0
    info: dict = field(default_factory=dict)
    origin: float | None = None
    sequence: int = 0


class _FinishedVideos:
    """Stands in for lerobot's ``StreamingVideoEncoder`` during a commit: the videos are already encoded."""

    def __init__(self, results: dict[str, tuple[Path, dict | None]]) -> None:
        self._results = results

    def start_episode(self, *args: Any, **kwargs: Any) -> None:
        pass

    def feed_frame(self, *args: Any, **kwargs: Any) -> None:
        pass

    def finish_episode(self) -> dict[str, tuple[Path, dict | None]]:
        return self._results

    def cancel_episode(self) -> None:
        pass

    def close(self) -> None:
        pass


def check_lerobot() -> None:
    """Raise if the installed lerobot is not the version this writer was built against."""
    import lerobot

    version = getattr(lerobot, "__version__", "unknown")
    if version != LEROBOT_VERSION:
        raise IncompatibleDatasetError(
            f"lerobot=={version} is installed; rcs.recording writes with lerobot=={LEROBOT_VERSION} "
            "(pip install 'rcs-stack[lerobot]')"
        )


def read_info(root: Path) -> dict:
    """``meta/info.json`` of a dataset folder, with a clear error when it is missing or unreadable."""
    path = Path(root) / "meta" / "info.json"
    if not path.exists():
        raise IncompatibleDatasetError(f"{root} is not a LeRobot dataset: {path} is missing")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IncompatibleDatasetError(f"{path} is unreadable: {exc}") from exc


def check_compatible(root: Path, fps: int, features: Mapping[str, dict], recording: Mapping[str, Any]) -> dict:
    """Raise :class:`IncompatibleDatasetError` naming the first difference between ``root`` and this recording."""
    info = read_info(root)
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise IncompatibleDatasetError(
            f"{root}: dataset format codebase_version={version!r}, but this recorder appends only to "
            f"{CODEBASE_VERSION!r} (lerobot {LEROBOT_VERSION}); convert it with lerobot's converter or record to "
            "another --root. Nothing was changed."
        )
    if int(info.get("fps", -1)) != int(fps):
        raise IncompatibleDatasetError(f"{root}: fps={info.get('fps')} in the dataset, this recording has fps={fps}")
    stored = info.get("features", {})
    for key, ft in features.items():
        if key not in stored:
            raise IncompatibleDatasetError(f"{root}: feature {key!r} is not in the dataset (it has {sorted(stored)})")
        s = stored[key]
        for attr in ("dtype", "shape", "names"):
            mine = list(ft[attr]) if attr != "dtype" else ft[attr]
            theirs = list(s.get(attr) or []) if attr != "dtype" else s.get(attr)
            if mine != theirs:
                raise IncompatibleDatasetError(
                    f"{root}: feature {key!r} {attr}={theirs} in the dataset, this recording has {mine}"
                )
    extra = sorted(set(stored) - set(features) - {"timestamp", "frame_index", "episode_index", "index", "task_index"})
    if extra:
        raise IncompatibleDatasetError(f"{root}: the dataset has features {extra} that this recording does not produce")
    meta_path = Path(root) / RECORDING_META
    if meta_path.exists():
        prior = json.loads(meta_path.read_text())
        for key in ("env_id", "control_mode", "relative", "control_rate_hz"):
            if key in prior and key in recording and prior[key] != recording[key]:
                raise IncompatibleDatasetError(
                    f"{root}: recorded with {key}={prior[key]!r}, this recording has {key}={recording[key]!r}"
                )
    return info


class Recorder:
    """Records episodes into ``root``; each saved episode is committed atomically (module docstring).

    Time features (:data:`rcs.recording.features.TIME_KEYS`) are handed in as absolute monotonic times and stored
    relative to the episode's earliest one (``capture_time_origin`` in ``meta/rcs_episodes.jsonl``).

    Args:
        root: dataset folder (created by the first saved episode).
        repo_id: lerobot repo id stored in the metadata (nothing is uploaded).
        fps: dataset frame rate (Hz, integer: lerobot's).
        features: lerobot features (:meth:`rcs.recording.features.FeatureLayout.features`).
        robot_type: stored in ``meta/info.json``.
        recording: dataset-level description written to ``meta/rcs_recording.json`` (env id, control mode,
            relative, control rate, cameras...).
        video: encoder options.
        realtime: True: a full encoder queue drops the frame (and the episode is then discarded), the loop never
            waits; False (simulation): the loop waits for the encoder (back-pressure, nothing dropped).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fps: int,
        features: Mapping[str, dict],
        repo_id: str | None = None,
        robot_type: str | None = None,
        recording: Mapping[str, Any] | None = None,
        video: VideoOptions | None = None,
        realtime: bool = False,
    ) -> None:
        check_lerobot()
        self.store = DatasetStore(Path(root))
        self.root = self.store.root
        self.repo_id = repo_id or f"local/{self.root.name}"
        self.fps = int(fps)
        if self.fps != fps or self.fps <= 0:
            raise ValueError(f"fps={fps}: lerobot datasets need a positive integer frame rate")
        self.features = {k: dict(v) for k, v in features.items()}
        self.robot_type = robot_type
        self.recording = dict(recording or {})
        self.video = video or VideoOptions()
        self.realtime = realtime
        self.video_keys = [k for k, v in self.features.items() if v["dtype"] == "video"]
        self.data_keys = [k for k, v in self.features.items() if v["dtype"] not in ("video", "image")]
        self.time_keys = [k for k in TIME_KEYS if k in self.features]
        self._placeholders = {k: np.zeros(tuple(self.features[k]["shape"]), dtype=np.uint8) for k in self.video_keys}
        self._encoder = self.video.encoder_config() if self.video_keys else None
        if self.video.backend not in ("thread", "process"):
            raise ValueError(f"video backend={self.video.backend!r}: 'thread' or 'process'")
        self._workers: dict[str, Any] = {}
        self._episode: _Episode | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rcs-commit")
        self._pending: list[concurrent.futures.Future] = []
        self._lock = threading.Lock()
        self.reports: list[EpisodeReport] = []
        #: set when a commit failed for a reason later episodes would hit too (disk full, I/O error)
        self.fatal: str | None = None
        self.recovered = self.store.open()
        for line in self.recovered:
            log.warning("recovery: %s", line)
        try:
            if self.root.exists() and any(self.root.iterdir()):
                info = check_compatible(self.root, self.fps, self.features, self.recording)
                self._saved = int(info.get("total_episodes", 0))
            else:
                if self.root.exists():
                    self.root.rmdir()  # an empty folder: the first commit creates it
                self._saved = 0
        except Exception:
            self.store.close()
            raise
        self._sequence = 0
        if self.video.backend == "process":
            from rcs.recording.encoder_process import EncoderProcess

            slots = int(max(2, self.video.queue_seconds * self.fps))
            for key in self.video_keys:
                h, w, _ = self.features[key]["shape"]
                self._workers[key] = EncoderProcess(h, w, self.fps, self._encoder, self.video.encoder_threads, slots)

    def wait_encoders_ready(self, timeout: float = 120.0) -> None:
        """With the process backend: block until the encoder workers have started (benchmarks call this before
        timing; recording does not need to, frames wait in shared memory)."""
        for worker in self._workers.values():
            worker.wait_ready(timeout)

    def encoder_cpu_seconds(self) -> float:
        """CPU time used so far by encoder worker processes (0 with the thread backend: counted in this process)."""
        return sum(w.cpu_seconds() for w in self._workers.values())

    # -- state ----------------------------------------------------------------------------------------
    @property
    def episodes_saved(self) -> int:
        """Episodes committed so far (including those in the dataset before this session)."""
        with self._lock:
            return self._saved

    @property
    def recording_episode(self) -> bool:
        return self._episode is not None

    @property
    def frames(self) -> int:
        """Frames in the episode in progress."""
        return self._episode.frames if self._episode else 0

    @property
    def dropped_frames(self) -> int:
        """Camera frames dropped in the episode in progress."""
        return sum(s.dropped for s in self._episode.streams.values()) if self._episode else 0

    # -- episode --------------------------------------------------------------------------------------
    def start_episode(self, task: str, **info: Any) -> None:
        """Begin a new episode with its task text (lerobot's per-frame ``task``)."""
        if self._episode is not None:
            raise RuntimeError("an episode is already being recorded: save or discard it first")
        if not task:
            raise ValueError("task: a non-empty task description is required (lerobot's task column)")
        index = self.episodes_saved + sum(not f.done() for f in list(self._pending))  # provisional
        folder = self.store.encoding / f"episode_{index:06d}_{time.monotonic_ns()}"
        maxsize = int(max(1, self.video.queue_seconds * self.fps))
        streams: dict[str, EpisodeVideo]
        if self._workers:
            from rcs.recording.encoder_process import ProcessVideoStream

            streams = {
                key: ProcessVideoStream(self._workers[key], folder / key / "video.mp4") for key in self.video_keys
            }
        else:
            streams = {
                key: VideoStream(
                    folder / key / "video.mp4", self.fps, self._encoder, self.video.encoder_threads, maxsize
                )
                for key in self.video_keys
            }
        self._sequence += 1
        self._episode = _Episode(
            index, task, {k: [] for k in self.data_keys}, streams, folder, info=dict(info), sequence=self._sequence
        )

    def add_frame(self, frame: Mapping[str, np.ndarray]) -> None:
        """Append one frame: every feature of the dataset (no ``task``, ``timestamp``, ``frame_index``)."""
        ep = self._episode
        if ep is None:
            raise RuntimeError("no episode in progress: call start_episode() first")
        if len(frame) != len(self.features) or any(k not in frame for k in self.features):
            missing = sorted(set(self.features) - set(frame))
            extra = sorted(set(frame) - set(self.features))
            raise ValueError(f"frame: missing features {missing}, unknown features {extra}")
        if self.time_keys and ep.origin is None:
            ep.origin = min(float(np.min(frame[k])) for k in self.time_keys)
            ep.info["capture_time_origin"] = ep.origin
        for key in self.data_keys:
            value = np.asarray(frame[key])
            if key in self.time_keys:
                if ep.origin is None:  # set from the first frame above whenever there are time keys
                    raise RuntimeError(f"{key}: episode time origin missing")
                value = value.astype(np.float64) - ep.origin
            if value.shape != tuple(self.features[key]["shape"]):
                raise ValueError(
                    f"{key}: shape {value.shape}, the dataset expects {tuple(self.features[key]['shape'])}"
                )
            if not np.isfinite(value).all():
                raise ValueError(f"{key}: non-finite value {value.tolist()}")
            ep.columns[key].append(value)
        for key in self.video_keys:
            image = frame[key]
            if image.shape != self._placeholders[key].shape or image.dtype != np.uint8:
                raise ValueError(
                    f"{key}: image {image.shape} {image.dtype}, the dataset expects {self._placeholders[key].shape} uint8"
                )
            ep.streams[key].put(image, block=not self.realtime)
        ep.frames += 1

    def save_episode(self, **info: Any) -> concurrent.futures.Future:
        """Close the episode and commit it in the background. The future gives its :class:`EpisodeReport`."""
        ep = self._take_episode()
        ep.info.update(info)
        if ep.frames == 0:
            self._cancel(ep)
            return self._done(
                EpisodeReport(ep.index, 0, False, "empty episode (no frames)", info=ep.info, sequence=ep.sequence)
            )
        future = self._pool.submit(self._commit, ep)
        self._pending.append(future)
        return future

    def discard_episode(self, reason: str = "discarded") -> EpisodeReport:
        """Drop the episode in progress; it leaves no trace on disk."""
        ep = self._take_episode()
        self._cancel(ep)
        report = EpisodeReport(ep.index, ep.frames, False, reason, info=ep.info, sequence=ep.sequence)
        self.reports.append(report)
        return report

    def wait(self) -> list[EpisodeReport]:
        """Block until every submitted commit is done; returns their reports."""
        out = [f.result() for f in self._pending]
        self._pending.clear()
        return out

    def close(self) -> list[EpisodeReport]:
        """Discard an unsaved episode in progress, finish pending commits, release the folder."""
        try:
            if self._episode is not None:
                self.discard_episode("recording closed before the episode was saved")
            reports = self.wait()
        finally:
            self._pool.shutdown(wait=True)
            for worker in self._workers.values():
                worker.close()
            self.store.close()
        return reports

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------------
    def _take_episode(self) -> _Episode:
        if self._episode is None:
            raise RuntimeError("no episode in progress")
        ep, self._episode = self._episode, None
        return ep

    def _done(self, report: EpisodeReport) -> concurrent.futures.Future:
        self.reports.append(report)
        f: concurrent.futures.Future = concurrent.futures.Future()
        f.set_result(report)
        return f

    def _cancel(self, ep: _Episode) -> None:
        for stream in ep.streams.values():
            stream.cancel()
        shutil.rmtree(ep.folder, ignore_errors=True)

    def _commit(self, ep: _Episode) -> EpisodeReport:
        t0 = time.perf_counter()
        report = EpisodeReport(ep.index, ep.frames, False, info=ep.info, sequence=ep.sequence)
        try:
            videos = {key: stream.finish() for key, stream in ep.streams.items()}
            problem = _video_problem(videos, ep.frames)
            report.dropped_frames = sum(v.dropped for v in videos.values())
            if problem:
                report.reason = problem
                if "No space left" in problem:
                    report.reason = f"disk full while encoding video ({problem}); the {self.episodes_saved} saved episodes are intact"
                    self.fatal = report.reason
            else:
                with self._lock:
                    index = self._saved
                self._write(ep, index, videos)
                report.index, report.saved = index, True
                with self._lock:
                    self._saved += 1
        except OSError as exc:
            self.store.discard()
            if exc.errno == errno.ENOSPC:
                report.reason = f"disk full while saving ({exc}); the {self.episodes_saved} saved episodes are intact"
            else:
                report.reason = f"{type(exc).__name__}: {exc}; the {self.episodes_saved} saved episodes are intact"
            self.fatal = report.reason
            log.error("episode %d not saved: %s", ep.index, report.reason)
        except Exception as exc:  # never leave a half-built staging folder behind
            self.store.discard()
            report.reason = f"{type(exc).__name__}: {exc}; the {self.episodes_saved} saved episodes are intact"
            log.exception("episode %d not saved", ep.index)
        finally:
            shutil.rmtree(ep.folder, ignore_errors=True)
        report.commit_s = time.perf_counter() - t0
        self.reports.append(report)
        return report

    def _write(self, ep: _Episode, index: int, videos: dict[str, VideoResult]) -> None:
        """Make the finished episode durable as a package, then commit the package (both crash-safe)."""
        dataset = {
            "repo_id": self.repo_id,
            "fps": self.fps,
            "features": self.features,
            "robot_type": self.robot_type,
            "recording": self.recording,
        }
        package = write_package(self.store, index, ep.task, ep.frames, ep.columns, videos, ep.info, dataset)
        try:
            commit_package(self.store, package)
        except BaseException:
            # the report says "not saved": the package must not come back at the next open
            shutil.rmtree(package, ignore_errors=True)
            raise


PACKAGE_MANIFEST = "episode.json"


def write_package(
    store: DatasetStore,
    index: int,
    task: str,
    frames: int,
    columns: Mapping[str, list],
    videos: Mapping[str, VideoResult],
    info: Mapping[str, Any],
    dataset: Mapping[str, Any],
) -> Path:
    """Write a finished episode durably to ``pending/episode_<index>/`` and return that folder.

    The package holds everything its commit needs (``data.npz``: the non-video columns, one row per frame;
    ``videos/<key>.mp4`` and ``<key>.stats.npz``; ``episode.json``: task, info and the dataset description for
    a first commit). It is built in a dot-named folder, fsynced, and renamed: a folder under its final name is
    complete, and :func:`rcs.recording.storage.recover` rolls it forward after a crash. The videos are moved
    (renamed) out of their encoding folder, not copied.
    """
    count_commit()
    store.pending.mkdir(parents=True, exist_ok=True)
    fsync_path(store.work)
    final = store.pending / f"episode_{index:06d}"
    tmp = store.pending / f".episode_{index:06d}.tmp"
    for stale in (tmp, final):  # a package of this index that was never committed (failed commit)
        if stale.exists():
            shutil.rmtree(stale)
    try:
        (tmp / "videos").mkdir(parents=True)
        # allow_pickle is numpy's default, named so that no keyword array can be taken for it
        np.savez(tmp / "data.npz", allow_pickle=True, **{key: np.stack(values) for key, values in columns.items()})
        manifest_videos = {}
        for key, video in videos.items():
            os.replace(video.path, tmp / "videos" / f"{key}.mp4")
            if video.stats is not None:
                np.savez(
                    tmp / "videos" / f"{key}.stats.npz",
                    allow_pickle=True,
                    **{k: np.asarray(v) for k, v in video.stats.items()},
                )
            manifest_videos[key] = {"stats": video.stats is not None}
        manifest = {
            "index": int(index),
            "task": task,
            "frames": int(frames),
            "info": dict(info),
            "videos": manifest_videos,
            "dataset": dict(dataset),
        }
        (tmp / PACKAGE_MANIFEST).write_text(json.dumps(manifest, default=_jsonable) + "\n")
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk must not keep a half package
        raise
    kill_point("packaging")
    os.rename(tmp, final)
    fsync_path(store.pending)
    kill_point("packaged")
    return final


def commit_package(store: DatasetStore, package: Path) -> int:
    """Append the episode of ``package`` to ``store.root`` with lerobot's writer (one atomic commit, see
    :mod:`rcs.recording.storage`), then delete the package. Returns the episode's index.

    Raises :class:`IncompatibleDatasetError` if the dataset does not have exactly ``index`` episodes.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    manifest = json.loads((package / PACKAGE_MANIFEST).read_text())
    d = manifest["dataset"]
    features = {k: {**v, "shape": tuple(v["shape"])} for k, v in d["features"].items()}
    index, frames = int(manifest["index"]), int(manifest["frames"])
    # lerobot moves each video into the dataset and deletes its folder: hand it hard links, so the package keeps
    # its copy until the commit is durable
    links = store.work / "commit"
    if links.exists():
        shutil.rmtree(links)
    finished = {}
    for key, v in manifest["videos"].items():
        link = links / key / "video.mp4"
        link.parent.mkdir(parents=True)
        _link_or_copy(package / "videos" / f"{key}.mp4", link)
        stats = None
        if v["stats"]:
            with np.load(package / "videos" / f"{key}.stats.npz") as z:
                stats = {k: z[k] for k in z.files}
        finished[key] = (link, stats)
    try:
        with np.load(package / "data.npz") as z:
            columns = {k: z[k] for k in z.files}
        staging = store.begin(copy_dirs=("meta",))
        first = not store.root.exists()
        if first:
            staging.rmdir()  # lerobot creates the folder itself
            ds = LeRobotDataset.create(
                d["repo_id"], int(d["fps"]), features, root=staging, robot_type=d["robot_type"], use_videos=True
            )
        else:
            ds = LeRobotDataset.resume(d["repo_id"], root=staging)
        if int(ds.meta.total_episodes) != index:
            raise IncompatibleDatasetError(f"{store.root}: has {ds.meta.total_episodes} episodes, expected {index}")
        ds.writer._streaming_encoder = _FinishedVideos(finished)
        placeholders = {k: np.zeros(features[k]["shape"], dtype=np.uint8) for k in finished}
        for i in range(frames):
            frame: dict[str, Any] = {key: values[i] for key, values in columns.items()}
            frame.update(placeholders)
            frame["task"] = manifest["task"]
            ds.add_frame(frame)
        with _no_progress_bars():
            ds.save_episode()
            ds.finalize()
        meta = staging / "meta"
        if first:
            (meta / Path(RECORDING_META).name).write_text(
                json.dumps(
                    {
                        **d["recording"],
                        "fps": int(d["fps"]),
                        "lerobot_version": LEROBOT_VERSION,
                        "codebase_version": CODEBASE_VERSION,
                    },
                    indent=2,
                    default=str,
                )
                + "\n"
            )
        line = {
            "episode_index": index,
            "task": manifest["task"],
            "frames": frames,
            "saved_unix_time": time.time(),
            **manifest["info"],
        }
        with open(meta / Path(EPISODES_META).name, "a") as f:
            f.write(json.dumps(line, default=_jsonable) + "\n")
        store.commit()
    except BaseException:
        store.discard()
        raise
    finally:
        shutil.rmtree(links, ignore_errors=True)
    shutil.rmtree(package)
    fsync_path(store.pending)
    return index


def roll_forward(store: DatasetStore, packages: list[Path]) -> list[str]:
    """Recovery: commit the complete episode packages ``root`` does not hold yet, in index order; delete those it
    holds (the crash fell after the swap). A package that cannot be committed is moved to ``failed/`` in the work
    area, so it neither blocks recording nor is silently lost. Returns what was done."""
    done = []
    for package in sorted(packages):
        index = int(json.loads((package / PACKAGE_MANIFEST).read_text())["index"])
        held = max(0, generation(store.root)) if store.root.exists() else 0
        if index < held:
            shutil.rmtree(package)
            done.append(f"deleted the package of episode {index}, already in {store.root}: {package}")
            continue
        try:
            commit_package(store, package)
            done.append(f"committed the finished episode {index} whose commit was interrupted (from {package})")
        except Exception as exc:  # noqa: BLE001 - reported; the package is kept aside
            failed = store.work / "failed" / package.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            if failed.exists():
                shutil.rmtree(failed)
            os.rename(package, failed)
            done.append(
                f"could not commit episode {index} ({type(exc).__name__}: {exc}); its package is kept in {failed}"
            )
    return done


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError as exc:  # file system without hard links
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, dst)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """lerobot's save_episode runs a ``datasets`` map with a progress bar per episode: hide it while committing."""
    from datasets.utils import logging as ds_logging

    was_disabled = ds_logging.is_progress_bar_enabled() is False
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not was_disabled:
            ds_logging.enable_progress_bar()


def _video_problem(videos: Mapping[str, VideoResult], frames: int) -> str:
    for key, v in videos.items():
        if v.error:
            return f"{key}: video encoder failed ({v.error})"
        if v.dropped:
            return f"{key}: {v.dropped} camera frame(s) dropped (encoder fell behind); the video would not line up with the data"
        if v.frames != frames:
            return f"{key}: {v.frames} video frames for {frames} data frames"
    return ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return str(value)
