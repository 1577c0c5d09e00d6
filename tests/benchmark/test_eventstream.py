"""AWS event-stream framing: round trips, any split offset, corruption, and agreement with botocore."""

from __future__ import annotations

import itertools
import struct
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.wire.eventstream import (
    EventStreamDecoder,
    HeaderValue,
    Int8,
    Int16,
    Int64,
    MalformedFrame,
    Message,
    decode_all,
    decode_message,
    encode_message,
    event_message,
    exception_message,
)

ALL_TYPES: dict[str, HeaderValue] = {
    "t": True,
    "f": False,
    "b": Int8(-7),
    "s": Int16(1234),
    "i": 2_000_000,
    "l": Int64(-(2**40)),
    "bytes": b"\x00\xffraw",
    ":event-type": "PayloadPart",
    "ts": datetime(2026, 11, 1, 12, 0, 0, 123000, tzinfo=UTC),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}


def _stream() -> bytes:
    return b"".join(
        [
            event_message("PayloadPart", 'data:{"token":{"text":" 世界 🙂"}}\n\n'.encode(), content_type="a/b"),
            encode_message(ALL_TYPES, b"payload"),
            encode_message({}, b""),
            exception_message("ModelStreamError", b'{"Message":"boom","ErrorCode":"x"}'),
        ]
    )


def test_every_header_type_round_trips() -> None:
    message = decode_message(encode_message(ALL_TYPES, b"payload"))
    assert message.headers == ALL_TYPES
    assert [type(v) for v in message.headers.values()] == [type(v) for v in ALL_TYPES.values()]
    assert message.payload == b"payload"
    assert message.event_type == "PayloadPart"


def test_botocore_decodes_our_frames() -> None:
    """An independent decoder (botocore's) agrees with our encoder, header by header."""
    buffer = EventStreamBuffer()
    buffer.add_data(_stream())
    theirs: list[Any] = list(buffer)
    ours = decode_all([_stream()])
    assert len(theirs) == len(ours) == 4
    for their, our in zip(theirs, ours, strict=True):
        assert their.payload == our.payload
        assert their.headers.get(":message-type") == our.message_type
    assert theirs[0].headers[":event-type"] == "PayloadPart"
    assert theirs[3].headers[":exception-type"] == "ModelStreamError"


def test_split_at_every_offset_decodes_identically() -> None:
    data = _stream()
    expected = decode_all([data])
    for cut in range(len(data) + 1):
        assert decode_all([data[:cut], data[cut:]]) == expected, cut
    assert decode_all([data[i : i + 1] for i in range(len(data))]) == expected


def test_three_way_splits() -> None:
    data = _stream()
    expected = decode_all([data])
    for a in range(0, len(data), 7):
        for b in range(a, len(data), 11):
            assert decode_all([data[:a], data[a:b], data[b:]]) == expected


def test_any_flipped_byte_is_rejected() -> None:
    frame = event_message("PayloadPart", b"hello", content_type="application/octet-stream")
    for index in range(len(frame)):
        corrupt = bytearray(frame)
        corrupt[index] ^= 0x01
        with pytest.raises(MalformedFrame):
            decode_all([bytes(corrupt)])


def test_bad_crc_message_names_the_problem() -> None:
    frame = bytearray(event_message("PayloadPart", b"x"))
    frame[-1] ^= 0xFF
    with pytest.raises(MalformedFrame, match="message CRC mismatch"):
        EventStreamDecoder().feed(bytes(frame))


def test_impossible_lengths_fail_fast_without_waiting_for_bytes() -> None:
    prelude = struct.pack(">II", 10, 0)  # total below the 16-byte minimum
    with pytest.raises(MalformedFrame, match="below the minimum"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))
    prelude = struct.pack(">II", 20, 30)  # headers longer than the message
    with pytest.raises(MalformedFrame, match="headers length"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_truncated_stream_is_reported_on_close() -> None:
    data = _stream()
    decoder = EventStreamDecoder()
    decoder.feed(data[:-3])
    assert decoder.pending_bytes > 0
    with pytest.raises(MalformedFrame, match="left over"):
        decoder.close()


header_values = st.one_of(
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-128, 127).map(Int8),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.uuids(),
)
messages = st.builds(
    Message,
    headers=st.dictionaries(st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) < 256), header_values),
    payload=st.binary(max_size=200),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4), st.lists(st.integers(0, 2000), max_size=6))
def test_property_round_trip_with_random_cuts(items: list[Message], cuts: list[int]) -> None:
    data = b"".join(encode_message(m.headers, m.payload) for m in items)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode_all(chunks) == items
