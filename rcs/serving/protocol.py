"""Wire format of the policy server (see ``docs/protocol.md``): header, msgpack metadata, raw tensor frames.

Everything received is checked before use: header size, magic, version, type, reserved fields, metadata
(msgpack map, size cap, no ext types), tensor dtype allow-list, shape and exact byte size, size caps.
Every failure raises :class:`ProtocolError` naming the field and the limit. Nothing is ever unpickled.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack
import numpy as np

from rcs.errors import RcsError

MAGIC = b"RCSP"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
HEADER_FORMAT = "<4sBBHQQqdI8sI"
HEADER = struct.Struct(HEADER_FORMAT)
HEADER_SIZE = HEADER.size  # 56 bytes
ZERO_HASH = b"\x00" * 8

#: dtypes a tensor may have on the wire (always little-endian).
ALLOWED_DTYPES: tuple[str, ...] = (
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
)
#: wire dtype name -> little-endian numpy dtype, and back (``dtype.name`` is slow: ~5 us per call).
WIRE_DTYPES: dict[str, np.dtype] = {n: np.dtype(n).newbyteorder("<") for n in ALLOWED_DTYPES}
_NAMES: dict[np.dtype, str] = {d: n for n, d in WIRE_DTYPES.items()}
MAX_NDIM = 8
MAX_TENSORS = 32
MAX_FRAMES = 2 + MAX_TENSORS
MAX_METADATA_BYTES = 64 * 1024
MAX_TENSOR_BYTES = 64 * 1024 * 1024
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_U64 = 2**64 - 1
MAX_BUDGET_US = 2**32 - 1


class MsgType(IntEnum):
    """Message types (header byte 5)."""

    HELLO = 1
    WELCOME = 2
    OBS = 3
    CHUNK = 4
    HEARTBEAT = 5
    ERROR = 6
    BYE = 7


#: Types a server accepts from a client, and a client from a server.
CLIENT_TYPES = frozenset({MsgType.HELLO, MsgType.OBS, MsgType.HEARTBEAT, MsgType.BYE})
SERVER_TYPES = frozenset({MsgType.WELCOME, MsgType.CHUNK, MsgType.HEARTBEAT, MsgType.ERROR})


class ProtocolError(RcsError, ValueError):
    """A message violates the protocol.

    Attributes:
        code: error code of ``docs/protocol.md`` (e.g. ``"bad_magic"``), sent back in an ERROR reply.
        field: the offending field (e.g. ``"tensors[0].dtype"``).
        limit: human-readable statement of the limit that was violated.
    """

    def __init__(self, code: str, field: str, message: str, limit: str = "") -> None:
        self.code = code
        self.field = field
        self.limit = limit
        self.detail = message
        super().__init__(f"{code}: {field}: {message}" + (f" (limit: {limit})" if limit else ""))

    def to_meta(self) -> dict[str, str]:
        """The ERROR reply's metadata."""
        return {"code": self.code, "field": self.field, "message": self.detail, "limit": self.limit}


