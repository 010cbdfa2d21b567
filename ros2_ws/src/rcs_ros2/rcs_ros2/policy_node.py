"""policy_node: a served policy (``rcs serve``) whose action chunks are published as JointTrajectory.

For controllers that live in ROS (a joint_trajectory_controller, or this package's robot_bridge): the node
subscribes to the observations the policy needs (``joint_states`` and, optionally, camera images), sends them
to the policy server with :class:`rcs.serving.client.PolicyClient` (handshake: the server's schema must equal
the one these parameters describe, or the node refuses to run), and publishes each chunk on
``joint_trajectory`` (reliable): ``header.stamp`` is the observation's stamp, point ``i`` has
``time_from_start = i * policy_dt``, so a controller knows which points are already in the past (real-time
chunking: the chunk starts where the observation was taken).

Observation vector ``state_feature``: the ``joint_names`` positions of the latest JointState in that order
(the gripper, if listed, is the stack's normalized width). A JointState older than ``max_state_age_s`` is not
used (no request, no chunk: the downstream controller's own timeout applies). Its age is the larger of the time
since it arrived and the time since its ``header.stamp`` by this node's clock: a state that arrives late (a
publisher draining a backlog after a stall) is as stale as one that stopped arriving.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rcs.serving.client import (
    DeadlineExceeded,
    HandshakeTimeout,
    PolicyClient,
    SchemaMismatchError,
    ServerError,
    SessionLost,
)
from rcs.serving.protocol import Schema, TensorSpec
from rcs_ros2.common import COMMAND_QOS, SENSOR_QOS, declare, from_time, run, to_duration

PARAMETERS: dict[str, tuple[Any, str]] = {
    "policy_endpoint": ("tcp://127.0.0.1:5555", "policy server endpoint (rcs serve --bind)"),
    "joint_names": (["joint1"], "action and state element names, in the policy's order"),
    "state_feature": ("observation.state", "name of the state observation tensor"),
    "state_dtype": ("float32", "dtype of the state tensor"),
    "state_unit": ("rad", "unit string of the state tensor in the schema"),
    "action_feature": ("action", "name of the action tensor"),
    "action_dtype": ("float32", "dtype of the action tensor"),
    "action_unit": ("rad", "unit string of the action tensor in the schema"),
    "chunk_size": (10, "actions per chunk"),
    "policy_dt": (0.02, "seconds between the actions of a chunk"),
    "request_period_s": (0.1, "time between policy requests (s)"),
    "budget_s": (0.1, "time budget of one request (s)"),
    "max_state_age_s": (0.2, "skip a request when the latest joint state (stamp or arrival) is older than this (s)"),
    "image_features": ([""], "observation image tensor names (e.g. observation.images.front); [''] for none"),
    "image_topics": ([""], "Image topic of each image feature, same order"),
    "image_height": (240, "image height (px) of every image feature"),
    "image_width": (320, "image width (px) of every image feature"),
    "handshake_timeout_s": (30.0, "wait this long for the policy server at start-up (s)"),
}


class PolicyNode(Node):
    """The policy node (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("rcs_policy_node")
        self.p = declare(self, PARAMETERS)
        self.joint_names = [str(n) for n in self.p["joint_names"]]
        images = [(f, t) for f, t in zip(self.p["image_features"], self.p["image_topics"], strict=False) if f]
        if len([f for f in self.p["image_features"] if f]) != len([t for t in self.p["image_topics"] if t]):
            raise SystemExit("parameters image_features and image_topics must have the same length")
        self.schema = self._schema(images)
        self.client = PolicyClient(self.p["policy_endpoint"], self.schema, name="rcs_ros2 policy_node")
        self._handshake()
        self.latest_state: tuple[float, float, np.ndarray] | None = None  # (stamp s, monotonic s, vector)
        self.latest_images: dict[str, np.ndarray] = {}
        self.chunks = 0
        self.skipped: dict[str, int] = {}
        self.create_subscription(JointState, "joint_states", self._on_joint_state, SENSOR_QOS)
        for feature, topic in images:
            self.create_subscription(Image, topic, lambda m, f=feature: self._on_image(f, m), SENSOR_QOS)
        self.pub = self.create_publisher(JointTrajectory, "joint_trajectory", COMMAND_QOS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rcs-policy-requests", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"policy {self.client.welcome.checkpoint_id if self.client.welcome else '?'} "
            f"at {self.p['policy_endpoint']}: chunks of {self.schema.chunk_size} x "
            f"{len(self.joint_names)} every {self.p['request_period_s']} s"
        )

    def _schema(self, images: list[tuple[str, str]]) -> Schema:
        names = tuple(self.joint_names)
        obs = [TensorSpec(self.p["state_feature"], (len(names),), self.p["state_dtype"], self.p["state_unit"], names)]
        for feature, _ in images:
            obs.append(TensorSpec(feature, (self.p["image_height"], self.p["image_width"], 3), "uint8", "px"))
        action = TensorSpec(
            self.p["action_feature"],
            (self.p["chunk_size"], len(names)),
            self.p["action_dtype"],
            self.p["action_unit"],
            names,
        )
        return Schema(tuple(obs), action, float(self.p["policy_dt"]))

    def _handshake(self) -> None:
        end = time.monotonic() + self.p["handshake_timeout_s"]
        while True:
            try:
                self.client.handshake(timeout_s=1.0)
                return
            except SchemaMismatchError as e:
                self.get_logger().error(f"refusing to run: {e}")
                raise SystemExit(1) from None
            except HandshakeTimeout as e:
                if time.monotonic() > end:
                    self.get_logger().error(str(e))
                    raise SystemExit(1) from None

    def close(self) -> None:
        """Stop the request thread and close the client."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.client.close()

    def _on_joint_state(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [n for n in self.joint_names if n not in index]
        if missing or len(msg.position) != len(msg.name):
            self._skip(
                "joint_state_mismatch",
                f"joint_states lacks {missing} or has {len(msg.position)} positions for {len(msg.name)} names",
            )
            return
        vec = np.array([msg.position[index[n]] for n in self.joint_names], dtype=np.float64)
        stamp = from_time(msg.header.stamp) or self.get_clock().now().nanoseconds * 1e-9
        self.latest_state = (stamp, time.monotonic(), vec)

    def _on_image(self, feature: str, msg: Image) -> None:
        h, w = self.p["image_height"], self.p["image_width"]
        if msg.encoding != "rgb8" or msg.height != h or msg.width != w or msg.step != 3 * w:
            self._skip("image_mismatch", f"{feature}: {msg.encoding} {msg.width}x{msg.height}, need rgb8 {w}x{h}")
            return
        self.latest_images[feature] = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(h, w, 3)

    def _skip(self, reason: str, detail: str) -> None:
        n = self.skipped.get(reason, 0) + 1
        self.skipped[reason] = n
        if n == 1 or n % 100 == 0:
            self.get_logger().warning(f"no request ({reason}, #{n}): {detail}")

    def _run(self) -> None:
        tick = 0
        next_t = time.monotonic()
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            next_t += self.p["request_period_s"]
            latest = self.latest_state
            if latest is None:
                continue
            stamp, received, vec = latest
            age = self._state_age(stamp, received)
            if age > self.p["max_state_age_s"]:
                self._skip(
                    "stale_state", f"latest joint state is {age:.2f} s old (limit {self.p['max_state_age_s']} s)"
                )
                continue
            obs = {self.p["state_feature"]: vec.astype(self.p["state_dtype"])}
            for spec in self.schema.observation[1:]:
                if spec.name not in self.latest_images:
                    self._skip("no_image", f"no {spec.name} yet")
                    break
                obs[spec.name] = self.latest_images[spec.name]
            else:
                tick += 1
                self._request(obs, tick, received, stamp)

    def _state_age(self, stamp: float, received: float) -> float:
        """Seconds since the state was taken: its stamp by this node's clock, or its arrival if that is later."""
        return max(time.monotonic() - received, self.get_clock().now().nanoseconds * 1e-9 - stamp)

    def _request(self, obs: dict[str, np.ndarray], tick: int, received: float, stamp: float) -> None:
        try:
            reply = self.client.request(obs, tick, received, self.p["budget_s"])
        except (DeadlineExceeded, ServerError) as e:
            self._skip("policy_error", str(e))
            return
        except SessionLost as e:
            self.get_logger().warning(f"{e}: re-handshaking")
            try:
                self.client.handshake(timeout_s=1.0)
            except (HandshakeTimeout, SchemaMismatchError) as e2:
                self._skip("handshake", str(e2))
            return
        msg = JointTrajectory()
        msg.header.stamp = rclpy.time.Time(seconds=stamp).to_msg()
        msg.joint_names = self.joint_names
        dt = self.schema.policy_dt
        for i, row in enumerate(np.asarray(reply.actions, dtype=np.float64)):
            point = JointTrajectoryPoint()
            point.positions = row
            point.time_from_start = to_duration(i * dt)
            msg.points.append(point)
        self.pub.publish(msg)
        self.chunks += 1


def main(args: list[str] | None = None) -> int:
    """Console script ``policy_node``."""
    return run(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
