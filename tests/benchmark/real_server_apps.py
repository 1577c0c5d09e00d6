"""Small TGI / OpenAI / SageMaker-runtime apps for real third-party servers (tests/benchmark/test_real_servers.py).

The same answers as an ASGI app (uvicorn, hypercorn), a WSGI app (gunicorn), an aiohttp app and a
``http.server`` handler, each a thin adapter over :func:`answer`. The byte layout of each stream is that of
``tests/fixtures/protocol_variants`` (TGI ``/generate_stream``, vLLM's ``/v1/chat/completions``).

Every request is logged *by the server*, as one JSON line appended to the file named by ``REAL_SERVER_LOG``
(method, path, query, the ``Accept-Encoding`` it got, the server's process id, the prompt): the tests read
what the server saw from there, never from the client. Paths:

- ``/generate_stream``, ``/generate``, ``/v1/chat/completions``, ``/endpoints/<name>/invocations``;
- ``/r301/...`` (also 302, 307, 308): that redirect, to ``/moved/...``;
- ``/gzip/...``: the answer gzip-compressed whatever the request accepts (aiohttp's own compression there).

``python -m tests.benchmark.real_server_apps aiohttp FD`` serves with aiohttp on an inherited listening
socket, ``... http.server FD`` with ``http.server`` (the ASGI and WSGI apps are given to their servers).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

Headers = list[tuple[str, str]]
LOG_ENV = "REAL_SERVER_LOG"
_REDIRECT = re.compile(r"^/r(30[1278])(/.*)$")


def log(method: str, path: str, query: str, accept_encoding: str | None, body: bytes) -> None:
    """Append what this server got to the shared log (one ``write`` of one line: atomic with O_APPEND)."""
    target = os.environ.get(LOG_ENV)
    if not target:
        return
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        payload = {}
    prompt = payload.get("inputs") if isinstance(payload, dict) else None
    if prompt is None and isinstance(payload, dict) and payload.get("messages"):
        prompt = payload["messages"][0].get("content")
    line = {
        "server": os.environ.get("REAL_SERVER_NAME", ""),
        "pid": os.getpid(),
        "method": method,
        "path": path,
        "query": query,
        "accept_encoding": accept_encoding,
        "prompt": prompt,
    }
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def _tokens(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    return value if isinstance(value, int) and 0 < value <= 64 else 4


def _tgi_events(n: int) -> Iterator[bytes]:
    text = ""
    for index in range(1, n + 1):
        token: dict[str, Any] = {"id": 100 + index, "text": f" w{index}", "logprob": -0.1, "special": False}
        text += token["text"]
        last = index == n
        details = {"finish_reason": "length", "generated_tokens": n, "seed": None, "input_length": 7}
        event = {
            "index": index,
            "token": token,
            "generated_text": text if last else None,
            "details": details if last else None,
        }
        yield b"data:" + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _chat_chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-real",
        "object": "chat.completion.chunk",
        "created": 1733140000,
        "model": "tgi",
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = usage
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _chat_events(n: int) -> Iterator[bytes]:
    yield _chat_chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for index in range(1, n + 1):
        finish = "length" if index == n else None
        yield _chat_chunk([{"index": 0, "delta": {"content": f" w{index}"}, "finish_reason": finish}])
    yield _chat_chunk([], {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n})
    yield b"data: [DONE]\n\n"


def answer(method: str, path: str, body: bytes, host: str) -> tuple[int, Headers, list[bytes]]:
    """(status, headers, body chunks) for one request; a stream's chunks are its events."""
    redirect = _REDIRECT.match(path)
    if redirect:
        status, rest = int(redirect.group(1)), redirect.group(2)
        location = f"http://{host}/moved{rest}" if status == 301 else f"/moved{rest}"  # absolute and relative
        return status, [("Location", location), ("Content-Type", "text/plain")], [b"moved\n"]
    path = path.removeprefix("/gzip")
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        payload = {}
    if method != "POST" or not isinstance(payload, dict):
        return 405, [("Content-Type", "text/plain")], [b"POST JSON\n"]
    json_type = [("Content-Type", "application/json")]
    sse_type = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
    parameters: dict[str, Any] = payload["parameters"] if isinstance(payload.get("parameters"), dict) else {}
    if path == "/generate_stream":
        return 200, sse_type, list(_tgi_events(_tokens(parameters, "max_new_tokens")))
    if path == "/generate" or (path.startswith("/endpoints/") and path.endswith("/invocations")):
        n = _tokens(parameters, "max_new_tokens")
        whole = {"generated_text": " w" * n, "details": {"finish_reason": "length", "generated_tokens": n}}
        return 200, json_type, [json.dumps(whole).encode()]
    if path == "/v1/chat/completions":
        n = _tokens(payload, "max_tokens")
        if payload.get("stream"):
            return 200, sse_type, list(_chat_events(n))
        message = {"role": "assistant", "content": " w" * n}
        chat: dict[str, Any] = {
            "id": "chatcmpl-real",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n},
        }
        return 200, json_type, [json.dumps(chat).encode()]
    return 404, [("Content-Type", "text/plain")], [b"no such route\n"]


