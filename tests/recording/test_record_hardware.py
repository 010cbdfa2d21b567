"""``rcs record`` on a physical arm: the SO-101 follower driver ``hw/so101`` on an emulated Feetech bus, driven by
lerobot's SO101Leader on a second emulated bus whose joints a scripted hand moves (real processes, real ptys).

The recording goes through the task-less arm env (``rcs/ArmTeleop-v0``), the same session and recorder as in
simulation; the dataset must load with lerobot, its actions must follow the leader's path and its states the
follower's (both emulators' physics ground truth, matched by the host monotonic clock).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytest.importorskip("scservo_sdk")
pytest.importorskip("deepdiff")

from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from rcs.cli.main import main  # noqa: E402

RCS = str(Path(sys.executable).with_name("rcs"))
STEPS = 40  # per episode, at the env's 20 Hz: 2 s
LEADER_ID, FOLLOWER_ID = "rcs_leader", "follower"
# the hand's scripted path on the leader (rad, servo order: 5 arm joints + gripper jaw), one leg every 1.5 s
PATH = [
    [0.5, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.5, -0.3, 0.3, 0.0, 0.0, 0.0],
    [-0.3, -0.3, 0.3, 0.4, 0.0, 0.0],
    [-0.3, 0.0, 0.0, 0.4, 0.0, 0.0],
]
LEG_S = 1.5


def _calibrate_leader(leader, calibration_dir: Path) -> np.ndarray:
    """What ``lerobot-calibrate`` leaves behind, written the same way: the hand holds the leader near its middle
    pose, lerobot's bus sets half-turn homings there and writes symmetric ranges to the servos, and the same
    calibration goes to ``<calibration_dir>/<LEADER_ID>.json``. Returns the held pose (ground truth, rad, 5 arm
    joints): lerobot's leader reads each joint's angle from it."""
    from lerobot.motors import MotorCalibration

    from hardware.so101 import calibration as cal
    from hardware.so101.motors import FULL_TURN_JOINT, connect_retried, make_bus, with_retry

    leader.move_by_hand([0.0] * 6, duration=1.0, tolerance=0.1, timeout=60.0)
    bus = make_bus(leader.port)
    connect_retried(bus.connect, bus, timeout_s=5.0)
    try:
        # the rig's calibration writes, retried on a drained line as the driver retries its own
        with_retry(bus, "disable torque", bus.disable_torque, timeout_s=5.0)
        homings = with_retry(bus, "set homings", bus.set_half_turn_homings, timeout_s=5.0)
        calibration = {
            name: MotorCalibration(
                id=m.id,
                drive_mode=0,
                homing_offset=int(homings[name]),
                range_min=0 if name == FULL_TURN_JOINT else 1024,
                range_max=4095 if name == FULL_TURN_JOINT else 3071,
            )
            for name, m in bus.motors.items()
        }
        held = leader.joint_positions()
        with_retry(bus, "write calibration", bus.write_calibration, calibration, timeout_s=5.0)
    finally:
        bus.disconnect(disable_torque=False)
    cal.save_calibration(cal.calibration_file(LEADER_ID, calibration_dir), calibration)
    return held


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """A calibrated emulated follower and leader (each its own process), sharing one calibration folder."""
    from hardware.emulators.so101 import So101Emulator, start_so101

    folder = tmp_path_factory.mktemp("so101_calibration")
    follower = start_so101(calibration_dir=folder, arm_id=FOLLOWER_ID, seed=1)
    try:
        leader = So101Emulator(role="leader", seed=2, calibration_dir=folder, arm_id=LEADER_ID)
        try:
            zero = _calibrate_leader(leader, folder)
            yield follower, leader, folder, zero
        finally:
            leader.close()
    finally:
        follower.close()


class _GroundTruth:
    """Both emulators' physics history (ground truth) over the recording, from their own step-by-step traces with
    host monotonic times (:meth:`So101Emulator.trace`): no polling from this busy test process."""

    def __init__(self, follower, leader, since: float) -> None:
        self.traces = {"follower": follower.trace(since), "leader": leader.trace(since)}

    def at(self, times: np.ndarray, which: str) -> np.ndarray:
        """Ground truth (rad, 5 arm joints) linearly interpolated at ``times`` (host monotonic s)."""
        t, q = self.traces[which]
        return np.stack([np.interp(times, t, q[:, j]) for j in range(5)], axis=1)

    def nearest_error(
        self, which: str, t: float, q: np.ndarray, window: float, offset: np.ndarray | float = 0.0
    ) -> float:
        """Smallest max-joint error between ``q`` and the ground truth at any time within ``window`` s of ``t``:
        a driver stamps a reading once its reply is in, and a loaded host may run late in between. ``offset``
        (rad) is subtracted from the ground truth (the leader's calibrated zero pose)."""
        times = self.traces[which][0]
        assert times[0] <= t - window and t + window <= times[-1], f"no {which} trace around frame time {t}"
        shifts = t + np.arange(-window, window + 1e-9, 0.005)
        truth = self.at(shifts, which) - offset
        return float(np.abs(truth - q).max(axis=1).min())


def _episode_origins(root: Path) -> list[float]:
    lines = (root / "meta/rcs_episodes.jsonl").read_text().splitlines()
    return [json.loads(x)["capture_time_origin"] for x in lines if x.strip()]


def test_record_hw_so101_from_its_leader_arm(rig, tmp_path):
    follower, leader, folder, zero = rig
    root = tmp_path / "so101"
    started = time.monotonic()
    hand_done = threading.Event()

    def hand() -> None:  # the operator moves the leader along PATH, leg after leg, while the recording runs
        time.sleep(1.0)
        for target in PATH * 3:
            if hand_done.is_set():
                return
            leader.move_by_hand(target, duration=LEG_S, wait=False)
            hand_done.wait(LEG_S + 0.3)

    mover = threading.Thread(target=hand, daemon=True)
    mover.start()
    try:
        out = subprocess.run(
            [
                RCS,
                "record",
                "--robot",
                "hw/so101",
                "--robot-option",
                f"port={follower.port}",
                "--robot-option",
                f"arm_id={FOLLOWER_ID}",
                "--robot-option",
                f"calibration_dir={folder}",
                "--teleop",
                "so101-leader",
                "--teleop-option",
                f"port={leader.port}",
                "--teleop-option",
                f"leader_id={LEADER_ID}",
                "--teleop-option",
                f"calibration_dir={folder}",
                "--control-mode",
                "joint",
                "--episodes",
                "2",
                "--max-steps",
                str(STEPS),
                "--cameras",
                "none",
                "--root",
                str(root),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        hand_done.set()
        mover.join(30)
    truth = _GroundTruth(follower, leader, since=started)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["saved_this_session"] == 2 and summary["stopped_by"] == "done"

    ds = LeRobotDataset("local/so101", root=root)
    assert ds.num_episodes == 2 and len(ds) == 2 * STEPS
    assert "observation.environment_state" not in ds.features  # no objects on a real arm
    joints = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]
    assert ds.features["action"]["names"] == [*joints, "gripper"]
    meta = json.loads((root / "meta/rcs_recording.json").read_text())
    recording = meta.get("recording", meta)
    assert recording["env_id"] == "rcs/ArmTeleop-v0" and recording["robot"] == "hw/so101"

    origins = _episode_origins(root)
    actions = np.stack([ds[i]["action"].numpy() for i in range(len(ds))])
    states = np.stack([ds[i]["observation.state"].numpy() for i in range(len(ds))])
    capture = np.array([ds[i]["capture_time"].numpy().reshape(-1)[0] for i in range(len(ds))])
    episode = np.array([int(ds[i]["episode_index"]) for i in range(len(ds))])
    t_frame = np.array([origins[e] for e in episode]) + capture
    # the leader moved: the recorded actions span the scripted path's range on shoulder_pan
    assert actions[:, 0].max() - actions[:, 0].min() > 0.4
    # actions are the leader's joints (read right after the frame's state), states the follower's
    action_err = [truth.nearest_error("leader", t, a[:5], 0.25, zero) for t, a in zip(t_frame, actions, strict=True)]
    assert max(action_err) < 0.03, f"actions vs leader ground truth: max error {max(action_err):.4f} rad"
    # the follower's calibrated zero (middle of its swept ranges) may sit a little off the model's zero: a constant
    # per-joint offset, estimated from the whole recording; what remains must be the measurement itself
    offset = np.median(states[:, :5] - truth.at(t_frame, "follower"), axis=0)
    assert np.abs(offset).max() < 0.1, f"follower calibration offset {offset} rad"
    state_err = [truth.nearest_error("follower", t, s[:5] - offset, 0.25) for t, s in zip(t_frame, states, strict=True)]
    worst = int(np.argmax(state_err))
    assert max(state_err) < 0.03, (
        f"states vs follower ground truth: max error {max(state_err):.4f} rad at frame {worst} "
        f"(episode {episode[worst]}): recorded {states[worst, :5]}"
    )
    # and the follower followed: its state a few frames later matches the commanded action
    lag = 5
    follow = np.abs(states[lag:, :5] - actions[:-lag, :5]).max(axis=1)
    same_episode = episode[lag:] == episode[:-lag]
    assert np.median(follow[same_episode]) < 0.1, f"follower tracking error median {np.median(follow):.3f} rad"


def _record_main(capsys, *args: str) -> tuple[int, str]:
    try:
        rc = main(["record", *args])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ([], "hw/so101: option port is required"),
        (["--robot-option", "port=/dev/x", "--robot-option", "speed=3"], r"hw/so101: unknown option\(s\) speed"),
        (["--robot-option", "port"], "--robot-option 'port': expected KEY=VALUE"),
        (["--teleop", "expert"], "--teleop=expert: the scripted expert needs a pick-cube env"),
        (["--keep", "success"], "--keep=success: rcs/ArmTeleop-v0 .* has no success test"),
        (["--env", "rcs/PandaPickCube-v0"], "--robot='hw/so101': --env='rcs/PandaPickCube-v0' is made for robot"),
    ],
)
def test_bad_hardware_input_is_one_line(capsys, tmp_path, extra, match):
    import re

    rc, err = _record_main(
        capsys,
        "--robot",
        "hw/so101",
        "--teleop",
        "so101-leader",
        "--control-mode",
        "joint",
        "--root",
        str(tmp_path / "d"),
        *extra,
    )
    assert rc == 2 and re.search(match, err), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_no_workspace_refuses_cartesian_and_sim_cameras_on_a_physical_arm(rig, capsys, tmp_path):
    follower, _, folder, _ = rig
    robot = ["--robot", "hw/so101", "--robot-option", f"port={follower.port}"]
    robot += ["--robot-option", f"arm_id={FOLLOWER_ID}", "--robot-option", f"calibration_dir={folder}"]
    robot += ["--teleop", "so101-leader"]
    rc, err = _record_main(capsys, *robot, "--control-mode", "cartesian", "--root", str(tmp_path / "a"))
    assert rc == 2 and "control_mode='cartesian': robot 'hw/so101' has no scene workspace box" in err, err
    assert err.count("\n") == 1
    rc, err = _record_main(
        capsys, *robot, "--control-mode", "joint", "--cameras", "front", "--root", str(tmp_path / "b")
    )
    assert rc == 2 and "--cameras=front: robot 'hw/so101' is not simulated" in err, err
    assert err.count("\n") == 1
    # the refused runs released the port: the arm connects again
    from rcs.registry import make_robot

    arm = make_robot("hw/so101", **follower.robot_config, close_hold_s=0.0)
    arm.connect()
    arm.close()


