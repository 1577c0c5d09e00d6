"""A small LLM server for the CLI's end-to-end tests, served by uvicorn (a real third-party HTTP server).

It shares no code with the benchmark: a plain ASGI app that speaks

- TGI ``POST /generate_stream`` (SSE ``data:{...}`` events, the last with ``details.generated_tokens``),
- OpenAI ``POST /v1/chat/completions`` streamed (a role chunk, one content chunk per token, ``finish_reason``,
  a usage chunk, ``[DONE]``), as vLLM and transformers-serve write them (tests/fixtures/real_streams),
- SageMaker runtime ``POST /endpoints/NAME/invocations-response-stream`` (TGI SSE inside AWS event-stream
  ``PayloadPart`` messages, framed here with ``binascii.crc32``),

and keeps its own log of what it sent: per request the protocol, the connection (one per virtual user on
keep-alive), when it arrived, when each token's bytes were handed to uvicorn and how many tokens it
counted in its final event, all on ``time.perf_counter()`` (``CLOCK_MONOTONIC`` on Linux, shared by every
process). Tests compare the benchmark's figures with this log.

Timing is hand-computable: every request streams ``tokens`` tokens, token ``i`` due ``(i + 1) x
service_s / tokens`` after arrival (absolute deadlines, so sleep overshoot does not add up), whatever the
load: N users in a closed loop complete N / service_s requests per second.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Sent:
    """One request as the server saw and answered it."""

    request_id: str
    protocol: str  # "tgi", "openai" or "sagemaker"
    connection: str  # client host:port
    arrival: float
    sent_at: list[float] = field(default_factory=list)  # after each token's bytes went to uvicorn
    tokens: int = 0  # the count the final event reported
    done: float | None = None  # after the last bytes went out


class LlmApp:
    """The ASGI app; ``log`` holds every request it answered, in order of completion."""

    def __init__(self, tokens: int = 4, service_s: float = 0.02) -> None:
        self.tokens = tokens
        self.service_s = service_s
        self.log: list[Sent] = []
        self.endpoints: set[str] = set()  # SageMaker endpoints served (empty: any name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": f"{kind}.complete"})  # lifespan.startup / lifespan.shutdown
                if kind == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        arrival = time.perf_counter()
        path, method = scope["path"], scope["method"]
        client = scope.get("client") or ("?", 0)
        connection = f"{client[0]}:{client[1]}"
        if method == "POST" and path == "/generate_stream":
            await self._stream(send, Sent(str(uuid.uuid4()), "tgi", connection, arrival), json.loads(body))
        elif method == "POST" and path == "/v1/chat/completions":
            await self._stream(send, Sent(str(uuid.uuid4()), "openai", connection, arrival), json.loads(body))
        elif method == "POST" and path.startswith("/endpoints/") and path.endswith("/invocations-response-stream"):
            name = path.split("/")[2]
            if self.endpoints and name not in self.endpoints:
                error = {"ErrorCode": "ValidationError", "Message": f"Endpoint {name} not found."}
                await _reply(send, 400, json.dumps(error).encode(), {"x-amzn-ErrorType": "ValidationError"})
                return
            await self._stream(send, Sent(str(uuid.uuid4()), "sagemaker", connection, arrival), json.loads(body))
        else:
            await _reply(send, 404, b'{"error":"not found"}', {})

    async def _stream(self, send: Send, sent: Sent, request: dict[str, Any]) -> None:
        if sent.protocol == "openai":
            wanted = request.get("max_tokens") or request.get("max_completion_tokens") or self.tokens
        else:
            wanted = (request.get("parameters") or {}).get("max_new_tokens") or self.tokens
        tokens = max(1, min(int(wanted), self.tokens))
        headers: dict[str, str] = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        if sent.protocol == "sagemaker":
            headers = {
                "content-type": "application/vnd.amazon.eventstream",
                "x-amzn-sagemaker-content-type": "text/event-stream",
                "x-amzn-requestid": sent.request_id,
            }
        else:
            headers["x-request-id"] = sent.request_id
        await send({"type": "http.response.start", "status": 200, "headers": _raw(headers)})
        if sent.protocol == "openai":
            await _more(send, _openai_chunk(sent.request_id, {"role": "assistant", "content": ""}, None))
        loop = asyncio.get_running_loop()
        offset = loop.time() - time.perf_counter()
        for index in range(tokens):
            due = sent.arrival + (index + 1) * self.service_s / tokens
            await asyncio.sleep(max(0.0, due + offset - loop.time()))
            last = index == tokens - 1
            payload = self._event(sent, index, tokens, last)
            await _more(send, payload)
            sent.sent_at.append(time.perf_counter())
        sent.tokens = tokens
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        sent.done = time.perf_counter()
        self.log.append(sent)

    def _event(self, sent: Sent, index: int, tokens: int, last: bool) -> bytes:
        if sent.protocol == "openai":
            out = _openai_chunk(sent.request_id, {"content": f" w{index}"}, "length" if last else None)
            if last:
                usage = {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}
                out += b"data: " + json.dumps({"id": sent.request_id, "choices": [], "usage": usage}).encode()
                out += b"\n\ndata: [DONE]\n\n"
            return out
        event: dict[str, Any] = {
            "index": index + 1,
            "token": {"id": 1000 + index, "text": f" w{index}", "logprob": -0.25, "special": False},
            "generated_text": None,
            "details": None,
        }
        if last:
            event["generated_text"] = "".join(f" w{i}" for i in range(tokens))
            event["details"] = {"finish_reason": "length", "generated_tokens": tokens, "seed": None}
        sse = b"data:" + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
        return payload_part(sse) if sent.protocol == "sagemaker" else sse


def _openai_chunk(request_id: str, delta: dict[str, str], finish: str | None) -> bytes:
    chunk = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "uvicorn-llm",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def payload_part(payload: bytes) -> bytes:
    """One AWS event-stream ``PayloadPart`` message: prelude, prelude CRC, string headers, payload, CRC."""
    headers = b""
    for name, value in ((":event-type", "PayloadPart"), (":content-type", "application/octet-stream")):
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
    headers += bytes([len(":message-type")]) + b":message-type\x07" + struct.pack(">H", 5) + b"event"
    prelude = struct.pack(">II", 12 + len(headers) + len(payload) + 4, len(headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in headers.items()]


async def _more(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _reply(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    all_headers = {"content-type": "application/json", "content-length": str(len(body)), **headers}
    await send({"type": "http.response.start", "status": status, "headers": _raw(all_headers)})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def serving(app: LlmApp) -> Iterator[str]:
    """``with serving(app) as base_url:`` uvicorn on a free loopback port, on a thread of this process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=60))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-llm", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
