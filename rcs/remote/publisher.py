"""A robot's stream, published by a process that is not a robot server (``rcs record --view``, ``rcs eval --view``).

It publishes what a robot server publishes (STATE per step through :func:`rcs.remote.state.state_message`, CAMERA
frames; docs/ros2.md "Robot channel") and answers DESCRIBE on its command endpoint, so ``rcs view`` and any other
subscriber of a robot server watch it unchanged. Every other command is refused: the stream is read-only (the
robot is driven by its own process: a teleop, an evaluation).

Publishing never waits: a full send queue drops the message (:attr:`StreamPublisher.dropped`), as the robot server
does; DESCRIBE is answered by a thread of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq

from rcs.remote.state import state_message
from rcs.remote.wire import (
    REQUEST_TYPES,
    TOPIC_CAMERA,
    TOPIC_STATE,
    RobotHeader,
    RobotMsg,
    decode_header,
    decode_message,
    description_hash,
    encode_message,
    rejected,
)
from rcs.serving.protocol import ProtocolError

log = logging.getLogger(__name__)


class StreamPublisher:
    """Publishes one robot's states and camera frames (see the module docstring).

    Args:
        description: the robot's description (:func:`rcs.remote.description.describe`).
        state_endpoint: PUB endpoint to bind (loopback).
        command_endpoint: ROUTER endpoint to bind (DESCRIBE only).
    """

    def __init__(self, description: Mapping[str, Any], state_endpoint: str, command_endpoint: str) -> None:
        self.description = dict(description)
        self.hash = description_hash(self.description)
        self.state_endpoint, self.command_endpoint = state_endpoint, command_endpoint
        ctx: zmq.Context = zmq.Context.instance()
        self._pub = ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, 1000)
        self._pub.bind(state_endpoint)
        self._router = ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.bind(command_endpoint)
        self._lock = threading.Lock()  # the PUB socket is used by the publishing thread only; close() waits
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rcs-stream-describe", daemon=True)
        self._thread.start()
        self.published = 0
        self.dropped = 0
        self._previous: tuple[int, Any] | None = None

    def publish(self, tick: int, state: Any, command: Any = None, stage: str | None = None, dt: float = 0.0) -> None:
        """One STATE: ``state`` at step ``tick``, the ``command`` written before it, ``dt`` s since the last one."""
        previous = self._previous[1] if self._previous is not None else None
        self._previous = (tick, state)
        self.published += 1
        self._send([TOPIC_STATE, *state_message(self.published, tick, state, previous, dt, command, stage)])

    def publish_image(self, tick: int, name: str, image: np.ndarray, captured: float) -> None:
        """One CAMERA frame of camera ``name`` (H, W, 3 uint8) captured at monotonic ``captured`` (s)."""
        meta = {"name": name, "frame_index": tick, "intrinsics": []}
        header = RobotHeader(RobotMsg.CAMERA, tick, tick, float(captured))
        frames = encode_message(header, meta, {"image": np.ascontiguousarray(image)})
        self._send([TOPIC_CAMERA + name.encode(), *frames])

    def _send(self, frames: list[Any]) -> None:
        with self._lock:
            if self._pub.closed:
                return
            try:
                self._pub.send_multipart(frames, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.dropped += 1

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            identity, *body = self._router.recv_multipart(copy=False)
            self._router.send_multipart([identity, *self._reply(body)], copy=False)

    def _reply(self, frames: list[Any]) -> list[Any]:
        seq = 0
        try:
            seq = decode_header(frames[0]).seq if frames else 0
            msg = decode_message(frames, REQUEST_TYPES)
        except ProtocolError as e:
            reply = rejected(e.code, e.field, e.detail, e.limit)
        else:
            if msg.header.type is RobotMsg.DESCRIBE:
                header = RobotHeader(RobotMsg.DESCRIPTION, seq, self.published, time.monotonic(), self.hash)
                return encode_message(header, {"description": self.description})
            reply = rejected("read_only", "command", "this stream is published for watching", "DESCRIBE only")
        return encode_message(RobotHeader(RobotMsg.REPLY, seq, self.published, time.monotonic()), reply.as_meta())

    def close(self) -> None:
        """Stop answering and close both sockets."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._router.close(0)
        with self._lock:
            self._pub.close(0)