# ---------------------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """The fixed 56-byte header (layout in ``docs/protocol.md``).

    Attributes:
        type: message type.
        session_id: server-assigned session (0 in HELLO).
        seq: client request number; replies echo it.
        obs_tick: control tick of the observation; replies echo it.
        capture_time: client's ``time.monotonic()`` at capture (s); echoed, never compared across hosts.
        budget_us: relative deadline (microseconds from receipt); 0 = none.
        schema_hash: 8-byte schema hash (zeros when not applicable).
        version: protocol version.
    """

    type: MsgType
    session_id: int = 0
    seq: int = 0
    obs_tick: int = 0
    capture_time: float = 0.0
    budget_us: int = 0
    schema_hash: bytes = ZERO_HASH
    version: int = VERSION

    def pack(self) -> bytes:
        """The 56 header bytes."""
        return HEADER.pack(
            MAGIC,
            self.version,
            int(self.type),
            0,
            self.session_id,
            self.seq,
            self.obs_tick,
            self.capture_time,
            self.budget_us,
            self.schema_hash,
            0,
        )


def decode_header(data: Any) -> Header:
    """Parse and check the header frame; raises :class:`ProtocolError`."""
    raw = _bytes_view(data, "header")
    if len(raw) != HEADER_SIZE:
        raise ProtocolError("short_header", "header", f"{len(raw)} bytes", f"exactly {HEADER_SIZE} bytes")
    magic, version, mtype, flags, session, seq, tick, capture, budget, shash, reserved = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError("bad_magic", "magic", f"got {bytes(magic)!r}", f"{MAGIC!r}")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError("bad_version", "version", f"got {version}", f"supported: {list(SUPPORTED_VERSIONS)}")
    try:
        mt = MsgType(mtype)
    except ValueError:
        raise ProtocolError("bad_type", "type", f"got {mtype}", f"one of {[int(t) for t in MsgType]}") from None
    if flags != 0:
        raise ProtocolError("bad_header", "flags", f"got {flags}", "0 in version 1")
    if reserved != 0:
        raise ProtocolError("bad_header", "reserved", f"got {reserved}", "0 in version 1")
    if not math.isfinite(capture):
        raise ProtocolError("bad_header", "capture_time", f"got {capture}", "a finite number of seconds")
    return Header(mt, session, seq, tick, capture, budget, bytes(shash), version)


# ---------------------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of a schema.

    Attributes:
        name: feature name, e.g. ``"observation.state"``.
        shape: fixed shape.
        dtype: one of :data:`ALLOWED_DTYPES`.
        unit: SI unit string (``"rad"``, ``"m"``, ``"1"`` normalized, ``"px"`` images, ``"utf8"`` text:
            see :func:`encode_text`).
        names: names of the last axis' components (joint order), or empty.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    unit: str = ""
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        if self.dtype not in ALLOWED_DTYPES:
            raise ProtocolError("bad_dtype", f"{self.name}.dtype", repr(self.dtype), f"one of {ALLOWED_DTYPES}")
        if self.names and (not self.shape or self.shape[-1] != len(self.names)):
            raise ProtocolError(
                "schema",
                f"{self.name}.names",
                f"{len(self.names)} names for shape {self.shape}",
                "one name per element of the last axis",
            )

    def as_list(self) -> list[Any]:
        """Canonical list form ``[name, dtype, shape, unit, names]``."""
        return [self.name, self.dtype, list(self.shape), self.unit, list(self.names)]

    def as_dict(self) -> dict[str, Any]:
        """Wire form."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "unit": self.unit,
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> TensorSpec:
        """Parse the wire form (raises :class:`ProtocolError`)."""
        if not isinstance(d, Mapping):
            raise ProtocolError("bad_metadata", where, f"got {type(d).__name__}", "a map")
        name = _typed(d, "name", str, where)
        dtype = _typed(d, "dtype", str, where)
        shape = _shape(d.get("shape"), f"{where}.shape")
        unit = d.get("unit", "")
        names = d.get("names", [])
        if not isinstance(unit, str):
            raise ProtocolError("bad_metadata", f"{where}.unit", repr(unit), "a string")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ProtocolError("bad_metadata", f"{where}.names", repr(names)[:80], "a list of strings")
        return cls(name, shape, dtype, unit, tuple(names))


