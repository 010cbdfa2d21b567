"""An independent rclpy test node, run in .venv-ros2 by tests/ros2 (not collected by pytest: no test_ prefix).

``python ros_checks.py SCENARIO [JSON args]`` talks to already running nodes over real DDS and prints one JSON
object with what it measured; the pytest side asserts on it. Scenarios: ``arm``, ``quadrotor``, ``policy``,
``stall``, ``params``. Every wait has a timeout >= 10 s and waits for the publisher/subscription match first.
"""

from __future__ import annotations

import bisect
import importlib
import json
import math
import os
import signal
import sys
import time
from typing import Any

import numpy as np
import rclpy
import yaml
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Transform
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import (
    JointTrajectory,
    JointTrajectoryPoint,
    MultiDOFJointTrajectory,
    MultiDOFJointTrajectoryPoint,
)

RELIABLE = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, depth=10)
TIMEOUT = 20.0


def stamp_s(msg: Any) -> float:
    """A message's header.stamp in seconds."""
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Checker(Node):
    def __init__(self) -> None:
        super().__init__("rcs_test_checker")
        self.msgs: dict[str, list[tuple[float, Any]]] = {}
        self.diag: list[DiagnosticArray] = []

    def record(self, msg_type: type, topic: str, qos: Any = qos_profile_sensor_data, keep: int = 100000) -> Any:
        self.msgs[topic] = []

        def cb(m: Any) -> None:
            buf = self.msgs[topic]
            buf.append((time.monotonic(), m))
            if len(buf) > keep:
                del buf[: len(buf) - keep]

        return self.create_subscription(msg_type, topic, cb, qos)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.01)

    def spin_until(self, cond: Any, timeout: float = TIMEOUT, what: str = "") -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            rclpy.spin_once(self, timeout_sec=0.02)

    def latest(self, topic: str) -> Any:
        self.spin_until(lambda: bool(self.msgs[topic]), what=f"a message on {topic}")
        return self.msgs[topic][-1][1]

    def call(self, srv_type: type, name: str, request: Any) -> Any:
        client = self.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=TIMEOUT):
            raise TimeoutError(f"service {name} not available")
        future = client.call_async(request)
        self.spin_until(future.done, what=f"service {name}")
        return future.result()

    def diagnostics(self) -> dict[str, Any]:
        """The latest rcs_robot_bridge status published after this call: level, message, values."""
        n = len(self.msgs["/diagnostics"])
        self.spin_until(lambda: len(self.msgs["/diagnostics"]) > n, what="/diagnostics")
        st = self.msgs["/diagnostics"][-1][1].status[0]
        return {
            "level": int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level),
            "message": st.message,
            "values": {kv.key: kv.value for kv in st.values},
            "name": st.name,
        }


def duration(s: float) -> Duration:
    return Duration(sec=int(s), nanosec=round((s - int(s)) * 1e9))


def trajectory(names: list[str], points: list[list[float]], times: list[float], stamp: Any = None) -> JointTrajectory:
    msg = JointTrajectory()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.joint_names = names
    for p, t in zip(points, times, strict=True):
        pt = JointTrajectoryPoint()
        pt.positions = [float(x) for x in p]
        pt.time_from_start = duration(t)
        msg.points.append(pt)
    return msg


def wait_match(node: Checker, pub: Any, what: str) -> None:
    node.spin_until(lambda: pub.get_subscription_count() > 0, what=f"a subscriber on {what}")


def rate(node: Checker, topic: str, seconds: float) -> float:
    node.msgs[topic].clear()
    node.spin_for(seconds)
    stamps = [t for t, _ in node.msgs[topic]]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def positions(node: Checker) -> np.ndarray:
    node.msgs["joint_states"].clear()
    return np.array(node.latest("joint_states").position[:7])


def settled_positions(node: Checker, at_least: float, timeout: float = 10.0) -> np.ndarray:
    """Joint positions once the arm has come to rest (rad): spin ``at_least`` s (the trajectory's duration and
    then some), then until no joint moved more than 0.2 mrad over 0.2 s, for at most ``timeout`` s.

    The robot server's loop runs on the host's wall clock, so on a loaded host a trajectory can finish later than
    its time_from_start: the checks assert where the arm ends up, not when.
    """
    node.spin_for(at_least)
    end = time.monotonic() + timeout
    last = positions(node)
    while time.monotonic() < end:
        node.spin_for(0.2)
        now = positions(node)
        if np.max(np.abs(now - last)) < 2e-4:
            return now
        last = now
    return last


