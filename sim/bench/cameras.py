"""``rcs bench cameras``: freshness of OpenCV camera frames, and what two camera streams cost a 500 Hz control loop.

The camera is the MJPEG network camera emulator (:mod:`hardware.emulators.mjpeg_camera`, its own process, real
HTTP, ``--width`` x ``--height`` at ``--fps``) read by :class:`hardware.cameras.opencv.OpenCVCamera`. Then:

- ``freshness``: a consumer reads the camera at the control loop's rate (``--rate`` Hz, paced by
  :class:`rcs.control.loop.ControlLoop`) for ``--seconds``. Per read: ``capture_to_observation_ms`` = read time
  minus the frame's capture timestamp (what the driver's newest-frame design adds: waiting in the slot until the
  consumer looks); ``send_to_observation_ms`` = read time minus the server's encode time stamped in the image
  (adds the network, the JPEG decode and the colour conversion). Both p50/p99/max. ``achieved_fps`` = distinct
  frames observed per second; ``capture_fps`` = the driver's own capture rate; ``link_lost`` = reads that raised.
- ``loop``: the control path of ``rcs robot`` (:func:`rcs.control.task.make_policy_task` on ``sim/panda``, the
  same driver as ``rcs bench hw``, following a slow sinusoid on joint 1) at ``--rate`` Hz for ``--seconds``,
  once without cameras and once with two OpenCV cameras on two emulator streams whose capture threads run
  alongside and which the loop's read phase reads every tick: wake-up lateness (p50/p99/max, us), missed ticks,
  phase times, side by side in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import time
from typing import Any

import rcs
from hardware.cameras.opencv import OpenCVCamera, make_opencv_camera
from hardware.emulators.mjpeg_camera import MjpegCameraEmulator, read_stamp
from rcs.control.loop import ControlLoop, RtConfig
from rcs.errors import LinkLostError
from rcs.percentiles import spread
from sim.bench.sway import sway_loop

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each measurement")
    parser.add_argument("--rate", type=float, default=500.0, help="control loop rate (Hz)")
    parser.add_argument("--width", type=int, default=640, help="camera image width (pixels)")
    parser.add_argument("--height", type=int, default=480, help="camera image height (pixels)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate (Hz)")


def _pct(values: list[float]) -> dict[str, float]:
    return spread(values) or {"p50": math.nan, "p99": math.nan, "max": math.nan}


def _freshness(camera: OpenCVCamera, rate_hz: float, seconds: float) -> dict[str, Any]:
    """Read ``camera`` every tick of a paced loop; ages of what each read observes."""
    capture_ms: list[float] = []
    send_ms: list[float] = []
    seen: set[int] = set()
    lost = 0

    class Consumer:
        def read(self, tick: int) -> Any:
            nonlocal lost
            try:
                frame = camera.read()
            except LinkLostError:
                lost += 1
                return None
            observed = time.monotonic()
            capture_ms.append((observed - frame.timestamp) * 1e3)
            send_ms.append((observed - read_stamp(frame.image)[1]) * 1e3)
            seen.add(frame.frame_index)
            return None

        def compute(self, tick: int, observation: Any) -> Any:
            return None

        def write(self, tick: int, command: Any) -> None:
            pass

    stats = ControlLoop(Consumer(), rate_hz, paced=True, rt=RtConfig(), log_every_s=0.0).run(
        ticks=int(seconds * rate_hz)
    )
    return {
        "reads": len(capture_ms),
        "capture_to_observation_ms": _pct(capture_ms),
        "send_to_observation_ms": _pct(send_ms),
        "achieved_fps": round(len(seen) / stats.wall_s, 1),
        "capture_fps": round(camera.measured_fps, 1),
        "link_lost": lost,
        "reconnects": camera.reconnects,
        "consumer_lateness_us": stats.lateness_us,
    }


def _loop(arm: Any, cameras: list[OpenCVCamera], rate_hz: float, seconds: float) -> dict[str, Any]:
    """The control path of ``rcs robot`` on ``arm``, reading every camera each tick (as an observation would)."""
    lost = 0

    def read_cameras() -> None:
        nonlocal lost
        for cam in cameras:
            try:
                cam.read()
            except LinkLostError:
                lost += 1

    stats, _ = sway_loop(arm, rate_hz, seconds, on_read=read_cameras)
    return {
        "cameras": len(cameras),
        "achieved_rate_hz": round(stats["achieved_rate_hz"], 1),
        "lateness_us": stats["lateness_us"],
        "missed_ticks": stats["missed_ticks"],
        "rt_scheduling": stats["rt_scheduling"],
        "phase_us": stats["phase_us"],
        "camera_link_lost": lost,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    w, h, fps = args.width, args.height, args.fps
    out: dict[str, Any] = {
        "seconds": args.seconds,
        "rate_hz": args.rate,
        "camera": {"width": w, "height": h, "fps": fps, "source": "mjpeg emulator over HTTP (loopback)"},
    }
    with contextlib.ExitStack() as stack:
        log.info("rcs bench cameras: starting two MJPEG camera emulators (%dx%d at %g fps)", w, h, fps)
        streams = [stack.enter_context(MjpegCameraEmulator(w, h, fps)) for _ in range(2)]
        cams = [
            make_opencv_camera(name=f"cam{i}", width=w, height=h, fps=fps, source=s.url) for i, s in enumerate(streams)
        ]
        with cams[0]:
            out["freshness"] = _freshness(cams[0], args.rate, args.seconds)
        arm = rcs.make_robot("sim/panda")
        with arm:
            without = _loop(arm, [], args.rate, args.seconds)
            for cam in cams:
                stack.enter_context(cam)
            with_cams = _loop(arm, cams, args.rate, args.seconds)
        out["loop"] = {"without_cameras": without, "with_two_cameras": with_cams}
        out["loop_p99_lateness_us"] = {
            "without_cameras": without["lateness_us"]["p99"],
            "with_two_cameras": with_cams["lateness_us"]["p99"],
        }
    return out