# --- ASGI (uvicorn, hypercorn, gunicorn's uvicorn worker) ---------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    query = scope["query_string"].decode("latin-1")
    log(scope["method"], scope["path"], query, headers.get("accept-encoding"), body)
    status, extra, chunks = answer(scope["method"], scope["path"], body, headers.get("host", ""))
    raw = [(k.lower().encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- WSGI (gunicorn's sync and gthread workers) -------------------------------------------------------------


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    path, query = environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", "")
    log(environ["REQUEST_METHOD"], path, query, environ.get("HTTP_ACCEPT_ENCODING"), body)
    status, headers, chunks = answer(environ["REQUEST_METHOD"], path, body, environ.get("HTTP_HOST", ""))
    start_response(f"{status} {http.HTTPStatus(status).phrase}", headers)
    return chunks  # no Content-Length: gunicorn sends HTTP/1.1 answers chunked


# --- http.server --------------------------------------------------------------------------------------------


class StdlibHandler(http.server.BaseHTTPRequestHandler):
    """Python's ``http.server``; HTTP/1.1 with keep-alive, bodies chunked by hand."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        log("POST", path, query, self.headers.get("Accept-Encoding"), body)
        status, headers, chunks = answer("POST", path, body, self.headers.get("Host", ""))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the JSON log above is the record."""


# --- aiohttp ------------------------------------------------------------------------------------------------


def aiohttp_app() -> Any:
    from aiohttp import web  # noqa: PLC0415 - only the aiohttp server process needs it

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        log(request.method, request.path, request.query_string, request.headers.get("Accept-Encoding"), body)
        status, headers, chunks = answer(request.method, request.path, body, request.host)
        if 300 <= status < 400:  # aiohttp's own redirect responses
            classes = {
                301: web.HTTPMovedPermanently,
                302: web.HTTPFound,
                307: web.HTTPTemporaryRedirect,
                308: web.HTTPPermanentRedirect,
            }
            raise classes[status](location=dict(headers)["Location"])
        response = web.StreamResponse(status=status, headers=dict(headers))
        if request.path.startswith("/gzip/"):
            response.enable_compression(force=web.ContentCoding.gzip)  # whatever the request accepts
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def serve_aiohttp(fd: int) -> None:
    from aiohttp import web  # noqa: PLC0415

    sock = socket.socket(fileno=fd)
    web.run_app(aiohttp_app(), sock=sock, print=None, handle_signals=True, access_log=None)


def serve_stdlib(fd: int) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StdlibHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=fd)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "aiohttp":
        serve_aiohttp(int(sys.argv[2]))
    elif sys.argv[1] == "http.server":
        serve_stdlib(int(sys.argv[2]))
    else:
        raise SystemExit(f"unknown server {sys.argv[1]!r}")
