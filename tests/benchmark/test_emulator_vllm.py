"""The emulator as a vLLM endpoint on SageMaker: OpenAI chat completions on ``/invocations``, vLLM's shapes.

Oracles this project did not write: botocore (it signs each request and decodes every event-stream frame and
modelled error; the project's own decoder is never asked), the ``openai`` package (its SSE decoder splits the
reassembled PayloadPart bytes into events, its types validate every chunk and whole answer, and its client reads the
emulated vLLM over plain HTTP), and vLLM's source for the error shapes (``vllm/entrypoints/openai/engine/
protocol.py`` ErrorResponse, ``serving.py`` create_error_response, ``vllm/entrypoints/sagemaker/api_router.py``).
The project's SageMaker client (``payload="openai-chat"``) is then measured against it, and its counts are held to
the emulator's ground truth.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from botocore.exceptions import ClientError
from openai._streaming import SSEDecoder
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from benchmark.clients.sagemaker import SageMakerClient
from benchmark.emulator import EmulatorConfig, EmulatorServer, FaultKind, FaultRule, LatencyModel
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from catalog.engines import SERVED_MODEL_NAME
from catalog.errors import ConfigError
from tests.benchmark.test_official_clients import runtime  # boto3's sagemaker-runtime client on the emulator

TOKENS = 6
LATENCY = LatencyModel(prefill_base_ms=2, prefill_ms_per_token=0, tpot_base_ms=2, tpot_slope_ms=0, tokens=TOKENS)
PROMPT = "Explain continuous batching in one paragraph."
VLLM = EmulatorConfig(latency=LATENCY, engine="vllm", model_name=SERVED_MODEL_NAME, payload_split=3)


def chat(*, stream: bool, max_tokens: int = 20, model: str = SERVED_MODEL_NAME) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(VLLM) as emulator:
        yield emulator


@pytest.fixture
def emulator(server: EmulatorServer) -> EmulatorServer:
    server.configure(VLLM)
    server.reset()
    return server


def payload_bytes(response: Any) -> bytes:
    """The container's bytes as botocore decoded them from the event stream's PayloadPart events."""
    return b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"])


def events(data: bytes) -> list[str]:
    return [event.data for event in SSEDecoder().iter_bytes(iter([data]))]


def vllm_error_body(text: str | bytes) -> dict[str, Any]:
    """vLLM's ErrorResponse: ``{"error": {"message", "type", "param", "code"}}``, nothing else."""
    body: dict[str, Any] = json.loads(text)
    error: dict[str, Any] = body["error"]
    assert set(body) == {"error"} and set(error) == {"message", "type", "param", "code"}
    return error


# --- botocore decodes; openai's decoder and types read what it decoded -------------------------------------------


def test_a_streamed_chat_completion_in_payload_parts(emulator: EmulatorServer) -> None:
    body = chat(stream=True, max_tokens=TOKENS)
    response = runtime(emulator).invoke_endpoint_with_response_stream(EndpointName="vllm-ep", Body=body)
    assert response["ContentType"] == "text/event-stream"
    data = payload_bytes(response)
    (truth,) = emulator.truth()
    assert truth.protocol == "openai" and truth.tokens == TOKENS
    assert data.startswith(b"data: {")  # vLLM writes "data: " with a space
    found = events(data)
    assert found[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(text) for text in found[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == truth.tokens  # one chunk per token after vLLM's role chunk
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished == ["length"]  # max_tokens reached: the finish reason on the last token's chunk
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.completion_tokens, usage.prompt_tokens) == (truth.tokens, truth.input_tokens)


def test_a_whole_chat_completion_on_invocations(emulator: EmulatorServer) -> None:
    answer = runtime(emulator).invoke_endpoint(EndpointName="vllm-ep", Body=chat(stream=False, max_tokens=4))
    assert answer["ContentType"] == "application/json"
    completion = ChatCompletion.model_validate_json(answer["Body"].read())
    (truth,) = emulator.truth()
    assert completion.usage is not None and completion.usage.completion_tokens == truth.tokens == 4
    assert completion.choices[0].finish_reason == "length"


def _model_error(call: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    with pytest.raises(ClientError) as error:
        call()
    response: dict[str, Any] = dict(error.value.response)
    assert response["Error"]["Code"] == "ModelError" and response["ResponseMetadata"]["HTTPStatusCode"] == 424
    return response, vllm_error_body(response["OriginalMessage"])


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    ("body", "status", "error_type", "param", "says"),
    [
        (b"{not json", 400, "Bad Request", None, "JSON decode error"),
        # a TGI body is no request vLLM's SageMaker route serves
        (b'{"inputs": "hi", "parameters": {"max_new_tokens": 4}}', 400, "BadRequestError", None, "suitable handler"),
        (chat(stream=False, model="tgi"), 404, "NotFoundError", "model", "The model `tgi` does not exist."),
    ],
    ids=["not-json", "tgi-body", "other-model"],
)
def test_refused_requests_come_back_as_model_errors_with_vllm_s_body(  # noqa: PLR0917
    emulator: EmulatorServer, streaming: bool, body: bytes, status: int, error_type: str, param: str | None, says: str
) -> None:
    client = runtime(emulator)
    call = client.invoke_endpoint_with_response_stream if streaming else client.invoke_endpoint
    response, error = _model_error(lambda: call(EndpointName="vllm-ep", Body=body))
    assert response["OriginalStatusCode"] == status == error["code"]
    assert (error["type"], error["param"]) == (error_type, param) and says in error["message"]
    assert emulator.truth() == []  # refused before generation


def test_a_failed_generation_is_vllm_s_internal_server_error(emulator: EmulatorServer) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, engine="vllm", faults=(FaultRule(FaultKind.SERVER_ERROR, 1),)))
    response, error = _model_error(lambda: runtime(emulator).invoke_endpoint(EndpointName="e", Body=chat(stream=False)))
    assert response["OriginalStatusCode"] == 500
    assert error == {"message": "Internal server error", "type": "InternalServerError", "param": None, "code": 500}


