"""Off-loop video encoding: one encoder thread per camera per episode (PyAV releases the GIL while encoding).

The control loop only enqueues a reference to each image (:meth:`VideoStream.put`, O(1), never blocks in the
real-time mode). The thread encodes with lerobot's encoder settings (:class:`lerobot.configs.RGBEncoderConfig`:
codec, pixel format, GOP, CRF, preset) and computes the per-channel image statistics lerobot stores for video
features (lerobot's ``RunningQuantileStats`` on downsampled frames), so lerobot's writer takes the finished
MP4 and statistics as it takes those of its own streaming encoder.

Every frame the loop hands over is encoded or counted as dropped; an episode whose video lost frames cannot be
aligned with its data and is discarded by the recorder (docs/record.md, "keep/discard rule").
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

_STOP = object()


def quiet_codec_logs() -> None:
    """Keep the codecs' own log lines off the terminal (call before opening an encoder).

    SVT-AV1 (``libsvtav1``, lerobot's default codec) logs through its own logger, not ffmpeg's: about 20
    ``Svt[info]`` lines on stderr per encoder it opens, i.e. per episode and camera, whatever ``--json`` asks. Its
    level comes from the ``SVT_LOG`` environment variable, read when an encoder opens; 1 keeps errors only. A value
    the user set is kept.
    """
    os.environ.setdefault("SVT_LOG", "1")


@dataclass
class VideoResult:
    """A finished episode video: path, frames encoded, frames dropped, lerobot image stats (or None)."""

    path: Path
    frames: int
    dropped: int
    stats: dict[str, np.ndarray] | None
    error: str | None = None


@dataclass
class VideoOptions:
    """Encoder settings (lerobot's :class:`RGBEncoderConfig` fields); ``None`` keeps lerobot's default.

    Attributes:
        vcodec: e.g. ``"libsvtav1"`` (lerobot's default), ``"h264"``.
        crf, preset, g: quality, speed preset and GOP size, codec-specific (see lerobot's docs).
        encoder_threads: codec threads per camera (None: the codec decides).
        queue_seconds: frames the queue holds per camera, in seconds of video, before frames are dropped.
        backend: ``"thread"`` (an encoder thread per camera per episode) or ``"process"`` (a worker process per
            camera for the whole recording, frames through shared memory: encoding never holds the loop
            process's GIL; :mod:`rcs.recording.encoder_process`).
    """

    vcodec: str | None = None
    crf: int | None = None
    preset: int | str | None = None
    g: int | None = None
    encoder_threads: int | None = None
    queue_seconds: float = 10.0
    backend: str = "thread"
    extra: dict[str, Any] = field(default_factory=dict)

    def encoder_config(self) -> Any:
        """The lerobot ``RGBEncoderConfig`` for these options (imports lerobot)."""
        from lerobot.configs import RGBEncoderConfig

        kwargs = {
            k: v
            for k, v in (("vcodec", self.vcodec), ("crf", self.crf), ("preset", self.preset), ("g", self.g))
            if v is not None
        }
        return RGBEncoderConfig(**kwargs, **self.extra)


class EpisodeVideo(Protocol):
    """One episode's video encoder as the recorder uses it: :class:`VideoStream` (a thread) or
    :class:`rcs.recording.encoder_process.ProcessVideoStream` (a worker process)."""

    path: Path
    dropped: int
    submitted: int

    def put(self, image: np.ndarray, block: bool) -> bool: ...

    @property
    def backlog(self) -> int: ...

    def finish(self, timeout: float = 300.0) -> VideoResult: ...

    def cancel(self) -> None: ...


class VideoStream:
    """Encodes one camera's frames of one episode into ``path`` on a background thread.

    Args:
        path: output MP4 (its folder is created; lerobot later moves the file and deletes that folder).
        fps: frame rate of the video (the dataset's fps; frame i is at i / fps).
        encoder: a lerobot ``RGBEncoderConfig``.
        encoder_threads: codec threads.
        maxsize: queue length in frames.
    """

    def __init__(self, path: Path, fps: int, encoder: Any, encoder_threads: int | None, maxsize: int) -> None:
        self.path = Path(path)
        self.fps = int(fps)
        self._encoder = encoder
        self._threads = encoder_threads
        quiet_codec_logs()  # here, not in the thread: the environment is changed by one thread at a time
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._result: VideoResult | None = None
        self._cancel = threading.Event()
        self.dropped = 0
        self.submitted = 0
        self._thread = threading.Thread(target=self._run, name=f"rcs-video-{self.path.stem}", daemon=True)
        self._thread.start()

    def put(self, image: np.ndarray, block: bool) -> bool:
        """Hand one (H, W, 3) uint8 frame to the encoder. ``block=False``: a full queue drops it (returns False).

        The caller must not modify ``image`` afterwards (cameras return a fresh array per frame).
        """
        if not self._thread.is_alive():
            raise RuntimeError(f"video encoder for {self.path.name} stopped: {self._error_text()}")
        self.submitted += 1
        try:
            self._queue.put(image, block=block, timeout=None)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    @property
    def backlog(self) -> int:
        """Frames waiting to be encoded."""
        return self._queue.qsize()

    def finish(self, timeout: float = 300.0) -> VideoResult:
        """Flush and close; blocks until the thread has written the file."""
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"video encoder for {self.path.name} did not finish within {timeout} s")
        assert self._result is not None
        self._result.dropped = self.dropped
        return self._result

    def cancel(self) -> None:
        """Stop without finishing (the caller deletes the file)."""
        self._cancel.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            pass
        self._thread.join(10.0)

    def _error_text(self) -> str:
        return self._result.error if self._result is not None and self._result.error else "unknown reason"

    def _run(self) -> None:
        import av
        from lerobot.datasets.compute_stats import RunningQuantileStats, auto_downsample_height_width

        av.logging.set_level(av.logging.ERROR)  # libx264 prints its statistics at INFO on close
        container: av.container.OutputContainer | None = None
        stream: av.video.stream.VideoStream | None = None
        stats = RunningQuantileStats()
        frames = 0
        try:
            while True:
                item = self._queue.get()
                if item is _STOP or self._cancel.is_set():
                    break
                if container is None or stream is None:
                    height, width = item.shape[:2]
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    container = av.open(str(self.path), "w")
                    stream = container.add_stream(
                        self._encoder.vcodec,
                        self.fps,
                        options=self._encoder.get_codec_options(self._threads, as_strings=True),
                    )
                    stream.pix_fmt = self._encoder.pix_fmt
                    stream.width, stream.height = width, height
                    stream.time_base = Fraction(1, self.fps)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(item), format="rgb24")
                frame.pts = frames
                frame.time_base = Fraction(1, self.fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
                small = auto_downsample_height_width(item.transpose(2, 0, 1))
                stats.update(small.transpose(1, 2, 0).reshape(-1, small.shape[0]))
                frames += 1
            if container is not None and stream is not None and not self._cancel.is_set():
                for packet in stream.encode():
                    container.mux(packet)
            if container is not None:
                container.close()
            self._result = VideoResult(self.path, frames, 0, stats.get_statistics() if frames >= 2 else None)
        except Exception as exc:  # reported to the recorder through finish()/put()
            log.error("video encoder %s failed: %s", self.path.name, exc)
            if container is not None:
                try:
                    container.close()
                except Exception:  # noqa: BLE001 - the original error is what matters
                    pass
            self._result = VideoResult(self.path, frames, 0, None, error=f"{type(exc).__name__}: {exc}")
