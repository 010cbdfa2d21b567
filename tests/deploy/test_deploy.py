"""``rcs deploy`` end to end: every part a real process.

``rcs deploy`` itself reads the operator's keys from a real pseudo-terminal (the test types them), starts
``rcs serve`` (the checkpoint, loaded by lerobot) and the run log (its own process), drives the emulated SO-101
(its Feetech bus emulator, whose motion is MuJoCo physics, over a pty) or the simulated Panda, and reads a
physical-camera driver (OpenCV) from an MJPEG-over-HTTP stream served by the camera emulator process. The SO-101
checkpoint is trained here (``rcs record`` with the expert, then ``rcs train``, a few steps): its actions are
joint targets near the recorded poses, so it moves the arm a few tenths of a radian and holds there.

What is asserted is where the arm is (the emulator's physics), what the command reports, and that the run log
loads with lerobot.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rcs.registry import start_emulator
from sim.bench.deploy import so101_config, train_small_checkpoint
from sim.bench.pty_operator import PtyOperator
from tests.processes import child_pids, command_line, ended, signal_state
from tests.remote.helpers import free_endpoints

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
RCS = [sys.executable, "-m", "rcs.cli.main"]
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "HF_HUB_OFFLINE": "1"}
#: rad: one steady-state sag of a loaded STS3215 when its goal is re-anchored at its measured position (emulated)
HOLD_SAG_RAD = 0.02
SO101 = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


@pytest.fixture(scope="module")
def so101_checkpoint(tmp_path_factory) -> Path:
    """Recorded on the simulated SO-101 with the expert (front camera 240x320), trained 4 steps on joint targets
    without the cube's pose (a physical arm has no object tracker): the benchmark's own recipe."""
    return train_small_checkpoint(tmp_path_factory.mktemp("so101"))


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator("hw/so101")
    yield emu
    emu.close()


@pytest.fixture
def camera():
    from hardware.emulators.mjpeg_camera import MjpegCameraEmulator

    cam = MjpegCameraEmulator(320, 240, fps=20, frames=8)
    yield cam
    cam.close()


def hw_config(tmp_path: Path, emulator: Any, camera: Any) -> Path:
    """launch/robots/hw_so101.yaml's settings with the emulator's port and an OpenCV camera on the MJPEG stream."""
    return so101_config(tmp_path / "hw_so101.json", dict(emulator.robot_config), camera.url, realtime=False)


def deploy(*args: str) -> PtyOperator:
    """``rcs deploy ARGS`` with an operator typing on its terminal."""
    return PtyOperator(*args, env=ENV)


def sim_panda_config(tmp_path: Path, realtime: bool = False) -> Path:
    """launch/robots/sim_panda_deploy.yaml on free endpoints; its loop (and so the policy server rcs deploy
    starts) ``SCHED_FIFO`` only with ``realtime``."""
    state, command = free_endpoints()
    text = (REPO / "launch" / "robots" / "sim_panda_deploy.yaml").read_text()
    text = text.replace("tcp://127.0.0.1:5600", state).replace("tcp://127.0.0.1:5601", command)
    config = tmp_path / "sim_panda_deploy.yaml"
    config.write_text(text if realtime else text.replace("realtime: true", "realtime: false"))
    return config


def load_log(root: Path) -> dict[str, np.ndarray]:
    """The run log, read by lerobot's own LeRobotDataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/run", root=root)
    h = ds.hf_dataset.with_format("numpy")
    out = {key: np.stack(h[key]) for key in ("observation.state", "action", "stage", "safety.interventions")}
    out["names"] = np.array(ds.meta.features["action"]["names"])
    return out


def settled(emulator: Any, after: float, quiet_s: float = 0.5, timeout: float = 10.0) -> np.ndarray:
    """Arm joints once no joint moved more than 2 mrad over ``quiet_s`` (ground truth from the emulator's physics)."""
    end = time.monotonic() + timeout
    while True:
        t, q = emulator.trace(since=max(after, time.monotonic() - quiet_s))
        if len(q) and np.ptp(q[:, :5], axis=0).max() < 2e-3 and t[-1] - t[0] >= 0.9 * quiet_s:
            return q[-1, :5]
        if time.monotonic() > end:
            raise AssertionError(f"the arm did not come to rest within {timeout} s")
        time.sleep(0.1)


