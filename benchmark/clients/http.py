"""The plain-HTTP transport of the TGI and OpenAI-compatible clients, on :mod:`benchmark.wire`.

One keep-alive connection per virtual user. A request's clock starts when its bytes are handed to the
kernel and each body chunk carries the kernel's receive time, so client-side queueing at hundreds of
streams is not measured as the server's latency (see :mod:`benchmark.wire.connection`).

What the environment changes: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` (:mod:`benchmark.wire.proxies`),
and the certificates trusted for https (:func:`trust_context`). Redirects are recorded, never followed: a
benchmark that followed one would measure another URL than the one it names.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from benchmark.clients.base import RequestFailed, fail, read_headers, redact_url, split_credentials, status_error_kind
from benchmark.clients.protocol import StreamReader
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.wire.connection import BodyEnded, ConnectionPool, Origin, ProtocolError, UnreachableError, round_trip
from benchmark.wire.http1 import Response, basic_auth
from benchmark.wire.proxies import proxy_for
from catalog.errors import ConfigError, Issue

USER_AGENT = "llama-sagemaker-benchmark"
# Bundles added to the system's trust store (itself SSL_CERT_FILE / SSL_CERT_DIR when set), where set.
EXTRA_CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")


def origin_of(url: str) -> tuple[Origin, str]:
    """(origin, path prefix) of a base URL already checked by ``split_credentials``."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    assert parts.hostname is not None
    return Origin(parts.hostname, parts.port or (443 if tls else 80), tls), parts.path.rstrip("/")


def trust_context() -> ssl.SSLContext:
    """The certificates the HTTP targets trust: OpenSSL's defaults, then each bundle the environment names.

    OpenSSL's defaults are the system store, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` in its place when set
    (what ``curl``, ``httpx`` and aiohttp trust). ``REQUESTS_CA_BUNDLE`` and ``AWS_CA_BUNDLE`` (a file, or a
    directory of hashed certificates) are added to them, so a private CA set up for requests or the AWS
    tools is trusted here too. The SageMaker target trusts what botocore trusts (README "Proxies and TLS trust").
    """
    context = ssl.create_default_context()
    for variable in EXTRA_CA_BUNDLES:
        path = os.environ.get(variable)
        if not path:
            continue
        try:
            if os.path.isdir(path):
                context.load_verify_locations(capath=path)
            else:
                context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([Issue(variable, path, f"is not a readable CA bundle ({exc})")]) from None
    return context


class HttpTransport:
    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        """``connect_timeout_s`` (default: ``timeout_s``, at most 10 s) bounds each address tried, then TLS."""
        url, credentials = split_credentials(base_url)
        self.base_url = url.rstrip("/")  # never holds credentials, so error details cannot leak them
        self._origin, self._prefix = origin_of(self.base_url)
        query = urlsplit(self.base_url).query
        self._query = f"?{query}" if query else ""  # sent with every request, as --url gave it
        self._proxy = proxy_for(self._origin)
        self._context = trust_context() if self._origin.tls else None
        self._limit = max(1, concurrency)
        self._timeout_s = timeout_s
        self._connect_timeout_s = min(timeout_s, 10.0) if connect_timeout_s is None else connect_timeout_s
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            # Bodies are read as sent (a stream's bytes are timed as they arrive): never compressed.
            "Accept-Encoding": "identity",
            **dict(headers or {}),
        }
        if credentials is not None:
            if any(k.lower() == "authorization" for k in self._headers):
                raise ConfigError([Issue("url", redact_url(base_url), "carries credentials and an API key is set too")])
            self._headers["Authorization"] = basic_auth(*credentials)
        self._pool: ConnectionPool | None = None

    def _get_pool(self) -> ConnectionPool:
        if self._pool is None:  # created inside the running loop, like the connections it holds
            self._pool = ConnectionPool(self._origin, limit=self._limit, context=self._context, proxy=self._proxy)
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
        pool = self._get_pool()
        request = pool.request("POST", self._prefix + path + self._query, self._headers, json.dumps(payload).encode())
        sink = reader.feed if reader is not None else None
        try:
            response = await record_round_trip(
                pool,
                request,
                sink,
                record,
                timeout_s=self._timeout_s,
                connect_timeout_s=self._connect_timeout_s,
            )
            if 300 <= response.status < 400:
                raise RequestFailed(ErrorKind.REDIRECT, self._redirect(response, path))
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
            kind, detail = wire_failure(exc, redact_url(self.base_url), self._timeout_s)
            return fail(record, kind, detail, time.perf_counter())
        record.end = response.last_at  # the answer's last bytes reached the kernel
        return record

    def _redirect(self, response: Response, path: str) -> str:
        """The error of a redirect: its status, its ``Location`` and the ``--url`` it points at (not followed)."""
        location = response.headers.get("location", "")
        if not location:
            return f"HTTP {response.status} redirect without a Location; not followed"
        target = urljoin(f"{self.base_url}{path}", location)
        parts = urlsplit(target)
        base = target  # the base URL that would send this route there: the Location without the route's path
        if parts.path.endswith(path):
            base = parts._replace(path=parts.path.removesuffix(path), fragment="").geturl()
        return (
            f"HTTP {response.status} redirect, Location: {redact_url(location)};"
            f" not followed: point --url at {redact_url(base)}"
        )

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
    """:func:`round_trip` within the request's timeout; the record gets the send time and the response headers.

    The record's ``start`` is the send of the attempt that was answered: a request resent once on a new
    connection (see :func:`round_trip`) is timed from the resend's send, and its ``resent`` is True. A
    success whose body the server encoded (``Content-Encoding``, though the request asked for ``identity``)
    fails at its head: those bytes are not the stream they would be timed as.
    """

    def on_head(response: Response) -> None:
        read_headers(record, response.headers)
        if 200 <= response.status < 300 and response.content_encoding:
            raise RequestFailed(
                ErrorKind.MALFORMED_FRAME,
                f"HTTP {response.status} body sent with Content-Encoding: {response.content_encoding} although the"
                " request asked for Accept-Encoding: identity (benchmark/wire reads bodies as sent, never decoded)",
            )

    async with asyncio.timeout(timeout_s):
        return await round_trip(
            pool,
            request,
            sink,
            connect_timeout_s=connect_timeout_s,
            on_sent=functools.partial(setattr, record, "start"),
            on_head=on_head,
            on_resend=functools.partial(setattr, record, "resent", True),
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
