"""What both nodes share: QoS profiles (ROS conventions), time conversion, parameter declaration, main()."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import rclpy
from builtin_interfaces.msg import Duration, Time
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

#: Sensor data (joint states, images, odometry, IMU): best effort, keep the last 5 (REP-2003 / rclpy's preset).
SENSOR_QOS = qos_profile_sensor_data
#: Commands (trajectories, targets): reliable, keep the last 10, volatile.
COMMAND_QOS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE,
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    durability=DurabilityPolicy.VOLATILE,
)
#: /diagnostics: reliable, depth 10 (what diagnostic_aggregator subscribes with).
DIAGNOSTICS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)

STATE_QOS_PROFILES: dict[str, QoSProfile] = {
    "sensor_data": SENSOR_QOS,
    "reliable": QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10),
}


def to_time(seconds: float) -> Time:
    """A ``builtin_interfaces/Time`` from seconds since the epoch."""
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=min(999_999_999, round((seconds - sec) * 1e9)))


def from_time(stamp: Time) -> float:
    """Seconds since the epoch of a stamp (0 for the zero stamp)."""
    return stamp.sec + stamp.nanosec * 1e-9


def from_duration(d: Duration) -> float:
    """Seconds of a ``builtin_interfaces/Duration``."""
    return d.sec + d.nanosec * 1e-9


def to_duration(seconds: float) -> Duration:
    """A ``builtin_interfaces/Duration`` of ``seconds`` (>= 0)."""
    sec = math.floor(seconds)
    return Duration(sec=int(sec), nanosec=min(999_999_999, round((seconds - sec) * 1e9)))


def declare(node: Node, params: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    """Declare every parameter (default, description) and return their values (after YAML/CLI overrides)."""
    for name, (default, text) in params.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=text))
    return {name: node.get_parameter(name).value for name in params}


def shut_down_by_signal(error: BaseException) -> bool:
    """Whether ``error`` is rclpy's shutdown race rather than a failure (workaround, the one place for it).

    rclpy's signal handler shuts the context down asynchronously; an executor that is building its wait set at
    that moment raises ``RCLError: failed to initialize wait set: the given context is not valid`` instead of
    ``ExternalShutdownException`` (https://github.com/ros2/rclpy/issues/1166,
    https://github.com/ros-visualization/rqt/issues/357). Seen here about once in 20 SIGTERMs on a loaded
    2-core machine (robot_bridge exited with 1). It is a requested shutdown when the context is no longer ok.
    """
    return isinstance(error, RuntimeError) and "context is not valid" in str(error) and not rclpy.ok()


def run(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """rclpy main: build the node, spin until SIGINT/SIGTERM (rclpy's handlers), close it, shut down cleanly."""
    rclpy.init(args=args)
    node: Node | None = None
    code = 0
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError as e:  # rclpy's RCLError derives from RuntimeError
        if not shut_down_by_signal(e):
            raise
    except SystemExit as e:
        code = int(e.code) if isinstance(e.code, int) else 1
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
