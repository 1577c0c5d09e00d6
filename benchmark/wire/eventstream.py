"""AWS event-stream binary framing (``application/vnd.amazon.eventstream``).

SageMaker's ``InvokeEndpointWithResponseStream`` wraps every piece of the model's output in one of these
frames. boto3 decodes them for the real client; this module exists so the emulator can *produce* them
and the tests can check them, including frames split across reads at any byte.

Frame layout (all integers big-endian)::

    total length (u32) | headers length (u32) | prelude CRC32 (u32) | headers | payload | message CRC32 (u32)

The prelude CRC covers the first 8 bytes; the message CRC covers everything before it.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

PRELUDE_LENGTH = 12
CRC_LENGTH = 4
MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + CRC_LENGTH
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

_U32 = struct.Struct(">I")
_PRELUDE = struct.Struct(">II")


class MalformedFrame(ValueError):  # noqa: N818 - the name says what the bytes are, as in the brief
    """The bytes are not a valid event-stream message (bad CRC, impossible length, truncated header)."""


class Int8(int):
    """A header value sent as a signed byte (wire type 2)."""


class Int16(int):
    """A header value sent as a signed short (wire type 3)."""


class Int64(int):
    """A header value sent as a signed long (wire type 5); a plain ``int`` is sent as int32 when it fits."""


HeaderValue = bool | int | bytes | str | datetime | uuid.UUID

_TRUE, _FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)


@dataclass(frozen=True)
class Message:
    """One decoded frame."""

    headers: dict[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    @property
    def message_type(self) -> str | None:
        value = self.headers.get(":message-type")
        return value if isinstance(value, str) else None

    @property
    def event_type(self) -> str | None:
        value = self.headers.get(":event-type")
        return value if isinstance(value, str) else None

    @property
    def exception_type(self) -> str | None:
        value = self.headers.get(":exception-type")
        return value if isinstance(value, str) else None


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


def _decode_headers(raw: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos, end = 0, len(raw)

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > end:
            raise MalformedFrame(f"header section truncated at byte {pos} (needs {n} more, has {end - pos})")
        chunk = raw[pos : pos + n]
        pos += n
        return chunk

    while pos < end:
        name_length = take(1)[0]
        if name_length == 0:
            raise MalformedFrame("header name of length 0")
        try:
            name = take(name_length).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedFrame(f"header name is not UTF-8: {exc}") from None
        kind = take(1)[0]
        value: HeaderValue
        if kind == _TRUE:
            value = True
        elif kind == _FALSE:
            value = False
        elif kind == _BYTE:
            value = Int8(struct.unpack(">b", take(1))[0])
        elif kind == _SHORT:
            value = Int16(struct.unpack(">h", take(2))[0])
        elif kind == _INT:
            value = int(struct.unpack(">i", take(4))[0])
        elif kind in (_LONG, _TIMESTAMP):
            number = struct.unpack(">q", take(8))[0]
            value = Int64(number) if kind == _LONG else datetime.fromtimestamp(number / 1000, tz=UTC)
        elif kind in (_BYTES, _STRING):
            data = take(struct.unpack(">H", take(2))[0])
            if kind == _BYTES:
                value = data
            else:
                try:
                    value = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise MalformedFrame(f"header {name!r} is not UTF-8: {exc}") from None
        elif kind == _UUID:
            value = uuid.UUID(bytes=take(16))
        else:
            raise MalformedFrame(f"header {name!r} has unknown value type {kind}")
        headers[name] = value
    return headers


def decode_message(frame: bytes) -> Message:
    """Decode exactly one complete frame (raises :class:`MalformedFrame` on anything else)."""
    decoder = EventStreamDecoder()
    messages = decoder.feed(frame)
    decoder.close()
    if len(messages) != 1:
        raise MalformedFrame(f"expected exactly one message, got {len(messages)}")
    return messages[0]


class EventStreamDecoder:
    """Incremental decoder: feed bytes as they arrive, split anywhere; complete messages come out.

    Validation happens as early as possible: lengths and the prelude CRC as soon as 12 bytes are
    buffered, so a corrupt length cannot make the decoder wait forever for bytes that never come.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._expected: int | None = None  # total length of the message being assembled
        self._headers_length = 0
        self.messages_decoded = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        self._buffer += data
        out: list[Message] = []
        while True:
            if self._expected is None:
                if len(self._buffer) < PRELUDE_LENGTH:
                    return out
                self._read_prelude()
            assert self._expected is not None
            if len(self._buffer) < self._expected:
                return out
            frame = bytes(self._buffer[: self._expected])
            del self._buffer[: self._expected]
            self._expected = None
            out.append(self._finish(frame))

    def _read_prelude(self) -> None:
        total, headers_length = _PRELUDE.unpack_from(self._buffer, 0)
        (prelude_crc,) = _U32.unpack_from(self._buffer, 8)
        actual = zlib.crc32(bytes(self._buffer[:8]))
        where = f"message {self.messages_decoded}"
        if actual != prelude_crc:
            raise MalformedFrame(f"{where}: prelude CRC mismatch (got {prelude_crc:#010x}, computed {actual:#010x})")
        if total < MIN_MESSAGE_LENGTH:
            raise MalformedFrame(f"{where}: total length {total} below the minimum {MIN_MESSAGE_LENGTH}")
        if headers_length > MAX_HEADERS_LENGTH or headers_length > total - MIN_MESSAGE_LENGTH:
            raise MalformedFrame(f"{where}: headers length {headers_length} impossible for total length {total}")
        if total - MIN_MESSAGE_LENGTH - headers_length > MAX_PAYLOAD_LENGTH:
            raise MalformedFrame(f"{where}: payload longer than {MAX_PAYLOAD_LENGTH} bytes")
        self._expected = total
        self._headers_length = headers_length

    def _finish(self, frame: bytes) -> Message:
        (message_crc,) = _U32.unpack_from(frame, len(frame) - CRC_LENGTH)
        actual = zlib.crc32(frame[: len(frame) - CRC_LENGTH])
        if actual != message_crc:
            raise MalformedFrame(
                f"message {self.messages_decoded}: message CRC mismatch "
                f"(got {message_crc:#010x}, computed {actual:#010x})"
            )
        headers_end = PRELUDE_LENGTH + self._headers_length
        headers = _decode_headers(frame[PRELUDE_LENGTH:headers_end])
        self.messages_decoded += 1
        return Message(headers=headers, payload=frame[headers_end : len(frame) - CRC_LENGTH])

    def close(self) -> None:
        """Declare the stream ended: leftover bytes mean the last frame was cut off."""
        if self._buffer:
            raise MalformedFrame(f"stream ended inside a message ({len(self._buffer)} bytes left over)")


def decode_all(chunks: Iterable[bytes]) -> list[Message]:
    """Decode a whole stream given as chunks; raises if it ends mid-message."""
    decoder = EventStreamDecoder()
    out: list[Message] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    decoder.close()
    return out
