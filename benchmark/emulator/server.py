"""A real HTTP server on loopback that speaks TGI, OpenAI chat and the SageMaker runtime wire protocol.

Routes:

- TGI: ``POST /`` (stream flag in the body), ``POST /generate``, ``POST /generate_stream``, ``GET /health``,
  ``GET /info``
- OpenAI-compatible: ``POST /v1/chat/completions`` (``stream`` true or false)
- SageMaker runtime: ``POST /endpoints/{name}/invocations`` and ``.../invocations-response-stream``; the
  body is what the serving container receives on ``/invocations`` (its ``stream`` flag chooses SSE or JSON):
  with ``engine="tgi"`` TGI's ``/generate`` body (or a chat body, which TGI's SageMaker route serves through its
  Messages API), with ``engine="vllm"`` an OpenAI chat completion request, as vLLM's SageMaker route
  (``vllm/entrypoints/sagemaker/api_router.py``) validates it; the response is framed the way SageMaker frames
  it (AWS event-stream PayloadPart events, modelled errors such as ModelError, ThrottlingException,
  ModelStreamError).

With ``engine="vllm"`` every error has vLLM's shape (:func:`render.vllm_error`, the HTTP status in ``code``), a
stream is framed as vLLM frames it (:func:`render.vllm_chunk`), an error inside a stream is vLLM's error event then
``[DONE]`` (inside PayloadParts on the SageMaker stream route: the container's own bytes), and TGI's routes are
not served.
- Control: ``GET /emulator/stats``, ``GET /emulator/truth``, ``POST /emulator/reset``, ``POST /emulator/config``

The *container* side (what TGI would send) and the *wire* side (how bytes reach the client) are separate
objects, so each fault is injected once and shows up in each protocol's own way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from benchmark.emulator import eventstream, render
from benchmark.emulator.config import EmulatorConfig, FaultKind
from benchmark.emulator.engine import Engine, Generation, Overloaded, RequestTruth
from benchmark.measure.prompts import estimate_tokens
from benchmark.serialize import from_data, to_data

_MALFORMED_EVENT = b'data:{"index":0,"token":{"id":1000,"text":\n\n'
_MALFORMED_BODY = b'{"generated_text":"trunc'
_ENGINE_KEY = web.AppKey("engine", Engine)


@dataclass(frozen=True)
class Parsed:
    protocol: str  # "tgi" or "openai"
    stream: bool
    input_tokens: int
    max_new_tokens: int
    include_usage: bool = False


class BadRequest(Exception):  # noqa: N818 - becomes a 4xx response
    def __init__(self, message: str, *, not_json: bool = False) -> None:
        super().__init__(message)
        self.not_json = not_json  # the body is not JSON at all (vLLM answers that one differently)


class ErrorStyle:
    """How one emulated server writes its errors: TGI's shapes, a generic OpenAI server's (the default)."""

    def __init__(self, protocol: str) -> None:
        self._body = render.openai_error if protocol == "openai" else render.tgi_error

    def validation(self, exc: BadRequest) -> tuple[int, bytes]:
        return 422, self._body(str(exc), "validation")

    def overloaded(self, message: str) -> tuple[int, bytes]:
        return 429, self._body(message, "overloaded")

    def server_error(self) -> tuple[int, bytes]:
        return 500, self._body("Request failed during generation (injected)", "generation")

    def stream_error(self) -> bytes:
        return render.sse(self._body("Model stream error (injected)", "generation"))

    def model_not_found(self, model: object) -> tuple[int, bytes]:
        return 404, render.openai_error(f"The model `{model}` does not exist.", "NotFoundError")


# vllm/entrypoints/sagemaker/api_router.py: a body no request type of the served tasks validates is refused with
# this message, listing those types (a generating model's chat and completion requests).
VLLM_NO_HANDLER = (
    "Cannot find suitable handler for request. Expected one of: ['ChatCompletionRequest', 'CompletionRequest']"
)


class VllmErrors(ErrorStyle):
    """vLLM's ``ErrorResponse`` for every error (vllm/entrypoints/openai/engine/serving.py ``create_error_response``).

    A body that is not JSON, or one the route's pydantic request type refuses, is FastAPI's ``HTTPException`` /
    ``RequestValidationError``, which vLLM's exception handlers (its API server) turn into an ``ErrorResponse``
    typed with the status phrase ("Bad Request"); on SageMaker's ``/invocations`` a JSON body no request type
    validates gets :data:`VLLM_NO_HANDLER` (BadRequestError, 400). vLLM refuses nothing for load (it queues), so
    a 429 here is an injected one, written as vLLM's HTTPException handler would write it. A generation that fails
    is vLLM's ``GenerationError``: "Internal server error", InternalServerError, 500.
    """

    def __init__(self, *, sagemaker: bool) -> None:
        super().__init__("openai")
        self.sagemaker = sagemaker

    def validation(self, exc: BadRequest) -> tuple[int, bytes]:
        if exc.not_json:
            return 400, render.vllm_error(f"JSON decode error: {exc}", "Bad Request", 400)
        if self.sagemaker:
            return 400, render.vllm_error(VLLM_NO_HANDLER, "BadRequestError", 400)
        return 400, render.vllm_error(str(exc), "Bad Request", 400)

    def overloaded(self, message: str) -> tuple[int, bytes]:
        return 429, render.vllm_error(message, "Too Many Requests", 429)

    def server_error(self) -> tuple[int, bytes]:
        return 500, render.vllm_error("Internal server error", "InternalServerError", 500)

    def stream_error(self) -> bytes:
        return render.vllm_sse(json.loads(self.server_error()[1])) + render.VLLM_DONE

    def model_not_found(self, model: object) -> tuple[int, bytes]:
        return 404, render.vllm_error(f"The model `{model}` does not exist.", "NotFoundError", 404, "model")


def _parse(body: bytes, protocol: str, stream: bool | None) -> Parsed:
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not JSON: {exc}", not_json=True) from None
    if not isinstance(obj, dict):
        raise BadRequest("body must be a JSON object")
    if protocol == "openai":
        messages = obj.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        text = "".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        max_new = obj.get("max_tokens", obj.get("max_completion_tokens", 100))
        if not isinstance(max_new, int) or max_new < 1:
            raise BadRequest(f"max_tokens must be a positive integer, got {max_new!r}")
        options = obj.get("stream_options") or {}
        return Parsed(
            protocol,
            bool(obj.get("stream", False)),
            estimate_tokens(text),
            max_new,
            bool(options.get("include_usage")),
        )
    inputs = obj.get("inputs")
    if not isinstance(inputs, str) or not inputs:
        raise BadRequest("inputs must be a non-empty string")
    parameters = obj.get("parameters") or {}
    max_new = parameters.get("max_new_tokens", 100)
    if not isinstance(max_new, int) or max_new < 1:
        raise BadRequest(f"max_new_tokens must be a positive integer, got {max_new!r}")
    if parameters.get("temperature") is not None and parameters["temperature"] <= 0:
        raise BadRequest("`temperature` must be strictly positive")
    return Parsed(
        protocol, bool(obj.get("stream", False)) if stream is None else stream, estimate_tokens(inputs), max_new
    )


def _truth_headers(truth: RequestTruth) -> dict[str, str]:
    headers = {"x-request-id": truth.request_id, "x-emulator-queue-ms": f"{truth.queue_ms:.3f}"}
    if truth.ttft_ms is not None:
        headers["x-emulator-ttft-ms"] = f"{truth.ttft_ms:.3f}"
    if truth.tpot_ms is not None:
        headers["x-emulator-tpot-ms"] = f"{truth.tpot_ms:.3f}"
    return headers


def _tgi_timing_headers(truth: RequestTruth, elapsed_ms: float) -> dict[str, str]:
    inference = elapsed_ms - truth.queue_ms
    return {
        "x-compute-type": "emulator",
        "x-compute-time": f"{elapsed_ms / 1000:.6f}",
        "x-total-time": str(int(elapsed_ms)),
        "x-validation-time": "0",
        "x-queue-time": str(int(truth.queue_ms)),
        "x-inference-time": str(int(inference)),
        "x-time-per-token": str(int(inference / max(1, truth.tokens))),
        "x-prompt-tokens": str(truth.input_tokens),
        "x-generated-tokens": str(truth.tokens),
    }


class Wire:
    """Plain HTTP: the container's bytes go out unchanged."""

    streams = True

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    async def error(self, status: int, body: bytes, *, throttled: bool = False) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type="application/json")

    async def body(self, body: bytes, content_type: str, headers: dict[str, str]) -> web.StreamResponse:
        return web.Response(body=body, content_type=content_type, headers=headers)

    async def start(self, content_type: str, headers: dict[str, str]) -> None:
        response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache", **headers})
        response.enable_chunked_encoding()
        await response.prepare(self.request)
        self.response = response

    async def send(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)

    async def send_malformed(self, valid: bytes, broken: bytes) -> None:
        await self.send(broken)

    async def send_stream_error(self, sse_error: bytes) -> None:
        await self.send(sse_error)

    async def drop(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def finish(self) -> web.StreamResponse:
        assert self.response is not None
        await self.response.write_eof()
        return self.response


class SageMakerWire(Wire):
    """SageMaker ``InvokeEndpoint``: the whole container answer as one body, or a modelled error."""

    streams = False

    def __init__(self, request: web.Request, request_id: str) -> None:
        super().__init__(request)
        self.request_id = request_id
        self._buffer = bytearray()
        self._headers: dict[str, str] = {}
        self._content_type = "application/json"

    def _aws_headers(self, error_type: str | None = None) -> dict[str, str]:
        headers = {"x-amzn-RequestId": self.request_id, "x-Amzn-Invoked-Production-Variant": "AllTraffic"}
        if error_type:
            headers["x-amzn-ErrorType"] = f"{error_type}:http://internal.amazon.com/coral/com.amazon.sagemaker/"
        return headers

    def aws_error(self, status: int, error_type: str, fields: dict[str, Any]) -> web.StreamResponse:
        return web.Response(
            status=status,
            body=render.dumps(fields),
            content_type="application/json",
            headers=self._aws_headers(error_type),
        )

    async def error(self, status: int, body: bytes, *, throttled: bool = False) -> web.StreamResponse:
        if throttled:
            return self.aws_error(400, "ThrottlingException", {"message": "Rate exceeded"})
        message = body.decode("utf-8", "replace")
        return self.aws_error(
            424,
            "ModelError",
            {
                "ErrorCode": "CLIENT_ERROR_FROM_MODEL" if status < 500 else "SERVER_ERROR_FROM_MODEL",
                "OriginalStatusCode": status,
                "OriginalMessage": message,
                "LogStreamArn": "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/emulator",
                "message": f'Received server error ({status}) from primary with message "{message}".',
            },
        )

    async def body(self, body: bytes, content_type: str, headers: dict[str, str]) -> web.StreamResponse:
        return web.Response(body=body, content_type=content_type, headers={**self._aws_headers(), **headers})

    async def start(self, content_type: str, headers: dict[str, str]) -> None:
        self._content_type, self._headers = content_type, headers

    async def send(self, data: bytes) -> None:
        self._buffer += data

    async def finish(self) -> web.StreamResponse:
        return await self.body(bytes(self._buffer), self._content_type, self._headers)


class EventStreamWire(SageMakerWire):
    """SageMaker ``InvokeEndpointWithResponseStream``: container bytes in PayloadPart event-stream frames."""

    streams = True

    def __init__(self, request: web.Request, request_id: str, split: int) -> None:
        super().__init__(request, request_id)
        self._split = split
        self._cut = 0

    async def body(self, body: bytes, content_type: str, headers: dict[str, str]) -> web.StreamResponse:
        await self.start(content_type, headers)
        await self.send(body)
        return await self.finish()

    async def start(self, content_type: str, headers: dict[str, str]) -> None:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "X-Amzn-SageMaker-Content-Type": content_type,
                **self._aws_headers(),
                **headers,
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(self.request)
        self.response = response

    def _frames(self, data: bytes) -> bytes:
        """``data`` as PayloadParts, cut into ``split`` pieces at varying offsets (clients must reassemble)."""
        parts = min(self._split, len(data))
        cuts = sorted({(self._cut * 7919 + k * 104729) % len(data) for k in range(1, parts)} - {0})
        self._cut += 1
        bounds = [0, *cuts, len(data)]
        return b"".join(
            eventstream.event_message("PayloadPart", data[a:b], content_type="application/octet-stream")
            for a, b in itertools.pairwise(bounds)
            if b > a
        )

    async def send(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(self._frames(data))

    async def send_malformed(self, valid: bytes, broken: bytes) -> None:
        frame = bytearray(self._frames(valid))
        frame[-1] ^= 0xFF  # message CRC of the last frame no longer matches
        assert self.response is not None
        await self.response.write(bytes(frame))

    async def send_stream_error(self, sse_error: bytes) -> None:
        payload = render.dumps({"Message": "Model stream error (injected)", "ErrorCode": "ModelStreamError"})
        assert self.response is not None
        await self.response.write(eventstream.exception_message("ModelStreamError", payload))

    async def drop(self) -> None:
        # Half a frame, then the connection goes away.
        frame = self._frames(b'data:{"index":0}\n\n')
        assert self.response is not None
        await self.response.write(frame[: len(frame) // 2])
        await super().drop()

    async def finish(self) -> web.StreamResponse:
        assert self.response is not None
        await self.response.write_eof()
        return self.response


class EmulatorApp:
    """The aiohttp application around one :class:`Engine`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.engine = Engine(config)
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app[_ENGINE_KEY] = self.engine
        self.app.add_routes(
            [
                web.post("/", self._tgi_compat),
                web.post("/generate", self._tgi_generate),
                web.post("/generate_stream", self._tgi_generate_stream),
                web.post("/v1/chat/completions", self._openai_chat),
                web.post("/endpoints/{name}/invocations", self._sagemaker_invoke),
                web.post("/endpoints/{name}/invocations-response-stream", self._sagemaker_invoke_stream),
                web.get("/health", self._health),
                web.get("/ping", self._health),
                web.get("/info", self._info),
                web.get("/emulator/stats", self._stats),
                web.get("/emulator/truth", self._truth),
                web.post("/emulator/reset", self._reset),
                web.post("/emulator/config", self._configure),
            ]
        )

    # --- routes -------------------------------------------------------------------------------------

    @property
    def _vllm(self) -> bool:
        return self.engine.config.engine == "vllm"

    def _not_served(self) -> web.StreamResponse:
        """vLLM has no TGI routes: FastAPI's answer to a path it does not serve."""
        return web.json_response({"detail": "Not Found"}, status=404)

    async def _tgi_generate(self, request: web.Request) -> web.StreamResponse:
        if self._vllm:
            return self._not_served()
        return await self._serve(request, Wire(request), "tgi", stream=False)

    async def _tgi_compat(self, request: web.Request) -> web.StreamResponse:
        """TGI's ``POST /`` (``compat_generate``): the body's ``stream`` flag chooses SSE or JSON."""
        if self._vllm:
            return self._not_served()
        return await self._serve(request, Wire(request), "tgi", stream=None)

    async def _tgi_generate_stream(self, request: web.Request) -> web.StreamResponse:
        if self._vllm:
            return self._not_served()
        return await self._serve(request, Wire(request), "tgi", stream=True)

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Wire(request), "openai", stream=None)

    def _sagemaker_check(self, request: web.Request, wire: SageMakerWire) -> web.StreamResponse | None:
        names = self.engine.config.endpoint_names
        name = request.match_info["name"]
        if names is not None and name not in names:
            return wire.aws_error(
                400, "ValidationError", {"message": f"Endpoint {name} of account 000000000000 not found."}
            )
        return None

    async def _sagemaker_invoke(self, request: web.Request) -> web.StreamResponse:
        wire = SageMakerWire(request, str(uuid.uuid4()))
        return self._sagemaker_check(request, wire) or await self._serve(request, wire, "sagemaker", stream=None)

    async def _sagemaker_invoke_stream(self, request: web.Request) -> web.StreamResponse:
        wire = EventStreamWire(request, str(uuid.uuid4()), self.engine.config.payload_split)
        return self._sagemaker_check(request, wire) or await self._serve(request, wire, "sagemaker", stream=None)

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="")

    async def _info(self, request: web.Request) -> web.StreamResponse:
        latency = self.engine.config.latency
        return web.json_response(
            {"model_id": "emulator", "max_concurrent_requests": latency.max_concurrent, "version": "emulator"}
        )

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.engine.stats())

    async def _truth(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([to_data(truth) for truth in self.engine.log])

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        self.engine.reset()
        return web.json_response(self.engine.stats())

    async def _configure(self, request: web.Request) -> web.StreamResponse:
        self.engine.configure(from_data(EmulatorConfig, await request.json()))
        return web.json_response(to_data(self.engine.config))

    # --- one request ---------------------------------------------------------------------------------

    def _unauthorized(self, request: web.Request, *, sagemaker: bool) -> tuple[int, bytes] | None:
        """401 without the configured API key (not on SageMaker's routes: SageMaker authenticates those)."""
        key = self.engine.config.api_key
        if not sagemaker and key is not None and request.headers.get("Authorization") != f"Bearer {key}":
            return 401, render.openai_error("Unauthorized", "unauthorized")
        return None

    def _unknown_model(
        self, protocol: str, body: bytes, style: ErrorStyle, *, sagemaker: bool
    ) -> tuple[int, bytes] | None:
        """404 for an OpenAI request naming another model than the served one (as vLLM does; on SageMaker's routes
        only when emulating vLLM: TGI ignores the name)."""
        name = self.engine.config.model_name
        if protocol == "openai" and name is not None and (self._vllm or not sagemaker):
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                model = json.loads(body).get("model")
                if model != name:
                    return style.model_not_found(model)
        return None

    def _sagemaker_protocol(self, body: bytes) -> str:
        """What the container behind /invocations reads the body as: vLLM, chat only; TGI, a chat body as chat."""
        if self._vllm:
            return "openai"
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
            obj = json.loads(body)
            if isinstance(obj, dict) and "messages" in obj and "inputs" not in obj:
                return "openai"
        return "tgi"

    def _style(self, protocol: str, *, sagemaker: bool) -> ErrorStyle:
        return VllmErrors(sagemaker=sagemaker) if self._vllm else ErrorStyle(protocol)

    async def _serve(self, request: web.Request, wire: Wire, protocol: str, stream: bool | None) -> web.StreamResponse:
        body = await request.read()
        sagemaker = isinstance(wire, SageMakerWire)
        if protocol == "sagemaker":
            protocol = self._sagemaker_protocol(body)
        style = self._style(protocol, sagemaker=sagemaker)
        # vLLM validates the body (FastAPI's request model, or /invocations' request types) before its handler
        # checks the model name; the generic OpenAI emulation refuses the name first.
        refusal = self._unauthorized(request, sagemaker=sagemaker)
        if refusal is None and not self._vllm:
            refusal = self._unknown_model(protocol, body, style, sagemaker=sagemaker)
        if refusal is None:
            try:
                parsed = _parse(body, protocol, stream)
            except BadRequest as exc:
                return await wire.error(*style.validation(exc))
            if self._vllm:
                refusal = self._unknown_model(protocol, body, style, sagemaker=sagemaker)
        if refusal is not None:
            status, error = refusal
            return await wire.error(status, error) if sagemaker else web.Response(status=status, body=error)
        try:
            generation = self.engine.admit(
                protocol=protocol,
                stream=parsed.stream,
                input_tokens=parsed.input_tokens,
                max_new_tokens=parsed.max_new_tokens,
            )
        except Overloaded as exc:
            return await wire.error(*style.overloaded(f"Model is overloaded: {exc}"), throttled=False)
        if isinstance(wire, SageMakerWire):
            wire.request_id = generation.truth.request_id  # x-amzn-RequestId joins the ground truth
        try:
            return await self._run(wire, generation, parsed, style)
        finally:
            generation.done("client_gone")

    async def _run(self, wire: Wire, gen: Generation, parsed: Parsed, style: ErrorStyle) -> web.StreamResponse:
        fault = gen.fault
        if fault is FaultKind.THROTTLE:
            gen.done("throttle")
            return await wire.error(*style.overloaded("Model is overloaded (injected)"), throttled=True)
        if fault is FaultKind.SERVER_ERROR or (fault is FaultKind.STREAM_ERROR and not parsed.stream):
            gen.done("server_error")
            return await wire.error(*style.server_error())
        if not parsed.stream:
            return await self._run_whole(wire, gen, parsed, fault)
        return await self._run_stream(wire, gen, parsed, fault, style)

    async def _run_whole(
        self, wire: Wire, gen: Generation, parsed: Parsed, fault: FaultKind | None
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        if fault is FaultKind.DROP:
            gen.done("drop")
            await Wire.drop(wire)
            raise ConnectionResetError("dropped (injected)")
        if fault is FaultKind.STALL:
            await asyncio.sleep(self.engine.config.stall_s)
        async for _ in gen.tokens():
            pass
        truth = gen.truth
        headers = _truth_headers(truth)
        if parsed.protocol == "tgi":
            headers |= _tgi_timing_headers(truth, (loop.time() - gen.arrival) * 1000)
            answer: Any = render.tgi_response(truth.tokens, parsed.max_new_tokens)
            if isinstance(wire, SageMakerWire):
                answer = [answer]  # the TGI container's /invocations answers with a list
        else:
            whole = render.vllm_response if self._vllm else render.openai_response
            answer = whole(truth.request_id, truth.input_tokens, truth.tokens, parsed.max_new_tokens)
        broken = fault in (FaultKind.MALFORMED, FaultKind.TRUNCATE)
        body = _MALFORMED_BODY if broken else render.dumps(answer)
        gen.done(fault.value if broken and fault is not None else "ok")
        return await wire.body(body, "application/json", headers)

    async def _run_stream(
        self, wire: Wire, gen: Generation, parsed: Parsed, fault: FaultKind | None, style: ErrorStyle
    ) -> web.StreamResponse:
        truth = gen.truth
        await wire.start("text/event-stream", {"x-request-id": truth.request_id})
        tokens = truth.tokens
        fault_at = min(1, tokens - 1) if fault is FaultKind.STALL else tokens // 2
        async for index in gen.tokens():
            if index == fault_at and fault is not None:
                if fault is FaultKind.STALL:
                    await asyncio.sleep(self.engine.config.stall_s)
                elif fault is FaultKind.DROP:
                    gen.done("drop")
                    await wire.drop()
                    raise ConnectionResetError("dropped (injected)")
                elif fault is FaultKind.STREAM_ERROR:
                    gen.done("stream_error")
                    if self._vllm:  # vLLM's error event and [DONE]: the container's own bytes, in PayloadParts too
                        await wire.send(style.stream_error())
                    else:
                        await wire.send_stream_error(style.stream_error())
                    return await wire.finish()
                elif fault is FaultKind.MALFORMED:
                    gen.done("malformed")
                    event = render.tgi_token_event(index, tokens, parsed.max_new_tokens, truth.input_tokens)
                    await wire.send_malformed(event, _MALFORMED_EVENT)
                    return await wire.finish()
                elif fault is FaultKind.TRUNCATE:
                    gen.done("truncate")
                    return await wire.finish()
            last = index == tokens - 1
            if parsed.protocol == "tgi":
                data = render.tgi_token_event(index, tokens, parsed.max_new_tokens, truth.input_tokens)
            elif self._vllm:
                data = render.vllm_chunk(truth.request_id, index, tokens, parsed.max_new_tokens)
                if last:
                    if parsed.include_usage:
                        data += render.vllm_usage_chunk(truth.request_id, truth.input_tokens, tokens)
                    data += render.VLLM_DONE
            else:
                data = render.openai_chunk(truth.request_id, index, tokens, parsed.max_new_tokens)
                if last:
                    if parsed.include_usage:
                        data += render.openai_usage_chunk(truth.request_id, truth.input_tokens, tokens)
                    if self.engine.config.openai_done:
                        data += render.sse(b"[DONE]")
            if last:
                gen.done("ok")
            await wire.send(data)
            truth.sent_at.append(time.perf_counter())
        return await wire.finish()


class EmulatorServer:
    """The emulator on a background thread with its own event loop (for tests and in-process use)."""

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = EmulatorApp(config or EmulatorConfig())
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def engine(self) -> Engine:
        return self.emulator.engine

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner, self.port = loop.run_until_complete(_start_site(self.emulator, self.host, self.port))
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="llm-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop (engine state belongs to that thread)."""
        assert self._loop is not None

        async def wrapper() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout=10)

    def configure(self, config: EmulatorConfig) -> None:
        self.call(self.engine.configure, config)

    def reset(self) -> None:
        self.call(self.engine.reset)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call(self.engine.stats)
        return result

    def truth(self) -> list[RequestTruth]:
        result: list[RequestTruth] = self.call(lambda: list(self.engine.log))
        return result

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _start_site(emulator: EmulatorApp, host: str, port: int) -> tuple[web.AppRunner, int]:
    # handler_cancellation: a client that gives up (timeout) frees its batch slot and in-flight count.
    runner = web.AppRunner(emulator.app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or ()
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


@contextlib.contextmanager
def running_emulator(config: EmulatorConfig | None = None) -> Iterator[str]:
    """``with running_emulator(cfg) as base_url:`` a live server on a free loopback port."""
    with EmulatorServer(config) as server:
        yield server.base_url


def serve(host: str = "127.0.0.1", port: int = 8080, config: EmulatorConfig | None = None) -> None:
    """Run in the foreground until interrupted; prints the URL once listening (scripts read that line)."""

    async def main() -> None:
        runner, bound = await _start_site(EmulatorApp(config or EmulatorConfig()), host, port)
        print(f"emulator listening on http://{host}:{bound}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# --- helpers for another process (the accuracy script) ---------------------------------------------------


def _get_json(url: str, method: str = "GET", data: Any = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def fetch_truth(base_url: str) -> list[RequestTruth]:
    return [from_data(RequestTruth, item) for item in _get_json(f"{base_url}/emulator/truth")]


def fetch_stats(base_url: str) -> dict[str, Any]:
    result: dict[str, Any] = _get_json(f"{base_url}/emulator/stats")
    return result


def reset(base_url: str) -> None:
    _get_json(f"{base_url}/emulator/reset", method="POST", data={})


def configure(base_url: str, config: EmulatorConfig) -> None:
    _get_json(f"{base_url}/emulator/config", method="POST", data=to_data(config))
