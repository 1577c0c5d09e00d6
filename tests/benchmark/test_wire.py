"""benchmark.wire: HTTP/1.1 framing, and times that hold when the client is late to read.

The timing tests use a ground truth the client does not produce: a plain blocking server on its own thread
reads ``time.perf_counter()`` (``CLOCK_MONOTONIC``) right after handing each byte string to the kernel, and
the client's event loop is blocked on purpose while the bytes wait in its socket. A user-space clock would
read the time the loop got back; the kernel's receive time must match the server's send time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from benchmark.clients.http import HttpTransport
from benchmark.clients.protocol import TgiStreamReader, read_tgi_response
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.serialize import from_data, to_data
from benchmark.wire.connection import BodyEnded, ConnectionPool, Origin, round_trip
from benchmark.wire.http1 import ProtocolError, Response, ResponseParser, request_bytes

LINUX = sys.platform == "linux"
BLOCK_S = 0.15  # how long the client's loop is kept away from its socket


T = TypeVar("T")


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """``main`` on asyncio's own loop or on uvloop (the optional loop, where installed)."""
    if loop == "uvloop":
        import uvloop  # noqa: PLC0415

        return uvloop.run(main)
    return asyncio.run(main)


# --- framing -----------------------------------------------------------------------------------------------


class Framed:
    """A parser over one response, recording what reached the sink and when."""

    def __init__(self, sink: bool = True) -> None:
        self.chunks: list[tuple[bytes, float]] = []
        self.heads = 0
        self.done = 0
        self.response = Response(sink=self._sink if sink else None)
        self.parser = ResponseParser(self.response, on_head=self._head, on_done=self._done)

    def _sink(self, data: bytes, at: float) -> None:
        self.chunks.append((data, at))

    def _head(self) -> None:
        self.heads += 1

    def _done(self) -> None:
        self.done += 1

    @property
    def body(self) -> bytes:
        return b"".join(data for data, _ in self.chunks)


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"8;ext=1\r\ndata: a\n\r\n"
    b"A\r\ndata: bcd\n\r\n"
    b"0\r\nX-Trailer: yes\r\n\r\n"
)


def test_chunked_body_is_the_same_whatever_the_cuts() -> None:
    whole = Framed()
    whole.parser.feed(CHUNKED, 1.0)
    assert whole.body == b"data: a\ndata: bcd\n"
    assert (whole.heads, whole.done, whole.response.keep_alive) == (1, 1, True)
    bytewise = Framed()
    for index in range(len(CHUNKED)):
        bytewise.parser.feed(CHUNKED[index : index + 1], float(index))
    assert bytewise.body == whole.body
    assert bytewise.done == 1


def test_each_body_byte_carries_the_time_of_the_bytes_that_brought_it() -> None:
    framed = Framed()
    cut = CHUNKED.index(b"A\r\n")
    framed.parser.feed(CHUNKED[:cut], 1.0)
    framed.parser.feed(CHUNKED[cut:], 2.0)
    assert framed.chunks == [(b"data: a\n", 1.0), (b"data: bcd\n", 2.0)]


def test_content_length_ends_the_body_and_keeps_the_connection() -> None:
    framed = Framed()
    framed.parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 1.0)
    assert (framed.done, framed.body) == (0, b"hel")
    framed.parser.feed(b"lo", 2.0)
    assert (framed.done, framed.body, framed.response.keep_alive) == (1, b"hello", True)


def test_body_without_length_runs_to_the_close() -> None:
    framed = Framed()
    framed.parser.feed(b"HTTP/1.1 200 OK\r\n\r\npart", 1.0)
    assert framed.done == 0
    framed.parser.eof()
    assert (framed.done, framed.body, framed.response.keep_alive) == (1, b"part", False)


def test_interim_responses_are_skipped_and_204_has_no_body() -> None:
    framed = Framed()
    framed.parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 1.0)
    assert (framed.response.status, framed.heads, framed.done, framed.body) == (204, 1, 1, b"")


def test_an_error_body_is_kept_not_streamed() -> None:
    framed = Framed()
    framed.parser.feed(b'HTTP/1.1 422 X\r\nContent-Length: 14\r\n\r\n{"error":"no"}', 1.0)
    assert framed.chunks == []
    assert bytes(framed.response.body) == b'{"error":"no"}'


