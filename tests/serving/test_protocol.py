"""Wire format: round trips, every malformed case named in docs/protocol.md, and fuzzing of decode."""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcs.serving.policy import standard_schema
from rcs.serving.protocol import (
    ALLOWED_DTYPES,
    CLIENT_TYPES,
    HEADER_SIZE,
    MAGIC,
    MAX_FRAMES,
    MAX_METADATA_BYTES,
    MAX_TENSOR_BYTES,
    Header,
    MsgType,
    ProtocolError,
    Schema,
    TensorSpec,
    check_observation,
    decode,
    decode_header,
    encode,
    error_message,
    schema_differences,
)


def _obs_frames(**tensors: np.ndarray) -> list:
    return encode(Header(MsgType.OBS, 7, 3, 42, 1.5, 1000, b"abcdefgh"), {"x": 1}, tensors)


def _bytes(frames: list) -> list[bytes]:
    return [bytes(f) for f in frames]


def _err(frames: list, code: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(frames, CLIENT_TYPES)
    assert info.value.code == code, info.value
    return info.value


# -- header -------------------------------------------------------------------------------------------------


def test_header_layout_is_the_documented_one():
    h = Header(
        MsgType.OBS,
        session_id=0x0102030405060708,
        seq=9,
        obs_tick=-3,
        capture_time=2.5,
        budget_us=77,
        schema_hash=b"12345678",
    )
    raw = h.pack()
    assert len(raw) == HEADER_SIZE == 56
    assert raw[0:4] == MAGIC and raw[4] == 1 and raw[5] == 3
    assert struct.unpack_from("<H", raw, 6)[0] == 0
    assert struct.unpack_from("<Q", raw, 8)[0] == 0x0102030405060708
    assert struct.unpack_from("<Q", raw, 16)[0] == 9
    assert struct.unpack_from("<q", raw, 24)[0] == -3
    assert struct.unpack_from("<d", raw, 32)[0] == 2.5
    assert struct.unpack_from("<I", raw, 40)[0] == 77
    assert raw[44:52] == b"12345678"
    assert struct.unpack_from("<I", raw, 52)[0] == 0
    assert decode_header(raw) == h


def test_round_trip_every_allowed_dtype():
    tensors = {f"t_{d}": (np.arange(6) % 2).astype(d).reshape(2, 3) for d in ALLOWED_DTYPES}
    tensors["empty"] = np.zeros((0, 4), np.float32)
    tensors["scalar"] = np.array(3.25, np.float64)
    msg = decode(_bytes(_obs_frames(**tensors)))
    assert msg.header.seq == 3 and msg.header.obs_tick == 42 and msg.header.budget_us == 1000
    assert msg.meta["x"] == 1
    assert list(msg.tensors) == list(tensors)
    for name, a in tensors.items():
        got = msg.tensors[name]
        assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a)
        assert not got.flags.writeable


def test_big_endian_and_non_contiguous_inputs_are_normalized():
    a = np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2]
    msg = decode(_bytes(_obs_frames(a=a)))
    assert msg.tensors["a"].dtype == np.dtype("<f4")
    assert np.array_equal(msg.tensors["a"], a)


def test_short_header():
    frames = _bytes(_obs_frames())
    e = _err([frames[0][:10], frames[1]], "short_header")
    assert e.field == "header" and "56" in e.limit
    _err([frames[0] + b"x", frames[1]], "short_header")
    _err([b""], "short_header")


def test_bad_magic_version_type_flags():
    frames = _bytes(_obs_frames())
    h = bytearray(frames[0])
    bad = bytearray(h)
    bad[0:4] = b"XXXX"
    assert _err([bytes(bad), frames[1]], "bad_magic").field == "magic"
    bad = bytearray(h)
    bad[4] = 9
    e = _err([bytes(bad), frames[1]], "bad_version")
    assert e.field == "version" and "1" in e.limit
    bad = bytearray(h)
    bad[5] = 200
    assert _err([bytes(bad), frames[1]], "bad_type").field == "type"
    bad = bytearray(h)
    bad[6] = 1
    assert _err([bytes(bad), frames[1]], "bad_header").field == "flags"
    bad = bytearray(h)
    bad[55] = 1
    assert _err([bytes(bad), frames[1]], "bad_header").field == "reserved"
    bad = bytearray(h)
    bad[32:40] = struct.pack("<d", float("nan"))
    assert _err([bytes(bad), frames[1]], "bad_header").field == "capture_time"


def test_non_buffer_frames():
    assert _err(["not bytes", b""], "bad_frame").field == "header"
    assert _err([Header(MsgType.HELLO).pack(), 42], "bad_frame").field == "metadata"


