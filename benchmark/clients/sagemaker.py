"""SageMaker runtime client: boto3 ``invoke_endpoint`` and ``invoke_endpoint_with_response_stream``.

Only boto3 is imported, so this runs inside a Lambda function. boto3 is synchronous: each request runs
on a worker thread of a pool sized to the concurrency, with a connection pool of the same size. Retries
are off (standard mode, one attempt) so throttling is recorded instead of hidden behind backoff.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
import urllib3.exceptions
from botocore import eventstream as botocore_eventstream
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from benchmark.clients.base import RequestFailed, fail, read_headers, status_error_kind
from benchmark.clients.protocol import TgiStreamReader, read_tgi_response, tgi_request
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
STREAM_FAILURE_CODES = frozenset({"ModelStreamError", "InternalStreamFailure"})


def boto_config(concurrency: int, timeout_s: float, connect_timeout_s: float = 10.0) -> Config:
    """Pool as large as the load, no retries, and a read timeout that makes a stall a TIMEOUT."""
    return Config(
        max_pool_connections=max(10, concurrency),
        # total_max_attempts counts the first try; botocore's ``max_attempts`` counts *retries*, so
        # ``max_attempts: 1`` would still retry once and hide a throttle.
        retries={"mode": "standard", "total_max_attempts": 1},
        read_timeout=timeout_s,
        connect_timeout=connect_timeout_s,
        tcp_keepalive=True,
    )


def classify_client_error(error: ClientError) -> ErrorKind:
    """Service errors: throttling, stream failures, then ModelError by the container's own status."""
    response: Mapping[str, Any] = error.response
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in THROTTLING_CODES or status == 429:
        return ErrorKind.THROTTLED
    if code in STREAM_FAILURE_CODES:
        return ErrorKind.DROPPED_STREAM
    if code == "ModelError":
        original = response.get("OriginalStatusCode")
        # The container's status says whose fault it was: 429 overloaded, 4xx bad request, else 5xx.
        return status_error_kind(original) if isinstance(original, int) and original >= 400 else ErrorKind.HTTP_5XX
    if isinstance(status, int) and status >= 400:
        return status_error_kind(status)
    return ErrorKind.CLIENT


def classify_exception(exc: BaseException) -> ErrorKind:
    """Transport-level failures seen by botocore/urllib3 while sending or reading."""
    if isinstance(exc, ClientError):
        return classify_client_error(exc)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return ErrorKind.TIMEOUT
    if isinstance(exc, botocore_eventstream.ParserError):
        return ErrorKind.MALFORMED_FRAME
    if isinstance(exc, (ResponseStreamingError, urllib3.exceptions.ProtocolError, ConnectionClosedError)):
        cause = getattr(exc, "kwargs", {}).get("error")
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError) or "timed out" in str(exc).lower():
            return ErrorKind.TIMEOUT
        return ErrorKind.DROPPED_STREAM
    if isinstance(exc, EndpointConnectionError):
        return ErrorKind.CONNECTION
    return ErrorKind.CLIENT


class SageMakerClient:
    """One SageMaker endpoint (TGI container), streamed or not."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        streaming: bool = False,
        concurrency: int = 1,
        timeout_s: float = 120.0,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        boto_client: SageMakerRuntimeClient | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        inference_component: str | None = None,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.streaming = streaming
        self.name = f"sagemaker{'-stream' if streaming else ''}:{endpoint_name}"
        self.inference_component = inference_component
        self._client: SageMakerRuntimeClient = boto_client or boto3.client(
            "sagemaker-runtime",
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=boto_config(concurrency, timeout_s),
            **dict(client_kwargs or {}),
        )
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="sagemaker-invoke")
        # A request's clock starts when botocore hands it to the connection, after serializing and SigV4
        # signing (about 2 ms of client CPU, which is not the endpoint's latency); each request has a thread.
        self._current = threading.local()
        self._client.meta.events.register("before-send.sagemaker-runtime", self._stamp_send)

    def _stamp_send(self, **_: Any) -> None:
        record: RequestRecord | None = getattr(self._current, "record", None)
        if record is not None:
            record.start = time.perf_counter()
        # None: botocore goes on and sends the request (a return value would replace the response).

    async def send(self, prompt: Prompt, params: GenerationParams, *, user: int) -> RequestRecord:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self.invoke, prompt, params, user=user))

    def invoke(self, prompt: Prompt, params: GenerationParams, *, user: int = 0) -> RequestRecord:
        """The synchronous request (what :meth:`send` runs on a worker thread; usable directly in a Lambda)."""
        body = json.dumps(tgi_request(prompt, params, stream=True if self.streaming else None)).encode()
        record = RequestRecord(user=user, start=time.perf_counter(), end=0.0, prompt_id=prompt.id or None)
        self._current.record = record
        try:
            if self.streaming:
                self._invoke_stream(record, body)
            else:
                self._invoke(record, body)
        except RequestFailed as exc:
            return fail(record, exc.kind, exc.detail, time.perf_counter())
        except Exception as exc:
            return fail(record, classify_exception(exc), f"{type(exc).__name__}: {exc}", time.perf_counter())
        finally:
            self._current.record = None
        record.end = time.perf_counter()
        return record

    def _extra(self) -> dict[str, str]:
        return {"InferenceComponentName": self.inference_component} if self.inference_component else {}

    def _invoke(self, record: RequestRecord, body: bytes) -> None:
        response = self._client.invoke_endpoint(
            EndpointName=self.endpoint_name,
            Body=body,
            ContentType="application/json",
            Accept="application/json",
            **self._extra(),
        )
        read_headers(record, response["ResponseMetadata"].get("HTTPHeaders", {}))
        payload = response["Body"].read()
        read_tgi_response(record, payload)

    def _invoke_stream(self, record: RequestRecord, body: bytes) -> None:
        response = self._client.invoke_endpoint_with_response_stream(
            EndpointName=self.endpoint_name,
            Body=body,
            ContentType="application/json",
            Accept="text/event-stream",
            **self._extra(),
        )
        read_headers(record, response["ResponseMetadata"].get("HTTPHeaders", {}))
        reader = TgiStreamReader(record)
        stream = response["Body"]
        try:
            for event in stream:
                part = event.get("PayloadPart")
                if part is not None:
                    reader.feed(part.get("Bytes", b""), time.perf_counter())
            reader.close()
        finally:
            stream.close()

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
