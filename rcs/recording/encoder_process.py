"""Video encoding in a process of its own: the control loop's process never holds the GIL for encoding.

:class:`EncoderProcess` is one long-lived worker per camera (started with the recorder, so lerobot's import cost
is paid once, off the loop). Frames travel through a shared-memory ring of ``slots`` images; the pipe carries only
fixed 8-byte messages ``(command, argument)`` (little-endian uint32 pair), never pickles:

parent -> worker: ``OPEN len`` + UTF-8 path, ``FRAME slot``, ``FINISH 0``, ``CANCEL 0``, ``QUIT 0``
worker -> parent: ``FREE slot`` (the slot may be reused), ``RESULT len`` + UTF-8 JSON (frames, error, stats),
``READY 0`` once its imports are done

:class:`ProcessVideoStream` gives it the interface of :class:`rcs.recording.video.VideoStream` for one episode.
Run as ``python -m rcs.recording.encoder_process SHM_NAME SLOTS H W FPS OPTIONS_JSON``.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from rcs.recording.video import VideoResult, quiet_codec_logs

MSG = struct.Struct("<II")
OPEN, FRAME, FINISH, CANCEL, QUIT = 1, 2, 3, 4, 5
FREE, RESULT, READY = 1, 2, 3


def _read_exact(fd: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError("encoder pipe closed")
        out.extend(chunk)
    return bytes(out)


class EncoderProcess:
    """One worker process with its shared-memory ring, for frames of shape (height, width, 3) uint8."""

    def __init__(
        self, height: int, width: int, fps: int, encoder: Any, encoder_threads: int | None, slots: int
    ) -> None:
        from multiprocessing import shared_memory

        self.shape = (int(height), int(width), 3)
        self.slots = int(slots)
        self._shm = shared_memory.SharedMemory(create=True, size=self.slots * int(np.prod(self.shape)))
        self.ring: np.ndarray = np.ndarray((self.slots, *self.shape), dtype=np.uint8, buffer=self._shm.buf)
        options = {
            "vcodec": encoder.vcodec,
            "pix_fmt": encoder.pix_fmt,
            "options": encoder.get_codec_options(encoder_threads, as_strings=True),
        }
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rcs.recording.encoder_process",
                self._shm.name,
                str(self.slots),
                str(height),
                str(width),
                str(int(fps)),
                json.dumps(options),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        if self._proc.stdin is None or self._proc.stdout is None:  # both are PIPE above
            raise RuntimeError("video encoder process started without its pipes")
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        os.set_blocking(self._out, False)
        self.free: deque[int] = deque(range(self.slots))
        self._pending = bytearray()
        # The loop thread (frames) and the commit thread (results) share the pipes: results are numbered in
        # request order (the worker answers FINISH/CANCEL in order) and collected by whoever reads them.
        self._lock = threading.Lock()
        self._results: dict[int, dict] = {}
        self._requested = 0
        self._received = 0
        self.ready = False

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the worker has imported its libraries (frames sent earlier wait in the ring meanwhile)."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            self.poll(wait=0.05)
            if self._proc.poll() is not None:
                raise RuntimeError(f"video encoder process exited with code {self._proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"video encoder process not ready within {timeout} s")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the worker has used so far (Linux /proc), 0 if unavailable."""
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def send(self, command: int, argument: int = 0, payload: bytes = b"") -> None:
        with self._lock:
            os.write(self._in, MSG.pack(command, argument) + payload)

    def request(self, command: int) -> int:
        """Send FINISH or CANCEL; returns the ticket of its result."""
        with self._lock:
            ticket = self._requested
            self._requested += 1
            os.write(self._in, MSG.pack(command, 0))
        return ticket

    def result(self, ticket: int, timeout: float) -> dict:
        """Wait for the result of ``ticket``."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll(wait=0.02)
            with self._lock:
                if ticket in self._results:
                    return self._results.pop(ticket)
            if self._proc.poll() is not None:
                raise RuntimeError(f"video encoder process exited with code {self._proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"video encoder process gave no result within {timeout} s")

    def poll(self, wait: float = 0.0) -> None:
        """Collect freed slots and results (waiting up to ``wait`` s for the first message)."""
        if wait > 0:
            select.select([self._out], [], [], wait)
        with self._lock:
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._out, 65536)
            except BlockingIOError:
                break
            if not data:
                if self._proc.poll() is not None and not self._pending:
                    raise RuntimeError(f"video encoder process exited with code {self._proc.returncode}")
                break
            self._pending.extend(data)
        while len(self._pending) >= MSG.size:
            command, argument = MSG.unpack_from(self._pending)
            if command == FREE:
                del self._pending[: MSG.size]
                self.free.append(argument)
            elif command == READY:
                del self._pending[: MSG.size]
                self.ready = True
            elif command == RESULT:
                if len(self._pending) < MSG.size + argument:
                    break
                body = bytes(self._pending[MSG.size : MSG.size + argument])
                del self._pending[: MSG.size + argument]
                self._results[self._received] = json.loads(body)
                self._received += 1
            else:
                raise RuntimeError(f"video encoder process sent unknown message {command}")

    def close(self) -> None:
        try:
            self.send(QUIT)
        except OSError:
            pass
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._shm.close()
        self._shm.unlink()


class ProcessVideoStream:
    """One episode's video on an :class:`EncoderProcess` (same interface as :class:`rcs.recording.video.VideoStream`)."""

    def __init__(self, worker: EncoderProcess, path: Path) -> None:
        self.worker, self.path = worker, Path(path)
        self.dropped = 0
        self.submitted = 0
        self._in_flight = 0
        worker.poll()
        path_bytes = str(self.path).encode()
        worker.send(OPEN, len(path_bytes), path_bytes)

    def put(self, image: np.ndarray, block: bool) -> bool:
        w = self.worker
        self.submitted += 1
        w.poll()
        while not w.free:
            if not block:
                self.dropped += 1
                return False
            w.poll(wait=1.0)
        slot = w.free.popleft()
        w.ring[slot] = image
        w.send(FRAME, slot)
        return True

    @property
    def backlog(self) -> int:
        self.worker.poll()
        return self.worker.slots - len(self.worker.free)

    def finish(self, timeout: float = 300.0) -> VideoResult:
        r = self.worker.result(self.worker.request(FINISH), timeout)
        stats = {k: np.asarray(v) for k, v in r["stats"].items()} if r.get("stats") else None
        return VideoResult(self.path, int(r["frames"]), self.dropped, stats, r.get("error"))

    def cancel(self) -> None:
        self.worker.result(self.worker.request(CANCEL), 60.0)