def test_deploy_on_the_emulated_so101_engages_only_while_the_deadman_is_held(
    tmp_path, so101_checkpoint, emulator, camera
):
    log_dir = tmp_path / "deploy"
    op = deploy("--policy", str(so101_checkpoint), "--robot", str(hw_config(tmp_path, emulator, camera)),
                  "--speed-scale", "0.05", "--shadow-s", "2", "--log-dir", str(log_dir), "--log-segment-s", "2")  # fmt: skip
    op.wait_for("shadow run: the policy drives sim/so101")  # the arm is connected (its servos hold it)
    start = settled(emulator, after=time.monotonic())
    op.wait_for("ENGAGE hw/so101")
    # the shadow run moved the twin, not the arm; the loop's hold re-anchors the servos at the measured position,
    # which sags the loaded joints by the STS3215's steady-state error (10 ticks, 0.015 rad) once
    assert np.abs(emulator.joint_positions() - start).max() < HOLD_SAG_RAD
    for row in ("action names", "observation", "control period", "cameras", "safety config", "policy server"):
        assert any(line.startswith(row) and " ok " in line for line in op.lines), row
    assert "matches the servos' registers" in op.text() and "shadow run      ok      sim/so101" in op.text()
    op.type(b"y")
    op.wait_for("hold SPACE")

    # one press, no auto-repeat: engaged for first_repeat_s (0.7 s), then released mid-motion: the arm holds
    pressed = time.monotonic()
    op.type(b" ")
    stopped = settled(emulator, after=pressed + 0.7)
    t, q = emulator.trace(since=pressed)
    moved = np.abs(q[:, :5] - start).max()
    assert moved > 0.01, f"the policy did not move the arm while the dead-man key was held ({moved:.4f} rad)"
    time.sleep(1.0)
    assert np.abs(emulator.joint_positions() - stopped).max() < 5e-3  # released: it holds where it stopped

    # held (auto-repeat) long enough: the arm reaches the policy's target and stays there
    op.hold(6.0)
    target = settled(emulator, after=time.monotonic() - 0.5)
    assert np.abs(target - stopped).max() > 0.02, "the first, short engagement had already reached the target"
    op.type(b"e")  # e-stop key
    code, report = op.result()
    assert code == 1 and report["outcome"] == "estop" and "operator's key" in report["reason"]

    assert {"policy_server", "shadow", "confirmed", "engaged"} <= set(report["timings_s"])
    assert 0.5 < report["engaged_s"] < 10.0
    assert report["latency_ms"]["p99"] < 100.0  # the link's request period (2 x 50 ms): the watchdog never held
    assert [r["check"] for r in report["preflight"]][-3:] == ["policy server", "robot", "shadow run"]
    log = load_log(Path(report["log"]["root"]))
    assert list(log["names"]) == SO101
    assert report["log"]["segments_saved"] >= 2 and len(log["action"]) == report["log"]["frames"]
    running = log["stage"].reshape(-1) == 1  # rcs.safety.watchdog.Stage order: idle, running, ...
    assert running.any() and not running.all()  # the log holds the engaged and the holding parts
    final = log["observation.state"][-1, :5]
    assert np.abs(final - target).max() < 0.01  # the log's last state is where the e-stop held the arm


