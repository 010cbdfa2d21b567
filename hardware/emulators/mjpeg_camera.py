"""A network camera emulator: an HTTP MJPEG stream (``multipart/x-mixed-replace``) of our MuJoCo Panda scene.

Run as its own process, as a real IP camera is its own machine::

    python -m hardware.emulators.mjpeg_camera --size 480x640 --fps 30 [--port 0] [--frames 24]

It prints one JSON ready line on stdout, ``{"ready": true, "url": "http://127.0.0.1:PORT/stream.mjpg"}``, then
serves ``GET /stream.mjpg`` to any number of clients until SIGTERM/SIGINT.

Frames: the Panda pick-cube scene's ``front`` camera, the arm moving along a smooth joint-space path. Software GL
(Mesa llvmpipe) renders a 640x480 frame in about 125 ms here (8 fps), so live rendering cannot hold 30 fps: the
server renders ``--frames`` frames of one period of the motion at start (a few seconds) and cycles them. Every sent
frame is then stamped and JPEG-encoded live (about 2 ms at 640x480):

- a pure red patch (RGB 255, 0, 0) in the top-left corner and a pure blue one (0, 0, 255) in the top-right corner
  (:data:`PATCH` pixels square), so a client can check channel order;
- a barcode along the bottom rows (:func:`stamp`, read back with :func:`read_stamp`): the frame's sequence number
  and the server's ``time.monotonic()`` (s) at encoding. ``time.monotonic()`` is one clock for every process on a
  host, so a client on the same host can compute a frame's end-to-end age.

Each part also carries headers ``X-Frame`` (sequence number) and ``X-Timestamp`` (server ``time.monotonic()`` in s
right before the part is written to the socket). One broadcaster thread paces the frames at ``--fps`` (absolute
deadlines, no drift); each client gets the newest frame at each tick (a slow client skips frames, it is never
queued).

:class:`MjpegCameraEmulator` is the client side (tests, benchmarks): it starts the process, waits for the ready
line and exposes ``url``; ``kill()`` simulates a crash (SIGKILL), ``close()`` stops it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from hardware.emulators.process import EmulatorProcess

log = logging.getLogger(__name__)

#: side (pixels) of the red and blue corner patches.
PATCH = 32
#: side (pixels) of one barcode bit: a multiple of JPEG's 8x8 blocks, so a bit survives compression.
BIT = 8
#: barcode rows: sequence number (32 bits) then encode time in units of 10 us (40 bits, about 127 days).
SEQ_BITS, TIME_BITS = 32, 40
TIME_UNIT_S = 1e-5
BOUNDARY = "rcsframe"
MIN_WIDTH = TIME_BITS * BIT
MIN_HEIGHT = 2 * PATCH + 2 * BIT


def _bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint8)


def stamp(image: np.ndarray, seq: int, t: float) -> None:
    """Draw the corner patches and the barcode (``seq``, monotonic time ``t`` s) into ``image`` (H, W, 3) RGB, in place."""
    h, w = image.shape[:2]
    image[:PATCH, :PATCH] = (255, 0, 0)
    image[:PATCH, w - PATCH :] = (0, 0, 255)
    rows = ((seq % (1 << SEQ_BITS), SEQ_BITS), (int(round(t / TIME_UNIT_S)) % (1 << TIME_BITS), TIME_BITS))
    for r, (value, n) in enumerate(rows):
        y = h - (2 - r) * BIT
        bar = np.repeat(_bits(value, n) * 255, BIT)
        image[y : y + BIT, : n * BIT] = bar[None, :, None]


def read_stamp(image: np.ndarray) -> tuple[int, float]:
    """(sequence number, server monotonic time s at encoding) from a frame drawn by :func:`stamp` (RGB or BGR)."""
    h = image.shape[0]
    out = []
    for r, n in enumerate((SEQ_BITS, TIME_BITS)):
        y = h - (2 - r) * BIT
        cells = image[y + 2 : y + BIT - 2, : n * BIT].mean(axis=(0, 2)).reshape(n, BIT)[:, 2:-2].mean(axis=1)
        value = 0
        for bit in cells > 127:
            value = (value << 1) | int(bit)
        out.append(value)
    return out[0], out[1] * TIME_UNIT_S


def render_frames(width: int, height: int, count: int, camera: str = "front") -> list[np.ndarray]:
    """``count`` RGB frames (height, width, 3) of the Panda pick-cube scene, the arm along one period of a smooth
    joint-space motion (so cycling them loops without a jump)."""
    from sim.mujoco.arm import PANDA
    from sim.mujoco.simulation import MujocoSimulation

    sim = MujocoSimulation(PANDA.scenes["pick_cube"].model, keyframe="home")
    try:
        m = sim.model
        qadr = [int(m.jnt_qposadr[sim.joint_id(n)]) for n in PANDA.spec.joint_names]
        home = sim.data.qpos[qadr].copy()
        amplitude = np.array([0.6, 0.3, 0.0, 0.3, 0.0, 0.4, 0.0])[: len(qadr)]
        frames = []
        for k in range(count):
            phase = 2 * np.pi * k / count
            sim.data.qpos[qadr] = home + amplitude * np.sin(phase + np.arange(len(qadr)))
            sim.forward()
            frames.append(sim.render(camera, width, height).copy())
        return frames
    finally:
        sim.close()


class _Broadcaster:
    """Paces the stream: at each tick, stamps and encodes the next frame and wakes every client."""

    def __init__(self, frames: list[np.ndarray], fps: float, quality: int) -> None:
        self.frames, self.period, self.quality = frames, 1.0 / fps, quality
        self.cond = threading.Condition()
        self.seq = -1
        self.jpeg = b""
        self.stop = threading.Event()

    def run(self) -> None:
        import cv2

        start = time.monotonic()
        k = 0
        while not self.stop.is_set():
            image = self.frames[k % len(self.frames)].copy()
            stamp(image, k, time.monotonic())
            ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:  # cannot happen for a uint8 3-channel image; stop loudly rather than stream nothing
                raise RuntimeError("cv2.imencode failed")
            with self.cond:
                self.seq, self.jpeg = k, buf.tobytes()
                self.cond.notify_all()
            k += 1
            delay = start + k * self.period - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            elif delay < -self.period:  # fell behind (loaded machine): re-anchor instead of bursting to catch up
                start = time.monotonic() - k * self.period

    def next_after(self, seq: int, timeout: float) -> tuple[int, bytes] | None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.seq > seq or self.stop.is_set(), timeout):
                return None
            return (self.seq, self.jpeg) if self.seq > seq else None


def _handler(broadcaster: _Broadcaster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug("%s " + format, self.client_address[0], *args)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/stream.mjpg":
                self.send_error(404, "only /stream.mjpg is served")
                return
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            seq = -1
            try:
                while not broadcaster.stop.is_set():
                    got = broadcaster.next_after(seq, 1.0)
                    if got is None:
                        continue
                    seq, jpeg = got
                    head = (
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                        f"X-Frame: {seq}\r\nX-Timestamp: {time.monotonic():.6f}\r\n\r\n"
                    ).encode()
                    self.wfile.write(head + jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

    return Handler


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected HEIGHTxWIDTH, e.g. 480x640") from None
    if h < MIN_HEIGHT or w < MIN_WIDTH or h > 960 or w > 1280:
        raise argparse.ArgumentTypeError(
            f"--size {text!r}: height must be {MIN_HEIGHT}..960 and width {MIN_WIDTH}..1280 pixels"
        )
    return h, w


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the emulator process (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m hardware.emulators.mjpeg_camera", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--size", type=_size, default=(480, 640), help="HEIGHTxWIDTH pixels (default 480x640)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (Hz, 1..120)")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--frames", type=int, default=24, help="frames rendered at start and cycled (1..600)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (1..100)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    limits = (("fps", args.fps, 1, 120), ("frames", args.frames, 1, 600), ("quality", args.quality, 1, 100))
    for name, value, lo, hi in (*limits, ("port", args.port, 0, 65535)):
        if not lo <= value <= hi:
            parser.error(f"--{name} {value}: must be within {lo}..{hi}")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    height, width = args.size
    frames = render_frames(width, height, args.frames)
    broadcaster = _Broadcaster(frames, args.fps, args.quality)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(broadcaster))
    server.daemon_threads = True
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=broadcaster.run, name="mjpeg-broadcaster", daemon=True).start()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="mjpeg-http", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    sys.stdout.write(json.dumps({"ready": True, "url": url}) + "\n")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        broadcaster.stop.set()
        server.shutdown()
        server.server_close()
    return 0


# ------------------------------------------------------------------------------------------------------------
# The client (test side)
# ------------------------------------------------------------------------------------------------------------
class MjpegCameraEmulator:
    """A running MJPEG camera emulator process.

    Args:
        width, height: image size (pixels).
        fps: frame rate (Hz).
        port: TCP port on 127.0.0.1 (0: any free one; pass a previous emulator's port to restart "the same camera").
        frames: frames rendered at start and cycled.
        ready_timeout: seconds to wait for the ready line (rendering at start takes a few seconds).

    Attributes:
        url: the stream's URL, ``http://127.0.0.1:PORT/stream.mjpg``.
        port: the TCP port.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        port: int = 0,
        frames: int = 24,
        ready_timeout: float = 120.0,
    ) -> None:
        args = ["--size", f"{int(height)}x{int(width)}", "--fps", str(float(fps)), "--port", str(int(port))]
        args += ["--frames", str(int(frames))]
        self._proc = EmulatorProcess(
            "mjpeg camera emulator", "hardware.emulators.mjpeg_camera", args, ("url",), ready_timeout
        )
        self.process = self._proc.process
        ready = self._proc.ready
        self.url: str = ready["url"]
        self.port: int = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        return self._proc.alive

    def kill(self) -> None:
        """The camera dies without warning (SIGKILL): its socket closes, no more frames."""
        self._proc.kill()

    def close(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s) and release its files (idempotent)."""
        self._proc.stop()

    def __enter__(self) -> MjpegCameraEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
