"""One keep-alive HTTP/1.1 connection on a raw non-blocking socket, and a pool of them per origin.

Why not aiohttp or urllib3: they read sockets with ``recv``, so the earliest a client could read the clock
is when its event loop or thread gets to the bytes, which at hundreds of streams on a small machine is
milliseconds late (TTFT read +2 to +100 % against an independent ground truth). Here the socket is read with
``recvmsg`` and every chunk carries the kernel's receive time (:mod:`benchmark.wire.kernel_clock`); a
request's start is read just before the ``send`` that hands its bytes to the kernel. TLS runs through
``ssl.MemoryBIO``, so the stamps survive it. Works on asyncio's own loops and on uvloop (``add_reader``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmark.wire import kernel_clock
from benchmark.wire.http1 import BodyEnded, BodySink, ProtocolError, Response, ResponseParser

__all__ = [
    "BodyEnded",
    "ConnectionPool",
    "Exchange",
    "Origin",
    "ProtocolError",
    "UnreachableError",
    "WireConnection",
    "round_trip",
]
_READ_SIZE = 1 << 16


@dataclass(frozen=True)
class Origin:
    host: str
    port: int
    tls: bool

    @property
    def host_header(self) -> str:
        """``Host`` as clients (and SigV4) write it: the port only when it is not the scheme's default."""
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class Exchange:
    """A request on the wire: ``sent_at`` is when its last bytes were handed to the kernel."""

    sent_at: float
    response: Response
    head: asyncio.Future[None]
    done: asyncio.Future[None]


TlsState = tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]  # the session, bytes in, bytes out


class WireConnection:
    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, tls: TlsState | None) -> None:
        self._sock, self._loop, self._tls = sock, loop, tls
        self._stamped = kernel_clock.enable(sock)
        self._parser: ResponseParser | None = None
        self._exchange: Exchange | None = None
        self.closed = False
        loop.add_reader(sock.fileno(), self._on_readable)

    @classmethod
    async def open(cls, origin: Origin, context: ssl.SSLContext | None) -> WireConnection:
        """Connect (every address the name resolves to, in order) and, for https, shake hands."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"{origin.host} resolved to no address")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                tls = await _handshake(loop, sock, origin, context) if origin.tls else None
            except BaseException:
                sock.close()
                raise
            return cls(sock, loop, tls)
        raise error

    async def exchange(self, request: bytes, sink: BodySink | None) -> Exchange:
        """Send ``request``; the response's body goes to ``sink`` as it arrives (an error's body is kept)."""
        if self.closed or self._exchange is not None:
            raise RuntimeError("connection is closed or busy")
        response = Response(sink=sink)
        head, done = self._loop.create_future(), self._loop.create_future()
        done.add_done_callback(_retrieve)
        head.add_done_callback(_retrieve)
        exchange = self._exchange = Exchange(0.0, response, head, done)
        self._parser = ResponseParser(response, on_head=lambda: _resolve(head), on_done=self._on_done)
        # The answer may be complete (and self._exchange cleared) by the time a large request is out.
        exchange.sent_at = await self._send(request)
        return exchange

    @property
    def idle(self) -> bool:
        return not self.closed and self._exchange is None

    async def _send(self, data: bytes) -> float:
        if self._tls is not None:
            self._tls[0].write(data)
            data = self._tls[2].read()
        at = time.perf_counter()
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._fail(exc)
            raise
        if sent == len(data):
            return at
        # The kernel's buffer is full: the rest goes as it drains, and the request starts when its last bytes do.
        await self._loop.sock_sendall(self._sock, memoryview(data)[sent:])
        return time.perf_counter()

    def _on_readable(self) -> None:
        try:
            data, ancillary, _, _ = self._sock.recvmsg(_READ_SIZE, kernel_clock.ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        read_at = time.perf_counter()
        at = kernel_clock.stamp(ancillary, read_at) if self._stamped else read_at
        if self._tls is not None:
            data, ended = self._decrypt(data)
        else:
            ended = not data
        try:
            if data:
                self._feed(data, at)
            if ended:
                if self._parser is not None:
                    self._parser.eof()
                self.close()
        except Exception as exc:  # framing errors and whatever the sink raised end this exchange
            self._fail(exc)

    def _decrypt(self, data: bytes) -> tuple[bytes, bool]:
        assert self._tls is not None
        sslobj, incoming, outgoing = self._tls
        if data:
            incoming.write(data)
        else:
            incoming.write_eof()
        plain = bytearray()
        ended = not data
        while True:
            try:
                chunk = sslobj.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                ended = True
                break
            if not chunk:
                ended = True
                break
            plain += chunk
        if outgoing.pending:  # e.g. a key update the server asked for
            with contextlib.suppress(OSError):
                self._sock.send(outgoing.read())
        return bytes(plain), ended

    def _feed(self, data: bytes, at: float) -> None:
        if self._parser is None:
            raise ProtocolError(f"{len(data)} bytes arrived with no request outstanding")
        self._parser.feed(data, at)

    def _on_done(self) -> None:
        exchange = self._exchange
        self._exchange, self._parser = None, None
        if exchange is not None:
            _resolve(exchange.done)
            if not exchange.response.keep_alive:
                self.close()

    def _fail(self, exc: BaseException) -> None:
        exchange = self._exchange
        self._exchange, self._parser = None, None
        if exchange is not None:
            for future in (exchange.head, exchange.done):
                if not future.done():
                    future.set_exception(exc)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        if self._exchange is not None:
            self._fail(BodyEnded(self._exchange.response.received, "connection closed by the client"))


async def _handshake(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, origin: Origin, context: ssl.SSLContext | None
) -> TlsState:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = (context or ssl.create_default_context()).wrap_bio(incoming, outgoing, server_hostname=origin.host)
    while True:
        try:
            sslobj.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                await loop.sock_sendall(sock, outgoing.read())
            data = await loop.sock_recv(sock, _READ_SIZE)
            if not data:
                raise BodyEnded(0, "connection closed during the TLS handshake") from None
            incoming.write(data)
    if outgoing.pending:
        await loop.sock_sendall(sock, outgoing.read())
    return sslobj, incoming, outgoing


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failed future's exception as seen: the caller may stop at the head and never await ``done``."""
    if not future.cancelled():
        future.exception()


