"""HTTP/1.1 on h11, each body chunk handed on with the time its bytes arrived.

h11 (pure Python, sans-IO) owns the protocol: it serialises requests and frames responses (status line,
headers, ``Content-Length``, ``chunked``, read-until-close, interim responses, keep-alive), one state machine
per keep-alive connection. The connection that feeds it (:mod:`benchmark.wire.connection`) keeps the
socket, TLS and the clocks: it reads with ``recvmsg`` and hands each chunk here with the kernel's receive
time. Body bytes are given to a sink as h11 frames them, inside the same call that fed them, without waiting
for a coroutine to wake up, so a token's arrival time is the receive time of the bytes that completed it.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

import h11

BodySink = Callable[[bytes, float], None]
_MAX_HEAD = 64 * 1024  # the longest response head (or chunk-size line) waited for


class ProtocolError(Exception):
    """The server's bytes are not HTTP/1.1."""


class BodyEnded(Exception):  # noqa: N818 - names the event, like EOFError
    """The connection closed before the response was complete; ``received`` bytes of it had arrived."""

    def __init__(self, received: int, detail: str) -> None:
        super().__init__(detail)
        self.received = received


@dataclass(frozen=True)
class Request:
    """One request: h11's head (checked when made) and the body. A connection's h11 state machine sends it."""

    head: h11.Request
    body: bytes

    def to_bytes(self) -> bytes:
        """The bytes it goes out as, from a new connection's h11."""
        return _serialise(h11.Connection(h11.CLIENT), self)


def make_request(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes) -> Request:
    """One request: ``Host`` and ``Content-Length`` from the arguments, then ``headers`` as given.

    Raises ValueError on what h11 refuses to send (a line break in a header, a target with spaces, ...).
    """
    items = [("Host", host), ("Content-Length", str(len(body)))]
    items += [(name, value) for name, value in headers.items() if name.lower() not in ("host", "content-length")]
    try:
        head = h11.Request(
            method=method,
            target=target,
            headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in items],
        )
    except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
        raise ValueError(f"not a valid HTTP/1.1 request: {exc}") from None
    return Request(head, body)


# The name benchmark/clients/sagemaker.py imports (it predates requests made by h11); the same function.
request_bytes = make_request


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
    keep_alive: bool = True  # known once the response is complete: the connection may carry the next request
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


class ClientConnection:
    """The HTTP/1.1 side of one keep-alive connection: one h11 client state machine, one exchange at a time.

    :meth:`send` gives the bytes of a request; :meth:`feed` takes the bytes that arrive, with their time;
    ``on_head`` and ``on_done`` fire as the current response progresses. After a complete response that
    leaves the connection reusable, h11 starts the next cycle; otherwise :attr:`Response.keep_alive` is False.
    """

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self._response: Response | None = None
        self._on_head: Callable[[], None] = _nothing
        self._on_done: Callable[[], None] = _nothing

    @property
    def busy(self) -> bool:
        """A request was sent and its response is not complete."""
        return self._response is not None

    def send(
        self, request: Request, response: Response, on_head: Callable[[], None], on_done: Callable[[], None]
    ) -> bytes:
        """The bytes of ``request``; its answer will fill ``response``."""
        if self._response is not None:
            raise RuntimeError("the previous response is not complete")
        data = _serialise(self._h11, request)
        self._response, self._on_head, self._on_done = response, on_head, on_done
        return data

    def feed(self, data: bytes, at: float) -> None:
        """Frame ``data``, which arrived at ``at``; raises :class:`ProtocolError` on bytes that are not HTTP/1.1."""
        response = self._response
        if response is None:
            raise ProtocolError(f"{len(data)} bytes arrived with no request outstanding")
        response.received += len(data)
        response.last_at = at
        self._h11.receive_data(data)
        self._events(response, at)

    def eof(self) -> None:
        """The connection closed: the end of a read-until-close body, else a cut-off response."""
        response = self._response
        if response is None:
            return
        self._h11.receive_data(b"")
        with contextlib.suppress(ProtocolError):  # h11's view of a response cut off: below, how far it got
            self._events(response, response.last_at)
        if self._response is not None:
            got = response.received
            where = "before a response" if got == 0 else f"inside the response after {got} bytes"
            self._response = None
            raise BodyEnded(got, f"connection closed {where}")

    def _events(self, response: Response, at: float) -> None:
        """Hand on every event h11 can frame from what it has; stops when it needs more bytes."""
        next_event = self._h11.next_event
        while True:
            try:
                event = next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc)) from None
            kind = type(event)  # not isinstance: h11's events are ABCs, slow to check, and this runs per chunk
            if kind is h11.Data:
                response.deliver(cast("h11.Data", event).data, at)
            elif kind is h11.Response:
                self._head(response, cast("h11.Response", event))
            elif kind is h11.EndOfMessage:
                self._finish(response)
                return
            elif kind is not h11.InformationalResponse:  # NEED_DATA, PAUSED, ConnectionClosed
                return

    def _head(self, response: Response, event: h11.Response) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in event.headers:  # names in lower case, as h11 gives them
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response.status, response.headers = event.status_code, headers
        response.streamed = response.sink is not None and 200 <= response.status < 300 and not response.content_encoding
        self._on_head()

    def _finish(self, response: Response) -> None:
        connection = self._h11
        # Reusable when h11 says both sides are done, nothing came after the response and it did not end at the
        # close (a body without a length: h11 leaves that to the caller).
        after, closed = connection.trailing_data
        response.keep_alive = (
            connection.our_state is h11.DONE and connection.their_state is h11.DONE and not after and not closed
        )
        if response.keep_alive:
            connection.start_next_cycle()
        self._response = None
        self._on_done()


def _serialise(connection: h11.Connection, request: Request) -> bytes:
    head = connection.send(request.head)
    return b"".join((head, connection.send(h11.Data(data=request.body)), connection.send(h11.EndOfMessage())))


def _nothing() -> None:
    pass