@dataclass(frozen=True)
class Schema:
    """What a policy consumes and produces.

    Attributes:
        observation: observation tensors.
        action: the chunk tensor, shape ``(chunk_size, D)``; ``names`` is the joint order of the columns.
        policy_dt: seconds between consecutive actions of a chunk.
    """

    observation: tuple[TensorSpec, ...]
    action: TensorSpec
    policy_dt: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "observation", tuple(self.observation))
        names = [s.name for s in self.observation]
        if len(set(names)) != len(names):
            raise ProtocolError("schema", "observation", f"duplicate names {names}", "unique names")
        if len(self.action.shape) != 2 or self.action.shape[0] < 1:
            raise ProtocolError("schema", "action.shape", str(self.action.shape), "(chunk_size >= 1, D)")
        if not (math.isfinite(self.policy_dt) and self.policy_dt > 0):
            raise ProtocolError("schema", "policy_dt", str(self.policy_dt), "> 0 seconds")

    @property
    def chunk_size(self) -> int:
        """Actions per chunk."""
        return self.action.shape[0]

    def observation_by_name(self) -> dict[str, TensorSpec]:
        """Observation specs keyed by name (a fresh dict)."""
        return dict(self._by_name)

    def canonical(self) -> list[Any]:
        """The form that is hashed (observation sorted by name, ``policy_dt`` in integer nanoseconds)."""
        obs = [s.as_list() for s in sorted(self.observation, key=lambda s: s.name)]
        return [obs, self.action.as_list(), self.chunk_size, round(self.policy_dt * 1e9)]

    @functools.cached_property
    def hash(self) -> bytes:
        """First 8 bytes of ``sha256(msgpack(canonical))`` (computed once: the schema is immutable)."""
        return hashlib.sha256(msgpack.packb(self.canonical(), use_bin_type=True)).digest()[:8]

    @functools.cached_property
    def _by_name(self) -> dict[str, TensorSpec]:
        return {s.name: s for s in self.observation}

    def as_dict(self) -> dict[str, Any]:
        """Wire form."""
        return {
            "observation": [s.as_dict() for s in self.observation],
            "action": self.action.as_dict(),
            "chunk_size": self.chunk_size,
            "policy_dt": self.policy_dt,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "schema") -> Schema:
        """Parse the wire form (raises :class:`ProtocolError`)."""
        if not isinstance(d, Mapping):
            raise ProtocolError("bad_metadata", where, f"got {type(d).__name__}", "a map")
        obs = d.get("observation")
        if not isinstance(obs, list) or len(obs) > MAX_TENSORS:
            raise ProtocolError("bad_metadata", f"{where}.observation", repr(obs)[:80], f"a list of <= {MAX_TENSORS}")
        specs = tuple(TensorSpec.from_dict(o, f"{where}.observation[{i}]") for i, o in enumerate(obs))
        action = TensorSpec.from_dict(d.get("action"), f"{where}.action")
        dt = d.get("policy_dt")
        if not isinstance(dt, (int, float)) or isinstance(dt, bool):
            raise ProtocolError("bad_metadata", f"{where}.policy_dt", repr(dt), "a number of seconds")
        schema = cls(specs, action, float(dt))
        if d.get("chunk_size", schema.chunk_size) != schema.chunk_size:
            raise ProtocolError(
                "schema", f"{where}.chunk_size", repr(d.get("chunk_size")), f"action.shape[0] = {schema.chunk_size}"
            )
        return schema


def schema_differences(expected: Schema, actual: Schema) -> list[str]:
    """Human-readable differences between two schemas (empty when they match exactly)."""
    diffs: list[str] = []
    exp, act = expected.observation_by_name(), actual.observation_by_name()
    for name in sorted(set(exp) - set(act)):
        diffs.append(f"observation {name!r} missing on the server")
    for name in sorted(set(act) - set(exp)):
        diffs.append(f"observation {name!r} not provided by the robot")
    for name in sorted(set(exp) & set(act)):
        diffs += _spec_differences(f"observation {name!r}", exp[name], act[name])
    diffs += _spec_differences("action", expected.action, actual.action)
    if round(expected.policy_dt * 1e9) != round(actual.policy_dt * 1e9):
        diffs.append(f"policy_dt: expected {expected.policy_dt} s, server {actual.policy_dt} s")
    return diffs


def _spec_differences(where: str, a: TensorSpec, b: TensorSpec) -> list[str]:
    out = []
    for attr in ("name", "shape", "dtype", "unit", "names"):
        va, vb = getattr(a, attr), getattr(b, attr)
        if va != vb:
            what = "joint order" if attr == "names" and sorted(va) == sorted(vb) else attr
            out.append(f"{where} {what}: expected {va}, server {vb}")
    return out


# ---------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Message:
    """A decoded message.

    Attributes:
        header: the header.
        meta: the metadata map.
        tensors: tensors by name (read-only views on the received frames), in frame order.
    """

    header: Header
    meta: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def encode(
    header: Header, meta: Mapping[str, Any] | None = None, tensors: Mapping[str, np.ndarray] | None = None
) -> list[Any]:
    """Frames of one message: header bytes, msgpack metadata, then each tensor's buffer (zero-copy)."""
    meta = dict(meta or {})
    frames: list[Any] = []
    descr = []
    for name, arr in (tensors or {}).items():
        a = np.asarray(arr)
        dtype_name = _NAMES.get(a.dtype)
        if dtype_name is None:
            if a.dtype.byteorder == ">" and a.dtype.name in WIRE_DTYPES:
                a = a.astype(a.dtype.newbyteorder("<"))
                dtype_name = a.dtype.name
            else:
                raise ProtocolError("bad_dtype", f"{name}.dtype", a.dtype.name, f"one of {ALLOWED_DTYPES}")
        a = np.require(a, requirements="C")
        descr.append({"name": name, "dtype": dtype_name, "shape": list(a.shape)})
        frames.append(memoryview(a).cast("B") if a.size else b"")
    if tensors is not None:
        meta["tensors"] = descr
    packed = msgpack.packb(meta, use_bin_type=True)
    if len(packed) > MAX_METADATA_BYTES:
        raise ProtocolError("bad_metadata", "metadata", f"{len(packed)} bytes", f"<= {MAX_METADATA_BYTES} bytes")
    return [header.pack(), packed, *frames]


