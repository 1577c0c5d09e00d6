"""Request bodies and response readers for TGI and OpenAI-compatible servers, independent of transport.

The same TGI stream reader serves plain HTTP (``/generate_stream``) and SageMaker
(``InvokeEndpointWithResponseStream``): only the way bytes arrive differs. Each token event's arrival
time is the time the chunk that completed it arrived; token counts are taken from the server's final
event, never counted from text.
"""

from __future__ import annotations

import json
from typing import Any

from benchmark.clients.base import RequestFailed
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.wire.sse import DONE, Event, MalformedEvent, SSEParser


def tgi_request(prompt: Prompt, params: GenerationParams, *, stream: bool | None = None) -> dict[str, Any]:
    """A TGI ``/generate`` body. ``stream`` is the flag SageMaker's ``/invocations`` route switches on."""
    body: dict[str, Any] = {"inputs": prompt.text, "parameters": params.tgi_parameters()}
    if stream is not None:
        body["stream"] = stream
    return body


def openai_chat_request(prompt: Prompt, params: GenerationParams, *, model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt.text}]}
    body.update(params.openai_parameters())
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _json(data: str | bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestFailed(ErrorKind.MALFORMED_FRAME, f"{what} is not JSON: {exc}") from None


def _stream_error(obj: dict[str, Any]) -> RequestFailed:
    """An error inside an already-started stream, in each server's shape.

    TGI ``/generate_stream``: ``{"error", "error_type"}``. vLLM and SGLang: ``{"error": {"message", "type",
    "code"}}`` (vLLM's ``ErrorResponse``, ``vllm/entrypoints/openai/engine/protocol.py``; ``code`` the HTTP status,
    or in the newest versions an OpenAI error code string); vLLM before the nested shape: the same fields at the
    top level with ``"object": "error"``. TGI's Messages API: ``{"error": {"message", "http_status_code": 422}}``
    whatever the cause, so its overload is recognised by TGI's own message, "Model is overloaded".
    """
    error = obj.get("error", obj if obj.get("object") == "error" else None)
    code: object = None
    if isinstance(error, dict):
        kind_name, message, code = str(error.get("type", "")), str(error.get("message", error)), error.get("code")
    else:
        kind_name, message = str(obj.get("error_type", "")), str(error)
    if kind_name == "overloaded" or code == 429 or message.startswith("Model is overloaded"):
        return RequestFailed(ErrorKind.THROTTLED, f"in-stream error: {message}")
    if kind_name == "validation" or (isinstance(code, int) and 400 <= code < 500):
        return RequestFailed(ErrorKind.HTTP_4XX, f"in-stream error: {message}")
    return RequestFailed(ErrorKind.DROPPED_STREAM, f"in-stream error ({kind_name or 'unknown'}): {message}")


def read_tgi_response(record: RequestRecord, body: bytes) -> None:
    """A non-streamed TGI answer: ``{"generated_text", "details"}``, or a one-element list (SageMaker)."""
    obj = _json(body, "response body")
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    if not isinstance(obj, dict) or "generated_text" not in obj:
        raise RequestFailed(ErrorKind.MALFORMED_FRAME, f"unexpected response shape: {str(obj)[:120]}")
    details = obj.get("details")
    if isinstance(details, dict):
        tokens = details.get("generated_tokens")
        if isinstance(tokens, int):
            record.generated_tokens = tokens
        prefill = details.get("prefill")
        if isinstance(prefill, list) and prefill:
            record.input_tokens = len(prefill)


def read_openai_response(record: RequestRecord, body: bytes) -> None:
    obj = _json(body, "response body")
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        raise RequestFailed(ErrorKind.MALFORMED_FRAME, f"unexpected response shape: {str(obj)[:120]}")
    _read_usage(record, obj.get("usage"))


def _read_usage(record: RequestRecord, usage: object) -> None:
    if isinstance(usage, dict):
        if isinstance(usage.get("completion_tokens"), int):
            record.generated_tokens = usage["completion_tokens"]
        if isinstance(usage.get("prompt_tokens"), int):
            record.input_tokens = usage["prompt_tokens"]


class StreamReader:
    """Feeds SSE bytes into a record; subclasses interpret each event's JSON."""

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        self.finished = False
        self._parser = SSEParser()

    def feed(self, chunk: bytes, at: float) -> None:
        try:
            events = self._parser.feed(chunk)
        except MalformedEvent as exc:
            raise RequestFailed(ErrorKind.MALFORMED_FRAME, str(exc)) from None
        for event in events:
            self._on_event(event, at)

    def close(self) -> None:
        """The body ended: without the protocol's final event the stream was dropped."""
        try:
            self._parser.close()  # yields no event: SSE drops an unterminated one at the end of the stream
        except MalformedEvent as exc:
            raise RequestFailed(ErrorKind.MALFORMED_FRAME, str(exc)) from None
        if self._parser.has_partial:
            got = len(self.record.token_times)
            raise RequestFailed(ErrorKind.DROPPED_STREAM, f"stream ended inside an event after {got} tokens")
        if not self.finished:
            got = len(self.record.token_times)
            raise RequestFailed(ErrorKind.DROPPED_STREAM, f"stream ended without its final event after {got} tokens")

    def _token(self, at: float) -> None:
        if self.record.first_token_at is None:
            self.record.first_token_at = at
        self.record.token_times.append(at)

    def _on_event(self, event: Event, at: float) -> None:
        raise NotImplementedError


def _event_object(event: Event) -> dict[str, Any]:
    """A stream event's JSON object; an in-stream error (an ``error`` key, or vLLM's older flat shape) is raised."""
    obj = _json(event.data, "stream event")
    if not isinstance(obj, dict):
        raise RequestFailed(ErrorKind.MALFORMED_FRAME, f"stream event is not an object: {event.data[:80]}")
    if "error" in obj or obj.get("object") == "error":
        raise _stream_error(obj)
    return obj


class TgiStreamReader(StreamReader):
    """TGI ``/generate_stream``: one event per token; the last carries ``generated_text`` and ``details``."""

    def _on_event(self, event: Event, at: float) -> None:
        if self.finished:
            return
        obj = _event_object(event)
        if "token" in obj:
            self._token(at)
        if obj.get("generated_text") is not None:
            self.finished = True
            details = obj.get("details")
            if isinstance(details, dict):
                if isinstance(details.get("generated_tokens"), int):
                    self.record.generated_tokens = details["generated_tokens"]
                if isinstance(details.get("input_length"), int):  # TGI >= 2.1 reports it in the stream
                    self.record.input_tokens = details["input_length"]


class OpenAIStreamReader(StreamReader):
    """OpenAI chat chunks: a token per non-empty ``delta.content``, ``finish_reason`` on the last choice.

    The stream is complete once a choice carries ``finish_reason`` (then usage, then ``[DONE]`` may follow):
    OpenAI, vLLM, SGLang and TGI send ``[DONE]``, ``transformers serve`` closes the body without it. A
    body that ends before ``finish_reason`` (and before ``[DONE]``) was dropped.
    """

    def _on_event(self, event: Event, at: float) -> None:
        if event.data.strip() == DONE:
            self.finished = True
            return
        obj = _event_object(event)
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and delta.get("content"):
                self._token(at)
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.finished = True
        _read_usage(self.record, obj.get("usage"))
