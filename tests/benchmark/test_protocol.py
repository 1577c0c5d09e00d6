"""The protocol readers fed directly: the response and error shapes each server documents, and broken bytes.

Shapes are TGI's (``ErrorResponse {error, error_type}``, ``/generate`` details with ``prefill`` when
``decoder_input_details`` is set, a one-element list from SageMaker) and OpenAI-compatible servers'
(``{"error": {"message", "type", "code"}}``); the recorded bytes are in tests/fixtures/protocol_variants.
"""

from __future__ import annotations

import json

import pytest

from benchmark.clients.base import RequestFailed
from benchmark.clients.protocol import (
    OpenAIStreamReader,
    StreamReader,
    TgiStreamReader,
    openai_chat_request,
    read_openai_response,
    read_tgi_response,
    tgi_request,
)
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from tests.benchmark.replay import FIXTURES

VARIANTS = FIXTURES / "protocol_variants"


def record() -> RequestRecord:
    return RequestRecord(user=0, start=0.0, end=0.0)


def failure(read: type[StreamReader], *events: str) -> RequestFailed:
    reader = read(record())
    with pytest.raises(RequestFailed) as err:
        for at, data in enumerate(events, start=1):
            reader.feed(f"data: {data}\n\n".encode(), float(at))
        reader.close()
    return err.value


def test_request_flags_are_keyword_only() -> None:
    prompt, params = Prompt(text="Hi"), GenerationParams()
    assert tgi_request(prompt, params, stream=True)["stream"] is True
    with pytest.raises(TypeError):
        tgi_request(prompt, params, True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        openai_chat_request(prompt, params, "tgi", True)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("error", "kind", "detail"),
    [
        # TGI /generate_stream ErrorResponse: error_type names the cause
        ({"error": "Input validation error: inputs too long", "error_type": "validation"}, ErrorKind.HTTP_4XX, ""),
        ({"error": "Request failed during generation", "error_type": "generation"}, ErrorKind.DROPPED_STREAM, ""),
        ({"error": "Model is overloaded", "error_type": "overloaded"}, ErrorKind.THROTTLED, ""),
        # vLLM / SGLang / OpenAI: {"error": {"message", "type", "code"}}
        ({"error": {"message": "Too many", "type": "RateLimitError", "code": 429}}, ErrorKind.THROTTLED, ""),
        ({"error": {"message": "bad", "type": "BadRequestError", "code": 400}}, ErrorKind.HTTP_4XX, ""),
        ({"error": {"message": "boom", "type": "InternalServerError", "code": 500}}, ErrorKind.DROPPED_STREAM, ""),
        ({"error": "busy", "error_type": "overloaded"}, ErrorKind.THROTTLED, "busy"),
        # RFC 9110: 4xx is 400-499; the edges and the common codes on either side
        *(
            ({"error": {"message": "m", "code": code}}, kind, "")
            for code, kind in (
                (399, ErrorKind.DROPPED_STREAM),
                (400, ErrorKind.HTTP_4XX),
                (404, ErrorKind.HTTP_4XX),
                (499, ErrorKind.HTTP_4XX),
                (500, ErrorKind.DROPPED_STREAM),
                (503, ErrorKind.DROPPED_STREAM),
            )
        ),
        ({"error": "boom"}, ErrorKind.DROPPED_STREAM, "in-stream error (unknown): boom"),
    ],
)
def test_in_stream_errors_are_classified_by_their_documented_fields(
    error: dict[str, object], kind: ErrorKind, detail: str
) -> None:
    for read in (TgiStreamReader, OpenAIStreamReader):
        failed = failure(read, json.dumps(error))
        assert failed.kind is kind, (read, failed.detail)
        assert detail in failed.detail


@pytest.mark.parametrize("data", ['"oops"', "42", "[1]"])
def test_an_event_that_is_json_but_not_an_object_is_malformed(data: str) -> None:
    for read in (TgiStreamReader, OpenAIStreamReader):
        failed = failure(read, data)
        assert failed.kind is ErrorKind.MALFORMED_FRAME
        assert f"stream event is not an object: {data}" in failed.detail


