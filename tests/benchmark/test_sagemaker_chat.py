"""The SageMaker client speaking OpenAI chat completions on ``/invocations`` (vLLM, TGI's Messages API).

Oracles this project did not write: the ``openai`` package (its own client reads every stream replayed here over
HTTP, its SSE decoder says which events a prefix completes, its types validate every chunk and the request), the
bytes ``transformers serve`` really sent, bytes written from vLLM's source (tests/fixtures/README.md), and
botocore (which signs the request and parses every event-stream frame and service error).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest
from openai._streaming import SSEDecoder
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)

from benchmark.clients import create_client
from benchmark.clients.protocol import OpenAIStreamReader
from benchmark.clients.sagemaker import EventStreamSink, SageMakerClient
from benchmark.emulator.eventstream import event_message, exception_message
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from catalog.engines import SERVED_MODEL_NAME
from catalog.errors import ConfigError
from tests.benchmark.replay import FIXTURES, Exchange, replaying
from tests.benchmark.test_sagemaker_wire import KEY_ID, SECRET, sigv4_valid
from tests.benchmark.test_wire import ScriptedServer, answer

SERVE = FIXTURES / "real_streams" / "transformers-serve-5.17.0"
VARIANTS = FIXTURES / "protocol_variants"
STREAMS = [
    (SERVE, "chat_stream"),  # captured: no [DONE], usage on the finish_reason chunk
    (SERVE, "chat_stream_nousage"),
    (SERVE, "too_long"),
    (VARIANTS, "vllm-chat-stream"),  # vLLM: usage in a last chunk with no choices, then [DONE]
    (VARIANTS, "tgi-messages-stream"),
    (VARIANTS, "vllm-chat-stream-error"),  # vLLM's in-stream error event
    (VARIANTS, "tgi-messages-stream-overloaded"),
]
IDS = [name for _, name in STREAMS]
PROMPT = Prompt(text="Why is the sky blue?", id="p")
PARAMS = GenerationParams(max_new_tokens=12)


@dataclass(frozen=True)
class Official:
    """What the official ``openai`` client made of a stream."""

    content_chunks: int  # chunks whose delta carries text: the tokens a client times
    completion_tokens: int | None
    prompt_tokens: int | None
    error: str | None  # the APIError message, where openai raised one


def official(folder: Path, name: str) -> Official:
    """Replay the exchange over HTTP to ``openai.OpenAI().chat.completions.create(stream=True)``."""
    chunks: list[ChatCompletionChunk] = []
    error = None
    with replaying(Exchange.load(folder, name)) as server:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=10)
        try:
            stream = client.chat.completions.create(
                model=SERVED_MODEL_NAME,
                messages=[{"role": "user", "content": PROMPT.text}],
                max_tokens=12,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks.extend(stream)
        except openai.APIError as exc:
            error = exc.message
        finally:
            client.close()
    usage = next((chunk.usage for chunk in reversed(chunks) if chunk.usage is not None), None)
    content = sum(1 for chunk in chunks if any(choice.delta.content for choice in chunk.choices))
    return Official(
        content,
        usage.completion_tokens if usage else None,
        usage.prompt_tokens if usage else None,
        error,
    )


def content_events_in(data: bytes) -> int:
    """Content chunks whose SSE event ``data`` completes, by the ``openai`` package's own SSE decoder."""
    count = 0
    for event in SSEDecoder().iter_bytes(iter([data])):
        if event.data.startswith("[DONE]"):
            continue
        body = json.loads(event.data)
        if "error" not in body:
            count += any(choice.delta.content for choice in ChatCompletionChunk.model_validate(body).choices)
    return count


def payload_parts(*pieces: bytes) -> list[bytes]:
    return [event_message("PayloadPart", piece, content_type="application/octet-stream") for piece in pieces if piece]