def test_follower_dying_mid_recording_keeps_the_saved_episodes(rig, tmp_path):
    """The follower's bus dies during the second episode (its emulator is killed: a pulled cable): ``rcs record``
    stops with one line naming the robot and its port, and the episode saved before loads with lerobot."""
    from hardware.emulators.so101 import start_so101

    LONG_STEPS = 200  # noqa: N806 (10 s episodes at 20 Hz: the kill lands in the middle of the second)

    _, leader, folder, _ = rig
    follower = start_so101(calibration_dir=folder, arm_id="follower_dies", seed=3)
    root = tmp_path / "dies"
    proc = subprocess.Popen(
        [RCS, "record", "--robot", "hw/so101"]
        + ["--robot-option", f"port={follower.port}", "--robot-option", "arm_id=follower_dies"]
        + ["--robot-option", f"calibration_dir={folder}", "--teleop", "so101-leader"]
        + ["--teleop-option", f"port={leader.port}", "--teleop-option", f"leader_id={LEADER_ID}"]
        + ["--teleop-option", f"calibration_dir={folder}", "--control-mode", "joint", "--episodes", "3"]
        + ["--max-steps", str(LONG_STEPS), "--cameras", "none", "--root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if (root / "meta/rcs_episodes.jsonl").exists() and _episode_origins(root):
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(2.0)  # well into the second episode (10 s long)
        follower.kill()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        follower.close()
    assert proc.returncode not in (0, None), err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err[-3000:]
    assert "hw/so101" in lines[-1] and follower.port in lines[-1], lines[-3:]
    ds = LeRobotDataset("local/dies", root=root)
    # the episodes committed before the kill (one, or two if a loaded machine let the second finish before the
    # kill landed), whole; the one in progress is lost, never half-saved
    assert 1 <= ds.num_episodes < 3 and len(ds) == ds.num_episodes * LONG_STEPS
