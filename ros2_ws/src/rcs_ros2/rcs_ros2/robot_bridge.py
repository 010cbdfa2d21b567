"""robot_bridge: a robot server (``rcs robot``) as a ROS 2 node.

Publishes (sensor data QoS: best effort, keep last 5; ``state_qos: reliable`` switches the state topics):

- arms: ``joint_states`` (sensor_msgs/JointState, every control tick), ``tcp_pose`` (geometry_msgs/PoseStamped)
- quadrotors: ``odom`` (nav_msgs/Odometry), ``imu`` (sensor_msgs/Imu)
- cameras: ``<camera>/image_raw`` (sensor_msgs/Image, rgb8) and ``<camera>/camera_info``
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): loop timing, watchdog stage, e-stop, safety
  interventions, rejected commands with the last reason

A bridge that falls behind the robot's rate (CPU load, a stall) drops the queued messages that lag the newest one of
their topic by more than ``max_state_lag_s`` (diagnostics ``states_dropped``): a state is never published late.

Subscribes (reliable, keep last 10), every command checked here (ROS-side: stamps, lengths) and by the robot
server (names, NaN, limits, jumps), then passed through the watchdog and the safety filter:

- arms: ``joint_trajectory`` (trajectory_msgs/JointTrajectory, a chunk with ``time_from_start``)
- ``target_pose`` (geometry_msgs/PoseStamped): arms move the TCP there (IK), quadrotors fly there (yaw from the
  orientation)
- quadrotors: ``setpoint_trajectory`` (trajectory_msgs/MultiDOFJointTrajectory, one joint: the vehicle)

Services: ``estop`` and ``reset`` (std_srvs/Trigger; the e-stop latches until reset), ``arm``
(std_srvs/SetBool: arm/disarm). A rejected command is logged with its reason and counted in diagnostics; the
robot keeps holding. Every parameter is declared (see ``PARAMETERS``) and loadable from a YAML file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
import zmq
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from rcs.control.priorities import realtime_io_threads
from rcs.geometry import yaw_of
from rcs.remote.client import RobotClient, RobotServerTimeout
from rcs.remote.wire import TOPIC_CAMERA, TOPIC_STATE, TOPIC_STATUS, Reply, rejected
from rcs_ros2 import convert
from rcs_ros2.common import (
    COMMAND_QOS,
    DIAGNOSTICS_QOS,
    STATE_QOS_PROFILES,
    declare,
    from_duration,
    from_time,
    run,
    to_time,
)

PARAMETERS: dict[str, tuple[Any, str]] = {
    "state_endpoint": ("tcp://127.0.0.1:5600", "robot server PUB endpoint (rcs robot state_endpoint)"),
    "command_endpoint": ("tcp://127.0.0.1:5601", "robot server ROUTER endpoint (rcs robot command_endpoint)"),
    "connect_timeout_s": (30.0, "wait this long for the robot server at start-up (s)"),
    "request_timeout_s": (1.0, "wait this long for the answer to a command (s)"),
    "state_qos": ("sensor_data", "QoS of the state topics: sensor_data (best effort) or reliable"),
    "publish_cameras": (True, "publish the cameras the robot server serves"),
    "publish_tcp_pose": (True, "arms: publish the TCP pose on tcp_pose"),
    "max_command_age_s": (0.5, "reject commands whose header.stamp is older than this (s); zero stamp = now"),
    "max_command_future_s": (0.05, "reject commands whose header.stamp is further ahead than this (s)"),
    "diagnostics_period_s": (1.0, "period of /diagnostics (s)"),
    "stale_state_s": (0.5, "diagnostics ERROR when no state arrived for this long (s)"),
    "max_state_lag_s": (0.05, "drop queued robot states older than the newest queued one by more than this (s)"),
    "warn_hold_s": (10.0, "diagnostics WARN for this long after a rejected command or a safety intervention (s)"),
    "realtime_priority": (0, "SCHED_FIFO priority (1-99) of the state thread; 0 keeps the default scheduler"),
}


class RobotBridge(Node):
    """The robot bridge node (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("rcs_robot_bridge")
        self.p = declare(self, PARAMETERS)
        if self.p["state_qos"] not in STATE_QOS_PROFILES:
            raise SystemExit(f"parameter state_qos={self.p['state_qos']!r}: one of {sorted(STATE_QOS_PROFILES)}")
        if self.p["realtime_priority"] > 0:  # ZeroMQ's I/O thread carries every state: same priority where permitted
            realtime_io_threads(zmq.Context.instance(), int(self.p["realtime_priority"]))
        topics = [TOPIC_STATE, TOPIC_STATUS] + ([TOPIC_CAMERA] if self.p["publish_cameras"] else [])
        self.client = RobotClient(
            self.p["command_endpoint"], self.p["state_endpoint"], topics, timeout_s=self.p["request_timeout_s"]
        )
        self.desc = self._connect()
        self.kind = self.desc["kind"]
        self.world_frame = self.desc["world_frame"]
        self.base_frame = self.desc["base_frame"]
        self.clock_offset = self.client.clock_offset_s or (time.time() - time.monotonic())
        self.status: dict[str, Any] = {}
        self.rejections: dict[str, int] = {}
        self.last_rejection = ""
        self.states = 0
        self.dropped = 0  # published messages of the robot server skipped because newer ones were queued
        self.last_state_wall = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._event_totals = 0  # rejections + interventions seen so far (diagnostics WARN when it grows)
        self._last_event = -float("inf")
        self.state_rate_hz = 0.0
        self._lock = threading.Lock()

        qos = STATE_QOS_PROFILES[self.p["state_qos"]]
        self.pubs: dict[str, Any] = {}
        if self.kind == "arm":
            self.names = list(self.desc["joint_names"]) + (["gripper"] if self.desc.get("gripper") else [])
            self.pubs["joint_states"] = self.create_publisher(JointState, "joint_states", qos)
            if self.p["publish_tcp_pose"]:
                self.pubs["tcp_pose"] = self.create_publisher(PoseStamped, "tcp_pose", qos)
            self.create_subscription(JointTrajectory, "joint_trajectory", self._on_joint_trajectory, COMMAND_QOS)
        else:
            self.pubs["odom"] = self.create_publisher(Odometry, "odom", qos)
            self.pubs["imu"] = self.create_publisher(Imu, "imu", qos)
            self.create_subscription(MultiDOFJointTrajectory, "setpoint_trajectory", self._on_multidof, COMMAND_QOS)
        self.create_subscription(PoseStamped, "target_pose", self._on_target_pose, COMMAND_QOS)
        self.camera_pubs: dict[str, tuple[Any, Any]] = {}
        if self.p["publish_cameras"]:
            for cam in self.desc.get("cameras", []):
                n = cam["name"]
                self.camera_pubs[n] = (
                    self.create_publisher(Image, f"{n}/image_raw", qos),
                    self.create_publisher(CameraInfo, f"{n}/camera_info", qos),
                )
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_service(Trigger, "estop", self._on_estop)
        self.create_service(Trigger, "reset", self._on_reset)
        self.create_service(SetBool, "arm", self._on_arm)
        self.create_timer(self.p["diagnostics_period_s"], self._publish_diagnostics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump_state, name="rcs-state-pump", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"bridging {self.desc['name']} ({self.kind}, {self.desc['rate_hz']:.0f} Hz) from "
            f"{self.p['state_endpoint']} / {self.p['command_endpoint']}"
        )

    def _connect(self) -> dict[str, Any]:
        end = time.monotonic() + self.p["connect_timeout_s"]
        while True:
            try:
                return self.client.describe(timeout_s=min(1.0, self.p["connect_timeout_s"]))
            except RobotServerTimeout as e:
                if time.monotonic() > end or not rclpy.ok():
                    self.get_logger().error(f"no robot server: {e}")
                    raise SystemExit(1) from None

    def close(self) -> None:
        """Stop the state thread and close the sockets."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.client.close()

    # -- state: robot server -> ROS ---------------------------------------------------------------------
    def _stamp(self, capture_monotonic: float) -> Any:
        return to_time(capture_monotonic + self.clock_offset)

    def _pump_state(self) -> None:
        prio = int(self.p["realtime_priority"])
        if prio > 0:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))  # this thread only (Linux)
            except (OSError, AttributeError) as e:
                self.get_logger().warning(f"realtime_priority={prio} not permitted ({e}); default scheduler")
        handlers: dict[bytes, Callable[[bytes, Any], None]] = {
            TOPIC_STATE: self._on_state,
            TOPIC_STATUS: self._on_status,
        }
        while not self._stop.is_set():
            try:
                # every queued message, less what lags the newest of its topic by > max_state_lag_s: behind the
                # server's rate (load, a stall), the backlog is dropped and counted rather than published late
                got, dropped = self.client.receive_recent(0.2, self.p["max_state_lag_s"])
            except Exception as e:  # noqa: BLE001 context terminated at shutdown
                if not self._stop.is_set():
                    self.get_logger().error(f"state thread stopped: {e}")
                return
            self.dropped += dropped
            for topic, msg in got:
                handler = handlers.get(topic, self._on_camera if topic.startswith(TOPIC_CAMERA) else None)
                if handler is None:
                    continue
                try:
                    handler(topic, msg)
                except Exception as e:  # noqa: BLE001 rclpy's signal handler invalidates the context before close()
                    if self._stop.is_set() or not rclpy.ok():
                        return
                    self.get_logger().error(f"state message dropped: {type(e).__name__}: {e}")

    def _on_state(self, topic: bytes, msg: Any) -> None:
        stamp = self._stamp(msg.header.capture_time)
        t = msg.tensors
        if self.kind == "arm":
            self.pubs["joint_states"].publish(convert.joint_state(stamp, self.names, t, bool(self.desc.get("gripper"))))
            if "tcp_pose" in self.pubs:
                self.pubs["tcp_pose"].publish(convert.tcp_pose(stamp, self.base_frame, t))
        else:
            self.pubs["odom"].publish(convert.odometry(stamp, self.world_frame, self.base_frame, t))
            self.pubs["imu"].publish(convert.imu(stamp, self.base_frame, t))
        self.states += 1
        self.last_state_wall = time.monotonic()

    def _on_status(self, topic: bytes, msg: Any) -> None:
        with self._lock:
            self.status = msg.meta
        offset = msg.meta.get("clock_offset_s")
        if isinstance(offset, (int, float)):
            self.clock_offset = float(offset)

    def _on_camera(self, topic: bytes, msg: Any) -> None:
        name = msg.meta.get("name")
        pubs = self.camera_pubs.get(name)
        if pubs is None or "image" not in msg.tensors:
            return
        stamp = self._stamp(msg.header.capture_time)
        frame = f"{name}_optical_frame"
        pubs[0].publish(convert.image(stamp, frame, msg.tensors["image"]))
        pubs[1].publish(convert.camera_info(stamp, frame, msg.meta.get("intrinsics", [0, 0, 0, 0, 0, 0])))

    # -- commands: ROS -> robot server ------------------------------------------------------------------
    def _age(self, stamp: Any, field: str) -> float | Reply:
        """Seconds since the command's stamp (0 for a zero stamp, ROS' "now"), or a rejection."""
        t = from_time(stamp)
        if t == 0.0:
            return 0.0
        age = self.get_clock().now().nanoseconds * 1e-9 - t
        if age > self.p["max_command_age_s"]:
            return rejected("stale_timestamp", field, f"{age:.3f} s old", f"<= {self.p['max_command_age_s']} s")
        if age < -self.p["max_command_future_s"]:
            return rejected(
                "future_timestamp", field, f"{-age:.3f} s in the future", f"<= {self.p['max_command_future_s']} s ahead"
            )
        return max(0.0, age)

    def _handle(self, what: str, build: Callable[[], Reply]) -> Reply:
        """Run a command, log and count a rejection (the robot holds), never raise into rclpy."""
        try:
            reply = build()
        except RobotServerTimeout as e:
            reply = rejected("timeout", "robot_server", str(e))
        except Exception as e:  # noqa: BLE001 a malformed message that slipped through: reject, keep the node alive
            reply = rejected("malformed", what, f"{type(e).__name__}: {e}")
        if reply.ok:
            self.get_logger().debug(f"{what} accepted: {reply.info}")
        else:
            with self._lock:
                self.rejections[reply.code] = self.rejections.get(reply.code, 0) + 1
                self.last_rejection = f"{what} {reply}"
            self.get_logger().warning(f"{what} {reply}; robot holds")
        return reply

    def _on_joint_trajectory(self, msg: JointTrajectory) -> None:
        self._handle("joint_trajectory", lambda: self._joint_trajectory(msg))

    def _joint_trajectory(self, msg: JointTrajectory) -> Reply:
        age = self._age(msg.header.stamp, "header.stamp")
        if isinstance(age, Reply):
            return age
        names = list(msg.joint_names)
        if not msg.points:
            return rejected("shape", "points", "no points", ">= 1 point")
        n = len(names)
        with_vel = all(len(p.velocities) == n for p in msg.points)
        for i, p in enumerate(msg.points):
            if len(p.positions) != n:
                return rejected(
                    "shape",
                    f"points[{i}].positions",
                    f"{len(p.positions)} values for {n} joint_names",
                    "one position per joint name",
                )
            if len(p.velocities) not in (0, n) or (len(p.velocities) == 0 and with_vel):
                return rejected(
                    "shape",
                    f"points[{i}].velocities",
                    f"{len(p.velocities)} values for {n} joint_names",
                    "none, or one per joint name in every point",
                )
        positions = np.array([p.positions for p in msg.points], dtype=np.float64).reshape(len(msg.points), n)
        times = np.array([from_duration(p.time_from_start) for p in msg.points])
        velocities = np.array([p.velocities for p in msg.points], dtype=np.float64) if with_vel and n else None
        return self.client.trajectory(names, positions, times, velocities, age_s=age)

    def _on_target_pose(self, msg: PoseStamped) -> None:
        def build() -> Reply:
            age = self._age(msg.header.stamp, "header.stamp")
            if isinstance(age, Reply):
                return age
            p = msg.pose.position
            return self.client.pose(msg.header.frame_id, [p.x, p.y, p.z], convert.quat_wxyz(msg.pose.orientation), age)

        self._handle("target_pose", build)

    def _on_multidof(self, msg: MultiDOFJointTrajectory) -> None:
        self._handle("setpoint_trajectory", lambda: self._multidof(msg))

    def _multidof(self, msg: MultiDOFJointTrajectory) -> Reply:
        age = self._age(msg.header.stamp, "header.stamp")
        if isinstance(age, Reply):
            return age
        if len(msg.joint_names) != 1:
            return rejected(
                "names", "joint_names", f"{list(msg.joint_names)}", f"exactly one: the vehicle ({self.base_frame!r})"
            )
        if msg.header.frame_id not in ("", self.world_frame):
            return rejected("frame", "header.frame_id", repr(msg.header.frame_id), repr(self.world_frame))
        if not msg.points:
            return rejected("shape", "points", "no points", ">= 1 point")
        rows = []
        for i, p in enumerate(msg.points):
            if len(p.transforms) != 1:
                return rejected("shape", f"points[{i}].transforms", f"{len(p.transforms)} transforms", "one per joint")
            tr = p.transforms[0]
            q = convert.quat_wxyz(tr.rotation)
            norm = float(np.linalg.norm(q))
            if not 0.9 < norm < 1.1:
                return rejected(
                    "quaternion", f"points[{i}].transforms[0].rotation", f"|q| = {norm:.4g}", "a unit quaternion"
                )
            rows.append([tr.translation.x, tr.translation.y, tr.translation.z, yaw_of(q / norm)])
        times = np.array([from_duration(p.time_from_start) for p in msg.points])
        return self.client.trajectory(["x", "y", "z", "yaw"], np.array(rows), times, age_s=age)

    # -- services ---------------------------------------------------------------------------------------
    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        reply = self._handle("estop", lambda: self.client.estop("ROS service estop"))
        response.success, response.message = reply.ok, "e-stop latched" if reply.ok else str(reply)
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        reply = self._handle("reset", self.client.reset)
        response.success, response.message = (
            reply.ok,
            "e-stop released; robot holds until the next command" if reply.ok else str(reply),
        )
        return response

    def _on_arm(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        reply = self._handle("arm" if request.data else "disarm", lambda: self.client.set_armed(bool(request.data)))
        response.success, response.message = (
            reply.ok,
            ("armed" if request.data else "disarmed") if reply.ok else str(reply),
        )
        return response

    # -- diagnostics ------------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        t0, n0 = self._rate_mark
        if now > t0:
            self.state_rate_hz = (self.states - n0) / (now - t0)
        self._rate_mark = (now, self.states)
        with self._lock:
            status, rejections, last = dict(self.status), dict(self.rejections), self.last_rejection
        loop = status.get("loop", {})
        lat = loop.get("lateness_us", {})
        values = {
            "stage": status.get("stage", "unknown"),
            "estop": status.get("estop", "unknown"),
            "estop_reason": status.get("estop_reason", ""),
            "armed": status.get("armed", "unknown"),
            "engaged": status.get("engaged", "unknown"),
            "loop_rate_hz": loop.get("rate_hz", ""),
            "loop_achieved_rate_hz": loop.get("achieved_rate_hz", ""),
            "loop_lateness_p50_us": lat.get("p50", ""),
            "loop_lateness_p99_us": lat.get("p99", ""),
            "loop_lateness_max_us": lat.get("max", ""),
            "loop_overruns": loop.get("overruns", ""),
            "loop_missed_ticks": loop.get("missed_ticks", ""),
            "loop_rt_scheduling": loop.get("rt_scheduling", ""),
            "state_rate_hz": round(self.state_rate_hz, 1),
            "states_dropped": self.dropped,
            "commands_accepted": status.get("commands_accepted", ""),
            "last_rejection": last or status.get("last_rejection", ""),
        }
        for key, prefix in (
            ("safety_interventions", "safety_"),
            ("command_rejections", "server_rejected_"),
            ("chunk_rejections", "chunk_rejected_"),
        ):
            for reason, count in status.get(key, {}).items():
                values[f"{prefix}{reason}"] = count
        for reason, count in rejections.items():
            values[f"bridge_rejected_{reason}"] = count
        totals = (
            sum(rejections.values())
            + sum(status.get("command_rejections", {}).values())
            + sum(status.get("safety_interventions", {}).values())
        )
        if totals > self._event_totals:
            self._event_totals, self._last_event = totals, now
        silent = now - self.last_state_wall if self.last_state_wall else float("inf")
        if silent > self.p["stale_state_s"]:
            level, message = DiagnosticStatus.ERROR, f"no state from the robot server for {silent:.1f} s"
        elif status.get("estop"):
            level, message = DiagnosticStatus.ERROR, f"e-stop latched: {status.get('estop_reason', '')}"
        elif now - self._last_event <= self.p["warn_hold_s"]:
            level, message = DiagnosticStatus.WARN, values["last_rejection"] or "safety filter intervened"
        else:
            level, message = DiagnosticStatus.OK, f"{values['stage']}, {self.state_rate_hz:.0f} Hz state"
        st = DiagnosticStatus(
            level=level,
            name=f"rcs_robot_bridge: {self.desc['name']}",
            message=str(message)[:500],
            hardware_id=self.desc["name"],
        )
        st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self.diag_pub.publish(arr)


def main(args: list[str] | None = None) -> int:
    """Console script ``robot_bridge``."""
    return run(RobotBridge, args)


if __name__ == "__main__":
    raise SystemExit(main())
