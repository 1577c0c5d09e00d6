"""HTTP/1.1 responses parsed incrementally, each body chunk handed on with the time its bytes arrived.

The parser owns framing only (status line, headers, ``Content-Length``, ``chunked``, read-until-close); the
connection that feeds it (:mod:`benchmark.wire.connection`) owns sockets, TLS and clocks. Body bytes are
given to a sink as they are framed, without waiting for a coroutine to wake up, so a token's arrival time is
the receive time of the bytes that completed it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

BodySink = Callable[[bytes, float], None]
_MAX_HEAD = 64 * 1024


class ProtocolError(Exception):
    """The server's bytes are not HTTP/1.1."""


class BodyEnded(Exception):  # noqa: N818 - names the event, like EOFError
    """The connection closed before the response was complete; ``received`` bytes of it had arrived."""

    def __init__(self, received: int, detail: str) -> None:
        super().__init__(detail)
        self.received = received


def request_bytes(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """One request: ``Host`` and ``Content-Length`` from the arguments, then ``headers`` as given."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    for name, value in headers.items():
        if name.lower() in ("host", "content-length"):
            continue
        if any(c in name or c in value for c in "\r\n"):
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` / ``Proxy-Authorization`` value for HTTP Basic (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@dataclass
class Response:
    """One response as it arrives. ``sink`` gets the body of a success as sent (see :attr:`streamed`); other
    bodies (errors, redirects, a body the server compressed) are kept in ``body``."""

    sink: BodySink | None = None
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: bytearray = field(default_factory=bytearray)
    received: int = 0  # bytes of this response seen so far, head included
    last_at: float = 0.0  # when the latest of those bytes arrived: the answer's end, once it is complete
    keep_alive: bool = True
    # Set with the head: the body goes to the sink, a success (2xx) whose bytes are the payload (no encoding).
    streamed: bool = False

    @property
    def content_encoding(self) -> str:
        """The body's ``Content-Encoding`` other than ``identity`` (lower case), else ``""``."""
        encoding = self.headers.get("content-encoding", "").strip().lower()
        return "" if encoding == "identity" else encoding

    def deliver(self, data: bytes, at: float) -> None:
        if self.streamed and self.sink is not None:
            self.sink(data, at)
        else:
            self.body += data


class ResponseParser:
    """Feed bytes of one connection; ``on_head`` and ``on_done`` fire as the current response progresses."""

    def __init__(self, response: Response, on_head: Callable[[], None], on_done: Callable[[], None]) -> None:
        self.response = response
        self._on_head, self._on_done = on_head, on_done
        self._buffer = bytearray()
        self._state = "head"  # head, length, chunk-size, chunk-data, chunk-end, trailer, close, done
        self._left = 0  # bytes left in the body (length) or the current chunk

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes, at: float) -> None:
        """Frame ``data``; raises :class:`ProtocolError` on bytes that are not HTTP."""
        self.response.received += len(data)
        self.response.last_at = at
        self._buffer += data
        while self._buffer and self._state != "done":
            if not self._step(at):
                break

    def eof(self) -> None:
        """The connection closed: the end of a read-until-close body, else a cut-off response."""
        if self._state == "close":
            self._finish()
        elif self._state != "done":
            got = self.response.received
            where = "before a response" if got == 0 else f"inside the response after {got} bytes"
            raise BodyEnded(got, f"connection closed {where}")

    def _step(self, at: float) -> bool:
        """Consume what the current state can; False when it needs more bytes."""
        if self._state == "head":
            return self._head()
        if self._state in ("length", "close", "chunk-data"):
            return self._body_bytes(at)
        return self._chunk_framing()

    def _head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise ProtocolError(f"response head longer than {_MAX_HEAD} bytes")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        version, _, rest = head[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
        status = int(code)
        if 100 <= status < 200:  # 100 Continue and friends: the real response follows
            return True
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"malformed header line: {line[:80]!r}")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        response = self.response
        response.status, response.headers = status, headers
        response.streamed = response.sink is not None and 200 <= status < 300 and not response.content_encoding
        connection = headers.get("connection", "").lower()
        response.keep_alive = version == "HTTP/1.1" and "close" not in connection
        self._choose_framing(status, headers)
        self._on_head()
        if self._state == "done":
            self._on_done()
        return True

    def _choose_framing(self, status: int, headers: dict[str, str]) -> None:
        if status in (204, 304):
            self._state = "done"
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = "chunk-size"
        elif "content-length" in headers:
            value = headers["content-length"].split(",")[0].strip()
            if not value.isdigit():
                raise ProtocolError(f"Content-Length is not a number: {value[:40]!r}")
            self._left = int(value)
            self._state = "length" if self._left else "done"
        else:
            self._state = "close"
            self.response.keep_alive = False

    def _body_bytes(self, at: float) -> bool:
        if self._state == "close":
            take = len(self._buffer)
        else:
            take = min(self._left, len(self._buffer))
            self._left -= take
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        if data:
            self.response.deliver(data, at)
        if self._state == "length" and self._left == 0:
            self._finish()
        elif self._state == "chunk-data" and self._left == 0:
            self._state = "chunk-end"
        return True

    def _chunk_framing(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise ProtocolError("chunk framing line too long")
            return False
        line = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 2]
        if self._state == "chunk-end":
            if line:
                raise ProtocolError(f"chunk not followed by CRLF: {line[:40]!r}")
            self._state = "chunk-size"
        elif self._state == "chunk-size":
            size = line.split(";", 1)[0].strip()
            try:
                self._left = int(size, 16)
            except ValueError:
                raise ProtocolError(f"chunk size is not hexadecimal: {size[:40]!r}") from None
            self._state = "chunk-data" if self._left else "trailer"
        elif not line:  # the empty line that ends the trailer section
            self._finish()
        return True

    def _finish(self) -> None:
        self._state = "done"
        self._on_done()