def scenario_arm(node: Checker, args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node.record(JointState, "joint_states", keep=5000)
    node.record(PoseStamped, "tcp_pose", keep=10)
    node.record(Image, "front/image_raw", keep=3)
    node.record(CameraInfo, "front/camera_info", keep=3)
    node.record(DiagnosticArray, "/diagnostics", RELIABLE, keep=50)
    pub = node.create_publisher(JointTrajectory, "joint_trajectory", RELIABLE)
    node.spin_until(lambda: len(node.msgs["joint_states"]) > 10, what="joint_states")
    wait_match(node, pub, "joint_trajectory")
    node.msgs["joint_states"].clear()
    js = node.latest("joint_states")
    out["joint_state_stamp_age_s"] = time.time() - stamp_s(js)
    out["joint_names"] = list(js.name)
    out["joint_states_hz"] = rate(node, "joint_states", 3.0)
    img = node.latest("front/image_raw")
    info = node.latest("front/camera_info")
    out["image"] = [img.width, img.height, img.encoding, len(img.data)]
    out["camera_info_k"] = list(info.k)
    out["tcp_pose_frame"] = node.latest("tcp_pose").header.frame_id
    names = list(js.name[:7])

    def settle_and_check(label: str, msg: JointTrajectory, wait: float = 0.8) -> None:
        before = positions(node)
        pub.publish(msg)
        node.spin_for(wait)
        after = positions(node)
        out[f"{label}_motion_rad"] = float(np.max(np.abs(after - before)))

    q = positions(node)
    goal = q.copy()
    goal[0] += 0.2
    # bad messages first: each must be rejected and the arm must not move
    settle_and_check("bad_names", trajectory(names[:6] + ["elbow"], [goal], [1.0]))
    settle_and_check("bad_nan", trajectory(names, [[math.nan] + list(goal[1:])], [1.0]))
    wrong_len = trajectory(names, [goal], [1.0])
    wrong_len.points[0].positions = [float(x) for x in goal[:5]]
    settle_and_check("bad_length", wrong_len)
    settle_and_check("bad_jump", trajectory(names, [q + np.r_[0.5, np.zeros(6)]], [0.0]))
    settle_and_check("bad_fast", trajectory(names, [q + np.r_[1.5, np.zeros(6)]], [0.1]))
    old = node.get_clock().now() - rclpy.duration.Duration(seconds=5.0)
    settle_and_check("bad_stale", trajectory(names, [goal], [1.0], stamp=old.to_msg()))
    diag = node.diagnostics()
    out["diag_after_bad"] = diag
    # a valid trajectory moves the arm
    before = positions(node)
    pub.publish(trajectory(names, [goal], [1.0]))
    after = settled_positions(node, at_least=2.5)
    out["move_joint1_rad"] = float(after[0] - before[0])
    out["move_others_max_rad"] = float(np.max(np.abs(after[1:] - before[1:])))
    # e-stop latches: a valid trajectory is then rejected and nothing moves until reset
    res = node.call(Trigger, "estop", Trigger.Request())
    out["estop_response"] = [res.success, res.message]
    node.spin_for(0.5)
    q = positions(node)
    settle_and_check("estopped", trajectory(names, [q - np.r_[0.2, np.zeros(6)]], [1.0]), wait=1.5)
    out["diag_estop"] = node.diagnostics()
    res = node.call(Trigger, "reset", Trigger.Request())
    out["reset_response"] = [res.success, res.message]
    q = positions(node)
    pub.publish(trajectory(names, [q - np.r_[0.2, np.zeros(6)]], [1.0]))
    out["after_reset_joint1_rad"] = float(settled_positions(node, at_least=2.5)[0] - q[0])
    return out


def scenario_quadrotor(node: Checker, args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node.record(Odometry, "odom", keep=2000)
    node.record(Imu, "imu", keep=50)
    node.record(DiagnosticArray, "/diagnostics", RELIABLE, keep=50)
    target = node.create_publisher(PoseStamped, "target_pose", RELIABLE)
    setpoints = node.create_publisher(MultiDOFJointTrajectory, "setpoint_trajectory", RELIABLE)
    node.spin_until(lambda: len(node.msgs["odom"]) > 10, what="odom")
    wait_match(node, target, "target_pose")
    wait_match(node, setpoints, "setpoint_trajectory")
    out["odom_hz"] = rate(node, "odom", 2.0)
    imu = node.latest("imu")
    out["imu_at_rest"] = [imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z]
    odom = node.latest("odom")
    out["odom_frames"] = [odom.header.frame_id, odom.child_frame_id]

    def pose(z: float) -> PoseStamped:
        m = PoseStamped()
        m.header.frame_id = "world"
        m.pose.position.z = z
        m.pose.orientation.w = 1.0
        return m

    # disarmed: a setpoint is rejected, nothing moves
    target.publish(pose(0.5))
    node.spin_for(1.0)
    out["z_while_disarmed"] = node.latest("odom").pose.pose.position.z
    res = node.call(SetBool, "arm", SetBool.Request(data=True))
    out["arm_response"] = [res.success, res.message]
    # take off with a timed setpoint trajectory, then hold with a target pose (kept fresh like offboard mode)
    traj = MultiDOFJointTrajectory()
    traj.header.frame_id = "world"
    traj.joint_names = ["base_link"]
    for z, t in [(0.25, 1.0), (0.5, 2.0)]:
        pt = MultiDOFJointTrajectoryPoint()
        tr = Transform()
        tr.translation.z = z
        tr.rotation.w = 1.0
        pt.transforms = [tr]
        pt.time_from_start = duration(t)
        traj.points.append(pt)
    setpoints.publish(traj)
    node.spin_for(2.0)
    for _ in range(20):
        target.publish(pose(0.5))
        node.spin_for(0.1)
    out["z_after_takeoff"] = node.latest("odom").pose.pose.position.z
    res = node.call(SetBool, "arm", SetBool.Request(data=False))
    out["disarm_in_air_response"] = [res.success, res.message]
    res = node.call(Trigger, "estop", Trigger.Request())
    out["estop_response"] = [res.success, res.message]
    node.spin_for(4.0)
    out["z_after_estop"] = node.latest("odom").pose.pose.position.z
    out["diag"] = node.diagnostics()
    return out


def scenario_policy(node: Checker, args: dict[str, Any]) -> dict[str, Any]:
    node.record(JointTrajectory, "joint_trajectory", RELIABLE)
    node.record(JointState, "joint_states")
    node.spin_until(lambda: len(node.msgs["joint_trajectory"]) >= 5, what="policy chunks on joint_trajectory")
    node.spin_until(lambda: bool(node.msgs["joint_states"]), what="joint_states")  # may match later than chunks
    # Then a window of chunks. A starved checker (seen in CI) takes a burst of chunks up to 2.5 s old out of its
    # reader's backlog while its joint states are already current again, so the freshness of the node's stamps is
    # judged on the freshest chunk of the window, and "ahead of the state" on every chunk.
    first = len(node.msgs["joint_trajectory"])
    node.spin_until(lambda: len(node.msgs["joint_trajectory"]) >= first + 20, what="a window of 20 policy chunks")
    chunks = node.msgs["joint_trajectory"]
    states = node.msgs["joint_states"]
    received = [t for t, _ in states]
    behind = []
    for t, msg in chunks[first:]:
        newest = bisect.bisect_right(received, t) - 1  # the newest joint state the checker had when the chunk came
        if newest >= 0:
            behind.append(stamp_s(states[newest][1]) - stamp_s(msg))
    msg = chunks[-1][1]
    js = node.latest("joint_states")
    return {
        "chunks": len(chunks),
        "window": len(chunks) - first,
        "joint_names": list(msg.joint_names),
        "points": len(msg.points),
        "first_positions": list(msg.points[0].positions),
        "last_time_from_start": msg.points[-1].time_from_start.sec + msg.points[-1].time_from_start.nanosec * 1e-9,
        "chunk_stamp_behind_state_s": behind,
        "joint_positions": list(js.position),
    }


def scenario_stall(node: Checker, args: dict[str, Any]) -> dict[str, Any]:
    """Stop the process ``args["pid"]`` (SIGSTOP) for ``args["stall_s"]`` while recording the policy's chunks."""
    node.record(JointTrajectory, "joint_trajectory", RELIABLE)
    node.record(DiagnosticArray, "/diagnostics", RELIABLE)
    node.spin_until(lambda: len(node.msgs["joint_trajectory"]) >= 3, what="policy chunks on joint_trajectory")
    stopped = time.time()
    os.kill(args["pid"], signal.SIGSTOP)
    try:
        node.spin_for(args["stall_s"])
    finally:
        resumed = time.time()
        os.kill(args["pid"], signal.SIGCONT)
    node.spin_for(2.0)
    return {
        "stopped": stopped,
        "resumed": resumed,
        "diag": node.diagnostics(),
        "chunk_stamps": [stamp_s(m) for _, m in node.msgs["joint_trajectory"]],
    }


def scenario_params(node: Checker, args: dict[str, Any]) -> dict[str, Any]:
    """Every key of each parameter file is a declared parameter of its node."""
    out = {}
    for path, module in args["files"].items():
        declared = importlib.import_module(module).PARAMETERS
        with open(path) as f:
            data = yaml.safe_load(f)
        keys = set(data["/**"]["ros__parameters"])
        out[path] = {"undeclared": sorted(keys - set(declared)), "keys": sorted(keys)}
    return out


SCENARIOS = {
    "arm": scenario_arm,
    "quadrotor": scenario_quadrotor,
    "policy": scenario_policy,
    "stall": scenario_stall,
    "params": scenario_params,
}


def main() -> int:
    name = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    rclpy.init()
    node = Checker()
    try:
        result = SCENARIOS[name](node, args)
        sys.stdout.write(json.dumps({"ok": True, "result": result}, default=str) + "\n")
        return 0
    except Exception as e:  # noqa: BLE001 report, let pytest fail with the message
        sys.stdout.write(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
        return 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