class ConnectionPool:
    """Keep-alive connections to one origin, at most ``limit`` open: one per virtual user at full load."""

    def __init__(self, origin: Origin, *, limit: int, context: ssl.SSLContext | None = None) -> None:
        self.origin = origin
        self._context = context
        self._idle: list[WireConnection] = []
        self._slots = asyncio.Semaphore(max(1, limit))
        self._closed = False

    async def acquire(self) -> WireConnection:
        """An idle connection (the most recently used first), else a new one."""
        await self._slots.acquire()
        try:
            while self._idle:
                connection = self._idle.pop()
                if connection.idle:
                    return connection
            return await WireConnection.open(self.origin, self._context)
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: WireConnection) -> None:
        if connection.idle and not self._closed:
            self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()

    def close(self) -> None:
        """Close the idle connections; those still busy are closed when they come back."""
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()


class UnreachableError(Exception):
    """No connection: nothing reached the server (refused, unresolvable, TLS refused, connect timeout)."""


async def round_trip(
    pool: ConnectionPool,
    request: bytes,
    sink: BodySink | None,
    *,
    connect_timeout_s: float,
    on_sent: Callable[[float], None],
    on_head: Callable[[Response], None],
) -> Response:
    """One request on a pooled connection, to the end of its response.

    ``on_sent`` gets the time the request's last bytes went to the kernel, ``on_head`` the response once its
    head is in (before the body ends or fails). No retry: a server that drops a request must be counted, not
    hidden (a connection the server closed while idle is seen closing and never reused). A caller that stops
    waiting (timeout, cancellation) closes the connection, whose state is then unknown.
    """
    try:
        async with asyncio.timeout(connect_timeout_s):
            connection = await pool.acquire()
    except TimeoutError:
        raise UnreachableError(f"no connection within {connect_timeout_s:g} s") from None
    except (OSError, BodyEnded, ssl.SSLError) as exc:
        raise UnreachableError(f"{type(exc).__name__}: {exc}") from None
    try:
        exchange = await connection.exchange(request, sink)
        on_sent(exchange.sent_at)
        try:
            await exchange.head
            on_head(exchange.response)
            await exchange.done
        finally:
            if not exchange.done.done():
                connection.close()
    finally:
        pool.release(connection)  # back to the pool when idle; closed (and its slot freed) otherwise
    return exchange.response