def test_a_stream_that_stops_mid_run_ends_the_run_and_the_arm_holds(tmp_path, so101_checkpoint, emulator, camera):
    op = deploy("--policy", str(so101_checkpoint), "--robot", str(hw_config(tmp_path, emulator, camera)),
                  "--speed-scale", "0.05", "--shadow-s", "0", "--log-dir", str(tmp_path / "d"), "--log-segment-s", "1")  # fmt: skip
    op.wait_for("ENGAGE hw/so101")
    op.type(b"y")
    op.wait_for("hold SPACE")
    holder = threading.Thread(target=op.hold, args=(30.0,), daemon=True)  # the operator keeps holding
    holder.start()
    time.sleep(1.5)
    camera.kill()  # the camera's process dies (a pulled cable)
    killed = time.monotonic()
    code, report = op.result()
    assert code == 1 and report["outcome"] == "failed"
    assert report["reason"].startswith("the robot could not observe for the policy: camera front: newest frame is")
    assert "the stream stopped" in report["reason"]
    assert "shadow run" in [r["check"] for r in report["preflight"]]  # skipped, and the table says so
    rest = settled(emulator, after=killed)
    time.sleep(1.0)
    assert np.abs(emulator.joint_positions() - rest).max() < 5e-3  # the arm holds
    log = load_log(Path(report["log"]["root"]))
    assert len(log["action"]) == report["log"]["frames"] > 0


def test_refusals_before_anything_moves(tmp_path, so101_checkpoint, emulator, camera):
    config = str(hw_config(tmp_path, emulator, camera))

    # a checkpoint for another robot: refused by the static preflight, no policy server started
    panda = str(REPO / "policies" / "checkpoints" / "pick_cube_rcs_diffusion")
    op = deploy("--policy", panda, "--robot", config, "--log-dir", str(tmp_path / "a"))
    code, report = op.result()
    failed = {r["check"]: r["detail"] for r in report["preflight"] if not r["passed"]}
    assert code == 2 and report["outcome"] == "refused" and set(failed) == {"observation", "cameras"}, failed
    assert "policy input observation.state entry 'joint1'" in failed["observation"]
    assert report["reason"] == f"preflight refused: observation: {failed['observation']}"
    assert "policy server" not in [r["check"] for r in report["preflight"]]

    # a missing normalization statistic: the policy server refuses to load it
    broken = tmp_path / "broken"
    shutil.copytree(so101_checkpoint, broken)
    stats = next(broken.glob("policy_preprocessor_step_*_normalizer_processor.safetensors"))
    from safetensors.numpy import load_file, save_file

    tensors = load_file(stats)
    assert json.loads((broken / "config.json").read_text())["normalization_mapping"]["STATE"] == "MIN_MAX"
    save_file({k: v for k, v in tensors.items() if k != "observation.state.max"}, stats)  # a statistic it reads
    op = deploy("--policy", str(broken), "--robot", config, "--log-dir", str(tmp_path / "b"))
    code, report = op.result()
    failed = {r["check"]: r["detail"] for r in report["preflight"] if not r["passed"]}
    assert code == 2 and list(failed) == ["policy server"], report["reason"]
    assert "normalization stats do not cover every feature" in failed["policy server"]
    assert "observation.state" in failed["policy server"]

    # an operator who never confirms: refused after the timeout, nothing moved, the log so far loads
    op = deploy("--policy", str(so101_checkpoint), "--robot", config, "--shadow-s", "0", "--confirm-timeout", "3",
                  "--log-dir", str(tmp_path / "c"), "--log-segment-s", "1")  # fmt: skip
    op.wait_for("ENGAGE hw/so101")
    start = emulator.joint_positions()  # connected and held by the loop
    time.sleep(2.0)
    assert np.abs(emulator.joint_positions() - start).max() < 2e-3  # the policy is served, the arm does not move
    code, report = op.result()
    assert code == 2 and report["reason"] == "the operator did not confirm within 3 s: nothing moved"
    assert "engaged" not in report["timings_s"]
    log = load_log(Path(report["log"]["root"]))
    assert len(log["action"]) > 0 and (log["stage"].reshape(-1) != 1).all()

    # a camera that is not there: the robot server cannot connect it
    camera.close()
    op = deploy("--policy", str(so101_checkpoint), "--robot", config, "--log-dir", str(tmp_path / "d"))
    code, report = op.result()
    failed = {r["check"]: r["detail"] for r in report["preflight"] if not r["passed"]}
    assert code == 2 and list(failed) == ["robot"] and "front" in failed["robot"], failed