def test_bytes_that_are_not_utf8_are_malformed_wherever_they_arrive() -> None:
    reader = TgiStreamReader(record())
    with pytest.raises(RequestFailed) as err:
        reader.feed(b"data: \xff\n\n", 1.0)
    assert err.value.kind is ErrorKind.MALFORMED_FRAME
    reader = TgiStreamReader(record())
    reader.feed(b"data: \xe2\x82", 1.0)  # the first two bytes of the euro sign, then the body ends
    with pytest.raises(RequestFailed) as err:
        reader.close()
    assert err.value.kind is ErrorKind.MALFORMED_FRAME
    with pytest.raises(RequestFailed) as err:
        read_tgi_response(record(), b'{"generated_text": "\xff"}')
    assert (err.value.kind, "response body is not JSON" in err.value.detail) == (ErrorKind.MALFORMED_FRAME, True)


def test_recorded_tgi_stream_split_at_every_byte_keeps_each_tokens_arrival_time() -> None:
    body = (VARIANTS / "tgi-generate-stream.body").read_bytes()
    rec = record()
    reader = TgiStreamReader(rec)
    for at, byte in enumerate(body):
        reader.feed(bytes([byte]), float(at))
    reader.close()
    # each token's time is that of the byte completing its event: the blank line after its "data:" line
    ends = [i + 1 for i in range(len(body) - 1) if body[i : i + 2] == b"\n\n"]
    assert rec.token_times == [float(end) for end in ends] and len(ends) == 4
    assert (rec.first_token_at, rec.generated_tokens, rec.input_tokens) == (float(ends[0]), 4, 7)


def test_nothing_after_the_final_tgi_event_counts() -> None:
    body = (VARIANTS / "tgi-generate-stream.body").read_bytes()
    rec = record()
    reader = TgiStreamReader(rec)
    reader.feed(body + b'data:{"index":5,"token":{"id":1,"text":"x"},"generated_text":null}\n\n', 1.0)
    reader.close()
    assert (len(rec.token_times), rec.generated_tokens) == (4, 4)


@pytest.mark.parametrize(
    ("body", "tokens", "inputs"),
    [
        # SageMaker wraps TGI's answer in a one-element list; prefill lists the prompt's tokens
        (
            [
                {
                    "generated_text": "Hi",
                    "details": {"generated_tokens": 2, "prefill": [{"id": 1}, {"id": 2}, {"id": 3}]},
                }
            ],
            2,
            3,
        ),
        ({"generated_text": "Hi", "details": {"generated_tokens": 2, "prefill": []}}, 2, None),
        ({"generated_text": "Hi", "details": {"generated_tokens": "2"}}, None, None),
        ({"generated_text": "Hi"}, None, None),
    ],
)
def test_tgi_answer_counts_come_from_its_details(body: object, tokens: int | None, inputs: int | None) -> None:
    rec = record()
    read_tgi_response(rec, json.dumps(body).encode())
    assert (rec.generated_tokens, rec.input_tokens) == (tokens, inputs)


@pytest.mark.parametrize(
    "body",
    [
        [{"generated_text": "a"}, {"generated_text": "b"}],  # a batch answer: not one request's
        [],
        {"error": "Model is overloaded"},
        "generated_text",
    ],
)
def test_unexpected_tgi_answer_shape_is_malformed(body: object) -> None:
    with pytest.raises(RequestFailed) as err:
        read_tgi_response(record(), json.dumps(body).encode())
    assert err.value.kind is ErrorKind.MALFORMED_FRAME
    assert "unexpected response shape" in err.value.detail


@pytest.mark.parametrize("body", [{"choices": {}}, {"object": "error"}, ["choices"]])
def test_unexpected_openai_answer_shape_is_malformed(body: object) -> None:
    with pytest.raises(RequestFailed) as err:
        read_openai_response(record(), json.dumps(body).encode())
    assert err.value.kind is ErrorKind.MALFORMED_FRAME


def test_openai_answer_reads_usage() -> None:
    rec = record()
    read_openai_response(rec, b'{"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4}}')
    assert (rec.generated_tokens, rec.input_tokens) == (4, 7)