@pytest.mark.parametrize(
    ("head", "close"),
    [
        ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0", True),
        ("HTTP/1.0 200 OK\r\nContent-Length: 0", True),
    ],
)
def test_connection_close_and_http_1_0_are_not_kept_alive(head: str, close: bool) -> None:
    framed = Framed()
    framed.parser.feed(head.encode() + b"\r\n\r\n", 1.0)
    assert framed.response.keep_alive is not close


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not hexadecimal"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "Content-Length is not a number"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "chunk not followed by CRLF"),
    ],
)
def test_bytes_that_are_not_http_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Framed().parser.feed(data, 1.0)


def test_a_close_inside_the_response_says_how_far_it_got() -> None:
    framed = Framed()
    with pytest.raises(BodyEnded, match="connection closed before a response") as before:
        framed.parser.eof()
    assert before.value.received == 0
    framed.parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1.0)
    with pytest.raises(BodyEnded, match="inside the response after 42 bytes"):
        framed.parser.eof()


def test_request_bytes_refuses_header_injection() -> None:
    assert request_bytes("POST", "/g", "h:81", {"X-A": "1"}, b"{}") == (
        b"POST /g HTTP/1.1\r\nHost: h:81\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n{}"
    )
    with pytest.raises(ValueError, match="line break"):
        request_bytes("POST", "/g", "h", {"X-A": "1\r\nEvil: yes"}, b"")


def test_host_header_leaves_out_the_default_port() -> None:
    assert Origin("example.com", 443, tls=True).host_header == "example.com"
    assert Origin("example.com", 8443, tls=True).host_header == "example.com:8443"
    assert Origin("::1", 80, tls=False).host_header == "[::1]"


# --- timing against an independent clock -------------------------------------------------------------------


class ScriptedServer:
    """A blocking server on a thread: reads each request's head and body, then runs ``script(conn, log)``.

    ``log`` gets (what, perf_counter()) pairs: ``request`` once a request was read whole, and whatever the
    script logs right after each ``sendall`` returned, so tests compare the client with the server's clocks.
    ``keep_raw`` collects each request's bytes as they arrived.
    """

    def __init__(
        self,
        script: Callable[[socket.socket, list[tuple[str, float]]], None],
        context: ssl.SSLContext | None = None,
        keep_raw: list[bytes] | None = None,
    ) -> None:
        self.script, self.context, self.keep_raw = script, context, keep_raw
        self.log: list[tuple[str, float]] = []
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._connection, args=(raw,), daemon=True).start()

    def _connection(self, raw: socket.socket) -> None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else Nagle holds a token behind the head
        try:
            conn = self.context.wrap_socket(raw, server_side=True) if self.context else raw
        except ssl.SSLError:  # a client that does not trust the certificate hangs up in the handshake
            raw.close()
            return
        with conn, contextlib.suppress(OSError):  # a client that gave up on a response hangs up mid-write
            while self._read_request(conn):
                self.script(conn, self.log)

    def _read_request(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                return False
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        )
        while len(body) < length:
            body += conn.recv(65536)
        if self.keep_raw is not None:
            self.keep_raw.append(head + b"\r\n\r\n" + body)
        self.log.append(("request", time.perf_counter()))
        return True

    def close(self) -> None:
        self.listener.close()


def sse_token_script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
    """Head, then two TGI token events 0.3 s apart, then the final event."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    for index in range(2):
        event = b'data: {"token": {"id": 1, "text": "a"}}\n\n'
        conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
        log.append((f"token{index}", time.perf_counter()))
        time.sleep(0.3)
    final = b'data: {"token": {"id": 2, "text": "b"}, "generated_text": "ab", "details": {"generated_tokens": 3}}\n\n'
    conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(final), final))


@pytest.fixture
def token_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer(sse_token_script)
    yield server
    server.close()


async def block_when_logged(task: asyncio.Task[RequestRecord], log: list[tuple[str, float]], what: str) -> float:
    """Once the server logged ``what`` (bytes handed to its kernel), keep this loop busy for BLOCK_S so that
    they wait in the client's socket; returns when the loop was free again, after ``task`` is done."""
    while not any(name == what for name, _ in log):
        await asyncio.sleep(0)  # spins: the loop must not take the bytes until it is blocked below
        time.sleep(0.0005)
    time.sleep(BLOCK_S)
    unblocked = time.perf_counter()
    await task
    return unblocked


