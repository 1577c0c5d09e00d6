"""Shared aiohttp plumbing for the plain-HTTP clients (TGI, OpenAI-compatible).

One session per client, created lazily inside the running loop, with a connection pool as large as the
concurrency so that every virtual user keeps its own keep-alive connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from benchmark.clients.base import RequestFailed, fail, read_headers, redact_url, split_credentials, status_error_kind
from benchmark.clients.protocol import StreamReader
from benchmark.measure.records import ErrorKind, RequestRecord
from catalog.errors import ConfigError, Issue


class HttpTransport:
    def __init__(
        self, base_url: str, *, concurrency: int, timeout_s: float, headers: Mapping[str, str] | None = None
    ) -> None:
        url, credentials = split_credentials(base_url)
        self.base_url = url.rstrip("/")  # never holds credentials, so error details cannot leak them
        self._limit = max(1, concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 10.0))
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        if credentials is not None:
            if any(k.lower() == "authorization" for k in self._headers):
                raise ConfigError([Issue("url", redact_url(base_url), "carries credentials and an API key is set too")])
            self._headers["Authorization"] = aiohttp.encode_basic_auth(*credentials)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers=self._headers,
                auto_decompress=False,
            )
        return self._session

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
        data = json.dumps(payload).encode()
        try:
            async with self._get_session().post(self.base_url + path, data=data) as response:
                read_headers(record, response.headers)
                if response.status >= 400:
                    text = (await response.read())[:300].decode("utf-8", "replace")
                    raise RequestFailed(status_error_kind(response.status), f"HTTP {response.status}: {text}")
                if reader is not None:
                    async for chunk in response.content.iter_any():
                        reader.feed(chunk, time.perf_counter())
                    reader.close()
                else:
                    body = await response.read()
                    if read_body is not None:
                        read_body(record, body)
        except RequestFailed as exc:
            return fail(record, exc.kind, exc.detail, time.perf_counter())
        except TimeoutError as exc:
            return fail(record, ErrorKind.TIMEOUT, f"{type(exc).__name__}: {exc}", time.perf_counter())
        except aiohttp.ClientConnectorError as exc:
            return fail(record, ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}", time.perf_counter())
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ConnectionResetError) as exc:
            return fail(record, ErrorKind.DROPPED_STREAM, f"{type(exc).__name__}: {exc}", time.perf_counter())
        except aiohttp.ClientResponseError as exc:
            return fail(record, ErrorKind.MALFORMED_FRAME, f"{type(exc).__name__}: {exc}", time.perf_counter())
        except Exception as exc:
            return fail(record, ErrorKind.CLIENT, f"{type(exc).__name__}: {exc}", time.perf_counter())
        record.end = time.perf_counter()
        return record

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
