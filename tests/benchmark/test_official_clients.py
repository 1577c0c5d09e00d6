"""The emulator against the official clients users have: where they disagree with it, the emulator is wrong.

``openai`` (streaming and whole chat completions, errors before and inside a stream), ``huggingface_hub``'s
``InferenceClient.text_generation`` (TGI's protocol) and boto3's ``invoke_endpoint_with_response_stream``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import openai
import pytest
from botocore.exceptions import ClientError, EventStreamError
from huggingface_hub import InferenceClient
from huggingface_hub.errors import OverloadedError

from benchmark.emulator import EmulatorConfig, EmulatorServer, FaultKind, FaultRule, LatencyModel

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

TOKENS = 6
LATENCY = LatencyModel(prefill_base_ms=1, prefill_ms_per_token=0, tpot_base_ms=1, tpot_slope_ms=0, tokens=TOKENS)
PROMPT = "Explain continuous batching in one paragraph."


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(latency=LATENCY)) as emulator:
        yield emulator


@pytest.fixture
def emulator(server: EmulatorServer) -> EmulatorServer:
    server.configure(EmulatorConfig(latency=LATENCY))
    server.reset()
    return server


def faulty(server: EmulatorServer, fault: FaultKind, **options: object) -> None:
    server.configure(EmulatorConfig(latency=LATENCY, faults=(FaultRule(fault, every_nth=1),), **options))  # type: ignore[arg-type]


def openai_client(server: EmulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=10)


# --- openai ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("done", [True, False], ids=["with-DONE", "without-DONE"])
def test_openai_sdk_streams_chat(emulator: EmulatorServer, done: bool) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, openai_done=done))
    stream = openai_client(emulator).chat.completions.create(
        model="tgi",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    (truth,) = emulator.truth()
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == TOKENS - 1  # the EOS token arrives as an empty delta
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert (usage.completion_tokens, usage.prompt_tokens) == (TOKENS, truth.input_tokens)
    assert {c.id for c in chunks} == {truth.request_id}


def test_openai_sdk_whole_chat(emulator: EmulatorServer) -> None:
    answer = openai_client(emulator).chat.completions.create(
        model="tgi", messages=[{"role": "user", "content": PROMPT}], max_tokens=4
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    assert answer.choices[0].message.role == "assistant" and answer.choices[0].message.content


def test_openai_sdk_sees_throttling_as_rate_limit(server: EmulatorServer) -> None:
    faulty(server, FaultKind.THROTTLE)
    with pytest.raises(openai.RateLimitError) as error:
        openai_client(server).chat.completions.create(model="tgi", messages=[{"role": "user", "content": PROMPT}])
    assert "overloaded" in str(error.value)


def test_openai_sdk_raises_on_an_error_inside_the_stream(server: EmulatorServer) -> None:
    faulty(server, FaultKind.STREAM_ERROR)
    stream = openai_client(server).chat.completions.create(
        model="tgi", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    with pytest.raises(openai.APIError, match="Model stream error"):
        list(stream)


def test_openai_sdk_refused_without_the_key(server: EmulatorServer) -> None:
    server.configure(EmulatorConfig(latency=LATENCY, api_key="k", model_name="served"))
    with pytest.raises(openai.AuthenticationError):
        openai_client(server).chat.completions.create(model="served", messages=[{"role": "user", "content": "x"}])
    authorised = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0, timeout=10)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        authorised.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    answer = authorised.chat.completions.create(model="served", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content


# --- huggingface_hub ------------------------------------------------------------------------------------


def test_inference_client_streams_tgi(emulator: EmulatorServer) -> None:
    client = InferenceClient(emulator.base_url, timeout=10)
    events = list(client.text_generation(PROMPT, max_new_tokens=20, stream=True, details=True))
    (truth,) = emulator.truth()
    assert len(events) == TOKENS
    assert [e.token.special for e in events] == [False] * (TOKENS - 1) + [True]
    assert all(e.details is None for e in events[:-1])
    last = events[-1]
    assert last.details is not None
    assert last.details.generated_tokens == TOKENS
    assert last.details.finish_reason == "eos_token"
    assert last.generated_text == "".join(e.token.text for e in events[:-1])
    assert truth.protocol == "tgi" and truth.stream


def test_inference_client_whole_answer(emulator: EmulatorServer) -> None:
    answer = InferenceClient(emulator.base_url, timeout=10).text_generation(PROMPT, max_new_tokens=3, details=True)
    assert answer.details is not None
    assert answer.details.generated_tokens == 3
    assert answer.details.finish_reason == "length"


def test_inference_client_sees_tgi_overload(server: EmulatorServer) -> None:
    faulty(server, FaultKind.THROTTLE)
    with pytest.raises(OverloadedError):
        InferenceClient(server.base_url, timeout=10).text_generation(PROMPT, max_new_tokens=3)


# --- boto3 ----------------------------------------------------------------------------------------------


def runtime(server: EmulatorServer) -> SageMakerRuntimeClient:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.base_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


BODY = b'{"inputs": "hi there", "parameters": {"max_new_tokens": 20, "details": true}, "stream": true}'


def test_boto3_streams_and_answers(server: EmulatorServer) -> None:
    """Plain boto3, no wrapper: the emulator speaks the real SageMaker runtime wire protocol."""
    server.configure(EmulatorConfig(latency=LATENCY, payload_split=3))
    client = runtime(server)
    body = b'{"inputs": "hi there", "parameters": {"max_new_tokens": 4, "details": true}, "stream": true}'
    response = client.invoke_endpoint_with_response_stream(EndpointName="llama-ep", Body=body)
    assert response["ContentType"] == "text/event-stream"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"]]
    assert len(parts) == 4 * 3  # four events, each cut in three parts
    assert b"".join(parts).count(b"\n\n") == 4
    answer = client.invoke_endpoint(EndpointName="llama-ep", Body=body.replace(b"true}", b"false}"))
    assert answer["ContentType"] == "application/json"
    assert b'"generated_tokens":4' in answer["Body"].read()


def test_boto3_stream_error_is_a_model_stream_error(server: EmulatorServer) -> None:
    faulty(server, FaultKind.STREAM_ERROR)
    response = runtime(server).invoke_endpoint_with_response_stream(EndpointName="ep", Body=BODY)
    with pytest.raises(EventStreamError) as error:
        list(response["Body"])
    assert error.value.response["Error"]["Code"] == "ModelStreamError"


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [(FaultKind.THROTTLE, "ThrottlingException", 400), (FaultKind.SERVER_ERROR, "ModelError", 424)],
)
def test_boto3_modelled_errors(server: EmulatorServer, fault: FaultKind, code: str, status: int) -> None:
    faulty(server, fault)
    with pytest.raises(ClientError) as error:
        runtime(server).invoke_endpoint(EndpointName="ep", Body=BODY.replace(b"true}", b"false}"))
    response = error.value.response
    assert response["Error"]["Code"] == code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    if code == "ModelError":
        assert response["OriginalStatusCode"] == 500  # type: ignore[typeddict-item]
