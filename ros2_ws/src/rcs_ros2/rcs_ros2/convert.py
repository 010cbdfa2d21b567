"""Conversions between the robot channel's tensors (numpy, SI, quaternions w-first) and ROS 2 messages.

Frames follow REP-103/REP-105: odometry pose in the world frame, its twist in the body frame (child frame);
the IMU's linear acceleration is the specific force in the body frame (gravity included: +9.81 m/s^2 up at
rest); camera images are in the camera's optical frame.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Quaternion
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState

GRAVITY = 9.81  # m/s^2, along world -z


def quat_msg(q_wxyz: np.ndarray) -> Quaternion:
    """A ROS quaternion (x, y, z, w fields) from a (w, x, y, z) array."""
    return Quaternion(w=float(q_wxyz[0]), x=float(q_wxyz[1]), y=float(q_wxyz[2]), z=float(q_wxyz[3]))


def quat_wxyz(q: Quaternion) -> np.ndarray:
    """A (w, x, y, z) array from a ROS quaternion."""
    return np.array([q.w, q.x, q.y, q.z], dtype=np.float64)


def rotation(q_wxyz: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix (body -> world) of a unit (w, x, y, z) quaternion."""
    w, x, y, z = (float(v) for v in q_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def yaw_quaternion(yaw: float) -> np.ndarray:
    """(w, x, y, z) of a rotation by ``yaw`` (rad) about z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def joint_state(stamp: Time, names: list[str], t: dict[str, np.ndarray], has_gripper: bool) -> JointState:
    """JointState of an arm state. The gripper is the joint ``"gripper"``: its position is the stack's normalized
    width (0 closed, 1 open); its velocity and effort are not measured (NaN)."""
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = names
    if has_gripper:
        msg.position = np.concatenate([t["joint_positions"], t["gripper"]])
        msg.velocity = np.concatenate([t["joint_velocities"], [np.nan]])
        msg.effort = np.concatenate([t["joint_efforts"], [np.nan]])
    else:
        msg.position = np.asarray(t["joint_positions"], dtype=np.float64)
        msg.velocity = np.asarray(t["joint_velocities"], dtype=np.float64)
        msg.effort = np.asarray(t["joint_efforts"], dtype=np.float64)
    return msg


def tcp_pose(stamp: Time, frame: str, t: dict[str, np.ndarray]) -> PoseStamped:
    """The TCP pose in the arm's base frame."""
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    p = t["tcp_position"]
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in p)
    msg.pose.orientation = quat_msg(t["tcp_quaternion"])
    return msg


def odometry(stamp: Time, world: str, body: str, t: dict[str, np.ndarray]) -> Odometry:
    """Odometry: pose in ``world``, twist in the body frame ``body`` (REP-105)."""
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = world
    msg.child_frame_id = body
    p, q = t["position"], t["quaternion"]
    msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = (float(v) for v in p)
    msg.pose.pose.orientation = quat_msg(q)
    v_body = rotation(q).T @ t["linear_velocity"]
    msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z = (float(v) for v in v_body)
    w = t["angular_velocity"]
    msg.twist.twist.angular.x, msg.twist.twist.angular.y, msg.twist.twist.angular.z = (float(v) for v in w)
    return msg


def imu(stamp: Time, body: str, t: dict[str, np.ndarray]) -> Imu:
    """IMU-equivalent of a quadrotor state: orientation, body rates and specific force (body frame)."""
    msg = Imu()
    msg.header.stamp = stamp
    msg.header.frame_id = body
    q = t["quaternion"]
    msg.orientation = quat_msg(q)
    w = t["angular_velocity"]
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = (float(v) for v in w)
    f = rotation(q).T @ (t["linear_acceleration"] + np.array([0.0, 0.0, GRAVITY]))
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = (float(v) for v in f)
    return msg


def image(stamp: Time, frame: str, rgb: np.ndarray) -> Image:
    """An ``rgb8`` Image of an (H, W, 3) uint8 array."""
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(rgb.shape[1]) * 3
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def camera_info(stamp: Time, frame: str, intrinsics: list[float]) -> CameraInfo:
    """CameraInfo of an undistorted pinhole camera: ``intrinsics`` = [width, height, fx, fy, cx, cy]."""
    w, h, fx, fy, cx, cy = intrinsics
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.width, msg.height = int(w), int(h)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(fx), 0.0, float(cx), 0.0, float(fy), float(cy), 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(fx), 0.0, float(cx), 0.0, 0.0, float(fy), float(cy), 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg
