"""The SageMaker client's event-stream decoder against botocore's own parser, the oracle.

The same bytes, split the same way, go to botocore's ``EventStreamBuffer`` and to :class:`FrameDecoder`: both
must give the same frames (headers and payload) and, where botocore raises, the same error after the same
frames. Frames are well-formed (every header type), corrupted at any byte, truncated, or built by hand with
what the encoder refuses to write (duplicate names, unknown types, bad UTF-8, lengths that do not add up).
"""

from __future__ import annotations

import itertools
import struct
import uuid
import zlib
from typing import Any, cast

from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.clients.eventstream import FrameDecoder
from benchmark.emulator.eventstream import HeaderValue, Int8, Int16, Int64, encode_message, event_message

Outcome = tuple[list[tuple[dict[str, Any], bytes]], tuple[str, str] | None]


def botocore_reads(chunks: list[bytes]) -> Outcome:
    buffer = EventStreamBuffer()
    messages: list[tuple[dict[str, Any], bytes]] = []
    try:
        for chunk in chunks:
            buffer.add_data(chunk)
            for message in buffer:
                messages.append((cast("dict[str, Any]", message.headers), message.payload))
    except Exception as exc:
        return messages, (type(exc).__name__, str(exc))
    return messages, None


def decoder_reads(chunks: list[bytes]) -> Outcome:
    decoder = FrameDecoder()
    messages: list[tuple[dict[str, Any], bytes]] = []
    for chunk in chunks:
        messages += decoder.feed(chunk)
        if decoder.error is not None:
            return messages, (type(decoder.error).__name__, str(decoder.error))
    return messages, None


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(0, c), len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def raw_frame(
    raw_headers: bytes, payload: bytes, *, total: int | None = None, headers_length: int | None = None
) -> bytes:
    """A frame with correct CRCs around whatever header block and lengths are given (cut or padded to ``total``)."""
    length = len(raw_headers) if headers_length is None else headers_length
    size = 16 + len(raw_headers) + len(payload) if total is None else total
    prelude = struct.pack(">II", size, length)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = (prelude + raw_headers + payload)[: max(12, size - 4)]
    body += bytes(max(0, size - 4 - len(body)))
    return body + struct.pack(">I", zlib.crc32(body))


def string_header(name: bytes, value: bytes, kind: int = 7) -> bytes:
    return bytes([len(name)]) + name + bytes([kind]) + struct.pack(">H", len(value)) + value


PAYLOAD_PART = event_message(
    "PayloadPart", b'data:{"token":{"text":" w1"}}\n\n', content_type="application/octet-stream"
)
EVERY_TYPE: dict[str, HeaderValue] = {
    "t": True,
    "f": False,
    "b": Int8(-7),
    "s": Int16(-1234),
    "i": 2_000_000,
    "l": Int64(-(2**40)),
    "bytes": b"\x00\xffraw",
    ":event-type": "PayloadPart",
    "id": uuid.UUID(int=12345),
}
TIMESTAMP = bytes([2]) + b"ts" + bytes([8]) + struct.pack(">q", 1_790_000_000_123)
IRREGULAR = {  # what the encoder refuses to write
    "empty name": raw_frame(string_header(b"", b"v"), b"x"),
    "duplicate name": raw_frame(string_header(b"a", b"1") + string_header(b"a", b"2"), b"x"),
    "unknown type": raw_frame(bytes([1]) + b"a" + bytes([10]) + b"\x00\x00", b"x"),
    "name not utf-8": raw_frame(string_header(b"\xff\xfe", b"v"), b"x"),
    "value not utf-8": raw_frame(string_header(b"a", b"\xc3\x28"), b"x"),
    "value overruns the block": raw_frame(string_header(b"a", b"value")[:-2], b"payload"),
    "headers longer than the frame": raw_frame(string_header(b"a", b"v"), b"", total=20),
    "headers length past the CRC": raw_frame(b"\x01a\x00", b"", headers_length=12, total=19),
    "headers length too large": raw_frame(b"", b"", headers_length=128 * 1024 + 1, total=16),
    "payload too large": raw_frame(b"", b"", total=24 * 1024 * 1024 + 17),
    "total below the prelude": raw_frame(b"", b"", total=8),
}


def test_every_header_type_and_a_timestamp_decode_as_botocore_decodes_them() -> None:
    data = encode_message(EVERY_TYPE, b"payload") + raw_frame(TIMESTAMP, b"") + PAYLOAD_PART
    expected = botocore_reads([data])
    assert expected[1] is None and len(expected[0]) == 3
    assert decoder_reads([data]) == expected


def test_split_at_every_byte_gives_botocores_frames() -> None:
    data = PAYLOAD_PART + encode_message(EVERY_TYPE, b"p" * 40) + PAYLOAD_PART
    expected = botocore_reads([data])
    for cut in range(len(data) + 1):
        assert decoder_reads(split(data, [cut])) == expected, cut


def test_well_formed_sagemaker_frames_stay_on_the_fast_path() -> None:
    decoder = FrameDecoder()
    assert len(decoder.feed(PAYLOAD_PART * 50)) == 50
    assert not decoder.handed_over


def test_every_corrupted_byte_is_refused_as_botocore_refuses_it() -> None:
    data = PAYLOAD_PART + PAYLOAD_PART
    for index in range(len(PAYLOAD_PART), len(data)):
        corrupted = bytearray(data)
        corrupted[index] ^= 0x41
        expected = botocore_reads([bytes(corrupted)])
        assert expected[1] is not None  # botocore refuses it
        assert decoder_reads([bytes(corrupted)]) == expected, index


def test_irregular_frames_read_or_fail_as_in_botocore() -> None:
    for name, frame in IRREGULAR.items():
        data = PAYLOAD_PART + frame + PAYLOAD_PART
        for cut in (0, len(PAYLOAD_PART) + 5, len(PAYLOAD_PART) + 13, len(data) - 3):
            chunks = split(data, [cut])
            assert decoder_reads(chunks) == botocore_reads(chunks), (name, cut)


def test_frames_after_an_error_are_not_read() -> None:
    decoder = FrameDecoder()
    bad = bytearray(PAYLOAD_PART)
    bad[-1] ^= 1
    assert decoder.feed(PAYLOAD_PART + bytes(bad)) == decoder_reads([PAYLOAD_PART])[0]
    assert decoder.error is not None
    error = decoder.error
    try:
        decoder.feed(PAYLOAD_PART)
    except Exception as exc:
        assert exc is error
    else:
        raise AssertionError("feeding after an error must raise it again")


header_values = st.one_of(
    st.booleans(),
    st.integers(-128, 127).map(Int8),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.binary(max_size=40),
    st.text(max_size=20),
    st.uuids(),
)
frames = st.builds(
    encode_message,
    st.dictionaries(st.text(min_size=1, max_size=12), header_values, max_size=5),
    st.binary(max_size=300),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(frames, st.sampled_from(list(IRREGULAR.values()))), min_size=1, max_size=5),
    st.lists(st.integers(0, 2000), max_size=6),
    st.one_of(st.none(), st.tuples(st.integers(0, 5000), st.integers(1, 255))),
)
def test_any_frames_any_split_any_flipped_byte_agree_with_botocore(
    messages: list[bytes], cuts: list[int], flip: tuple[int, int] | None
) -> None:
    data = bytearray(b"".join(messages))
    if flip is not None:
        data[flip[0] % len(data)] ^= flip[1]
    chunks = split(bytes(data), cuts)
    assert decoder_reads(chunks) == botocore_reads(chunks)