# -- the worker ------------------------------------------------------------------------------------------------
def _worker(shm_name: str, slots: int, height: int, width: int, fps: int, options: dict) -> None:
    from fractions import Fraction
    from multiprocessing import resource_tracker, shared_memory

    import av
    from lerobot.datasets.compute_stats import RunningQuantileStats, auto_downsample_height_width

    quiet_codec_logs()
    shm = shared_memory.SharedMemory(name=shm_name)
    # the parent owns (and unlinks) it; ``_name`` is the name as registered (with the leading "/" that ``.name``
    # strips), which typeshed does not declare
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    ring: np.ndarray = np.ndarray((slots, height, width, 3), dtype=np.uint8, buffer=shm.buf)
    av.logging.set_level(av.logging.ERROR)
    fin, fout = sys.stdin.fileno(), sys.stdout.fileno()
    container: av.container.OutputContainer | None = None
    stream: av.video.stream.VideoStream | None = None
    stats: RunningQuantileStats | None = None
    path: Path | None = None
    frames, error = 0, None

    def reply(command: int, argument: int, payload: bytes = b"") -> None:
        os.write(fout, MSG.pack(command, argument) + payload)

    reply(READY, 0)

    while True:
        try:
            command, argument = MSG.unpack(_read_exact(fin, MSG.size))
        except EOFError:
            return
        if command == OPEN:
            path = Path(_read_exact(fin, argument).decode())
            container = stream = None
            stats, frames, error = RunningQuantileStats(), 0, None
        elif command == FRAME:
            if error is None:
                try:
                    image = ring[argument]
                    if path is None or stats is None:
                        raise RuntimeError("FRAME before OPEN")
                    if container is None or stream is None:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        container = av.open(str(path), "w")
                        stream = container.add_stream(options["vcodec"], fps, options=options["options"])
                        stream.pix_fmt = options["pix_fmt"]
                        stream.width, stream.height = width, height
                        stream.time_base = Fraction(1, fps)
                    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                    frame.pts, frame.time_base = frames, Fraction(1, fps)
                    for packet in stream.encode(frame):
                        container.mux(packet)
                    small = auto_downsample_height_width(image.transpose(2, 0, 1))
                    stats.update(small.transpose(1, 2, 0).reshape(-1, small.shape[0]))
                    frames += 1
                except Exception as exc:  # reported in the RESULT
                    error = f"{type(exc).__name__}: {exc}"
            reply(FREE, argument)
        elif command in (FINISH, CANCEL):
            try:
                if container is not None:
                    if command == FINISH and error is None and stream is not None:
                        for packet in stream.encode():
                            container.mux(packet)
                    container.close()
            except Exception as exc:  # noqa: BLE001
                error = error or f"{type(exc).__name__}: {exc}"
            if command == CANCEL and path is not None:
                path.unlink(missing_ok=True)
            result: dict[str, Any] = {"frames": frames, "error": error, "stats": None}
            if command == FINISH and error is None and frames >= 2 and stats is not None:
                result["stats"] = {k: np.asarray(v).tolist() for k, v in stats.get_statistics().items()}
            body = json.dumps(result).encode()
            reply(RESULT, len(body), body)
            container = stream = None
        elif command == QUIT:
            shm.close()
            return


if __name__ == "__main__":
    name, n, h, w, rate, opts = sys.argv[1:7]
    _worker(name, int(n), int(h), int(w), int(rate), json.loads(opts))
