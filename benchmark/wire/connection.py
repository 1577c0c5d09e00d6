"""One keep-alive HTTP/1.1 connection on a raw non-blocking socket, and a pool of them per origin.

Why not aiohttp or urllib3: they read sockets with ``recv``, so the earliest a client could read the clock
is when its event loop or thread gets to the bytes, which at hundreds of streams on a small machine is
milliseconds late (TTFT read high against an independent ground truth: docs/benchmark.md). Here the socket is read with
``recvmsg`` and every chunk carries the kernel's receive time (:mod:`benchmark.wire.kernel_clock`); a
request's start is read just before the ``send`` that hands its bytes to the kernel. TLS runs through
``ssl.MemoryBIO``, so the stamps survive it. HTTP/1.1 is framed by :mod:`benchmark.wire.http1` (this project's,
not h11: benchmark/README.md "HTTP/1.1 framing: h11" says why). Works on asyncio's own loops and on uvloop
(``add_reader``, ``add_writer``).

Through a proxy (:mod:`benchmark.wire.proxies`: ``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``) the socket is the
proxy's: an https origin is reached through a ``CONNECT`` tunnel, with TLS inside it to the origin and the
origin's certificate checked against the origin's name; an http origin gets its requests in absolute form.
The stamps then time the proxy's bytes: a request starts when its bytes reach the kernel on their way to
the proxy, and a chunk arrives when the proxy's bytes reached ours, so TTFT and end-to-end times include
the proxy hop both ways (ms/token only where the proxy buffers).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from benchmark.wire import kernel_clock
from benchmark.wire.http1 import BodyEnded, BodySink, ProtocolError, Response, ResponseParser, basic_auth, request_bytes

__all__ = [
    "BodyEnded",
    "ConnectionPool",
    "Exchange",
    "Origin",
    "ProtocolError",
    "Proxy",
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
        return self._bracketed if self.port == default else self.authority

    @property
    def authority(self) -> str:
        """``host:port``, an IPv6 address in brackets: what ``CONNECT`` names."""
        return f"{self._bracketed}:{self.port}"

    @property
    def url(self) -> str:
        """``scheme://host[:port]``, the start of an absolute-form request target."""
        return f"{'https' if self.tls else 'http'}://{self.host_header}"

    @property
    def _bracketed(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


@dataclass(frozen=True)
class Proxy:
    """An HTTP forward proxy: ``url`` (credentials removed) names it in errors."""

    host: str
    port: int
    url: str
    credentials: tuple[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The ``Proxy-Authorization`` header (HTTP Basic) when the proxy's URL carries credentials."""
        return {} if self.credentials is None else {"Proxy-Authorization": basic_auth(*self.credentials)}


@dataclass
class Exchange:
    """A request on the wire: ``sent_at`` is when its last bytes were handed to the kernel.

    ``reused``: the connection had carried an earlier exchange (a kept-alive connection).
    """

    sent_at: float
    response: Response
    head: asyncio.Future[None]
    done: asyncio.Future[None]
    reused: bool = False


TlsState = tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]  # the session, bytes in, bytes out


class WireConnection:
    """One connection: its socket, TLS session, response parser and the bytes still to go out.

    Everything this side writes (requests, and TLS records the session makes while reading, such as a key
    update or a post-handshake certificate) goes out through one queue, in the order it was made: what the
    kernel's buffer does not take at once waits there, whole, until the socket is writable again.
    """

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, tls: TlsState | None) -> None:
        self._sock, self._loop, self._tls = sock, loop, tls
        self._stamped = kernel_clock.enable(sock)
        self._parser: ResponseParser | None = None
        self._exchange: Exchange | None = None
        self._unsent = bytearray()  # bytes the kernel has not taken yet, in order
        self._queued = 0  # bytes ever queued for the kernel on this connection
        self._written = 0  # of those, bytes the kernel took
        self._waiters: list[tuple[int, asyncio.Future[float]]] = []  # (queued count to reach, its future)
        self.exchanges = 0  # requests sent on this connection so far
        self.closed = False
        loop.add_reader(sock.fileno(), self._on_readable)

    @classmethod
    async def open(
        cls, origin: Origin, context: ssl.SSLContext | None, *, timeout_s: float, proxy: Proxy | None = None
    ) -> WireConnection:
        """Connect and, for https, shake hands; through ``proxy`` when given (a tunnel for https).

        Every address the name resolves to is tried in order, each for up to ``timeout_s``, as getaddrinfo
        ordered them (RFC 6724: IPv6 first where it is routable); the tunnel and the TLS handshake get
        ``timeout_s`` more. Raises :class:`UnreachableError` naming every address tried.
        """
        loop = asyncio.get_running_loop()
        host, port = (proxy.host, proxy.port) if proxy is not None else (origin.host, origin.port)
        sock = await _connect(loop, host, port, timeout_s, f"proxy {proxy.url}" if proxy is not None else host)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout(timeout_s):
                if proxy is not None and origin.tls:
                    await _tunnel(loop, sock, origin, proxy)
                tls = await _handshake(loop, sock, origin, context) if origin.tls else None
        except TimeoutError:
            sock.close()
            step = "the proxy's tunnel or the TLS handshake" if proxy is not None else "the TLS handshake"
            raise UnreachableError(f"{step} took more than {timeout_s:g} s") from None
        except BaseException:
            sock.close()
            raise
        return cls(sock, loop, tls)

    async def exchange(self, request: bytes, sink: BodySink | None) -> Exchange:
        """Send ``request``; the response's body goes to ``sink`` as it arrives (an error's body is kept).

        A failed send does not raise here: the exchange's futures carry the error, as a failed read's do.
        """
        if self.closed or self._exchange is not None:
            raise RuntimeError("connection is closed or busy")
        response = Response(sink=sink)
        head, done = self._loop.create_future(), self._loop.create_future()
        done.add_done_callback(_retrieve)
        head.add_done_callback(_retrieve)
        exchange = self._exchange = Exchange(0.0, response, head, done, reused=self.exchanges > 0)
        self.exchanges += 1
        self._parser = ResponseParser(response, on_head=lambda: _resolve(head), on_done=self._on_done)
        # The answer may be complete (and self._exchange cleared) by the time a large request is out.
        exchange.sent_at = await self._send(request)
        return exchange

    @property
    def idle(self) -> bool:
        return not self.closed and self._exchange is None

    async def _send(self, data: bytes) -> float:
        """Send ``data`` (encrypted first, for TLS); the time its last bytes were handed to the kernel."""
        at = time.perf_counter()
        try:
            if self._tls is not None:
                data = self._encrypt(data)
                at = time.perf_counter()
            if self._write(data):
                return at
            # The kernel's buffer is full: the rest goes as it drains, and the request starts when its last bytes do.
            waiter: asyncio.Future[float] = self._loop.create_future()
            self._waiters.append((self._queued, waiter))
            return await waiter
        except (OSError, ssl.SSLError) as exc:
            self._fail(exc)
            return at

    def _encrypt(self, data: bytes) -> bytes:
        """``data`` as TLS records: every byte of it (``SSLObject.write`` may take less than it is given)."""
        assert self._tls is not None
        sslobj, _, outgoing = self._tls
        view = memoryview(data)
        while view:
            view = view[sslobj.write(view) :]
        return outgoing.read()

    def _write(self, data: bytes) -> bool:
        """Queue ``data`` for the kernel behind what waits already; True when the kernel took all of it now.

        Raises OSError when the socket fails.
        """
        self._queued += len(data)
        if not self._unsent:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            self._written += sent
            if sent == len(data):
                return True
            self._unsent += memoryview(data)[sent:]
            self._loop.add_writer(self._sock.fileno(), self._on_writable)
            return False
        self._unsent += data
        return False

    def _on_writable(self) -> None:
        try:
            sent = self._sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        del self._unsent[:sent]
        self._written += sent
        if not self._unsent:
            self._loop.remove_writer(self._sock.fileno())
        if self._waiters:
            at = time.perf_counter()
            waiting = []
            for until, waiter in self._waiters:
                if until <= self._written:
                    if not waiter.done():
                        waiter.set_result(at)
                else:
                    waiting.append((until, waiter))
            self._waiters = waiting

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
        try:
            if self._tls is not None:
                data, ended = self._decrypt(data)
            else:
                ended = not data
            if data:
                self._feed(data, at)
            if ended:
                if self._parser is not None:
                    self._parser.eof()
                self.close()
        except Exception as exc:  # TLS and framing errors, and whatever the sink raised, end this exchange
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
        if outgoing.pending:  # e.g. a key update or a certificate the server asked for: behind what waits
            self._write(outgoing.read())
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
        if self._unsent:
            self._loop.remove_writer(self._sock.fileno())
            self._unsent.clear()
        self._sock.close()
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("connection closed before the request was all sent"))
        self._waiters.clear()
        if self._exchange is not None:
            self._fail(BodyEnded(self._exchange.response.received, "connection closed by the client"))


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int, timeout_s: float, name: str) -> socket.socket:
    """A socket connected to the first of ``host``'s addresses that accepts within ``timeout_s``, in order."""
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise UnreachableError(f"{name} did not resolve within {timeout_s:g} s") from None
    except OSError as exc:
        raise UnreachableError(f"{name}: {type(exc).__name__}: {exc}") from None
    tried: list[str] = []
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout_s):
                await loop.sock_connect(sock, address)
        except TimeoutError:
            sock.close()
            ip, ip_port = str(address[0]), int(address[1])
            where = f"[{ip}]:{ip_port}" if family == socket.AF_INET6 else f"{ip}:{ip_port}"
            tried.append(f"TimeoutError: no answer from {where} within {timeout_s:g} s")
            continue
        except OSError as exc:
            sock.close()
            tried.append(f"{type(exc).__name__}: {exc}")  # names the address, e.g. "Connect call failed (...)"
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if not tried:
        raise UnreachableError(f"{name} resolved to no address")
    if len(tried) == 1:  # the error names the address; a proxy is named too
        raise UnreachableError(tried[0] if name == host else f"{name}: {tried[0]}")
    raise UnreachableError(f"{name}: {len(tried)} addresses tried: " + "; ".join(tried))