async def _blocked_reader_request(
    transport: HttpTransport, log: list[tuple[str, float]]
) -> tuple[RequestRecord, float]:
    """Send; once the server has written the first token, keep the loop busy for BLOCK_S; return the read time."""
    record = RequestRecord(user=0, start=0.0, end=0.0)
    task = asyncio.create_task(
        transport.post("/generate_stream", {"inputs": "x"}, record, reader=TgiStreamReader(record))
    )
    unblocked = await block_when_logged(task, log, "token0")
    return record, unblocked


@pytest.mark.skipif(not LINUX, reason="kernel receive timestamps are Linux's SO_TIMESTAMPNS")
def test_a_token_is_stamped_when_it_arrived_not_when_the_client_got_to_it(token_server: ScriptedServer) -> None:
    async def go() -> tuple[RequestRecord, float]:
        transport = HttpTransport(f"http://127.0.0.1:{token_server.port}", concurrency=1, timeout_s=5)
        try:
            return await _blocked_reader_request(transport, token_server.log)
        finally:
            await transport.aclose()

    record, unblocked = asyncio.run(go())
    written = dict(token_server.log)
    assert record.ok, record.error_detail
    assert record.first_token_at is not None
    # The server read its clock after sendall returned: the kernel stamp is at most a little before that.
    assert written["token0"] - 0.002 <= record.first_token_at <= written["token0"] + 0.001
    assert unblocked - record.first_token_at > BLOCK_S * 0.9  # what a user-space clock would have added
    assert record.token_times[1] == pytest.approx(written["token1"], abs=0.002)


