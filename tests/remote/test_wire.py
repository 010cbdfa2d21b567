"""Robot channel codec (rcs.remote.wire): the policy protocol's checks, its own magic and types."""

from __future__ import annotations

import numpy as np
import pytest

from rcs.remote.wire import (
    PUBLISHED_TYPES,
    REQUEST_TYPES,
    Reply,
    RobotHeader,
    RobotMsg,
    decode_message,
    description_hash,
    encode_message,
)
from rcs.serving.protocol import Header, MsgType, ProtocolError, encode


def test_round_trip_with_tensors() -> None:
    header = RobotHeader(RobotMsg.STATE, seq=7, tick=42, capture_time=12.5)
    q = np.arange(7, dtype=np.float64)
    frames = [bytes(memoryview(f)) for f in encode_message(header, {"stage": "running"}, {"q": q})]
    msg = decode_message(frames, PUBLISHED_TYPES)
    assert msg.header == header
    assert msg.meta["stage"] == "running"
    np.testing.assert_array_equal(msg.tensors["q"], q)


def test_policy_protocol_message_is_refused_by_magic() -> None:
    frames = [bytes(memoryview(f)) for f in encode(Header(MsgType.HELLO), {})]
    with pytest.raises(ProtocolError) as e:
        decode_message(frames)
    assert e.value.code == "bad_magic" and "RCSR" in str(e.value)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda f: [f[0][:10], *f[1:]], "short_header"),
        (lambda f: [f[0][:5] + bytes([99]) + f[0][6:], *f[1:]], "bad_type"),
        (lambda f: [f[0], b"\xc1"], "bad_metadata"),
        (lambda f: [f[0]], "missing_frames"),
        (lambda f: [f[0], f[1], b"\x00" * 3], "size_mismatch"),
    ],
)
def test_malformed_messages_name_the_field(mutate, code) -> None:
    frames = [
        bytes(memoryview(f))
        for f in encode_message(RobotHeader(RobotMsg.COMMAND), {"command": "x"}, {"t": np.zeros(2)})
    ]
    with pytest.raises(ProtocolError) as e:
        decode_message(mutate(frames), REQUEST_TYPES)
    assert e.value.code == code


def test_direction_is_checked() -> None:
    frames = [bytes(memoryview(f)) for f in encode_message(RobotHeader(RobotMsg.STATE), {})]
    with pytest.raises(ProtocolError) as e:
        decode_message(frames, REQUEST_TYPES)
    assert e.value.code == "bad_type"


def test_reply_round_trip_and_text() -> None:
    r = Reply(False, "jump", "positions[0, joint1]", "starts 0.3 away", "<= 0.05", {})
    assert Reply.from_meta(r.as_meta()) == r
    assert str(r) == "rejected [jump] positions[0, joint1]: starts 0.3 away (limit: <= 0.05)"


def test_description_hash_ignores_key_order() -> None:
    assert description_hash({"a": 1, "b": [1, {"c": 2, "d": 3}]}) == description_hash(
        {"b": [1, {"d": 3, "c": 2}], "a": 1}
    )
    assert description_hash({"a": 1}) != description_hash({"a": 2})