def read_frames(frames: list[tuple[bytes, float]]) -> RequestRecord:
    """The wire path's own readers: botocore's event-stream parser feeding the OpenAI SSE reader."""
    record = RequestRecord(user=0, start=0.0, end=0.0)
    reader = OpenAIStreamReader(record)
    sink = EventStreamSink(reader)
    try:
        for data, at in frames:
            sink.feed(data, at)
        reader.close()
    except Exception as exc:  # RequestFailed, as the client records it
        record.error = getattr(exc, "kind", ErrorKind.CLIENT)
        record.error_detail = str(exc)
    return record


@pytest.mark.parametrize(("folder", "name"), STREAMS, ids=IDS)
def test_every_chunk_is_one_the_openai_package_validates(folder: Path, name: str) -> None:
    events = list(SSEDecoder().iter_bytes(iter([(folder / f"{name}.body").read_bytes()])))
    assert events
    for event in events:
        if event.data.startswith("[DONE]"):
            continue
        body = json.loads(event.data)
        if "error" in body:
            assert name.endswith(("-error", "-overloaded"))
            continue
        ChatCompletionChunk.model_validate_json(event.data)


@pytest.mark.parametrize(("folder", "name"), STREAMS, ids=IDS)
def test_payload_parts_split_anywhere_read_as_the_official_client_reads_them(folder: Path, name: str) -> None:
    """Every split of the container's bytes into two PayloadParts; the second part arrives later."""
    body = (folder / f"{name}.body").read_bytes()
    truth = official(folder, name)
    whole = read_frames([(b"".join(payload_parts(body)), 1.0)])
    assert (whole.error is None) is (truth.error is None), whole.error_detail
    if truth.error is not None:
        assert truth.error in whole.error_detail
    else:
        assert len(whole.token_times) == truth.content_chunks
        assert (whole.generated_tokens, whole.input_tokens) == (truth.completion_tokens, truth.prompt_tokens)
    for cut in range(1, len(body)):
        first, second = payload_parts(body[:cut], body[cut:])
        record = read_frames([(first, 1.0), (second, 2.0)])
        assert (record.error, record.generated_tokens, record.input_tokens) == (
            whole.error,
            whole.generated_tokens,
            whole.input_tokens,
        ), cut
        if whole.error is None:
            # A token is stamped when the bytes that complete its event arrive.
            assert record.token_times.count(1.0) == content_events_in(body[:cut]), cut
            assert len(record.token_times) == len(whole.token_times)


def test_one_byte_payload_parts_and_frames_cut_across_reads() -> None:
    body = (VARIANTS / "vllm-chat-stream.body").read_bytes()
    one_byte = read_frames([(frame, float(i)) for i, frame in enumerate(payload_parts(*(bytes([b]) for b in body)))])
    assert (one_byte.error, one_byte.generated_tokens, one_byte.input_tokens) == (None, 4, 7)
    assert len(one_byte.token_times) == 3
    stream = b"".join(payload_parts(body[:100], body[100:]))
    for cut in range(1, len(stream)):  # event-stream frames split across reads anywhere, prelude and CRCs included
        record = read_frames([(stream[:cut], 1.0), (stream[cut:], 2.0)])
        assert (record.error, record.generated_tokens, len(record.token_times)) == (None, 4, 3), cut


def test_a_cut_stream_is_dropped_and_a_corrupt_frame_malformed() -> None:
    body = (VARIANTS / "vllm-chat-stream.body").read_bytes()
    cut = read_frames([(frame, 1.0) for frame in payload_parts(body[: body.index(b'"finish_reason":"stop"')])])
    assert cut.error is ErrorKind.DROPPED_STREAM and "inside an event after 2 tokens" in cut.error_detail
    (frame,) = payload_parts(body)
    corrupt = read_frames([(frame[:-1] + bytes([frame[-1] ^ 1]), 1.0)])
    assert corrupt.error is ErrorKind.MALFORMED_FRAME and "Checksum" in corrupt.error_detail


