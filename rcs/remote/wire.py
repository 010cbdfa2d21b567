"""Wire format of the robot channel (robot server <-> clients such as the ROS 2 bridge node).

It reuses the policy protocol's codec (:mod:`rcs.serving.protocol`): the same 56-byte header layout, a msgpack
metadata map and raw little-endian tensor frames with the same checks (dtype allow-list, exact sizes, caps, no
ext types, never pickle). Only the header's magic (``b"RCSR"`` instead of ``b"RCSP"``) and the message types
differ, so a policy client that reaches a robot server by mistake (or the reverse) fails with ``bad_magic``
instead of misreading messages. The layout of every message is in ``docs/ros2.md`` ("Robot channel").

Header fields on this channel: ``session_id`` is 0 (the channel has no sessions), ``seq`` the client's request
number (echoed in REPLY) or the publisher's message count, ``obs_tick`` the control tick of a state,
``capture_time`` the *server's* ``time.monotonic()`` of a state (s; comparable only on the same host),
``budget_us`` 0, ``schema_hash`` the first 8 bytes of the robot description's hash (zeros in DESCRIBE).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack
import numpy as np

from rcs.serving.protocol import (
    HEADER,
    HEADER_SIZE,
    MAX_FRAMES,
    ZERO_HASH,
    ProtocolError,
    decode_meta,
    decode_tensors,
    encode,
)

MAGIC = b"RCSR"
VERSION = 1

#: PUB topics (first frame of every published message; ZeroMQ filters subscriptions by prefix).
TOPIC_STATE = b"state"
TOPIC_STATUS = b"status"
TOPIC_CAMERA = b"camera/"


class RobotMsg(IntEnum):
    """Message types of the robot channel (header byte 5)."""

    DESCRIBE = 1  # client -> server: what robot is this?
    DESCRIPTION = 2  # server -> client: the robot description (metadata "description")
    STATE = 3  # server PUB: one state per control tick
    COMMAND = 4  # client -> server: metadata "command" + arguments, tensors for arrays
    REPLY = 5  # server -> client: accepted or rejected with code, field, message, limit
    STATUS = 6  # server PUB: watchdog stage, e-stop, loop timing, safety interventions, rejections
    CAMERA = 7  # server PUB: one camera frame


REQUEST_TYPES = frozenset({RobotMsg.DESCRIBE, RobotMsg.COMMAND})
REPLY_TYPES = frozenset({RobotMsg.DESCRIPTION, RobotMsg.REPLY})
PUBLISHED_TYPES = frozenset({RobotMsg.STATE, RobotMsg.STATUS, RobotMsg.CAMERA})


@dataclass(frozen=True)
class RobotHeader:
    """The 56-byte header of the robot channel (same layout as :class:`rcs.serving.protocol.Header`)."""

    type: RobotMsg
    seq: int = 0
    tick: int = 0
    capture_time: float = 0.0
    description_hash: bytes = ZERO_HASH
    version: int = VERSION

    def pack(self) -> bytes:
        """The 56 header bytes."""
        return HEADER.pack(
            MAGIC,
            self.version,
            int(self.type),
            0,
            0,
            self.seq,
            self.tick,
            self.capture_time,
            0,
            self.description_hash,
            0,
        )


@dataclass
class RobotMessage:
    """A decoded robot-channel message: header, metadata map, tensors by name (read-only views)."""

    header: RobotHeader
    meta: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def decode_header(data: Any) -> RobotHeader:
    """Parse and check a robot-channel header; raises :class:`ProtocolError` naming the field."""
    try:
        raw = memoryview(data).cast("B")
    except (TypeError, ValueError):
        raise ProtocolError("bad_frame", "header", f"{type(data).__name__} is not a byte buffer", "bytes") from None
    if len(raw) != HEADER_SIZE:
        raise ProtocolError("short_header", "header", f"{len(raw)} bytes", f"exactly {HEADER_SIZE} bytes")
    magic, version, mtype, flags, session, seq, tick, capture, budget, dhash, reserved = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError("bad_magic", "magic", f"got {bytes(magic)!r}", f"{MAGIC!r} (robot channel)")
    if version != VERSION:
        raise ProtocolError("bad_version", "version", f"got {version}", f"supported: [{VERSION}]")
    try:
        mt = RobotMsg(mtype)
    except ValueError:
        raise ProtocolError("bad_type", "type", f"got {mtype}", f"one of {[int(t) for t in RobotMsg]}") from None
    if flags or reserved or session or budget:
        raise ProtocolError("bad_header", "flags/reserved/session_id/budget_us", "non-zero", "0 on the robot channel")
    if not math.isfinite(capture):
        raise ProtocolError("bad_header", "capture_time", f"got {capture}", "a finite number of seconds")
    return RobotHeader(mt, seq, tick, capture, bytes(dhash), version)


def encode_message(
    header: RobotHeader, meta: Mapping[str, Any] | None = None, tensors: Mapping[str, np.ndarray] | None = None
) -> list[Any]:
    """Frames of one message (header, msgpack metadata, tensor buffers), via the policy protocol's encoder."""
    return encode(header, meta, tensors)  # type: ignore[arg-type]  # encode only calls header.pack()


