"""``rcs bench deploy``: ``rcs deploy`` onto the emulated SO-101, timed, with the live view off and on.

Everything is a real process: the SO-101 bus emulator (MuJoCo physics behind a pty), the MJPEG camera emulator (an
OpenCV camera on its HTTP stream), ``rcs deploy`` (which starts ``rcs serve``, the run log and, in the second run,
``rcs view --save FILE.rrd``), and a scripted operator typing on ``rcs deploy``'s pseudo-terminal
(:mod:`sim.bench.pty_operator`): it confirms as soon as it is asked and holds the dead-man key for ``--seconds``.

Per run: seconds from the command to each milestone (policy server loaded, shadow run done, the operator asked),
from the confirmation to the first tick the policy drives the arm, and **command to engaged** without the
operator's own reaction time (the time the prompt waited for the script); the control loop's wake-up lateness
(p50/p99/max, us, over its last 10 s: the engaged run) and missed ticks; the policy's round trip.

Without ``--checkpoint`` a small SO-101 policy is recorded and trained first (``rcs record`` with the expert,
``rcs train`` a few steps), as the tests do; pass a checkpoint to time your own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rcs.loopback import free_endpoint
from sim.bench.pty_operator import RCS, PtyOperator

#: the tests' tiny rcs_diffusion sizes: a policy that answers in milliseconds on a CPU
TINY = {"vision_channels": 8, "vision_dim": 16, "state_hidden": 32, "cond_dim": 32, "head_hidden": 32}
TINY |= {"head_layers": 1, "horizon": 4, "n_action_steps": 2, "image_size": 32, "num_inference_steps": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, help="an SO-101 checkpoint (default: record and train one)")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds the dead-man key is held per run")
    parser.add_argument("--shadow-s", type=float, default=5.0, help="shadow run length (s)")


def _rcs(*args: str) -> None:
    done = subprocess.run([*RCS, *args], capture_output=True, text=True, timeout=900, env=_env())
    if done.returncode:
        raise RuntimeError(f"rcs {args[0]} failed: {done.stderr[-2000:]}")


def _env() -> dict[str, str]:
    return {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "HF_HUB_OFFLINE": "1"}


def train_small_checkpoint(root: Path, robot: str = "sim/so101", cameras: str = "front") -> Path:
    """A small policy for ``robot``'s physical twin: the expert's episodes on the simulated robot (``cameras`` at
    240x320, or ``none``), 4 training steps on joint targets, without the cube's pose (a physical arm has no object
    tracker)."""
    _rcs("record", "--robot", robot, "--teleop", "expert", "--episodes", "2", "--root", str(root / "data"),
         "--cameras", cameras, "--max-steps", "30", "--keep", "all", "--vcodec", "h264")  # fmt: skip
    _rcs("train", "--dataset", str(root / "data"), "--output", str(root / "run"), "--steps", "4", "--save-every", "4",
         "--batch-size", "8", "--threads", "1", "--joint-targets", "--ignore-feature", "observation.environment_state",
         "--no-progress", *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")])  # fmt: skip
    return root / "run" / "checkpoints" / "last" / "pretrained_model"


def so101_config(path: Path, robot_config: dict[str, Any], camera_url: str, realtime: bool = True) -> Path:
    """launch/robots/hw_so101.yaml's settings, with the emulator's port and an OpenCV camera on the MJPEG stream
    (``realtime``: SCHED_FIFO + mlockall where permitted)."""
    cfg = {
        "robot": "hw/so101",
        "robot_config": robot_config,
        "rate_hz": 100,
        "state_endpoint": free_endpoint(),
        "command_endpoint": free_endpoint(),
        "realtime": realtime,
        "cameras": [
            {
                "name": "front",
                "width": 320,
                "height": 240,
                "fps": 20,
                "backend": "opencv",
                "options": {"source": camera_url},
            }
        ],  # fmt: skip
        "safety": {"position_margin": 0.05, "workspace": {"lower": [-0.5, -0.5, 0.0], "upper": [0.5, 0.5, 0.5]}},
    }
    path.write_text(json.dumps(cfg))
    return path


def _deploy(checkpoint: Path, config: Path, log_dir: Path, seconds: float, shadow_s: float, view: Path | None) -> dict:
    args = ["--policy", str(checkpoint), "--robot", str(config), "--log-dir", str(log_dir), "--shadow-s", str(shadow_s)]
    op = PtyOperator(*args, *(["--view", str(view)] if view else []), env=_env())
    asked = op.wait_for("ENGAGE hw/so101")
    op.type(b"y")
    answered = time.monotonic()
    op.wait_for("hold SPACE")
    op.hold(seconds)
    op.type(b"q")
    code, report = op.result()
    if report["outcome"] != "done":
        raise RuntimeError(f"rcs deploy ended {report['outcome']} (exit {code}): {report['reason']}")
    timings = dict(report["timings_s"])
    timings["operator_reaction"] = round(answered - asked, 3)
    timings["command_to_engaged"] = round(timings["engaged"] - timings["operator_reaction"], 3)
    return {
        "timings_s": timings,
        "engaged_s": report["engaged_s"],
        "loop": report["loop"],
        "policy_latency_ms": report["latency_ms"],
        "interventions": report["interventions"],
        "log_frames": report["log"].get("frames"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from hardware.emulators.mjpeg_camera import MjpegCameraEmulator
    from rcs.registry import start_emulator

    out: dict[str, Any] = {"robot": "hw/so101 (emulated)", "seconds_held": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = args.checkpoint or train_small_checkpoint(root / "so101")
        out["checkpoint"] = str(args.checkpoint or "trained here (4 steps)")
        emulator = start_emulator("hw/so101")
        camera = MjpegCameraEmulator(320, 240, fps=20, frames=8)
        try:
            config = so101_config(root / "hw_so101.json", dict(emulator.robot_config), camera.url)
            for name, view in (("without_view", None), ("with_view", root / "view.rrd")):
                out[name] = _deploy(checkpoint, config, root / name, args.seconds, args.shadow_s, view)
        finally:
            camera.close()
            emulator.close()
    out["command_to_engaged_s"] = {k: out[k]["timings_s"]["command_to_engaged"] for k in ("without_view", "with_view")}
    out["loop_p99_lateness_us"] = {k: out[k]["loop"]["lateness_us"]["p99"] for k in ("without_view", "with_view")}
    out["python"] = sys.version.split()[0]
    return out
