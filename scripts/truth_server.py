#!/usr/bin/env python
"""An independent ground-truth LLM server for ``scripts/bench_accuracy.py``: it logs what really happened.

It shares no code with the benchmark or its emulator: raw non-blocking sockets on an asyncio loop, its own
HTTP/1.1, SSE and AWS event-stream framing. For every request it logs

- ``arrival``: when the request's last bytes reached the kernel (the socket's ``SO_TIMESTAMPNS`` receive
  timestamp, so the server's own event-loop lag cannot shift it), and
- ``writes``: when each token's bytes were handed to the kernel (the clock read right after ``send``
  returned; on loopback the bytes are in the client's receive queue by then),

all on ``time.perf_counter()``, which on Linux is ``CLOCK_MONOTONIC`` and so the same clock in every
process. The truth figures are computed from this log, never from what the server meant to do.

Latency model: like TGI's continuous batching, a prefill of ``40 + 0.1 x input tokens`` ms, then one token
every ``20 + 0.1 x active`` ms per request (``active`` = requests decoding), 50 tokens. Each request keeps
its own schedule (tokens of different requests are not emitted in lockstep). With these defaults the server
delivers at most 10,000 tokens/s however many streams (``active / (0.02 + 0.0001 x active)``); the options
``--tpot-base-ms``, ``--tpot-per-active-ms``, ``--prefill-base-ms``, ``--prefill-per-token-ms`` and ``--tokens``
set the model (``--tpot-per-active-ms 0``: every stream at the base rate), and ``--processes N`` serves from N
processes sharing the listening socket (``active`` then counts a process's own requests), each logging finished
requests to a file that ``/truth`` reads whole, so one Python process's CPU does not cap what it can deliver.

Routes: ``POST /generate_stream`` (TGI SSE), ``POST /v1/chat/completions`` (OpenAI SSE, streamed),
``POST /endpoints/NAME/invocations-response-stream`` (SageMaker: the container's SSE in event-stream
PayloadParts, one per SSE event; the body's shape says which container: a ``messages`` list is an OpenAI chat
completion, answered as vLLM answers it, anything else TGI's ``/generate`` body), ``GET /truth`` (the log as
JSON), ``POST /reset``. Prints ``truth server listening on URL`` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python does not export it
PREFILL_BASE_MS = 40.0
PREFILL_PER_TOKEN_MS = 0.1
TPOT_BASE_MS = 20.0
TPOT_PER_ACTIVE_MS = 0.1
TOKENS = 50
SAGEMAKER_CONTENT_TYPE = {"X-Amzn-SageMaker-Content-Type": "text/event-stream"}
EVENT_HEADERS = (
    (":event-type", "PayloadPart"),
    (":content-type", "application/octet-stream"),
    (":message-type", "event"),
)


def realtime_offset() -> float:
    """``time.time() - time.perf_counter()``, from the tightest of many bracketed samples."""
    best: tuple[float, float] | None = None
    for _ in range(200):
        before = time.perf_counter()
        wall = time.time()
        after = time.perf_counter()
        if best is None or after - before < best[0]:
            best = (after - before, wall - (before + after) / 2)
    assert best is not None
    return best[1]


@dataclass(frozen=True)
class Model:
    """The latency model (module docstring); the defaults are the figures every earlier run used."""

    prefill_base_ms: float = PREFILL_BASE_MS
    prefill_per_token_ms: float = PREFILL_PER_TOKEN_MS
    tpot_base_ms: float = TPOT_BASE_MS
    tpot_per_active_ms: float = TPOT_PER_ACTIVE_MS
    tokens: int = TOKENS


class Log:
    """Finished requests: in memory, or (``folder`` given, one process of several) in a JSON-lines file each."""

    def __init__(self, model: Model | None = None, folder: Path | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.active = 0
        self.model = model or Model()
        self.folder = folder
        self.file = (folder / f"{os.getpid()}.jsonl").open("a", buffering=1) if folder is not None else None

    def add(self, truth: dict[str, Any]) -> None:
        if self.file is None:
            self.requests.append(truth)
        else:
            self.file.write(json.dumps(truth) + "\n")

    def all(self) -> list[dict[str, Any]]:
        if self.folder is None:
            return self.requests
        found: list[dict[str, Any]] = []
        for path in sorted(self.folder.glob("*.jsonl")):
            found += [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
        return found

    def clear(self) -> None:
        self.requests.clear()
        for path in self.folder.glob("*.jsonl") if self.folder is not None else ():
            os.truncate(path, 0)  # every process appends (O_APPEND): its next line starts the file again


class Connection:
    """One client connection: parses requests, writes responses, stamps arrivals and writes."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, log: Log, offset: float) -> None:
        self.sock, self.loop, self.log, self.offset = sock, loop, log, offset
        self.buffer = b""
        self.pending = bytearray()  # bytes the kernel did not take yet
        self.stamps: list[tuple[int, Callable[[float], None]]] = []  # (end offset in pending, stamp)
        self.closed = False
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop.add_reader(sock.fileno(), self.on_readable)

    def on_readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        if not data:
            self.close()
            return
        arrived = time.perf_counter()
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("qq", payload[:16])
                arrived = seconds + nanoseconds / 1e9 - self.offset
        self.buffer += data
        while (request := self.take_request()) is not None:
            self.handle(*request, arrived)

    def take_request(self) -> tuple[str, str, bytes] | None:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = self.buffer[:head_end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(self.buffer) < head_end + 4 + length:
            return None
        body = self.buffer[head_end + 4 : head_end + 4 + length]
        self.buffer = self.buffer[head_end + 4 + length :]
        method, path, _ = head[0].split(" ", 2)
        return method, path, body

    def handle(self, method: str, path: str, body: bytes, arrived: float) -> None:
        if path == "/truth":
            self.reply(200, json.dumps(self.log.all()).encode())
        elif path in {"/health", "/v1/models"}:  # what OpenAI-compatible benchmarks (GuideLLM) probe first
            self.reply(200, b'{"object":"list","data":[{"id":"truth","object":"model"}]}')
        elif path == "/reset":
            self.log.clear()
            self.reply(200, b"{}")
        elif method == "POST" and path == "/generate_stream":
            Generation(self, "tgi", body, arrived).start({"Content-Type": "text/event-stream"})
        elif method == "POST" and path == "/v1/chat/completions":
            Generation(self, "openai", body, arrived).start({"Content-Type": "text/event-stream"})
        elif method == "POST" and path.startswith("/endpoints/") and path.endswith("/invocations-response-stream"):
            chat = isinstance(json.loads(body).get("messages"), list)
            Generation(self, "sagemaker-chat" if chat else "sagemaker", body, arrived).start(
                {
                    "Content-Type": "application/vnd.amazon.eventstream",
                    "X-Amzn-SageMaker-Content-Type": "text/event-stream",
                }
            )
        else:
            self.reply(404, b'{"error":"not found"}')

    def reply(self, status: int, body: bytes) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.write(head.encode() + body)

    def write(self, data: bytes, stamp: Callable[[float], None] | None = None) -> None:
        """Send now when nothing is queued; ``stamp`` gets the time the last of these bytes left."""
        if self.closed:
            return
        if not self.pending:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            if sent == len(data):
                if stamp is not None:
                    stamp(time.perf_counter())
                return
            data = data[sent:]
            self.loop.add_writer(self.sock.fileno(), self.on_writable)
        self.pending += data
        if stamp is not None:
            self.stamps.append((len(self.pending), stamp))

    def on_writable(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        now = time.perf_counter()
        del self.pending[:sent]
        self.stamps = [(end - sent, stamp) for end, stamp in self.stamps]
        while self.stamps and self.stamps[0][0] <= 0:
            self.stamps.pop(0)[1](now)
        if not self.pending:
            self.loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            if self.pending:
                self.loop.remove_writer(self.sock.fileno())
            self.sock.close()


def event_stream_message(payload: bytes) -> bytes:
    """An AWS event-stream ``PayloadPart`` event (prelude, CRCs, string headers), framed independently."""
    headers = b""
    for name, value in (
        (":event-type", "PayloadPart"),
        (":content-type", "application/octet-stream"),
        (":message-type", "event"),
    ):
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


class Generation:
    """One streamed answer on its own schedule; appends its truth record when it ends."""

    def __init__(self, conn: Connection, protocol: str, body: bytes, arrived: float) -> None:
        self.conn, self.protocol = conn, protocol
        request = json.loads(body)
        if protocol in ("openai", "sagemaker-chat"):
            text = " ".join(str(m.get("content", "")) for m in request.get("messages", []))
            wanted = int(request.get("max_tokens") or conn.log.model.tokens)
        else:
            text = str(request.get("inputs", ""))
            wanted = int((request.get("parameters") or {}).get("max_new_tokens") or conn.log.model.tokens)
        self.input_tokens = max(1, len(text) // 4)
        self.model = model = conn.log.model
        self.tokens = max(1, min(wanted, model.tokens))
        self.id = str(uuid.uuid4())
        self.truth: dict[str, Any] = {"id": self.id, "protocol": protocol, "arrival": arrived, "writes": []}
        self.truth["tokens"] = self.tokens
        self.sent = 0
        self.deadline = arrived + (model.prefill_base_ms + model.prefill_per_token_ms * self.input_tokens) / 1000

    def start(self, headers: dict[str, str]) -> None:
        id_header = "x-amzn-RequestId" if self.protocol.startswith("sagemaker") else "x-request-id"
        lines = ["HTTP/1.1 200 OK", f"{id_header}: {self.id}", "Transfer-Encoding: chunked", "Cache-Control: no-cache"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.conn.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.conn.log.active += 1
        self.schedule()

    def schedule(self) -> None:
        loop = self.conn.loop
        loop.call_at(loop.time() + (self.deadline - time.perf_counter()), self.emit)

    def emit(self) -> None:
        index = self.sent
        self.sent += 1
        last = self.sent == self.tokens
        payload = self.event(index, last)
        self.conn.write(
            b"%x\r\n%s\r\n" % (len(payload), payload) + (b"0\r\n\r\n" if last else b""), self.truth["writes"].append
        )
        if last:
            self.conn.log.active -= 1
            self.conn.log.add(self.truth)
            return
        self.deadline += (self.model.tpot_base_ms + self.model.tpot_per_active_ms * self.conn.log.active) / 1000
        self.schedule()

    def event(self, index: int, last: bool) -> bytes:
        if self.protocol == "openai":
            return b"".join(self.openai_events(index, last))
        if self.protocol == "sagemaker-chat":
            return b"".join(event_stream_message(sse) for sse in self.openai_events(index, last))
        token = {"id": 1000 + index, "text": f" w{index}", "logprob": -0.25, "special": False}
        event: dict[str, Any] = {"index": index, "token": token, "generated_text": None, "details": None}
        if last:
            event["generated_text"] = "".join(f" w{i}" for i in range(self.tokens))
            event["details"] = {"finish_reason": "length", "generated_tokens": self.tokens, "seed": None}
            event["details"]["input_length"] = self.input_tokens
        sse = b"data:" + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
        return event_stream_message(sse) if self.protocol == "sagemaker" else sse

    def openai_events(self, index: int, last: bool) -> list[bytes]:
        """The SSE events of token ``index``: its chunk, and after the last one vLLM's usage chunk and [DONE]."""

        def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
            body = {"id": self.id, "object": "chat.completion.chunk", "created": 0, "model": "truth"}
            body.update(choices=choices, usage=usage)
            return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

        delta = {"role": "assistant", "content": f" w{index}"}
        out = [chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": "length" if last else None}])]
        if last:
            usage = {"prompt_tokens": self.input_tokens, "completion_tokens": self.tokens}
            out += [chunk([], dict(usage, total_tokens=self.input_tokens + self.tokens)), b"data: [DONE]\n\n"]
        return out


def listen(host: str, port: int) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(4096)
    listener.setblocking(False)
    return listener


async def serve(listener: socket.socket, log: Log, announce: bool = True) -> None:
    loop = asyncio.get_running_loop()
    offset = realtime_offset()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            Connection(sock, loop, log, offset)

    loop.add_reader(listener.fileno(), accept)
    if announce:
        host, port = listener.getsockname()[:2]
        print(f"truth server listening on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prefill-base-ms", type=float, default=PREFILL_BASE_MS)
    parser.add_argument("--prefill-per-token-ms", type=float, default=PREFILL_PER_TOKEN_MS)
    parser.add_argument("--tpot-base-ms", type=float, default=TPOT_BASE_MS)
    parser.add_argument("--tpot-per-active-ms", type=float, default=TPOT_PER_ACTIVE_MS)
    parser.add_argument("--tokens", type=int, default=TOKENS, help="tokens per request at most")
    parser.add_argument("--processes", type=int, default=1, help="serving processes sharing the listener")
    args = parser.parse_args()
    if args.tpot_base_ms <= 0 or args.tokens < 1 or args.processes < 1:
        parser.error("--tpot-base-ms must be > 0, --tokens and --processes >= 1")
    model = Model(
        args.prefill_base_ms, args.prefill_per_token_ms, args.tpot_base_ms, args.tpot_per_active_ms, args.tokens
    )
    listener = listen(args.host, args.port)
    # The standard loop: its timers are as precise as the clock (uvloop's are whole milliseconds).
    if args.processes == 1:
        asyncio.run(serve(listener, Log(model)))
        return
    folder = Path(tempfile.mkdtemp(prefix="truth-server-"))
    children = []
    for _ in range(args.processes):
        pid = os.fork()
        if pid == 0:
            asyncio.run(serve(listener, Log(model, folder), announce=False))
            os._exit(0)
        children.append(pid)
    host, port = listener.getsockname()[:2]
    print(f"truth server listening on http://{host}:{port} ({args.processes} processes)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # terminate() ends the children too
    try:
        for pid in children:
            os.waitpid(pid, 0)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