def test_type_not_allowed_in_this_direction():
    frames = encode(Header(MsgType.CHUNK), {})
    assert _err(frames, "bad_type").field == "type"


def test_frame_counts():
    frames = _bytes(_obs_frames())
    _err([frames[0]], "missing_frames")
    _err([], "missing_frames")
    _err([frames[0], frames[1]] + [b""] * (MAX_FRAMES - 1), "too_many_frames")
    # a tensor frame without a description, and a description without a frame
    _err([frames[0], frames[1], b"1234"], "missing_frames")
    full = _bytes(_obs_frames(a=np.zeros(2, np.float32)))
    _err(full[:2], "missing_frames")


def test_metadata_garbage():
    h = Header(MsgType.HELLO).pack()
    assert _err([h, b"\xc1\xc1\xc1"], "bad_metadata").field == "metadata"
    _err([h, msgpack.packb([1, 2, 3])], "bad_metadata")  # not a map
    _err([h, msgpack.packb({1: 2})], "bad_metadata")  # non-string key
    _err([h, msgpack.packb({"a": msgpack.ExtType(1, b"x")})], "bad_metadata")  # ext type
    _err([h, msgpack.packb({"a": 1}) + b"trailing"], "bad_metadata")
    e = _err([h, b"\x80" + b"\x00" * MAX_METADATA_BYTES], "bad_metadata")
    assert str(MAX_METADATA_BYTES) in e.limit
    _err([h, msgpack.packb({"tensors": "nope"})], "bad_metadata")


def _with_descr(descr: list, *payload: bytes) -> list[bytes]:
    return [Header(MsgType.OBS).pack(), msgpack.packb({"tensors": descr}), *payload]


def test_dtype_not_allowed():
    for dtype in ("object", "complex128", "<U4", "V8", "float128", 3):
        frames = _with_descr([{"name": "a", "dtype": dtype, "shape": [1]}], b"\x00" * 8)
        e = _err(frames, "bad_dtype" if isinstance(dtype, str) else "bad_metadata")
        assert e.field.startswith("tensors[0].dtype")


def test_shape_checks():
    for shape in ([-1], [1.5], "3", [1] * 9, [True], None):
        frames = _with_descr([{"name": "a", "dtype": "uint8", "shape": shape}], b"\x00")
        assert _err(frames, "bad_shape").field == "tensors[0].shape"


def test_size_mismatch_names_the_tensor_and_expected_size():
    frames = _with_descr([{"name": "img", "dtype": "float32", "shape": [2, 3]}], b"\x00" * 23)
    e = _err(frames, "size_mismatch")
    assert e.field == "tensors[0]" and "img" in str(e) and e.limit == "24 bytes"


def test_oversize_tensor_is_refused_before_reading():
    frames = _with_descr([{"name": "a", "dtype": "float64", "shape": [MAX_TENSOR_BYTES]}], b"")
    e = _err(frames, "oversize")
    assert str(MAX_TENSOR_BYTES) in e.limit


def test_duplicate_tensor_names_and_bad_entries():
    d = {"name": "a", "dtype": "uint8", "shape": [1]}
    _err(_with_descr([d, d], b"\x00", b"\x00"), "bad_metadata")
    _err(_with_descr(["x"], b"\x00"), "bad_metadata")
    _err(_with_descr([{"dtype": "uint8", "shape": [1]}], b"\x00"), "bad_metadata")


def test_encode_refuses_disallowed_dtypes():
    with pytest.raises(ProtocolError) as info:
        encode(Header(MsgType.OBS), {}, {"a": np.array(["x"], dtype=object)})
    assert info.value.code == "bad_dtype"


def test_error_message_echoes_the_request():
    req = Header(MsgType.OBS, 5, 6, 7, 8.0, 9, b"hhhhhhhh")
    msg = decode(error_message(req, ProtocolError("expired", "budget_us", "late", "9 us")))
    assert msg.header.type is MsgType.ERROR
    assert (msg.header.session_id, msg.header.seq, msg.header.obs_tick) == (5, 6, 7)
    assert msg.meta == {"code": "expired", "field": "budget_us", "message": "late", "limit": "9 us"}


# -- schema -------------------------------------------------------------------------------------------------