def decode_message(frames: Sequence[Any], allowed: frozenset[RobotMsg] | None = None) -> RobotMessage:
    """Decode and check a message (without a topic frame). Raises :class:`ProtocolError` only."""
    if len(frames) < 2:
        if len(frames) == 1:
            decode_header(frames[0])
        raise ProtocolError("missing_frames", "frames", f"got {len(frames)}", "header + metadata (>= 2 frames)")
    if len(frames) > MAX_FRAMES:
        raise ProtocolError("too_many_frames", "frames", f"got {len(frames)}", f"<= {MAX_FRAMES}")
    header = decode_header(frames[0])
    if allowed is not None and header.type not in allowed:
        raise ProtocolError(
            "bad_type", "type", f"{header.type.name} not accepted here", f"one of {sorted(t.name for t in allowed)}"
        )
    meta = decode_meta(frames[1])
    return RobotMessage(header, meta, decode_tensors(meta, frames[2:]))


def description_hash(description: Mapping[str, Any]) -> bytes:
    """First 8 bytes of the SHA-256 of the msgpack-encoded description (keys sorted)."""
    return hashlib.sha256(msgpack.packb(_sorted(description), use_bin_type=True)).digest()[:8]


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return [[k, _sorted(value[k])] for k in sorted(value)]
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    return value


@dataclass(frozen=True)
class Reply:
    """The server's answer to a COMMAND.

    Attributes:
        ok: whether the command was accepted.
        code: ``"ok"`` or why it was rejected (e.g. ``"names"``, ``"non_finite"``, ``"jump"``, ``"estop"``).
        field: the offending field (e.g. ``"positions[2, joint4]"``), or "".
        message: human-readable details (value and limit).
        limit: the violated limit, or "".
        info: extra results (e.g. ``start_tick``, ``duration_s`` of an accepted trajectory).
    """

    ok: bool
    code: str = "ok"
    field: str = ""
    message: str = ""
    limit: str = ""
    info: dict[str, Any] | None = None

    def as_meta(self) -> dict[str, Any]:
        """REPLY metadata."""
        return {
            "ok": self.ok,
            "code": self.code,
            "field": self.field,
            "message": self.message,
            "limit": self.limit,
            "info": self.info or {},
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Reply:
        """Parse REPLY metadata (missing keys become defaults)."""
        info = meta.get("info")
        return cls(
            bool(meta.get("ok", False)),
            str(meta.get("code", "")),
            str(meta.get("field", "")),
            str(meta.get("message", "")),
            str(meta.get("limit", "")),
            dict(info) if isinstance(info, dict) else {},
        )

    def __str__(self) -> str:
        if self.ok:
            return "accepted"
        where = f" {self.field}:" if self.field else ""
        limit = f" (limit: {self.limit})" if self.limit else ""
        return f"rejected [{self.code}]{where} {self.message}{limit}"


def rejected(code: str, field: str, message: str, limit: str = "") -> Reply:
    """A rejection reply."""
    return Reply(False, code, field, message, limit, {})


def accepted(**info: Any) -> Reply:
    """An acceptance reply with optional results."""
    return Reply(True, "ok", "", "", "", dict(info))
