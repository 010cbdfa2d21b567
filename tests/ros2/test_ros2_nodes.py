"""robot_bridge and policy_node against real ROS 2 (Jazzy wheels): separate processes, real DDS, real ZeroMQ.

Each test starts ``rcs robot`` with a launch/robots config, the installed node with the installed parameter file
(the ones the launch files use; only the endpoints are overridden to free ports), and the independent rclpy test
node (ros_checks.py) that publishes, calls services and measures. Thresholds on rates are loose (shared 2-core
CI machines); everything about correctness (motion, rejections, latching) is exact.
"""

from __future__ import annotations

import os
import py_compile
import re
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.ros2.conftest import ROS_PYTHON

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "ros2_ws" / "src" / "rcs_ros2"

# The ROS venv is set up once per session (minutes on a fresh machine, seconds after); each test runs processes.
pytestmark = pytest.mark.timeout(900)


def test_launch_files_byte_compile_and_reference_installed_files() -> None:
    """launch_ros is not on PyPI, so the launch files cannot run here: they must at least compile, and every
    file they name must be one the package installs."""
    launch_files = sorted((PKG / "launch").glob("*.launch.py"))
    assert {p.name for p in launch_files} == {
        "sim_robot.launch.py",
        "policy_deployment.launch.py",
        "teleop_recording.launch.py",
    }
    configs = (
        {p.name for p in (PKG / "config").glob("*.yaml")}
        | {p.name for p in (REPO / "launch" / "robots").glob("*.yaml")}
        | {p.name for p in (REPO / "launch" / "policies").glob("*.json")}
    )
    for path in launch_files:
        py_compile.compile(str(path), doraise=True)
        text = path.read_text()
        assert "def generate_launch_description()" in text
        for name in re.findall(r'"([\w.]+\.(?:yaml|json))"', text):
            assert name in configs, f"{path.name} names {name}, which the package does not install"


