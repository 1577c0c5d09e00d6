"""SageMaker runtime client: boto3 ``invoke_endpoint`` and ``invoke_endpoint_with_response_stream``.

Only boto3 is imported, so this runs inside a Lambda function. Retries are off (standard mode, one
attempt) so throttling is recorded instead of hidden behind backoff.

boto3 builds and signs each request (endpoint rules, credentials, SigV4, user agent: all botocore's), and
a ``before-send`` handler takes the signed request from it; the bytes then go over :mod:`benchmark.wire`,
which reads the kernel's receive time of each chunk; event-stream frames are read as botocore reads them
(:mod:`benchmark.clients.eventstream`, botocore's own parser for any irregular frame) and botocore's error
parser reads errors. A body's signed request is reused for a minute (:meth:`SageMakerClient._signed_request`).
boto3's blocking threads would stamp a token when a thread gets the GIL back,
milliseconds late at hundreds of streams (TTFT high against an independent ground truth: docs/benchmark.md). Where
a proxy applies, or a stubbed client answers without sending, boto3 itself sends the request and reads
the answer on a thread (:meth:`SageMakerClient.invoke`).

What goes to the container's ``/invocations`` is the ``payload`` option (:data:`PAYLOADS`):

``tgi`` (default)
    TGI's ``/generate`` body with ``"stream": true`` when streaming: TGI's SageMaker route answers with its
    ``/generate_stream`` events (``router/src/sagemaker.rs``).
``openai-chat``
    An OpenAI chat completion request (``model``, ``messages``, ``max_tokens``, and when streaming ``stream`` and
    ``stream_options.include_usage``), what vLLM serves on ``/invocations`` (``vllm/entrypoints/sagemaker/
    api_router.py`` validates the body as a ``ChatCompletionRequest`` first) and what TGI's SageMaker route also
    takes (its Messages API). ``model`` must be the name vLLM serves (``SM_VLLM_SERVED_MODEL_NAME``,
    :data:`catalog.engines.SERVED_MODEL_NAME` by default); TGI ignores it. The answer is the chat completion, or
    its SSE chunks split arbitrarily across ``PayloadPart`` events, read by the OpenAI stream reader every
    OpenAI-compatible client of ours uses; token counts come from ``usage``.

Errors: a container status of 400 or more comes back as SageMaker's ``ModelError`` carrying the container's
own status (``OriginalStatusCode``) and body (vLLM's ``{"error": {"message", "type", "code"}}``); an error
inside a stream is the container's error event (read by the stream reader) or SageMaker's ``ModelStreamError``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import urllib3.exceptions
from botocore import eventstream as botocore_eventstream
from botocore.awsrequest import AWSPreparedRequest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.httpsession import get_cert_path
from botocore.parsers import create_parser

from benchmark.clients.base import RequestFailed, fail, read_headers, redact_url, status_error_kind
from benchmark.clients.eventstream import FrameDecoder
from benchmark.clients.http import record_round_trip, wire_failure
from benchmark.clients.protocol import (
    OpenAIStreamReader,
    StreamReader,
    TgiStreamReader,
    openai_chat_request,
    read_openai_response,
    read_tgi_response,
    tgi_request,
)
from benchmark.measure.load import DEFAULT_TIMEOUT_S
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.wire.connection import ConnectionPool, Origin
from benchmark.wire.http1 import request_bytes
from catalog.engines import PAYLOAD_OPENAI_CHAT, PAYLOAD_TGI, SERVED_MODEL_NAME
from catalog.errors import ConfigError, Issue

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
STREAM_FAILURE_CODES = frozenset({"ModelStreamError", "InternalStreamFailure"})
CONNECT_TIMEOUT_S = 10.0
PAYLOADS = (PAYLOAD_TGI, PAYLOAD_OPENAI_CHAT)
# How long a body's signed request is sent again (SigV4 allows five minutes), and how many bodies are kept.
SIGNED_REUSE_S = 60.0
SIGNED_CACHE_SIZE = 4096


def boto_config(concurrency: int, timeout_s: float, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Config:
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


class _Signed(Exception):  # noqa: N818 - not an error: carries the signed request out of botocore
    """Raised by the ``before-send`` handler so that botocore builds and signs a request but does not send it."""

    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("signed request taken for benchmark.wire")
        self.request = request


class SageMakerClient:
    """One SageMaker endpoint (a TGI or vLLM container), streamed or not, spoken to in ``payload``'s protocol."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        streaming: bool = False,
        concurrency: int = 1,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        boto_client: SageMakerRuntimeClient | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        inference_component: str | None = None,
        payload: str = PAYLOAD_TGI,
        model: str = SERVED_MODEL_NAME,
    ) -> None:
        if payload not in PAYLOADS:
            raise ConfigError([Issue("payload", payload, f"must be one of {', '.join(PAYLOADS)}")])
        self.endpoint_name = endpoint_name
        self.streaming = streaming
        self.payload = payload
        self.model = model
        chat = "-chat" if payload == PAYLOAD_OPENAI_CHAT else ""
        self.name = f"sagemaker{chat}{'-stream' if streaming else ''}:{endpoint_name}"
        self.inference_component = inference_component
        self._client: SageMakerRuntimeClient = boto_client or boto3.client(
            "sagemaker-runtime",
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=boto_config(concurrency, timeout_s),
            **dict(client_kwargs or {}),
        )
        self._timeout_s = timeout_s
        self._concurrency = max(1, concurrency)
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="sagemaker-invoke")
        self._wire: ConnectionPool | None = None
        self._signed: dict[bytes, tuple[AWSPreparedRequest, float]] = {}
        # A boto3 request's clock starts when botocore hands it to the connection, after serializing and SigV4
        # signing (client CPU, which is not the endpoint's latency); each request has a thread.
        self._current = threading.local()
        self._client.meta.events.register("before-send.sagemaker-runtime", self._before_send)

    def _before_send(self, request: AWSPreparedRequest, **_: Any) -> None:
        if getattr(self._current, "take_signed", False):
            raise _Signed(request)
        record: RequestRecord | None = getattr(self._current, "record", None)
        if record is not None:
            record.start = time.perf_counter()
        # None: botocore goes on and sends the request (a return value would replace the response).

    def _body(self, prompt: Prompt, params: GenerationParams) -> bytes:
        if self.payload == PAYLOAD_OPENAI_CHAT:
            request = openai_chat_request(prompt, params, model=self.model, stream=self.streaming)
        else:
            request = tgi_request(prompt, params, stream=True if self.streaming else None)
        return json.dumps(request).encode()

    def _stream_reader(self, record: RequestRecord) -> StreamReader:
        return OpenAIStreamReader(record) if self.payload == PAYLOAD_OPENAI_CHAT else TgiStreamReader(record)

    def _read_body(self, record: RequestRecord, body: bytes) -> None:
        (read_openai_response if self.payload == PAYLOAD_OPENAI_CHAT else read_tgi_response)(record, body)

    async def send(self, prompt: Prompt, params: GenerationParams, *, user: int) -> RequestRecord:
        body = self._body(prompt, params)
        record = RequestRecord(user=user, start=time.perf_counter(), end=0.0, prompt_id=prompt.id or None)
        try:
            signed = self._signed_request(body)
        except Exception as exc:
            return fail(record, classify_exception(exc), f"{type(exc).__name__}: {exc}", time.perf_counter())
        if signed is not None:
            return await self._over_wire(record, signed)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self.invoke, prompt, params, user=user))

    @property
    def _operation(self) -> str:
        return "InvokeEndpointWithResponseStream" if self.streaming else "InvokeEndpoint"

    def _signed_request(self, body: bytes) -> AWSPreparedRequest | None:
        """The request boto3 would send, signed; None where boto3 must send it itself (proxy, stubbed client).

        A body sent again within :data:`SIGNED_REUSE_S` goes with the request signed for it the first time: a
        benchmark repeats a few prompts, and boto3's serializing, endpoint rules and SigV4 cost about 0.5 ms
        of CPU per request (benchmark/README.md "Client capacity"). SigV4 carries no nonce, and a signed request
        is good while it reaches AWS within five minutes of its ``X-Amz-Date`` (IAM User Guide, signing AWS API
        requests, "protect against replay"); the reused copy also repeats boto3's ``amz-sdk-invocation-id``,
        which only ties an SDK's retries together (retries are off here).
        """
        cached = self._signed.get(body)
        now = time.monotonic()
        if cached is not None and now - cached[1] < SIGNED_REUSE_S:
            return cached[0]
        signed = self._sign(body)
        if signed is not None:
            if len(self._signed) >= SIGNED_CACHE_SIZE:
                self._signed.clear()
            self._signed[body] = (signed, now)
        return signed

    def _sign(self, body: bytes) -> AWSPreparedRequest | None:
        if self._wire is None and _proxied(self._client.meta.endpoint_url):
            return None
        self._current.take_signed = True
        try:
            if self.streaming:
                self._client.invoke_endpoint_with_response_stream(**self._arguments(body))
            else:
                self._client.invoke_endpoint(**self._arguments(body))
        except _Signed as signed:
            return signed.request
        finally:
            self._current.take_signed = False
        return None  # answered without sending (botocore's Stubber): let boto3 run it for real below

    def _arguments(self, body: bytes) -> dict[str, Any]:
        return {
            "EndpointName": self.endpoint_name,
            "Body": body,
            "ContentType": "application/json",
            "Accept": "text/event-stream" if self.streaming else "application/json",
            **self._extra(),
        }

    def _pool_for(self, url: str) -> ConnectionPool:
        if self._wire is None:
            parts = urlsplit(url)
            tls = parts.scheme == "https"
            origin = Origin(parts.hostname or "", parts.port or (443 if tls else 80), tls)
            context = botocore_trust(self._client) if tls else None
            self._wire = ConnectionPool(origin, limit=self._concurrency, context=context)
        return self._wire

    async def _over_wire(self, record: RequestRecord, signed: AWSPreparedRequest) -> RequestRecord:
        pool = self._pool_for(signed.url)
        parts = urlsplit(signed.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        # What boto3's connection adds (http.client, unsigned): the body as sent, never compressed.
        headers = {"Accept-Encoding": "identity"}
        headers |= {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in signed.headers.items()}
        body = signed.body if isinstance(signed.body, bytes) else str(signed.body or "").encode()
        request = request_bytes("POST", target, pool.origin.host_header, headers, body)
        reader = self._stream_reader(record) if self.streaming else None
        try:
            response = await record_round_trip(
                pool,
                request,
                EventStreamSink(reader).feed if reader is not None else None,
                record,
                timeout_s=self._timeout_s,
                connect_timeout_s=min(self._timeout_s, CONNECT_TIMEOUT_S),
            )
            if response.status >= 300:
                raise self._service_error(response.status, response.headers, bytes(response.body))
            if reader is not None:
                reader.close()
            else:
                self._read_body(record, bytes(response.body))
        except RequestFailed as exc:
            return fail(record, exc.kind, exc.detail, time.perf_counter())
        except ClientError as exc:
            return fail(record, classify_client_error(exc), f"ClientError: {exc}", time.perf_counter())
        except Exception as exc:
            kind, detail = wire_failure(exc, redact_url(signed.url), self._timeout_s)
            return fail(record, kind, detail, time.perf_counter())
        record.end = response.last_at  # the answer's last bytes reached the kernel
        return record

    def _service_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ClientError:
        """The error boto3 would raise, parsed by botocore's own parser for the service's protocol."""
        model = self._client.meta.service_model
        operation = model.operation_model(self._operation)
        assert operation.output_shape is not None
        parsed = create_parser(model.resolved_protocol).parse(
            {"status_code": status, "headers": dict(headers), "body": body}, operation.output_shape
        )
        try:  # ModelError's modelled field: the container's own status (what boto3 adds in a second pass)
            original = json.loads(body).get("OriginalStatusCode")
        except (ValueError, AttributeError):
            original = None
        if isinstance(original, int):
            parsed["OriginalStatusCode"] = original
        return ClientError(parsed, operation.name)

    def invoke(self, prompt: Prompt, params: GenerationParams, *, user: int = 0) -> RequestRecord:
        """The synchronous request through boto3 (what :meth:`send` runs on a worker thread; usable directly)."""
        body = self._body(prompt, params)
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
        response = self._client.invoke_endpoint(**self._arguments(body))
        read_headers(record, response["ResponseMetadata"].get("HTTPHeaders", {}))
        self._read_body(record, response["Body"].read())

    def _invoke_stream(self, record: RequestRecord, body: bytes) -> None:
        response = self._client.invoke_endpoint_with_response_stream(**self._arguments(body))
        read_headers(record, response["ResponseMetadata"].get("HTTPHeaders", {}))
        reader = self._stream_reader(record)
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
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


class EventStreamSink:
    """AWS event-stream bytes, framed as botocore frames them (:class:`FrameDecoder`): PayloadParts to ``reader``,
    errors raised.

    A frame's time is the receive time of the bytes that completed it. A stream cut inside a frame ends
    without the protocol's final event, which the reader reports as a dropped stream.
    """

    def __init__(self, reader: StreamReader) -> None:
        self._reader = reader
        self._decoder = FrameDecoder()

    def feed(self, data: bytes, at: float) -> None:
        for headers, payload in self._decoder.feed(data):
            self._on_message(headers, payload, at)
        error = self._decoder.error
        if isinstance(error, botocore_eventstream.ParserError):
            raise RequestFailed(ErrorKind.MALFORMED_FRAME, f"{type(error).__name__}: {error}") from None
        if error is not None:
            raise error

    def _on_message(self, headers: Mapping[str, Any], payload: bytes, at: float) -> None:
        kind = headers.get(":message-type")
        if kind == "event":
            if headers.get(":event-type") == "PayloadPart":
                self._reader.feed(payload, at)
            return
        if kind == "exception":
            name = str(headers.get(":exception-type", "exception"))
            code = ErrorKind.DROPPED_STREAM if name in STREAM_FAILURE_CODES else ErrorKind.CLIENT
            raise RequestFailed(code, f"{name}: {payload[:300].decode('utf-8', 'replace')}")
        code_name = str(headers.get(":error-code", "error"))
        raise RequestFailed(ErrorKind.DROPPED_STREAM, f"{code_name}: {headers.get(':error-message', '')}")


def botocore_trust(client: Any) -> ssl.SSLContext:
    """The certificates botocore's own connections trust for ``client``: the ``verify`` it resolved.

    botocore resolves it once per client (``botocore.session.Session.create_client``, then
    ``EndpointCreator._get_verify_value``): the ``verify`` argument, else the profile's ``ca_bundle`` or
    ``AWS_CA_BUNDLE``, else ``REQUESTS_CA_BUNDLE``, else certifi's bundle (botocore's own without certifi).
    It hands that file to urllib3, so ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are not read. ``verify=False``
    turns checking off, as it does in boto3. Read from the client's HTTP session where botocore keeps it.
    """
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    verify: object = getattr(session, "_verify", None)
    if verify is None:  # not a botocore client as this version builds them: botocore's rule, without the profile
        verify = os.environ.get("AWS_CA_BUNDLE") or os.environ.get("REQUESTS_CA_BUNDLE") or True
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=get_cert_path(True) if verify is True else str(verify))


def _proxied(url: str) -> bool:
    """True when the environment sends ``url`` through a proxy: boto3 then sends it itself, with botocore's own
    proxy settings (``proxies`` and ``proxies_config``, a proxy CA, TLS to the proxy) and not wire's."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme)) and not urllib.request.proxy_bypass(parts.hostname or "")
