"""AWS event-stream frames read as botocore reads them, at a fraction of its CPU per frame.

SageMaker's ``InvokeEndpointWithResponseStream`` sends one frame per piece of output, so at hundreds of streams
the client reads thousands of frames a second. botocore's ``EventStreamBuffer`` spends most of the SageMaker
client's extra CPU per token (a copy of the buffer per field, a Python call per byte range; measured in
benchmark/README.md "Client capacity"). :class:`FrameDecoder` reads a well-formed frame in a few calls: the
prelude and message CRC32s checked with ``zlib`` (the checks botocore makes, in its order), headers of every
wire type decoded to botocore's values (integers of every width as ``int``, a timestamp as epoch milliseconds, a
UUID as its 16 bytes, byte arrays as ``bytes``).

Anything else is botocore's: from the first frame whose prelude or message CRC does not match, whose lengths
pass botocore's limits or leave no room for the CRCs, whose headers overrun their block, repeat a name, use an
unknown type or are not UTF-8, the remaining bytes go to botocore's own ``EventStreamBuffer`` for the rest of
the stream, which then raises (or reads) exactly what it would have. tests/benchmark/test_eventstream_decoder.py
decodes the same bytes, split at every byte, with botocore as the oracle.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, cast

from botocore.eventstream import EventStreamBuffer

# botocore.eventstream's limits (_MAX_HEADERS_LENGTH, _MAX_PAYLOAD_LENGTH): beyond them it raises.
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
# Wire type -> (struct for a fixed-width value, its size); 0/1 booleans, 6 bytes, 7 string, 9 UUID are below.
_FIXED = {
    2: (struct.Struct(">b"), 1),
    3: (struct.Struct(">h"), 2),
    4: (struct.Struct(">i"), 4),
    5: (struct.Struct(">q"), 8),
    8: (struct.Struct(">q"), 8),  # timestamp: botocore gives the int64 of epoch milliseconds
}
_U16 = struct.Struct(">H")

Message = tuple[dict[str, Any], bytes]


class _Irregular(Exception):  # noqa: N818 - control flow: hand this frame to botocore
    """A frame the fast path does not read: botocore reads it (and raises what it raises)."""


class FrameDecoder:
    """Frames from bytes fed in pieces: ``feed`` returns every frame completed so far as (headers, payload).

    Where botocore raises while reading, ``feed`` returns the frames it read before and :attr:`error` holds what
    it raised, so that a caller handles them in the order botocore's iterator would give them (then raises).
    """

    __slots__ = ("_botocore", "_data", "error")

    def __init__(self) -> None:
        self._data = b""
        self._botocore: EventStreamBuffer | None = None
        self.error: Exception | None = None

    @property
    def handed_over(self) -> bool:
        """True once botocore's parser reads the stream (after an irregular frame)."""
        return self._botocore is not None

    def feed(self, data: bytes) -> list[Message]:
        if self.error is not None:
            raise self.error
        if self._botocore is not None:
            return self._from_botocore(data)
        buffer = self._data + data if self._data else bytes(data)
        messages: list[Message] = []
        at, size = 0, len(buffer)
        while size - at >= 12:
            total, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer, at)
            try:
                if (
                    zlib.crc32(buffer[at : at + 8]) != prelude_crc
                    or headers_length > MAX_HEADERS_LENGTH
                    or total - headers_length - 16 > MAX_PAYLOAD_LENGTH
                    or total < headers_length + 16
                ):
                    raise _Irregular
                if size - at < total:
                    break
                end = at + total - 4
                if zlib.crc32(buffer[at + 8 : end], prelude_crc) != _U32.unpack_from(buffer, end)[0]:
                    raise _Irregular
                headers_end = at + 12 + headers_length
                messages.append((_headers(buffer, at + 12, headers_end), buffer[headers_end:end]))
            except _Irregular:
                self._data = b""
                return messages + self._from_botocore(buffer[at:])
            at += total
        self._data = buffer[at:]
        return messages

    def _from_botocore(self, data: bytes) -> list[Message]:
        if self._botocore is None:
            self._botocore = EventStreamBuffer()
        self._botocore.add_data(data)
        messages: list[Message] = []
        try:
            for message in self._botocore:
                # botocore's stubs call the headers an int
                messages.append((cast("dict[str, Any]", message.headers), message.payload))
        except Exception as exc:  # botocore's ParserError, or what its header decoding raises (UnicodeDecodeError)
            self.error = exc
        return messages


def _headers(buffer: bytes, at: int, end: int) -> dict[str, Any]:
    """One frame's headers, as botocore's ``EventStreamHeaderParser`` decodes a well-formed block."""
    headers: dict[str, Any] = {}
    while at < end:
        name_end = at + 1 + buffer[at]
        if name_end >= end:
            raise _Irregular
        try:
            name = buffer[at + 1 : name_end].decode("utf-8")
        except UnicodeDecodeError:
            raise _Irregular from None
        kind = buffer[name_end]
        at = name_end + 1
        value: Any
        if kind in {6, 7}:
            if at + 2 > end:
                raise _Irregular
            length = _U16.unpack_from(buffer, at)[0]
            value = buffer[at + 2 : at + 2 + length]
            at += 2 + length
            if kind == 7:
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Irregular from None
        elif kind in {0, 1}:
            value = kind == 0
        elif kind == 9:
            value = buffer[at : at + 16]
            at += 16
        elif kind in _FIXED:
            unpacker, width = _FIXED[kind]
            if at + width > end:
                raise _Irregular
            value = unpacker.unpack_from(buffer, at)[0]
            at += width
        else:
            raise _Irregular
        if at > end or name in headers:
            raise _Irregular
        headers[name] = value
    return headers