# vLLM's older ErrorResponse put the fields at the top level (vllm/entrypoints/openai/protocol.py, ErrorResponse with
# object="error"); a stream that meets one is failed by its code, not read as an empty chunk.
FLAT_ERROR = (
    b'data: {"object":"error","message":"prompt too long","type":"BadRequestError","param":null,"code":400}\n\n'
)


def test_vllms_flat_error_shape_fails_the_stream() -> None:
    record = read_frames([(frame, 1.0) for frame in payload_parts(FLAT_ERROR, b"data: [DONE]\n\n")])
    assert record.error is ErrorKind.HTTP_4XX and "prompt too long" in record.error_detail


# --- the client on the wire ---------------------------------------------------------------------------------


def client(port: int, *, streaming: bool = True, **options: Any) -> SageMakerClient:
    return SageMakerClient(
        "bench-ep",
        streaming=streaming,
        timeout_s=5,
        region_name="eu-west-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        client_kwargs={"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET},
        payload="openai-chat",
        **options,
    )


def send(port: int, *, streaming: bool = True, **options: Any) -> RequestRecord:
    async def go() -> RequestRecord:
        sagemaker = client(port, streaming=streaming, **options)
        try:
            return await sagemaker.send(PROMPT, PARAMS, user=0)
        finally:
            await sagemaker.aclose()

    return asyncio.run(go())


def captured_body(script_answer: bytes, call: Any) -> tuple[bytes, bytes]:
    """(request head, request body) of the one request ``call(port)`` makes to a server answering ``script_answer``."""
    raw: list[bytes] = []

    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        conn.sendall(script_answer)

    server = ScriptedServer(script, keep_raw=raw)
    try:
        call(server.port)
    finally:
        server.close()
    (request,) = raw
    head, _, body = request.partition(b"\r\n\r\n")
    return head, body


def openai_sends(*, stream: bool) -> dict[str, Any]:
    """The body the official client sends for the same chat request."""
    reply = (SERVE / ("chat_stream.body" if stream else "chat.body")).read_bytes()
    kind = b"text/event-stream" if stream else b"application/json"

    def call(port: int) -> None:
        official_client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=5)
        options: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
        try:
            result = official_client.chat.completions.create(
                model=SERVED_MODEL_NAME,
                messages=[{"role": "user", "content": PROMPT.text}],
                max_tokens=12,
                temperature=0.0,
                **options,
            )
            if stream:
                list(result)
        finally:
            official_client.close()

    _, body = captured_body(answer(200, reply, f"Content-Type: {kind.decode()}\r\n"), call)
    sent: dict[str, Any] = json.loads(body)
    return sent


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
def test_the_request_is_the_one_the_official_client_sends_signed_by_boto3(streaming: bool) -> None:
    frames = b"".join(payload_parts((SERVE / "chat_stream.body").read_bytes()))
    reply = (
        answer(200, frames, "Content-Type: application/vnd.amazon.eventstream\r\n")
        if streaming
        else answer(200, (SERVE / "chat.body").read_bytes(), "Content-Type: application/json\r\n")
    )
    records: list[RequestRecord] = []
    head, body = captured_body(reply, lambda port: records.append(send(port, streaming=streaming)))
    sent = json.loads(body)
    assert sent == openai_sends(stream=streaming)
    params = CompletionCreateParamsStreaming if streaming else CompletionCreateParamsNonStreaming
    pydantic.TypeAdapter(params).validate_python(sent)
    route = "invocations-response-stream" if streaming else "invocations"
    assert head.decode().startswith(f"POST /endpoints/bench-ep/{route} HTTP/1.1\r\n")
    assert b"Content-Type: application/json" in head
    accept = b"X-Amzn-SageMaker-Accept: text/event-stream" if streaming else b"Accept: application/json"
    assert accept in head
    assert sigv4_valid(head + b"\r\n\r\n" + body, SECRET)
    (record,) = records
    assert record.ok, record.error_detail
    assert (record.generated_tokens, record.input_tokens) == (12, 5)  # the captured usage
    assert len(record.token_times) == (12 if streaming else 0)


