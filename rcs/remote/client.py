"""Client of a robot server (:mod:`rcs.remote.server`): commands over DEALER, state over SUB.

Light: numpy, pyzmq, msgpack only, so the ROS 2 nodes (in their own venv, without torch or mujoco) use it.
Each socket belongs to one thread: call the command methods from one thread and :meth:`RobotClient.receive`
from one (possibly another) thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

import numpy as np
import zmq

from rcs.errors import ConfigError, RcsError
from rcs.remote.wire import (
    PUBLISHED_TYPES,
    REPLY_TYPES,
    TOPIC_STATE,
    TOPIC_STATUS,
    Reply,
    RobotHeader,
    RobotMessage,
    RobotMsg,
    decode_header,
    decode_message,
    encode_message,
)
from rcs.serving.keys import KeyPair, curve_client
from rcs.serving.protocol import ProtocolError

log = logging.getLogger(__name__)


class RobotServerTimeout(RcsError, TimeoutError):
    """The robot server did not answer in time (not running, wrong endpoint)."""


class RobotClient:
    """Talk to a robot server.

    Args:
        command_endpoint: the server's ROUTER endpoint (e.g. ``tcp://127.0.0.1:5601``).
        state_endpoint: the server's PUB endpoint, or ``None`` for a command-only client.
        topics: PUB topics to subscribe to (prefixes: ``b"state"``, ``b"status"``, ``b"camera/"`` or
            ``b"camera/front"``).
        timeout_s: default time to wait for a reply (s).
        receive_hwm: how many published messages may queue before ZeroMQ drops new ones.
        server_key: the robot server's CURVE public key (Z85), for a server with ``curve_secret``/``allow``.
        client_keys: this client's CURVE key pair (its public key must be on the server's allow-list).
            Without the right keys the server never answers (the handshake fails): requests time out.
    """

    def __init__(
        self,
        command_endpoint: str,
        state_endpoint: str | None = None,
        topics: Iterable[bytes] = (TOPIC_STATE, TOPIC_STATUS),
        timeout_s: float = 2.0,
        receive_hwm: int = 1000,
        server_key: bytes | None = None,
        client_keys: KeyPair | None = None,
    ) -> None:
        if (server_key is None) != (client_keys is None):
            raise ConfigError("CURVE needs both the server's public key and this client's key pair")
        self.command_endpoint = command_endpoint
        self.state_endpoint = state_endpoint
        self.server_key = server_key
        self.client_keys = client_keys
        self.timeout_s = timeout_s
        self.ctx: zmq.Context = zmq.Context.instance()
        self.seq = 0
        self.description: dict[str, Any] | None = None
        self.clock_offset_s: float | None = None
        self._dealer = self._new_dealer()
        self._sub: zmq.Socket | None = None
        if state_endpoint is not None:
            sub = self.ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVHWM, receive_hwm)
            self._secure(sub)
            for topic in topics:
                sub.setsockopt(zmq.SUBSCRIBE, topic)
            sub.connect(state_endpoint)
            self._sub = sub

    def _secure(self, sock: zmq.Socket) -> None:
        if self.server_key is not None and self.client_keys is not None:
            curve_client(sock, self.server_key, self.client_keys)

    def _new_dealer(self) -> zmq.Socket:
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        self._secure(s)
        s.connect(self.command_endpoint)
        return s

    def close(self) -> None:
        """Close both sockets."""
        self._dealer.close(0)
        if self._sub is not None:
            self._sub.close(0)
            self._sub = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------------------
    def _request(
        self,
        header_type: RobotMsg,
        meta: Mapping[str, Any],
        tensors: Mapping[str, np.ndarray] | None,
        timeout_s: float | None,
    ) -> RobotMessage:
        self.seq += 1
        seq = self.seq
        self._dealer.send_multipart(encode_message(RobotHeader(header_type, seq), meta, tensors), copy=False)
        end = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while (left := end - time.monotonic()) > 0:
            if not self._dealer.poll(int(left * 1000) + 1):
                break
            frames = self._dealer.recv_multipart(copy=False)
            try:
                msg = decode_message(frames, REPLY_TYPES)
            except ProtocolError as e:
                log.warning("malformed reply skipped: %s", e)
                continue
            if msg.header.seq == seq:
                return msg
        # A late reply to this request must not be taken for the next one's: start a fresh connection.
        self._dealer.close(0)
        self._dealer = self._new_dealer()
        raise RobotServerTimeout(
            f"no reply from the robot server at {self.command_endpoint} within "
            f"{self.timeout_s if timeout_s is None else timeout_s} s"
        )

    def describe(self, timeout_s: float | None = None) -> dict[str, Any]:
        """The robot description (joint names, limits, frames, rate, cameras); also kept in :attr:`description`."""
        msg = self._request(RobotMsg.DESCRIBE, {}, None, timeout_s)
        desc = msg.meta.get("description")
        if msg.header.type is not RobotMsg.DESCRIPTION or not isinstance(desc, dict):
            raise ProtocolError("bad_metadata", "description", "missing in DESCRIPTION", "a map")
        self.description = desc
        offset = msg.meta.get("clock_offset_s")
        self.clock_offset_s = float(offset) if isinstance(offset, (int, float)) else None
        return desc

    def command(
        self, name: str, tensors: Mapping[str, np.ndarray] | None = None, timeout_s: float | None = None, **args: Any
    ) -> Reply:
        """Send COMMAND ``name`` with metadata ``args`` and tensors; returns the server's :class:`Reply`."""
        msg = self._request(RobotMsg.COMMAND, {"command": name, **args}, tensors, timeout_s)
        return Reply.from_meta(msg.meta)

    def trajectory(
        self,
        names: Sequence[str],
        positions: np.ndarray,
        time_from_start: np.ndarray,
        velocities: np.ndarray | None = None,
        age_s: float = 0.0,
    ) -> Reply:
        """A timed trajectory: ``positions`` (N, len(names)) at ``time_from_start`` (N,) s after its start,
        which was ``age_s`` seconds ago (0: now)."""
        tensors = {
            "positions": np.asarray(positions, dtype=np.float64),
            "time_from_start": np.asarray(time_from_start, dtype=np.float64),
        }
        if velocities is not None:
            tensors["velocities"] = np.asarray(velocities, dtype=np.float64)
        return self.command("trajectory", tensors, names=list(names), age_s=float(age_s))

    def pose(self, frame_id: str, position: Sequence[float], quaternion: Sequence[float], age_s: float = 0.0) -> Reply:
        """A target pose: arms move the TCP there (``frame_id`` = base frame), quadrotors fly there (world
        frame, yaw from the quaternion). ``quaternion`` is (w, x, y, z)."""
        tensors = {
            "position": np.asarray(position, dtype=np.float64),
            "quaternion": np.asarray(quaternion, dtype=np.float64),
        }
        return self.command("pose", tensors, frame_id=frame_id, age_s=float(age_s))

    def estop(self, reason: str = "remote") -> Reply:
        """Trigger the latching e-stop."""
        return self.command("estop", reason=reason)

    def reset(self) -> Reply:
        """Release the e-stop latch (the robot holds until the next motion command)."""
        return self.command("reset")

    def set_armed(self, armed: bool) -> Reply:
        """Arm (accept motion; quadrotors: motors may spin) or disarm."""
        return self.command("arm" if armed else "disarm")

    # -- published messages -----------------------------------------------------------------------------
    def _subscriber(self) -> zmq.Socket:
        if self._sub is None:
            raise RcsError("this client has no state endpoint")
        return self._sub

    def receive(self, timeout_s: float = 1.0) -> tuple[bytes, RobotMessage] | None:
        """The next published (topic, message), or None after ``timeout_s``. Malformed ones are skipped."""
        sub = self._subscriber()
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if not sub.poll(max(0, int(left * 1000)) if left > 0 else 0):
                return None
            frames = sub.recv_multipart(copy=False)
            try:
                return frames[0].bytes, decode_message(frames[1:], PUBLISHED_TYPES)
            except ProtocolError as e:
                log.warning("malformed published message skipped: %s", e)

    def receive_recent(
        self, timeout_s: float = 1.0, max_lag_s: float = 0.0
    ) -> tuple[list[tuple[bytes, RobotMessage]], int]:
        """Everything queued now, in order, less what lags the newest message of its topic by > ``max_lag_s``.

        For consumers that republish state and may fall behind the server's rate (a ROS bridge under load, or
        resuming after a stall): waits up to ``timeout_s`` for the first message, then reads the queue without
        blocking; a message whose capture time is more than ``max_lag_s`` (s) older than the newest queued message
        of the same topic is dropped rather than handed out late (``0``: only the newest of each topic). Returns
        ``([(topic, message), ...], number dropped)``; ``([], 0)`` after ``timeout_s``. Malformed ones are skipped.
        """
        sub = self._subscriber()
        if not sub.poll(max(0, int(timeout_s * 1000))):
            return [], 0
        queued: list[tuple[bytes, list[zmq.Frame], float]] = []
        while True:
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            try:
                if len(frames) < 3:  # topic, header, metadata
                    decode_message(frames[1:])  # raises the protocol's missing-frames error
                capture = decode_header(frames[1]).capture_time
            except ProtocolError as e:
                log.warning("malformed published message skipped: %s", e)
                continue
            queued.append((frames[0].bytes, frames[1:], capture))
        newest: dict[bytes, float] = {}
        for topic, _, capture in queued:
            newest[topic] = max(newest.get(topic, capture), capture)
        out: list[tuple[bytes, RobotMessage]] = []
        dropped = 0
        for topic, frames, capture in queued:
            if capture < newest[topic] - max_lag_s:
                dropped += 1
                continue
            try:
                out.append((topic, decode_message(frames, PUBLISHED_TYPES)))
            except ProtocolError as e:
                log.warning("malformed published message skipped: %s", e)
        return out, dropped

    def wait_for(self, topic: bytes, timeout_s: float = 5.0) -> RobotMessage:
        """The next message of ``topic`` (raises :class:`RobotServerTimeout`)."""
        end = time.monotonic() + timeout_s
        while (left := end - time.monotonic()) > 0:
            got = self.receive(left)
            if got is not None and got[0].startswith(topic):
                return got[1]
        raise RobotServerTimeout(f"no {topic.decode()} message from {self.state_endpoint} within {timeout_s} s")