def decode(
    frames: Sequence[Any], allowed_types: frozenset[MsgType] | None = None, header: Header | None = None
) -> Message:
    """Decode and check a received message (frames as ``bytes`` or ``zmq.Frame``).

    ``header``: ``decode_header(frames[0])`` if the caller already has it.

    Raises:
        ProtocolError: any violation, naming the field and the limit. Never anything else.
    """
    if len(frames) < 2:
        if len(frames) == 1:
            decode_header(frames[0])  # report a bad header first
        raise ProtocolError("missing_frames", "frames", f"got {len(frames)}", "header + metadata (>= 2 frames)")
    if len(frames) > MAX_FRAMES:
        raise ProtocolError("too_many_frames", "frames", f"got {len(frames)}", f"<= {MAX_FRAMES}")
    header = header if header is not None else decode_header(frames[0])
    if allowed_types is not None and header.type not in allowed_types:
        raise ProtocolError(
            "bad_type",
            "type",
            f"{header.type.name} not accepted here",
            f"one of {sorted(t.name for t in allowed_types)}",
        )
    meta = decode_meta(frames[1])
    tensors = decode_tensors(meta, frames[2:])
    return Message(header, meta, tensors)


def decode_meta(data: Any) -> dict[str, Any]:
    """Unpack the metadata frame: a msgpack map with string keys, no ext types, size-capped."""
    raw = _bytes_view(data, "metadata")
    if len(raw) > MAX_METADATA_BYTES:
        raise ProtocolError("bad_metadata", "metadata", f"{len(raw)} bytes", f"<= {MAX_METADATA_BYTES} bytes")
    try:
        meta = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True, ext_hook=_reject_ext)
    except ProtocolError:
        raise
    except Exception as e:  # noqa: BLE001 msgpack raises many types (ValueError, ExtraData, FormatError, ...)
        raise ProtocolError(
            "bad_metadata", "metadata", f"not msgpack: {type(e).__name__}: {e}"[:200], "a msgpack map"
        ) from None
    if not isinstance(meta, dict):
        raise ProtocolError("bad_metadata", "metadata", f"got {type(meta).__name__}", "a msgpack map")
    return meta


def _reject_ext(code: int, data: bytes) -> Any:
    raise ProtocolError("bad_metadata", "metadata", f"msgpack ext type {code}", "no ext types")


def decode_tensors(meta: Mapping[str, Any], frames: Sequence[Any]) -> dict[str, np.ndarray]:
    """Check ``meta["tensors"]`` against the tensor frames and return read-only arrays by name."""
    descr = meta.get("tensors", [])
    if not isinstance(descr, list):
        raise ProtocolError("bad_metadata", "tensors", f"got {type(descr).__name__}", "a list")
    if len(descr) != len(frames):
        raise ProtocolError(
            "missing_frames", "tensors", f"{len(descr)} described, {len(frames)} frames", "one frame per tensor entry"
        )
    out: dict[str, np.ndarray] = {}
    total = 0
    for i, (d, frame) in enumerate(zip(descr, frames, strict=True)):
        where = f"tensors[{i}]"
        if not isinstance(d, dict):
            raise ProtocolError("bad_metadata", where, f"got {type(d).__name__}", "a map name/dtype/shape")
        name = _typed(d, "name", str, where)
        if name in out:
            raise ProtocolError("bad_metadata", f"{where}.name", repr(name), "unique tensor names")
        dtype = _typed(d, "dtype", str, where)
        dt = WIRE_DTYPES.get(dtype)
        if dt is None:
            raise ProtocolError("bad_dtype", f"{where}.dtype", repr(dtype)[:40], f"one of {ALLOWED_DTYPES}")
        shape = _shape(d.get("shape"), f"{where}.shape")
        expected = math.prod(shape) * dt.itemsize
        if expected > MAX_TENSOR_BYTES:
            raise ProtocolError("oversize", where, f"{name}: {expected} bytes", f"<= {MAX_TENSOR_BYTES} bytes")
        buf = _bytes_view(frame, where)
        if len(buf) != expected:
            raise ProtocolError(
                "size_mismatch",
                where,
                f"{name}: frame has {len(buf)} bytes, shape {list(shape)} x {dtype} needs {expected}",
                f"{expected} bytes",
            )
        total += expected
        if total > MAX_MESSAGE_BYTES:
            raise ProtocolError("oversize", "tensors", f"{total} bytes so far", f"<= {MAX_MESSAGE_BYTES} bytes")
        arr = np.frombuffer(buf, dtype=dt).reshape(shape) if expected else np.zeros(shape, dtype=dt)
        arr.flags.writeable = False
        out[name] = arr
    return out