async def _tunnel(loop: asyncio.AbstractEventLoop, sock: socket.socket, origin: Origin, proxy: Proxy) -> None:
    """Ask ``proxy`` for a tunnel to ``origin`` (``CONNECT``); raises :class:`UnreachableError` when refused."""
    lines = [f"CONNECT {origin.authority} HTTP/1.1", f"Host: {origin.authority}"]
    lines += [f"{name}: {value}" for name, value in proxy.headers.items()]
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head = b""
    while b"\r\n\r\n" not in head:
        # The proxy says nothing after its answer's head until the client speaks TLS: no byte is read past it.
        data = await loop.sock_recv(sock, 1)
        if not data:
            raise UnreachableError(f"proxy {proxy.url} closed the connection before answering CONNECT")
        head += data
        if len(head) > 65536:
            raise UnreachableError(f"proxy {proxy.url} answered CONNECT with more than 64 KiB of head")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise UnreachableError(f"proxy {proxy.url} answered CONNECT with {status_line[:80]!r}")
    if not 200 <= int(rest[:3]) < 300:
        raise UnreachableError(f"proxy {proxy.url} refused CONNECT {origin.authority}: {rest[:80]}")


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
    """Keep-alive connections to one origin, at most ``limit`` open: one per virtual user at full load.

    ``proxy``: every connection goes through it (see the module's docstring for what that does to times).
    """

    def __init__(
        self, origin: Origin, *, limit: int, context: ssl.SSLContext | None = None, proxy: Proxy | None = None
    ) -> None:
        self.origin = origin
        self.proxy = proxy
        self._context = context
        self._idle: list[WireConnection] = []
        self._slots = asyncio.Semaphore(max(1, limit))
        self._closed = False

    def request(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> bytes:
        """A request for ``target`` (origin-form: path and query) as this pool's connections must send it.

        Through a proxy to an http origin, the target is in absolute form and the proxy's credentials ride
        along; through a tunnel (https) the origin sees exactly what it would see without the proxy.
        """
        if self.proxy is not None and not self.origin.tls:
            return request_bytes(
                method, self.origin.url + target, self.origin.host_header, {**headers, **self.proxy.headers}, body
            )
        return request_bytes(method, target, self.origin.host_header, headers, body)

    async def acquire(self, connect_timeout_s: float) -> WireConnection:
        """An idle connection (the most recently used first), else a new one."""
        await self._slots.acquire()
        try:
            while self._idle:
                connection = self._idle.pop()
                if connection.idle:
                    return connection
            return await self.open(connect_timeout_s)
        except BaseException:
            self._slots.release()
            raise

    async def open(self, connect_timeout_s: float) -> WireConnection:
        """A new connection, outside the pool's count: for a caller that holds a slot already."""
        return await WireConnection.open(self.origin, self._context, timeout_s=connect_timeout_s, proxy=self.proxy)

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
    on_resend: Callable[[], None] = lambda: None,
) -> Response:
    """One request on a pooled connection, to the end of its response.

    ``on_sent`` gets the time the request's last bytes went to the kernel, ``on_head`` the response once its
    head is in (before the body ends or fails). ``connect_timeout_s`` bounds each address tried, then the
    tunnel and TLS handshake. A caller that stops waiting (timeout, cancellation) closes the connection,
    whose state is then unknown.

    One resend, as mature clients do: a server may close a kept-alive connection right after an answer
    without saying so (``Connection: close``), e.g. a worker that reached its request limit, and a request
    sent on it before the close was seen gets no answer, though the server never took it. A request that got
    *no byte* of answer on a *reused* connection is therefore sent again, once, on a new connection:
    ``on_resend`` is called and then ``on_sent`` again, so the request's clock starts at the resend's send
    (the lost attempt is not the endpoint's latency). Never resent: a request that got any byte of answer,
    one on a new connection, one that timed out; a server that drops a request must be counted, not hidden.
    """
    connection = await _connected(pool.acquire(connect_timeout_s), connect_timeout_s)
    exchange: Exchange | None = None
    try:
        exchange = await connection.exchange(request, sink)
        on_sent(exchange.sent_at)
        if not await _answered(exchange):
            connection.close()
            on_resend()
            connection = await _connected(pool.open(connect_timeout_s), connect_timeout_s)
            exchange = await connection.exchange(request, sink)
            on_sent(exchange.sent_at)
            await exchange.head
        on_head(exchange.response)
        await exchange.done
    finally:
        if exchange is None or not exchange.done.done():
            connection.close()
        pool.release(connection)  # back to the pool when idle; closed (and its slot freed) otherwise
    return exchange.response


async def _connected(opening: Awaitable[WireConnection], timeout_s: float) -> WireConnection:
    """The connection ``opening`` yields; what stopped it as :class:`UnreachableError`."""
    try:
        return await opening
    except TimeoutError:
        raise UnreachableError(f"no connection within {timeout_s:g} s") from None
    except (OSError, BodyEnded, ssl.SSLError) as exc:
        raise UnreachableError(f"{type(exc).__name__}: {exc}") from None


async def _answered(exchange: Exchange) -> bool:
    """Wait for the response's head; False when a reused connection closed before any byte of an answer."""
    try:
        await exchange.head
    except (BodyEnded, ConnectionError):
        if exchange.reused and exchange.response.received == 0:
            return False
        raise
    return True
