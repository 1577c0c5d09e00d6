"""The plain-HTTP transport of the TGI and OpenAI-compatible clients, on :mod:`benchmark.wire`.

One keep-alive connection per virtual user. A request's clock starts when its bytes are handed to the
kernel and each body chunk carries the kernel's receive time, so client-side queueing at hundreds of
streams is not measured as the server's latency (see :mod:`benchmark.wire.connection`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from benchmark.clients.base import RequestFailed, fail, read_headers, redact_url, split_credentials, status_error_kind
from benchmark.clients.protocol import StreamReader
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.wire.connection import BodyEnded, ConnectionPool, Origin, ProtocolError, UnreachableError, round_trip
from benchmark.wire.http1 import Response, request_bytes
from catalog.errors import ConfigError, Issue

USER_AGENT = "llama-sagemaker-benchmark"


def origin_of(url: str) -> tuple[Origin, str]:
    """(origin, path prefix) of a base URL already checked by ``split_credentials``."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    assert parts.hostname is not None
    return Origin(parts.hostname, parts.port or (443 if tls else 80), tls), parts.path.rstrip("/")


class HttpTransport:
    def __init__(
        self, base_url: str, *, concurrency: int, timeout_s: float, headers: Mapping[str, str] | None = None
    ) -> None:
        url, credentials = split_credentials(base_url)
        self.base_url = url.rstrip("/")  # never holds credentials, so error details cannot leak them
        self._origin, self._prefix = origin_of(self.base_url)
        self._limit = max(1, concurrency)
        self._timeout_s = timeout_s
        self._connect_timeout_s = min(timeout_s, 10.0)
        self._headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **dict(headers or {})}
        if credentials is not None:
            if any(k.lower() == "authorization" for k in self._headers):
                raise ConfigError([Issue("url", redact_url(base_url), "carries credentials and an API key is set too")])
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._pool: ConnectionPool | None = None

    def _get_pool(self) -> ConnectionPool:
        if self._pool is None:  # created inside the running loop, like the connections it holds
            self._pool = ConnectionPool(self._origin, limit=self._limit, context=ssl.create_default_context())
        return self._pool

    async def post(
        self,
        path: str,
        payload: dict[str, Any],
        record: RequestRecord,
        *,
        reader: StreamReader | None = None,
        read_body: Callable[[RequestRecord, bytes], None] | None = None,
    ) -> RequestRecord:
        """POST ``payload``; stream it through ``reader`` or hand the whole body to ``read_body``."""
        request = request_bytes(
            "POST", self._prefix + path, self._origin.host_header, self._headers, json.dumps(payload).encode()
        )
        sink = reader.feed if reader is not None else None
        try:
            response = await record_round_trip(
                self._get_pool(),
                request,
                sink,
                record,
                timeout_s=self._timeout_s,
                connect_timeout_s=self._connect_timeout_s,
            )
            if response.status >= 400:
                text = bytes(response.body[:300]).decode("utf-8", "replace")
                raise RequestFailed(status_error_kind(response.status), f"HTTP {response.status}: {text}")
            if reader is not None:
                reader.close()
            elif read_body is not None:
                read_body(record, bytes(response.body))
        except RequestFailed as exc:
            return fail(record, exc.kind, exc.detail, time.perf_counter())
        except Exception as exc:
            kind, detail = wire_failure(exc, self.base_url, self._timeout_s)
            return fail(record, kind, detail, time.perf_counter())
        record.end = response.last_at  # the answer's last bytes reached the kernel
        return record

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


async def record_round_trip(
    pool: ConnectionPool,
    request: bytes,
    sink: Callable[[bytes, float], None] | None,
    record: RequestRecord,
    *,
    timeout_s: float,
    connect_timeout_s: float,
) -> Response:
    """:func:`round_trip` within the request's timeout; the record gets the send time and the response headers."""
    async with asyncio.timeout(timeout_s):
        return await round_trip(
            pool,
            request,
            sink,
            connect_timeout_s=connect_timeout_s,
            on_sent=functools.partial(setattr, record, "start"),
            on_head=lambda head: read_headers(record, head.headers),
        )


def wire_failure(exc: Exception, where: str, timeout_s: float) -> tuple[ErrorKind, str]:
    """What went wrong on a :mod:`benchmark.wire` request, as the record's error kind and detail."""
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT, f"no complete answer within {timeout_s:g} s"
    if isinstance(exc, UnreachableError):
        return ErrorKind.CONNECTION, f"cannot connect to {where}: {exc}"
    if isinstance(exc, (BodyEnded, ConnectionError)):
        return ErrorKind.DROPPED_STREAM, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ProtocolError):
        return ErrorKind.MALFORMED_FRAME, f"ProtocolError: {exc}"
    return ErrorKind.CLIENT, f"{type(exc).__name__}: {exc}"