def test_the_served_model_name_is_what_the_request_names() -> None:
    frames = b"".join(payload_parts((VARIANTS / "vllm-chat-stream.body").read_bytes()))
    reply = answer(200, frames, "Content-Type: application/vnd.amazon.eventstream\r\n")
    _, body = captured_body(reply, lambda port: send(port, model="meta-llama/Llama-2-7b-chat-hf"))
    assert json.loads(body)["model"] == "meta-llama/Llama-2-7b-chat-hf"


# vLLM's non-streamed answer (vllm/entrypoints/openai/chat_completion/protocol.py ChatCompletionResponse: choices with
# message, logprobs, finish_reason and stop_reason; usage with prompt_tokens, total_tokens, completion_tokens).
VLLM_CHAT = (
    b'{"id":"chatcmpl-7f3c","object":"chat.completion","created":1733140000,"model":"llama-2","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":" The sky is","refusal":null,"annotations":null,"audio":null,'
    b'"function_call":null,"tool_calls":[],"reasoning_content":null},"logprobs":null,"finish_reason":"length",'
    b'"stop_reason":null}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":7,"total_tokens":11,'
    b'"completion_tokens":4,"prompt_tokens_details":null},"prompt_logprobs":null,"kv_transfer_params":null}'
)


def test_a_whole_vllm_answer_is_read_from_its_usage() -> None:
    official_answer = ChatCompletion.model_validate_json(VLLM_CHAT)
    assert official_answer.usage is not None
    reply = answer(200, VLLM_CHAT, "Content-Type: application/json\r\n")
    records: list[RequestRecord] = []
    captured_body(reply, lambda port: records.append(send(port, streaming=False)))
    (record,) = records
    assert record.ok, record.error_detail
    assert record.generated_tokens == official_answer.usage.completion_tokens == 4
    assert record.input_tokens == official_answer.usage.prompt_tokens == 7


def model_error(status: int, container_body: bytes) -> bytes:
    """SageMaker's answer when the container answered ``status``: ModelError (424) with the container's status and
    body (the InvokeEndpoint API reference: ModelError, OriginalStatusCode, OriginalMessage, LogStreamArn)."""
    body = {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL" if status < 500 else "SERVER_ERROR_FROM_MODEL",
        "LogStreamArn": "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/bench-ep",
        "Message": f'Received client error ({status}) from primary with message "{container_body.decode()}".',
        "OriginalMessage": container_body.decode(),
        "OriginalStatusCode": status,
    }
    headers = "x-amzn-ErrorType: ModelError:http://internal.amazon.com/coral/com.amazon.sagemaker/\r\n"
    return answer(424, json.dumps(body).encode(), headers + "Content-Type: application/json\r\n")


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    ("status", "container_body", "kind", "detail"),
    [
        (404, (VARIANTS / "vllm-model-not-found-404.body").read_bytes(), ErrorKind.HTTP_4XX, "does not exist"),
        (
            400,
            b'{"error":{"message":"This model\'s maximum context length is 4096 tokens.","type":"BadRequestError",'
            b'"param":null,"code":400}}',
            ErrorKind.HTTP_4XX,
            "maximum context length",
        ),
        (429, b'{"error":"Model is overloaded","error_type":"overloaded"}', ErrorKind.THROTTLED, "overloaded"),
        (
            500,
            b'{"error":{"message":"EngineCore died","type":"InternalServerError","code":500}}',
            ErrorKind.HTTP_5XX,
            "",
        ),
    ],
)
def test_container_errors_come_back_as_sagemaker_model_errors(
    streaming: bool, status: int, container_body: bytes, kind: ErrorKind, detail: str
) -> None:
    records: list[RequestRecord] = []
    captured_body(model_error(status, container_body), lambda port: records.append(send(port, streaming=streaming)))
    (record,) = records
    assert record.error is kind, record.error_detail
    assert "ModelError" in record.error_detail and detail in record.error_detail