def test_the_main_demo_checkpoint_on_the_simulated_panda_with_a_signal_estop_and_a_dying_policy_server(tmp_path):
    """No hardware configured: the shipped checkpoint onto sim/panda (launch/robots/sim_panda_deploy.yaml).
    The e-stop by SIGUSR1 ends a run; then a policy server that dies mid-run ends one too."""
    config = sim_panda_config(tmp_path)
    ckpt = str(REPO / "policies" / "checkpoints" / "pick_cube_rcs_diffusion")
    rrd = tmp_path / "view.rrd"
    op = deploy("--policy", ckpt, "--robot", str(config), "--shadow-s", "2", "--log-dir", str(tmp_path / "a"),
                "--view", str(rrd))  # fmt: skip
    op.wait_for("ENGAGE sim/panda")
    assert "tracked objects ['cube', 'target']" in op.text()
    op.type(b"y")
    op.wait_for("hold SPACE")
    op.hold(2.0)
    op.proc.send_signal(signal.SIGUSR1)
    code, report = op.result()
    assert code == 1 and report["outcome"] == "estop" and report["reason"].startswith("e-stop by SIGUSR1")
    assert report["engaged_s"] > 0.5 and report["latency_ms"]["replies"] > 0
    from rerun.chunk import RrdReader  # the live view saved headless: the robot's stream, commanded and measured

    entities = {c.entity_path for c in RrdReader(rrd).stream()}
    assert {"/robot/tcp", "/robot/joints/joint1/measured", "/robot/joints/joint1/commanded"} <= entities

    endpoint = free_endpoints()[0]
    serve = subprocess.Popen([*RCS, "serve", "--policy", ckpt, "--bind", endpoint], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        op = deploy("--policy", ckpt, "--robot", str(config), "--shadow-s", "0", "--policy-endpoint", endpoint,
                      "--log-dir", str(tmp_path / "b"), "--log-segment-s", "1")  # fmt: skip
        op.wait_for("ENGAGE sim/panda")
        op.type(b"y")
        op.wait_for("hold SPACE")
        threading.Thread(target=op.hold, args=(30.0,), daemon=True).start()
        time.sleep(1.5)
        serve.kill()
        code, report = op.result()
    finally:
        serve.kill()
        serve.wait()
    assert code == 1 and report["outcome"] == "failed"
    assert report["reason"] == "the policy server stopped answering: the robot held, then stopped (watchdog)"
    log = load_log(Path(report["log"]["root"]))
    assert len(log["action"]) == report["log"]["frames"] > 0


def test_a_killed_deploy_leaves_no_process_behind_and_its_log_is_saved(tmp_path):
    """SIGKILL cannot be handled: the kernel's SIGTERM (``rcs.child_process``) ends the policy server and makes the
    run log save its open segment (60 s long here, so nothing was saved before) and exit."""
    ckpt = str(REPO / "policies" / "checkpoints" / "pick_cube_rcs_diffusion")
    op = deploy("--policy", ckpt, "--robot", str(sim_panda_config(tmp_path)), "--shadow-s", "0",
                "--log-dir", str(tmp_path / "k"), "--log-segment-s", "60")  # fmt: skip
    children: dict[str, int] = {}
    try:
        op.wait_for("ENGAGE sim/panda")
        op.type(b"y")
        op.wait_for("hold SPACE")
        op.hold(2.0)
        for pid in child_pids(op.proc.pid):
            argv = command_line(pid)
            children["run log" if "rcs.deploy.run_log" in argv else "server" if "serve" in argv else str(pid)] = pid
        assert {"run log", "server"} <= set(children), children
        op.proc.kill()
        op.proc.communicate(timeout=30)
        server, run_log = children["server"], children["run log"]
        assert ended(server, timeout_s=30.0), (
            f"the policy server outlived the killed rcs deploy: {signal_state(server)}"
        )
        assert ended(run_log, timeout_s=60.0), f"the run log outlived the killed rcs deploy: {signal_state(run_log)}"
    finally:
        os.close(op.master)
        for pid in children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    log = load_log(tmp_path / "k" / "run")
    assert len(log["action"]) > 20  # 2 s held at 20 Hz, and the time before it


def test_deploy_on_the_emulated_franka(tmp_path):
    """The Franka driver (franky) against franky-sim (its own venv and process): preflight, shadow run on sim/panda
    from the measured joints, engaged while the dead-man key is held, then quit; the arm moved and holds."""
    checkpoint = train_small_checkpoint(tmp_path / "panda", robot="sim/panda", cameras="none")
    emulator = start_emulator("hw/panda")
    state, command = free_endpoints()
    try:
        config = {
            "robot": "hw/panda",
            "robot_config": {**emulator.robot_config, "dynamics_factor": 0.2},  # launch/robots/hw_panda.yaml's
            "rate_hz": 500,
            "state_endpoint": state,
            "command_endpoint": command,
            "realtime": False,
            "safety": {
                "velocity_scale": 0.5,
                "acceleration_scale": 0.5,
                "position_margin": 0.05,
                "workspace": {"lower": [0.25, -0.45, 0.05], "upper": [0.75, 0.45, 0.70]},
            },  # fmt: skip
        }
        path = tmp_path / "hw_panda.json"
        path.write_text(json.dumps(config))
        op = deploy(
            "--policy", str(checkpoint), "--robot", str(path), "--shadow-s", "2", "--log-dir", str(tmp_path / "d")
        )
        op.wait_for("ENGAGE hw/panda")
        assert "factory calibrated" in op.text() and "shadow run      ok      sim/panda" in op.text()
        start = emulator.joint_positions()
        op.type(b"y")
        op.wait_for("hold SPACE")
        op.hold(4.0)
        time.sleep(1.0)  # released: the arm holds
        held = emulator.joint_positions()
        time.sleep(1.0)
        drift = np.abs(emulator.joint_positions() - held).max()
        op.type(b"q")
        code, report = op.result()
    finally:
        emulator.close()
    assert code == 0 and report["outcome"] == "done" and report["reason"] == "ended by the operator"
    # the release is honoured: the key's repeat gap (0.25 s) after the last repeat, plus a loaded host's lag
    assert report["engaged_s"] < 4.0 + 1.0, report
    assert drift < 5e-3, f"the arm moved {drift:.4f} rad 1-2 s after the release: {report}"
    assert np.abs(held - start).max() > 0.02  # the policy moved the arm while the key was held
    log = load_log(Path(report["log"]["root"]))
    assert list(log["names"]) == [f"joint{i}" for i in range(1, 8)] + ["gripper"]
    assert (log["stage"].reshape(-1) == 1).any()


def test_the_shipped_residual_deploys_like_any_checkpoint(tmp_path):
    """The composed checkpoint (residual + the base it names) onto sim/panda: `rcs deploy` serves it (its own
    server starts the base's), passes the preflight, runs the shadow run and drives the arm until the e-stop. The loop
    is real-time, so both policy servers are too: their latency holds on a loaded host (SCHED_OTHER servers beside
    two CPU burners answered with a p99 of 56-79 ms in 2 of 3 shadow runs, over the 50 ms period)."""
    config = sim_panda_config(tmp_path, realtime=True)
    ckpt = str(REPO / "policies" / "checkpoints" / "pick_cube_residual_reality_a")
    op = deploy("--policy", ckpt, "--robot", str(config), "--shadow-s", "2", "--log-dir", str(tmp_path / "a"))
    op.wait_for("ENGAGE sim/panda")
    assert "shadow run      ok      sim/panda" in op.text()
    op.type(b"y")
    op.wait_for("hold SPACE")
    op.hold(2.0)
    op.proc.send_signal(signal.SIGUSR1)
    code, report = op.result()
    assert code == 1 and report["outcome"] == "estop", report
    assert report["engaged_s"] > 0.5 and report["latency_ms"]["replies"] > 0
    assert [r["check"] for r in report["preflight"]][-3:] == ["policy server", "robot", "shadow run"]
    log = load_log(Path(report["log"]["root"]))
    assert len(log["action"]) == report["log"]["frames"] > 0