@pytest.mark.skipif(not LINUX, reason="kernel receive timestamps are Linux's SO_TIMESTAMPNS")
def test_the_clock_starts_when_the_request_reached_the_kernel(token_server: ScriptedServer) -> None:
    async def go() -> RequestRecord:
        transport = HttpTransport(f"http://127.0.0.1:{token_server.port}", concurrency=1, timeout_s=5)
        record = RequestRecord(user=0, start=0.0, end=0.0)
        time.sleep(0.05)  # a busy loop before the send is the client's own time, not the server's
        try:
            return await transport.post("/generate_stream", {"inputs": "x"}, record, reader=TgiStreamReader(record))
        finally:
            await transport.aclose()

    record = asyncio.run(go())
    assert record.ok, record.error_detail
    received = dict(token_server.log)["request"]  # the server's read of the request, after the kernel had it
    assert 0 <= received - record.start < 0.005
    assert record.ttft_s == pytest.approx(dict(token_server.log)["token0"] - record.start, abs=0.002)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (``cryptography`` comes with the dev tools)."""
    import ipaddress  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415 - only this test needs it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.skipif(not LINUX, reason="kernel receive timestamps are Linux's SO_TIMESTAMPNS")
def test_tls_keeps_the_kernel_stamps_and_checks_the_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server = ScriptedServer(sse_token_script, context=server_context)

    def transport(cafile: Path | None) -> HttpTransport:
        transport = HttpTransport(f"https://127.0.0.1:{server.port}", concurrency=1, timeout_s=5)
        if cafile is not None:  # trust the test's own certificate
            transport._get_pool()._context = ssl.create_default_context(cafile=str(cafile))
        return transport

    async def untrusted() -> RequestRecord:
        client = transport(None)
        try:
            return await client.post("/generate", {}, RequestRecord(user=0, start=0.0, end=0.0))
        finally:
            await client.aclose()

    async def trusted() -> tuple[RequestRecord, float]:
        client = transport(cert)
        try:
            return await _blocked_reader_request(client, server.log)
        finally:
            await client.aclose()

    try:
        refused = asyncio.run(untrusted())
        assert refused.error is ErrorKind.CONNECTION
        assert "CERTIFICATE_VERIFY_FAILED" in refused.error_detail
        record, unblocked = asyncio.run(trusted())
    finally:
        server.close()
    assert record.ok, record.error_detail
    assert record.generated_tokens == 3
    written = dict(server.log)
    assert record.first_token_at is not None
    assert written["token0"] - 0.002 <= record.first_token_at <= written["token0"] + 0.001
    assert unblocked - record.first_token_at > BLOCK_S * 0.9


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_records_made_while_reading_go_out_whole_behind_a_large_request(tmp_path: Path, loop: str) -> None:
    """A short TLS write loses nothing: the client's answer to a post-handshake certificate request (TLS 1.3)
    is made while a large request is still going out through a small send buffer; it must follow the request's
    records, whole, not be dropped or cut into them.

    The oracle is OpenSSL on the server side (Python's ``ssl``): it decrypts every record of the request and
    checks the client's Finished; the server counts and hashes the body it got.
    """
    cert, key = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.minimum_version = ssl.TLSVersion.TLSv1_3
    server_context.post_handshake_auth = True
    server_context.verify_mode = ssl.CERT_OPTIONAL  # the client has no certificate: it answers with none
    server_context.load_verify_locations(cert)
    listener = socket.create_server(("127.0.0.1", 0))
    got: dict[str, object] = {}
    body = b'{"inputs": "' + bytes(range(97, 123)) * 160_000 + b'"}'  # 4 MB

    def serve() -> None:
        raw, _ = listener.accept()
        raw.settimeout(20)
        try:
            with server_context.wrap_socket(raw, server_side=True) as conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, part = data.partition(b"\r\n\r\n")
                length = int(next(h[15:] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")))
                conn.verify_client_post_handshake()  # the certificate request goes out with the next read
                time.sleep(0.2)  # meanwhile the client's send buffer fills
                digest, received = hashlib.sha256(part), len(part)
                while received < length:
                    more = conn.recv(65536)
                    if not more:
                        break
                    digest.update(more)
                    received += len(more)
                got.update(received=received, sha256=digest.hexdigest())
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        except (OSError, ssl.SSLError) as exc:
            got["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(cert))
    client_context.post_handshake_auth = True  # offered, so the server may ask after the handshake

    async def go() -> Response:
        pool = ConnectionPool(Origin("127.0.0.1", listener.getsockname()[1], tls=True), limit=1, context=client_context)
        connection = await pool.acquire(5)
        connection._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # short writes, many of them
        pool.release(connection)
        request = pool.request("POST", "/generate", {}, body)
        try:
            async with asyncio.timeout(20):
                return await round_trip(pool, request, None, connect_timeout_s=5, on_sent=_no, on_head=_no)
        finally:
            pool.close()

    try:
        response = run_on(loop, go())
    finally:
        thread.join(25)
        listener.close()
    assert "error" not in got, got["error"]
    assert got == {"received": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert (response.status, bytes(response.body)) == (200, b"{}")


def _no(_: object) -> None:
    pass


# --- the pool: reuse, idle closes, drops, timeouts ---------------------------------------------------------


def answer(status: int, body: bytes, headers: str = "") -> bytes:
    """A whole HTTP/1.1 response; ``headers`` are extra lines, each ending in CRLF."""
    return b"HTTP/1.1 %d X\r\n%sContent-Length: %d\r\n\r\n%s" % (status, headers.encode(), len(body), body)


def json_script(body: bytes = b"{}", close: bool = False) -> Callable[[socket.socket, list[tuple[str, float]]], None]:
    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        if close:
            conn.shutdown(socket.SHUT_RDWR)  # the server closes the connection once the answer is out

    return script


def _posts(port: int, count: int, *, pause_s: float = 0.0, timeout_s: float = 5.0) -> list[RequestRecord]:
    async def go() -> list[RequestRecord]:
        transport = HttpTransport(f"http://127.0.0.1:{port}", concurrency=1, timeout_s=timeout_s)
        records = []
        try:
            for _ in range(count):
                record = RequestRecord(user=0, start=0.0, end=0.0)
                records.append(await transport.post("/generate", {}, record, read_body=lambda r, b: None))
                await asyncio.sleep(pause_s)
        finally:
            await transport.aclose()
        return records

    return asyncio.run(go())


def test_keep_alive_reuses_one_connection() -> None:
    server = ScriptedServer(json_script())
    try:
        records = _posts(server.port, 3)
    finally:
        server.close()
    assert [r.ok for r in records] == [True, True, True]
    assert server.accepted == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed() -> None:
    server = ScriptedServer(json_script(close=True))
    try:
        records = _posts(server.port, 3, pause_s=0.05)
    finally:
        server.close()
    assert [r.error for r in records] == [None, None, None]
    assert server.accepted == 3


def test_a_request_the_server_drops_is_counted_once_and_not_retried() -> None:
    def drop(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        conn.shutdown(socket.SHUT_RDWR)

    server = ScriptedServer(drop)
    try:
        (record,) = _posts(server.port, 1)
    finally:
        server.close()
    assert record.error is ErrorKind.DROPPED_STREAM
    assert "connection closed before a response" in record.error_detail
    assert [what for what, _ in server.log] == ["request"]


def _second_request_script(
    second: Callable[[socket.socket], None],
) -> Callable[[socket.socket, list[tuple[str, float]]], None]:
    """Answer every request, except that the second one (on the first, kept-alive connection) gets ``second``."""
    count = iter(range(1, 1000))

    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        if next(count) == 2:
            second(conn)
            log.append(("closed", time.perf_counter()))
            conn.shutdown(socket.SHUT_RDWR)
            return
        conn.sendall(answer(200, b"{}"))

    return script


def test_a_request_a_kept_alive_connection_closed_on_is_resent_once_and_timed_from_the_resend() -> None:
    """The server took the second request's bytes and closed without a byte of answer (a worker restarting)."""
    server = ScriptedServer(_second_request_script(lambda conn: None))
    try:
        first, second = _posts(server.port, 2)
    finally:
        server.close()
    assert (first.ok, first.resent) == (True, False)
    assert (second.ok, second.resent) == (True, True), second.error_detail
    assert server.accepted == 2
    closed = dict(server.log)["closed"]
    assert second.start > closed  # the resend's send, after the close: not the lost attempt's
    assert [what for what, _ in server.log] == ["request", "request", "closed", "request"]


def test_a_request_that_got_part_of_an_answer_is_never_resent() -> None:
    server = ScriptedServer(_second_request_script(lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\n")))
    try:
        first, second = _posts(server.port, 2)
    finally:
        server.close()
    assert first.ok
    assert (second.error, second.resent) == (ErrorKind.DROPPED_STREAM, False)
    assert "inside the response after 17 bytes" in second.error_detail
    assert server.accepted == 1


def test_a_record_round_trips_through_json_and_older_records_still_load() -> None:
    record = RequestRecord(user=3, start=1.0, end=2.5, token_times=[1.5, 2.0], error=ErrorKind.REDIRECT, resent=True)
    data = json.loads(json.dumps(to_data(record)))
    assert from_data(RequestRecord, data) == record
    older = {key: value for key, value in data.items() if key != "resent"}
    assert from_data(RequestRecord, older).resent is False


def test_a_timeout_closes_the_connection_and_frees_its_slot() -> None:
    answers = iter(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    )

    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        conn.sendall(next(answers))  # the first answer stalls after 3 of its 10 bytes

    server = ScriptedServer(script)
    try:
        records = _posts(server.port, 2, timeout_s=0.3)
    finally:
        server.close()
    assert [r.error for r in records] == [ErrorKind.TIMEOUT, None]
    assert server.accepted == 2  # the stalled connection was not reused


def test_round_trip_reports_an_unreachable_origin_without_sending() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there

    async def go() -> None:
        pool = ConnectionPool(Origin("127.0.0.1", port, tls=False), limit=1)
        await round_trip(pool, b"", None, connect_timeout_s=1, on_sent=lambda _: None, on_head=lambda _: None)

    with pytest.raises(Exception, match="ConnectionRefusedError"):
        asyncio.run(go())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_body_larger_than_the_socket_buffer_goes_out_whole(loop: str) -> None:
    """The kernel takes part of a large request at once; the rest goes as it drains, on either event loop."""
    received: list[bytes] = []
    server = ScriptedServer(json_script(b'{"ok":true}'), keep_raw=received)
    payload = {"inputs": "x" * 4_000_000}

    async def go() -> RequestRecord:
        transport = HttpTransport(f"http://127.0.0.1:{server.port}", concurrency=1, timeout_s=10)
        try:
            record = RequestRecord(user=0, start=0.0, end=0.0)
            record = await transport.post("/generate", payload, record, read_body=lambda r, b: None)
            # The answer may arrive while the body is still going out: the connection is back in the pool anyway.
            assert transport._pool is not None and len(transport._pool._idle) == 1
            return record
        finally:
            await transport.aclose()

    try:
        record = run_on(loop, go())
    finally:
        server.close()
    assert record.ok, record.error_detail
    (raw,) = received
    assert len(raw.partition(b"\r\n\r\n")[2]) == len(json.dumps(payload))
    assert record.start > 0


def test_the_read_time_stands_in_where_the_kernel_gave_no_plausible_stamp() -> None:
    from benchmark.wire import kernel_clock  # noqa: PLC0415

    assert kernel_clock.stamp([], 12.5) == 12.5  # no stamp (not Linux, or the option refused)
    now = time.perf_counter()
    wall = time.time_ns()
    timespec = kernel_clock._TIMESPEC.pack(wall // 10**9, wall % 10**9)
    stamped = kernel_clock.stamp([(socket.SOL_SOCKET, kernel_clock.SO_TIMESTAMPNS, timespec)], now + 0.01)
    assert now - 0.001 < stamped < now + 0.001  # the wall-clock stamp, on the perf_counter clock
    stepped = (wall // 10**9 + 3600, wall % 10**9)  # as if the wall clock jumped an hour
    late = kernel_clock.stamp(
        [(socket.SOL_SOCKET, kernel_clock.SO_TIMESTAMPNS, kernel_clock._TIMESPEC.pack(*stepped))], now
    )
    assert late == now


def test_an_answer_that_comes_before_the_request_is_all_out_is_read() -> None:
    """A server may answer once it has the head (an early 413, say) while a large body is still going out."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 413 Too Large\r\nContent-Length: 7\r\n\r\ntoo big")
            while conn.recv(1 << 20):  # then drain the body the client is still sending
                pass

    threading.Thread(target=serve, daemon=True).start()

    async def go() -> RequestRecord:
        transport = HttpTransport(f"http://127.0.0.1:{listener.getsockname()[1]}", concurrency=1, timeout_s=10)
        try:
            record = RequestRecord(user=0, start=0.0, end=0.0)
            return await transport.post("/generate", {"inputs": "x" * 8_000_000}, record)
        finally:
            await transport.aclose()

    try:
        record = asyncio.run(go())
    finally:
        listener.close()
    assert record.error is ErrorKind.HTTP_4XX
    assert record.error_detail == "HTTP 413: too big"


@pytest.mark.skipif(not LINUX, reason="kernel receive timestamps are Linux's SO_TIMESTAMPNS")
def test_a_whole_answer_ends_when_its_last_bytes_arrived() -> None:
    """Non-streamed requests: end-to-end latency is the server's, not the time the client got to the answer."""

    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        time.sleep(0.05)
        body = b'{"generated_text": "ab", "details": {"generated_tokens": 2}}'
        conn.sendall(answer(200, body))
        log.append(("answer", time.perf_counter()))

    server = ScriptedServer(script)

    async def go() -> tuple[RequestRecord, float]:
        transport = HttpTransport(f"http://127.0.0.1:{server.port}", concurrency=1, timeout_s=5)
        try:
            record = RequestRecord(user=0, start=0.0, end=0.0)
            task = asyncio.create_task(transport.post("/generate", {}, record, read_body=read_tgi_response))
            unblocked = await block_when_logged(task, server.log, "answer")
            return task.result(), unblocked
        finally:
            await transport.aclose()

    try:
        record, unblocked = asyncio.run(go())
    finally:
        server.close()
    assert record.ok, record.error_detail
    assert record.generated_tokens == 2
    answered = dict(server.log)["answer"]
    assert answered - 0.002 <= record.end <= answered + 0.001
    assert unblocked - record.end > BLOCK_S * 0.9
    assert record.e2e_s == pytest.approx(answered - dict(server.log)["request"], abs=0.003)
