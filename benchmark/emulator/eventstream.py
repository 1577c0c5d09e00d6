"""AWS event-stream frames (``application/vnd.amazon.eventstream``), written for the emulator to send.

SageMaker's ``InvokeEndpointWithResponseStream`` wraps every piece of the model's output in one of these
frames. Only the writing side lives here (the emulator's SageMaker route, the tests' replays): the client
reads them as botocore's own parser (``botocore.eventstream.EventStreamBuffer``) does, with
:mod:`benchmark.clients.eventstream`, and the tests decode them with botocore's.

Frame layout (all integers big-endian)::

    total length (u32) | headers length (u32) | prelude CRC32 (u32) | headers | payload | message CRC32 (u32)

The prelude CRC covers the first 8 bytes; the message CRC covers everything before it.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from datetime import datetime

PRELUDE_LENGTH = 12
CRC_LENGTH = 4
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

_U32 = struct.Struct(">I")
_PRELUDE = struct.Struct(">II")


class Int8(int):
    """A header value sent as a signed byte (wire type 2)."""


class Int16(int):
    """A header value sent as a signed short (wire type 3)."""


class Int64(int):
    """A header value sent as a signed long (wire type 5); a plain ``int`` is sent as int32 when it fits."""


HeaderValue = bool | int | bytes | str | datetime | uuid.UUID

_TRUE, _FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)


def _encode_header_value(value: HeaderValue) -> bytes:
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        return bytes([_TRUE if value else _FALSE])
    if isinstance(value, Int8):
        return struct.pack(">Bb", _BYTE, value)
    if isinstance(value, Int16):
        return struct.pack(">Bh", _SHORT, value)
    if isinstance(value, Int64) or (isinstance(value, int) and not -(2**31) <= value < 2**31):
        return struct.pack(">Bq", _LONG, value)
    if isinstance(value, int):
        return struct.pack(">Bi", _INT, value)
    if isinstance(value, bytes):
        return struct.pack(">BH", _BYTES, len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return struct.pack(">BH", _STRING, len(raw)) + raw
    if isinstance(value, datetime):
        millis = round(value.timestamp() * 1000)
        return struct.pack(">Bq", _TIMESTAMP, millis)
    if isinstance(value, uuid.UUID):
        return bytes([_UUID]) + value.bytes
    raise TypeError(f"unsupported event-stream header value {value!r}")


def encode_headers(headers: Mapping[str, HeaderValue]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        if not 0 < len(raw_name) < 256:
            raise ValueError(f"header name must be 1-255 bytes: {name!r}")
        out += bytes([len(raw_name)]) + raw_name + _encode_header_value(value)
    return bytes(out)


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes = b"") -> bytes:
    """One complete frame."""
    raw_headers = encode_headers(headers)
    if len(raw_headers) > MAX_HEADERS_LENGTH or len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError("event-stream headers or payload too large")
    total = PRELUDE_LENGTH + len(raw_headers) + len(payload) + CRC_LENGTH
    prelude = _PRELUDE.pack(total, len(raw_headers))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + _U32.pack(zlib.crc32(body))


def event_message(event_type: str, payload: bytes, *, content_type: str | None = None) -> bytes:
    """An ``:message-type: event`` frame, e.g. SageMaker's ``PayloadPart``."""
    headers: dict[str, HeaderValue] = {":event-type": event_type}
    if content_type is not None:
        headers[":content-type"] = content_type
    headers[":message-type"] = "event"
    return encode_message(headers, payload)


def exception_message(exception_type: str, payload: bytes, *, content_type: str = "application/json") -> bytes:
    """A modelled error inside the stream, e.g. SageMaker's ``ModelStreamError``."""
    headers: dict[str, HeaderValue] = {
        ":exception-type": exception_type,
        ":content-type": content_type,
        ":message-type": "exception",
    }
    return encode_message(headers, payload)