def test_schema_round_trip_and_hash():
    s = standard_schema()
    back = Schema.from_dict(msgpack.unpackb(msgpack.packb(s.as_dict())))
    assert back == s and back.hash == s.hash and len(s.hash) == 8
    # observation order does not matter for the hash
    assert Schema(tuple(reversed(s.observation)), s.action, s.policy_dt).hash == s.hash


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda s: standard_schema(state_dim=13), ["observation.state", "shape"]),
        (lambda s: standard_schema(chunk_size=49), ["action", "shape"]),
        (lambda s: standard_schema(policy_dt=0.05), ["policy_dt"]),
        (lambda s: standard_schema(cameras=1), ["cam1", "missing"]),
        (
            lambda s: Schema(
                s.observation,
                TensorSpec("action", s.action.shape, "float32", "rad", tuple(reversed(s.action.names))),
                s.policy_dt,
            ),
            ["joint order"],
        ),
        (
            lambda s: Schema(
                s.observation, TensorSpec("action", s.action.shape, "float32", "m", s.action.names), s.policy_dt
            ),
            ["unit"],
        ),
        (
            lambda s: Schema(
                s.observation, TensorSpec("action", s.action.shape, "float64", "rad", s.action.names), s.policy_dt
            ),
            ["dtype"],
        ),
    ],
)
def test_every_schema_difference_changes_the_hash_and_is_named(change, words):
    s = standard_schema()
    other = change(s)
    assert other.hash != s.hash
    diffs = schema_differences(s, other)
    assert diffs
    text = " ".join(diffs)
    assert all(w in text for w in words), text


def test_schema_validation_errors():
    with pytest.raises(ProtocolError):
        TensorSpec("a", (3,), "object")
    with pytest.raises(ProtocolError):
        TensorSpec("a", (3,), "float32", names=("x", "y"))
    with pytest.raises(ProtocolError):
        Schema((), TensorSpec("action", (7,), "float32"), 0.1)  # not (H, D)
    with pytest.raises(ProtocolError):
        Schema.from_dict(
            {
                "observation": [],
                "action": {"name": "a", "dtype": "float32", "shape": [2, 1]},
                "policy_dt": 0.1,
                "chunk_size": 3,
            }
        )


def test_check_observation():
    s = standard_schema(image_size=4)
    obs = {spec.name: np.zeros(spec.shape, spec.dtype) for spec in s.observation}
    check_observation(s, obs)
    with pytest.raises(ProtocolError, match="observation.state.shape"):
        check_observation(s, {**obs, "observation.state": np.zeros(3, np.float32)})
    with pytest.raises(ProtocolError, match="dtype"):
        check_observation(s, {**obs, "observation.state": np.zeros(14, np.float64)})
    with pytest.raises(ProtocolError, match="missing"):
        check_observation(s, {k: v for k, v in obs.items() if k != "observation.state"})


# -- fuzzing --------------------------------------------------------------------------------------------------


def _mutations() -> st.SearchStrategy[list[bytes]]:
    good = _bytes(_obs_frames(a=np.arange(6, dtype=np.float32).reshape(2, 3), b=np.zeros(4, np.uint8)))

    @st.composite
    def mutate(draw: st.DrawFn) -> list[bytes]:
        frames = list(good)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(frames) - 1)) if frames else 0
            op = draw(st.sampled_from(["flip", "truncate", "extend", "drop", "dup", "replace"]))
            if not frames:
                frames.append(draw(st.binary(max_size=80)))
                continue
            f = bytearray(frames[i])
            if op == "flip" and f:
                j = draw(st.integers(0, len(f) - 1))
                f[j] = draw(st.integers(0, 255))
                frames[i] = bytes(f)
            elif op == "truncate":
                frames[i] = bytes(f[: draw(st.integers(0, len(f)))])
            elif op == "extend":
                frames[i] = bytes(f) + draw(st.binary(max_size=16))
            elif op == "drop":
                del frames[i]
            elif op == "dup":
                frames.insert(i, frames[i])
            else:
                frames[i] = draw(st.binary(max_size=80))
        return frames

    return mutate()


_meta_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_fuzz_mutated_messages_raise_only_protocol_errors(frames):
    try:
        decode(frames, CLIENT_TYPES)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=6))
def test_fuzz_random_frames_raise_only_protocol_errors(frames):
    try:
        decode(frames)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _meta_values, max_size=5), st.lists(st.binary(max_size=64), max_size=3))
def test_fuzz_random_metadata_raise_only_protocol_errors(meta, payload):
    meta_bytes = msgpack.packb(meta, use_bin_type=True)
    for m in (meta_bytes, msgpack.packb({"tensors": meta.get("tensors", list(meta.values()))})):
        try:
            decode([Header(MsgType.OBS).pack(), m, *payload])
        except ProtocolError:
            pass
    try:
        Schema.from_dict(meta)
    except ProtocolError:
        pass