def test_a_model_stream_error_mid_stream_drops_it() -> None:
    body = (VARIANTS / "vllm-chat-stream.body").read_bytes()
    stream_error = b'{"Message":"Your model stream terminated unexpectedly","ErrorCode":"x"}'
    frames = [*payload_parts(body[: body.index(b"\n\n") + 2]), exception_message("ModelStreamError", stream_error)]
    reply = answer(200, b"".join(frames), "Content-Type: application/vnd.amazon.eventstream\r\n")
    records: list[RequestRecord] = []
    captured_body(reply, lambda port: records.append(send(port)))
    (record,) = records
    assert record.error is ErrorKind.DROPPED_STREAM and "ModelStreamError" in record.error_detail


def test_boto3s_own_path_reads_chat_streams_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a proxy boto3 sends the request and parses the event stream itself, on a thread."""
    frames = b"".join(payload_parts((VARIANTS / "vllm-chat-stream.body").read_bytes()))
    reply = answer(200, frames, "Content-Type: application/vnd.amazon.eventstream\r\n")
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # nothing listens here: only the proxy can answer
    records: list[RequestRecord] = []

    def through_proxy(proxy_port: int) -> None:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        records.append(send(port))

    _, body = captured_body(reply, through_proxy)
    (record,) = records
    assert record.ok, record.error_detail
    assert (record.generated_tokens, record.input_tokens, len(record.token_times)) == (4, 7, 3)
    assert json.loads(body)["stream_options"] == {"include_usage": True}


def test_the_payload_option_is_checked_and_reaches_the_client() -> None:
    with pytest.raises(ConfigError) as err:
        SageMakerClient("ep", region_name="us-east-1", payload="grpc")
    ((issue),) = err.value.issues
    assert (issue.field, issue.value) == ("payload", "grpc") and "openai-chat, tgi" not in issue.allowed
    assert "tgi, openai-chat" in issue.allowed
    made = create_client("sagemaker-stream", "ep", region_name="us-east-1", payload="openai-chat")
    assert isinstance(made, SageMakerClient) and made.payload == "openai-chat" and made.model == SERVED_MODEL_NAME
    assert made.name == "sagemaker-chat-stream:ep"
    asyncio.run(made.aclose())


def test_the_truth_servers_chat_route_is_what_the_accuracy_run_measures() -> None:
    """scripts/truth_server.py answers an OpenAI chat body on the SageMaker streaming route as vLLM would."""
    root = Path(__file__).resolve().parents[2]
    server = subprocess.Popen(
        [sys.executable, str(root / "scripts" / "truth_server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        sagemaker = SageMakerClient(
            "bench",
            streaming=True,
            endpoint_url=url,
            region_name="us-east-1",
            client_kwargs={"aws_access_key_id": "x", "aws_secret_access_key": "x"},
            payload="openai-chat",
        )

        async def go() -> RequestRecord:
            try:
                return await sagemaker.send(PROMPT, GenerationParams(max_new_tokens=5), user=0)
            finally:
                await sagemaker.aclose()

        record = asyncio.run(go())
        with urllib.request.urlopen(url + "/truth", timeout=10) as answered:
            (truth,) = json.loads(answered.read())
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert record.ok, record.error_detail
    assert (truth["id"], truth["protocol"], truth["tokens"]) == (record.request_id, "sagemaker-chat", 5)
    assert record.generated_tokens == len(record.token_times) == len(truth["writes"]) == 5
    # The kernel stamps each token's bytes as they arrive, before the server's clock reads "written" (loopback).
    for written, seen in zip(truth["writes"], record.token_times, strict=True):
        assert truth["arrival"] < seen <= written + 0.05