def test_an_error_inside_a_stream_is_vllm_s_error_event_then_done(emulator: EmulatorServer) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, engine="vllm", faults=(FaultRule(FaultKind.STREAM_ERROR, 1),)))
    response = runtime(emulator).invoke_endpoint_with_response_stream(EndpointName="e", Body=chat(stream=True))
    found = events(payload_bytes(response))  # no ModelStreamError: the container's own bytes, in PayloadParts
    assert found[-1] == "[DONE]"
    error = vllm_error_body(found[-2])
    assert (error["type"], error["code"]) == ("InternalServerError", 500)
    for text in found[:-2]:
        ChatCompletionChunk.model_validate_json(text)


def test_sagemaker_throttling_is_sagemaker_s_own(emulator: EmulatorServer) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, engine="vllm", faults=(FaultRule(FaultKind.THROTTLE, 1),)))
    with pytest.raises(ClientError) as error:
        runtime(emulator).invoke_endpoint(EndpointName="e", Body=chat(stream=False))
    assert error.value.response["Error"]["Code"] == "ThrottlingException"


def test_the_openai_client_reads_the_emulated_vllm_over_http_and_tgi_routes_are_gone(emulator: EmulatorServer) -> None:
    client = openai.OpenAI(base_url=emulator.base_url + "/v1", api_key="unused", max_retries=0, timeout=10)
    try:
        stream = client.chat.completions.create(
            model=SERVED_MODEL_NAME,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="tgi", messages=[{"role": "user", "content": PROMPT}], max_tokens=4)
    finally:
        client.close()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == TOKENS
    assert "does not exist" in str(missing.value)
    assert post_status(emulator, "/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 4}}) == 404


def post_status(server: EmulatorServer, path: str, body: dict[str, Any]) -> int:
    """POST ``body`` to ``path`` with urllib; the status code, errors included."""
    request = urllib.request.Request(
        server.base_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


# --- the project's SageMaker client, measured against it ------------------------------------------------------


def measure(server: EmulatorServer, *, streaming: bool, max_new_tokens: int = TOKENS) -> RequestRecord:
    async def go() -> RequestRecord:
        client = SageMakerClient(
            "vllm-ep",
            streaming=streaming,
            timeout_s=10,
            region_name="us-east-1",
            endpoint_url=server.base_url,
            client_kwargs={"aws_access_key_id": "x", "aws_secret_access_key": "x"},
            payload="openai-chat",
        )
        try:
            return await client.send(
                Prompt(text=PROMPT, id="p"), GenerationParams(max_new_tokens=max_new_tokens), user=0
            )
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
def test_the_sagemaker_chat_client_counts_what_the_emulated_vllm_generated(
    emulator: EmulatorServer, streaming: bool
) -> None:
    record = measure(emulator, streaming=streaming)
    (truth,) = emulator.truth()
    assert record.ok, record.error_detail
    assert (record.generated_tokens, record.input_tokens) == (truth.tokens, truth.input_tokens)
    if streaming:
        assert len(record.token_times) == truth.tokens
        assert truth.ttft_ms is not None
        # the client's first token cannot come before the emulator scheduled it (1 ms for clock granularity)
        assert (record.token_times[0] - record.start) * 1000 >= truth.ttft_ms - 1.0
    else:
        assert record.token_times == []


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (FaultKind.SERVER_ERROR, ErrorKind.HTTP_5XX),
        (FaultKind.THROTTLE, ErrorKind.THROTTLED),
        (FaultKind.STREAM_ERROR, ErrorKind.DROPPED_STREAM),  # vLLM's in-stream 500: the README's rule
    ],
)
def test_the_sagemaker_chat_client_classifies_vllm_s_failures(
    emulator: EmulatorServer, fault: FaultKind, kind: ErrorKind
) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, engine="vllm", faults=(FaultRule(fault, every_nth=1),)))
    record = measure(emulator, streaming=True)
    assert record.error is kind, record.error_detail


# --- selection --------------------------------------------------------------------------------------------------


def test_the_engine_is_checked() -> None:
    with pytest.raises(ConfigError) as err:
        EmulatorConfig(engine="sglang")
    assert [i.field for i in err.value.issues] == ["engine"]
    with pytest.raises(ConfigError) as err:
        EmulatorConfig(engine="vllm", latency=LatencyModel(max_concurrent=4))
    assert [i.field for i in err.value.issues] == ["latency.max_concurrent"]
    assert "vLLM queues" in err.value.issues[0].allowed


def test_a_tgi_endpoint_keeps_tgi_s_payload_and_serves_a_chat_body_too(server: EmulatorServer) -> None:
    server.configure(EmulatorConfig(latency=LATENCY))
    server.reset()
    client = runtime(server)
    tgi = client.invoke_endpoint(EndpointName="e", Body=b'{"inputs": "hi", "parameters": {"max_new_tokens": 3}}')
    assert json.loads(tgi["Body"].read())[0]["details"]["generated_tokens"] == 3
    whole = client.invoke_endpoint(EndpointName="e", Body=chat(stream=False, max_tokens=3))
    assert ChatCompletion.model_validate_json(whole["Body"].read()).usage.completion_tokens == 3  # type: ignore[union-attr]
    assert [t.protocol for t in server.truth()] == ["tgi", "openai"]