def _bytes_view(data: Any, where: str) -> memoryview:
    """A flat byte view of a frame (``bytes``, ``memoryview``, ``zmq.Frame``)."""
    try:
        return memoryview(data).cast("B")
    except (TypeError, ValueError):
        raise ProtocolError(
            "bad_frame", where, f"{type(data).__name__} is not a contiguous byte buffer", "bytes"
        ) from None


def _typed(d: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    v = d.get(key)
    if not isinstance(v, kind):
        raise ProtocolError("bad_metadata", f"{where}.{key}", repr(v)[:40], f"a {kind.__name__}")
    return v


def _shape(v: Any, where: str) -> tuple[int, ...]:
    if not isinstance(v, list) or len(v) > MAX_NDIM:
        raise ProtocolError("bad_shape", where, repr(v)[:60], f"a list of 0..{MAX_NDIM} non-negative ints")
    for s in v:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0 or s > 2**62:
            raise ProtocolError("bad_shape", where, repr(v)[:60], f"a list of 0..{MAX_NDIM} non-negative ints")
    return tuple(v)


#: unit of a text observation (a language instruction): UTF-8 bytes in a fixed-size uint8 tensor, zero-padded.
TEXT_UNIT = "utf8"


def text_spec(name: str = "task", max_bytes: int = 256) -> TensorSpec:
    """Schema entry of a text observation of at most ``max_bytes`` UTF-8 bytes."""
    return TensorSpec(name, (max_bytes,), "uint8", TEXT_UNIT)


def encode_text(text: str, max_bytes: int = 256, where: str = "task") -> np.ndarray:
    """``text`` as a zero-padded ``(max_bytes,)`` uint8 array; raises :class:`ProtocolError` if too long."""
    data = text.encode("utf-8")
    if len(data) > max_bytes or b"\x00" in data:
        raise ProtocolError("bad_text", where, f"{len(data)} bytes", f"<= {max_bytes} UTF-8 bytes, no NUL")
    out = np.zeros(max_bytes, dtype=np.uint8)
    out[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return out


def decode_text(array: np.ndarray, where: str = "task") -> str:
    """Inverse of :func:`encode_text`; invalid UTF-8 raises :class:`ProtocolError` naming ``where``."""
    raw = np.asarray(array, dtype=np.uint8).tobytes().rstrip(b"\x00")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError("bad_text", where, f"invalid UTF-8 at byte {e.start}", "UTF-8 text") from None


#: optional OBS tensor: the actions the robot will certainly execute from the observation's tick on (the frozen
#: prefix of real-time chunking), ``(K, D)`` at the policy rate, same dtype and columns as the action chunk.
COMMITTED = "rtc.committed"


def check_committed(schema: Schema, committed: np.ndarray) -> None:
    """Raise :class:`ProtocolError` unless ``committed`` is a valid prefix for ``schema``'s action chunk."""
    h, d = schema.action.shape
    if committed.dtype != WIRE_DTYPES[schema.action.dtype]:
        raise ProtocolError("schema", f"{COMMITTED}.dtype", committed.dtype.name, schema.action.dtype)
    if committed.ndim != 2 or committed.shape[1] != d or not 0 < committed.shape[0] <= h:
        raise ProtocolError("schema", f"{COMMITTED}.shape", str(tuple(committed.shape)), f"(1..{h}, {d})")
    if not np.all(np.isfinite(committed)):
        raise ProtocolError("schema", COMMITTED, "NaN or inf", "finite actions")


def check_observation(schema: Schema, tensors: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`ProtocolError` unless ``tensors`` match the observation schema exactly.

    The one optional extra is :data:`COMMITTED` (checked by :func:`check_committed`).
    """
    specs = schema._by_name
    if COMMITTED in tensors:
        check_committed(schema, tensors[COMMITTED])
    missing = sorted(set(specs) - set(tensors))
    extra = sorted(set(tensors) - set(specs) - {COMMITTED})
    if missing or extra:
        raise ProtocolError(
            "schema", "observation", f"missing {missing}, unexpected {extra}", f"exactly {sorted(specs)}"
        )
    for name, spec in specs.items():
        a = tensors[name]
        if a.dtype != WIRE_DTYPES[spec.dtype]:
            raise ProtocolError("schema", f"{name}.dtype", a.dtype.name, spec.dtype)
        if tuple(a.shape) != spec.shape:
            raise ProtocolError("schema", f"{name}.shape", str(tuple(a.shape)), str(spec.shape))


def error_message(header: Header | None, err: ProtocolError) -> list[Any]:
    """Frames of an ERROR reply echoing what could be parsed of the request's header."""
    h = header or Header(MsgType.ERROR)
    return encode(
        Header(MsgType.ERROR, h.session_id, h.seq, h.obs_tick, h.capture_time, 0, h.schema_hash), err.to_meta()
    )


#: Largest body (header + metadata + tensors) of one message, bytes.
MAX_BODY_BYTES = HEADER_SIZE + MAX_METADATA_BYTES + MAX_MESSAGE_BYTES


def recv_bounded(
    sock: Any, flags: int = 0, *, max_frames: int = MAX_FRAMES, max_bytes: int = MAX_BODY_BYTES, envelope: int = 0
) -> tuple[list[Any], ProtocolError | None]:
    """Receive one multipart message frame by frame (zero-copy), counting frames and bytes as they come.

    Once the message has more than ``max_frames`` body frames or more than ``max_bytes`` body bytes, the
    rest of it is received and released at once (never kept or decoded) and the error is returned. The
    first ``envelope`` frames (a ROUTER's routing identity) are not counted.

    libzmq hands a multipart message to the application only once all its frames arrived, so the bound on
    what a peer can make the process buffer is the socket's ``ZMQ_MAXMSGSIZE`` (per frame) and its
    ``ZMQ_RCVHWM``; this function keeps a message that is too big from being held or processed any further.

    Args:
        sock: a ZeroMQ socket; ``flags`` apply to the first frame (``zmq.NOBLOCK`` raises ``zmq.Again``).

    Returns:
        ``(frames, None)``, or ``(the envelope and the first body frame, ProtocolError)`` so the caller can
        answer with the request's header.
    """
    first = sock.recv(flags, copy=False)
    frames = [first]
    more = first.more
    body = 0 if envelope else 1
    total = 0 if envelope else len(first.buffer)
    error: ProtocolError | None = None
    while more:
        frame = sock.recv(copy=False)  # the rest of the message is already here (see above)
        more = frame.more
        if error is not None:
            total += len(frame.buffer)
            continue  # released right away
        if len(frames) < envelope:
            frames.append(frame)
            continue
        body += 1
        total += len(frame.buffer)
        if body > max_frames:
            error = ProtocolError("too_many_frames", "frames", f"more than {max_frames}", f"<= {max_frames}")
        elif total > max_bytes:
            error = ProtocolError(
                "oversize", "message", f"more than {max_bytes} bytes", f"<= {max_bytes} bytes in all frames"
            )
        if error is not None:
            del frames[envelope + 1 :]
        else:
            frames.append(frame)
    if error is not None:
        del frame
        if total >= TRIM_AFTER_BYTES:
            _trim_heap()
    return frames, error


#: A refused message at least this big (bytes) is followed by handing freed heap memory back to the OS; the
#: trim (milliseconds) then costs a peer at least this much traffic.
TRIM_AFTER_BYTES = 32 * 1024 * 1024


def _trim_heap() -> None:
    """Hand the memory of a refused oversized message back to the OS (glibc keeps freed blocks otherwise:
    hundreds of MiB stayed resident after one refused message); a no-op where libc is not glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc
