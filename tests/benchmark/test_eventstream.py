"""The emulator's AWS event-stream frames, read by botocore's own parser (what the SageMaker client reads with).

botocore is the oracle: every frame the emulator writes must come out of ``EventStreamBuffer`` with its headers
and payload, whole or split at any byte, and any corrupted byte must be refused by it.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from botocore.eventstream import EventStreamBuffer, ParserError
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.emulator.eventstream import (
    HeaderValue,
    Int8,
    Int16,
    Int64,
    encode_headers,
    encode_message,
    event_message,
    exception_message,
)

TIMESTAMP = datetime(2026, 11, 1, 12, 0, 0, 123000, tzinfo=UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
ALL_TYPES: dict[str, HeaderValue] = {
    "t": True,
    "f": False,
    "b": Int8(-7),
    "s": Int16(1234),
    "i": 2_000_000,
    "l": Int64(-(2**40)),
    "bytes": b"\x00\xffraw",
    ":event-type": "PayloadPart",
    "ts": TIMESTAMP,
    "id": ID,
}


def read(*chunks: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """(headers, payload) of every message botocore reads from ``chunks``, fed one after the other."""
    buffer = EventStreamBuffer()
    messages = []
    for chunk in chunks:
        buffer.add_data(chunk)
        # botocore's stubs call the headers an int
        messages += [(cast("dict[str, Any]", message.headers), message.payload) for message in buffer]
    return messages


def as_botocore_reads(value: HeaderValue) -> object:
    """A header value as botocore decodes it: integers of every width as int, a timestamp in epoch
    milliseconds, a UUID as its 16 bytes."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def _stream() -> bytes:
    return b"".join(
        [
            event_message("PayloadPart", 'data:{"token":{"text":" 世界 🙂"}}\n\n'.encode(), content_type="a/b"),
            encode_message(ALL_TYPES, b"payload"),
            encode_message({}, b""),
            exception_message("ModelStreamError", b'{"Message":"boom","ErrorCode":"x"}'),
        ]
    )


def test_every_header_type_is_read_back_by_botocore() -> None:
    ((headers, payload),) = read(encode_message(ALL_TYPES, b"payload"))
    assert headers == {name: as_botocore_reads(value) for name, value in ALL_TYPES.items()}
    assert payload == b"payload"


@pytest.mark.parametrize(("value", "width"), [(Int8(-7), 1), (Int16(-7), 2), (-7, 4), (Int64(-7), 8), (2**40, 8)])
def test_integers_go_out_at_their_declared_width(value: int, width: int) -> None:
    """Name length, name, type byte, then the value: the width the type says (botocore reads them all as int)."""
    assert len(encode_headers({"n": value})) == 1 + 1 + 1 + width
    assert read(encode_message({"n": value})) == [({"n": value}, b"")]


def test_botocore_reads_the_emulators_stream() -> None:
    messages = read(_stream())
    assert [payload for _, payload in messages] == [
        'data:{"token":{"text":" 世界 🙂"}}\n\n'.encode(),
        b"payload",
        b"",
        b'{"Message":"boom","ErrorCode":"x"}',
    ]
    first, _, empty, error = (headers for headers, _ in messages)
    assert first == {":event-type": "PayloadPart", ":content-type": "a/b", ":message-type": "event"}
    assert empty == {}
    assert error == {
        ":exception-type": "ModelStreamError",
        ":content-type": "application/json",
        ":message-type": "exception",
    }


def test_split_at_every_offset_reads_identically() -> None:
    data = _stream()
    expected = read(data)
    for cut in range(len(data) + 1):
        assert read(data[:cut], data[cut:]) == expected, cut
    assert read(*(data[i : i + 1] for i in range(len(data)))) == expected


def test_any_flipped_byte_is_refused_by_botocore() -> None:
    """The two CRCs cover every byte of a frame: botocore refuses any corrupted one."""
    frame = event_message("PayloadPart", b"hello", content_type="application/octet-stream")
    for index in range(len(frame)):
        corrupt = bytearray(frame)
        corrupt[index] ^= 0x01
        with pytest.raises(ParserError):
            read(bytes(corrupt))


def test_oversized_frames_are_refused_before_they_are_sent() -> None:
    with pytest.raises(ValueError, match="too large"):
        encode_message({}, b"x" * (24 * 1024 * 1024 + 1))
    with pytest.raises(ValueError, match="1-255 bytes"):
        encode_message({"x" * 256: True})


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
header_sets = st.dictionaries(st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) < 256), header_values)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(header_sets, st.binary(max_size=200)), min_size=1, max_size=4),
    st.lists(st.integers(0, 2000), max_size=6),
)
def test_property_botocore_reads_what_was_written_whatever_the_cuts(
    items: list[tuple[dict[str, HeaderValue], bytes]], cuts: list[int]
) -> None:
    data = b"".join(encode_message(headers, payload) for headers, payload in items)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    expected = [({k: as_botocore_reads(v) for k, v in headers.items()}, payload) for headers, payload in items]
    assert read(*(data[a:b] for a, b in itertools.pairwise(bounds))) == expected