def test_nodes_exit_cleanly_when_a_signal_races_the_executor(ros_env) -> None:
    """rclpy's SIGTERM handler can shut the context down while the executor builds its wait set: the node's main
    must still exit 0 (once a robot_bridge exited with 1 here under load), and a real RCLError must propagate."""
    done = subprocess.run(
        [str(ROS_PYTHON), str(Path(__file__).with_name("shutdown_race.py"))],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "'race_exit_code': 0, 'real_error_raised': True" in done.stdout


def test_parameter_files_declare_only_known_parameters(stack) -> None:
    files = {
        str(PKG / "config" / "robot_bridge_panda.yaml"): "rcs_ros2.robot_bridge",
        str(PKG / "config" / "robot_bridge_crazyflie.yaml"): "rcs_ros2.robot_bridge",
        str(PKG / "config" / "policy_node_panda.yaml"): "rcs_ros2.policy_node",
    }
    result = stack.checks("params", {"files": files})
    for path, info in result.items():
        assert info["undeclared"] == [], f"{path}: {info['undeclared']} are not declared by the node"
        assert info["keys"], path


def test_arm_bridge_state_commands_rejections_estop(stack) -> None:
    robot, state, command = stack.robot("sim_panda.yaml")
    bridge = stack.node(
        "robot_bridge", "robot_bridge_panda.yaml", {"state_endpoint": state, "command_endpoint": command}
    )
    bridge.wait_for("bridging sim/panda", timeout=60)
    r = stack.checks("arm", timeout=180)

    # state flows: joint states at (close to) the 500 Hz control rate, stamped with the capture time
    assert r["joint_names"] == [f"joint{i}" for i in range(1, 8)] + ["gripper"]
    assert r["joint_states_hz"] > 0.6 * 500, r["joint_states_hz"]
    assert 0.0 <= r["joint_state_stamp_age_s"] < 1.0
    assert r["image"] == [320, 240, "rgb8", 320 * 240 * 3]
    assert r["camera_info_k"][2] == pytest.approx(159.5) and r["camera_info_k"][8] == 1.0
    assert r["tcp_pose_frame"] == "link0"

    # bad messages: rejected with a logged reason, counted in diagnostics, and no motion
    log = bridge.text()
    for label, code in [
        ("bad_names", "names"),
        ("bad_nan", "non_finite"),
        ("bad_length", "shape"),
        ("bad_jump", "jump"),
        ("bad_fast", "jump"),
        ("bad_stale", "stale_timestamp"),
    ]:
        assert r[f"{label}_motion_rad"] < 2e-3, (label, r[f"{label}_motion_rad"])
        assert f"rejected [{code}]" in log, (label, code)
    assert "unknown names ['elbow']" in log
    assert "nan is not finite" in log
    assert "points[0].positions: 5 values for 7 joint_names" in log
    values = r["diag_after_bad"]["values"]
    assert int(values["server_rejected_names"]) >= 1 and int(values["server_rejected_non_finite"]) >= 1
    assert int(values["server_rejected_jump"]) >= 2
    assert int(values["bridge_rejected_shape"]) >= 1 and int(values["bridge_rejected_stale_timestamp"]) >= 1
    assert r["diag_after_bad"]["level"] == 1  # WARN
    assert float(values["loop_rate_hz"]) == 500.0

    # a valid trajectory moves the simulated robot to its last point (joint1 +0.2 rad), nothing else
    assert r["move_joint1_rad"] == pytest.approx(0.2, abs=0.01)
    assert r["move_others_max_rad"] < 0.01

    # e-stop latches: the next trajectory is rejected and nothing moves until reset; then it moves again
    assert r["estop_response"][0] is True
    assert r["estopped_motion_rad"] < 2e-3
    assert "rejected [estop]" in bridge.text()
    assert r["diag_estop"]["level"] == 2 and "e-stop latched" in r["diag_estop"]["message"]
    assert r["diag_estop"]["values"]["stage"] == "estop"
    assert r["reset_response"][0] is True
    assert r["after_reset_joint1_rad"] == pytest.approx(-0.2, abs=0.01)

    # clean shutdown on SIGTERM (bridge) and SIGINT (robot server)
    assert bridge.stop(signal.SIGTERM) == 0
    assert robot.stop(signal.SIGINT) == 0
    assert "Traceback" not in bridge.text()


def test_a_realtime_bridge_where_fifo_is_refused_warns_and_bridges(stack) -> None:
    """``realtime_priority`` on a machine that refuses SCHED_FIFO (root drops CAP_SYS_NICE with setpriv): the bridge
    warns and bridges with the default scheduler (libzmq aborted the node when its I/O thread was refused)."""
    if resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 70:
        pytest.skip("an rtprio limit permits SCHED_FIFO 70 here without the capability")
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_SYS_NICE")
        prefix = ["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice"]
    robot, state, command = stack.robot("sim_panda.yaml")
    bridge = stack.node(
        "robot_bridge",
        "robot_bridge_panda.yaml",
        {"state_endpoint": state, "command_endpoint": command, "realtime_priority": 70},
        prefix=prefix,
    )
    bridge.wait_for("bridging sim/panda", timeout=60)
    bridge.wait_for("realtime_priority=70 not permitted", timeout=30)  # the state thread's warning
    assert "ZeroMQ I/O threads keep the default scheduler: SCHED_FIFO priority 70 not permitted" in bridge.text()
    assert bridge.stop(signal.SIGINT) == 0
    assert robot.stop(signal.SIGTERM) == 0


def test_quadrotor_bridge_odometry_imu_setpoints(stack) -> None:
    robot, state, command = stack.robot("sim_crazyflie.yaml")
    bridge = stack.node(
        "robot_bridge", "robot_bridge_crazyflie.yaml", {"state_endpoint": state, "command_endpoint": command}
    )
    bridge.wait_for("bridging sim/crazyflie", timeout=60)
    r = stack.checks("quadrotor", timeout=180)
    assert r["odom_hz"] > 0.6 * 100
    assert r["odom_frames"] == ["world", "base_link"]
    ax, ay, az = r["imu_at_rest"]
    assert abs(ax) < 0.05 and abs(ay) < 0.05 and az == pytest.approx(9.81, abs=0.05)  # specific force at rest
    assert r["z_while_disarmed"] < 0.05 and "rejected [disarmed]" in bridge.text()
    assert r["arm_response"][0] is True
    assert r["z_after_takeoff"] == pytest.approx(0.5, abs=0.08)
    assert r["disarm_in_air_response"][0] is False and "airborne" in r["disarm_in_air_response"][1]
    assert r["estop_response"][0] is True
    assert r["z_after_estop"] < r["z_after_takeoff"] - 0.2  # e-stop lands (never cuts thrust in the air)
    assert r["diag"]["values"]["estop"] == "True"
    assert bridge.stop(signal.SIGINT) == 0
    assert robot.stop(signal.SIGTERM) == 0


def test_policy_node_publishes_chunks_that_the_bridge_executes(stack) -> None:
    endpoint = f"tcp://127.0.0.1:{stack.free_port()}"
    policy = stack.rcs(
        "serve", ["serve", "--policy", str(REPO / "launch" / "policies" / "panda_hold.json"), "--bind", endpoint]
    )
    policy.wait_for("serving", timeout=60)
    _, state, command = stack.robot("sim_panda.yaml")
    bridge = stack.node(
        "robot_bridge", "robot_bridge_panda.yaml", {"state_endpoint": state, "command_endpoint": command}
    )
    node = stack.node("policy_node", "policy_node_panda.yaml", {"policy_endpoint": endpoint})
    node.wait_for("policy panda-hold-home", timeout=60)
    r = stack.checks("policy", timeout=120)
    assert r["chunks"] >= 5
    assert r["joint_names"] == [f"joint{i}" for i in range(1, 8)] + ["gripper"]
    assert r["points"] == 10 and r["last_time_from_start"] == pytest.approx(0.18)
    # the chunk is stamped with the observation it answers: never ahead of the newest state, and fresh (judged on
    # the freshest chunk of the window: a starved checker reads older ones from its backlog)
    assert r["window"] >= 20 and len(r["chunk_stamp_behind_state_s"]) >= 20
    assert -0.5 < min(r["chunk_stamp_behind_state_s"]) < 1.0
    # the bridge executed them: accepted, and the arm holds the policy's home pose
    assert "rejected" not in bridge.text()
    home = [0.0, -0.7853981633974483, 0.0, -2.356194490192345, 0.0, 1.5707963267948966, 0.7853981633974483]
    assert r["joint_positions"][:7] == pytest.approx(home, abs=0.02)
    # The bridge stalls for 1.5 s, then drains the states the robot sent meanwhile. The node must not send those
    # to the policy (their stamps are old although they arrive now): no chunk answers a state taken in the stall.
    # (Chunks published just before the stall reach the bridge late and are rejected there as stale: by design.)
    s = stack.checks("stall", {"pid": bridge.p.pid, "stall_s": 1.5})
    stamps = s["chunk_stamps"]
    assert not [t for t in stamps if s["stopped"] + 0.05 < t < s["resumed"] - 0.25]
    assert max(stamps) > s["resumed"]  # and chunks come again once the states are current
    assert int(s["diag"]["values"]["states_dropped"]) > 300  # the bridge dropped the stall's backlog (~750 states)
    assert node.stop(signal.SIGINT) == 0
    assert bridge.stop(signal.SIGINT) == 0
