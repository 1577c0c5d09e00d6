"""A loopback HTTP server that answers every request with one recorded exchange, byte for byte.

Recorded exchanges are ``NAME.headers`` (status line and headers as the client saw them) and ``NAME.body``
(the decoded body). A body recorded with ``Transfer-Encoding: chunked`` is sent chunked again, one chunk
per SSE event, so clients see events arrive separately; every other body goes out unchanged. The SageMaker
streaming route wraps the body in event-stream ``PayloadPart`` frames, as SageMaker does with a container's
bytes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmark.emulator import eventstream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass(frozen=True)
class Exchange:
    name: str
    head: bytes
    body: bytes

    @classmethod
    def load(cls, folder: Path, name: str) -> Exchange:
        return cls(name, (folder / f"{name}.headers").read_bytes(), (folder / f"{name}.body").read_bytes())

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    @property
    def chunked(self) -> bool:
        return b"transfer-encoding: chunked" in self.head.lower()

    def events(self) -> list[bytes]:
        """The body cut after each blank line (the end of an SSE event); the pieces join to the body."""
        pieces = self.body.split(b"\n\n")
        out = [piece + b"\n\n" for piece in pieces[:-1]]
        return [*out, pieces[-1]] if pieces[-1] else out


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def http_response(exchange: Exchange) -> bytes:
    if not exchange.chunked:
        return exchange.head + exchange.body
    return exchange.head + b"".join(_chunk(e) for e in exchange.events()) + b"0\r\n\r\n"


def sagemaker_stream_response(exchange: Exchange) -> bytes:
    """The container's SSE bytes as SageMaker streams them: each event one PayloadPart, cut in two."""
    frames = b""
    for event in exchange.events():
        half = max(1, len(event) // 2)
        for part in (event[:half], event[half:]):
            if part:
                frames += eventstream.event_message("PayloadPart", part, content_type="application/octet-stream")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
        b"X-Amzn-SageMaker-Content-Type: text/event-stream\r\nx-amzn-RequestId: replay\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    return head + _chunk(frames) + b"0\r\n\r\n"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return head


class ReplayServer:
    """Serve ``exchange`` to every request on a background thread; ``requests`` keeps each request's head."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.requests: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await _read_request(reader)).decode("latin-1")
            self.requests.append(head)
            streaming = "/invocations-response-stream" in head.split("\r\n", 1)[0]
            writer.write(sagemaker_stream_response(self.exchange) if streaming else http_response(self.exchange))
            await writer.drain()
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    def start(self) -> ReplayServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("replay server did not start within 10 s")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def replaying(exchange: Exchange) -> Iterator[ReplayServer]:
    server = ReplayServer(exchange).start()
    try:
        yield server
    finally:
        server.stop()
