"""Recorded server bytes replayed over a real socket through every client of ours that speaks their protocol.

The expectations are read off the recorded bytes by hand (see tests/fixtures/README.md), not produced by
our code: e.g. ``chat_stream`` carries twelve ``delta.content`` chunks and ``usage.completion_tokens: 12``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmark.clients import create_client
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.wire.sse import parse_all
from tests.benchmark.replay import FIXTURES, Exchange, replaying

SERVE = FIXTURES / "real_streams" / "transformers-serve-5.17.0"
VARIANTS = FIXTURES / "protocol_variants"
TGI_KINDS = ("tgi-http-stream", "sagemaker-stream")
# OpenAI chat streams as vLLM (and TGI's Messages API) serve them on SageMaker's /invocations: the SageMaker client
# with payload="openai-chat", the container's bytes inside event-stream PayloadParts.
CHAT_STREAM_KINDS = ("openai-chat-stream", "sagemaker-chat-stream")


@dataclass(frozen=True)
class Case:
    folder: Path
    name: str
    kinds: tuple[str, ...]
    error: ErrorKind | None = None
    tokens: int | None = None  # the server's count (usage / details)
    input_tokens: int | None = None
    events: int | None = None  # token events the client timestamps
    detail: str = ""

    @property
    def id(self) -> str:
        return f"{self.folder.name}/{self.name}"


CASES = [
    # Captured from transformers serve 5.17.0: no [DONE]; the finish_reason chunk carries usage.
    Case(SERVE, "chat_stream", CHAT_STREAM_KINDS, tokens=12, input_tokens=5, events=12),
    Case(SERVE, "chat_stream_nousage", CHAT_STREAM_KINDS, tokens=12, input_tokens=5, events=12),
    Case(SERVE, "too_long", CHAT_STREAM_KINDS, tokens=4, input_tokens=5002, events=4),
    Case(SERVE, "chat", ("openai-chat", "sagemaker-chat"), tokens=12, input_tokens=5),
    Case(
        SERVE,
        "wrong_model",
        ("openai-chat", "openai-chat-stream"),
        ErrorKind.HTTP_4XX,
        detail="Server is pinned to 'tgi'",
    ),
    Case(SERVE, "models", ("openai-chat-stream",), ErrorKind.HTTP_5XX, detail="HTTP 500: Internal Server Error"),
    # Documented variants (sources in tests/fixtures/README.md).
    Case(VARIANTS, "tgi-generate-stream", TGI_KINDS, tokens=4, input_tokens=7, events=4),
    Case(VARIANTS, "tgi-generate-stream-overloaded", TGI_KINDS, ErrorKind.THROTTLED, detail="Model is overloaded"),
    Case(
        VARIANTS,
        "tgi-generate-stream-incomplete",
        TGI_KINDS,
        ErrorKind.DROPPED_STREAM,
        detail="Incomplete generation stream",
    ),
    Case(
        VARIANTS,
        "tgi-overloaded-429",
        ("tgi-http", "tgi-http-stream", "openai-chat-stream"),
        ErrorKind.THROTTLED,
        detail="HTTP 429",
    ),
    Case(
        VARIANTS,
        "vllm-model-not-found-404",
        ("openai-chat", "openai-chat-stream"),
        ErrorKind.HTTP_4XX,
        detail="does not exist",
    ),
    Case(VARIANTS, "tgi-messages-stream", CHAT_STREAM_KINDS, tokens=4, input_tokens=7, events=3),
    Case(
        VARIANTS,
        "tgi-messages-stream-overloaded",
        CHAT_STREAM_KINDS,
        ErrorKind.THROTTLED,
        detail="Model is overloaded",
    ),
    Case(VARIANTS, "vllm-chat-stream", CHAT_STREAM_KINDS, tokens=4, input_tokens=7, events=3),
    Case(
        VARIANTS,
        "vllm-chat-stream-error",
        CHAT_STREAM_KINDS,
        ErrorKind.DROPPED_STREAM,
        detail="(InternalServerError): Internal server error",
    ),
    Case(VARIANTS, "llamacpp-chat-stream", ("openai-chat-stream",), tokens=4, input_tokens=7, events=3),
    # llama.cpp sends a failure as an ``error:`` SSE field, which SSE ignores: the stream just ends.
    Case(
        VARIANTS,
        "llamacpp-chat-stream-error",
        ("openai-chat-stream",),
        ErrorKind.DROPPED_STREAM,
        detail="without its final event after 1 tokens",
    ),
]
PAIRS = [pytest.param(case, kind, id=f"{case.id}-{kind}") for case in CASES for kind in case.kinds]


def replay(case: Case, kind: str) -> tuple[RequestRecord, list[str]]:
    exchange = Exchange.load(case.folder, case.name)
    with replaying(exchange) as server:
        options: dict[str, Any] = {"timeout_s": 10}
        target = server.base_url
        if kind.startswith("sagemaker"):
            target = "replayed-endpoint"
            options |= {
                "endpoint_url": server.base_url,
                "region_name": "us-east-1",
                "client_kwargs": {"aws_access_key_id": "x", "aws_secret_access_key": "x"},
            }
        if kind.startswith("sagemaker-chat"):
            kind = kind.replace("sagemaker-chat", "sagemaker")
            options["payload"] = "openai-chat"
        client = create_client(kind, target, **options)

        async def go() -> RequestRecord:
            try:
                return await client.send(Prompt(text="Why is the sky blue?", id="p"), GenerationParams(), user=0)
            finally:
                await client.aclose()

        return asyncio.run(go()), server.requests


@pytest.mark.parametrize(("case", "kind"), PAIRS)
def test_replayed_exchange(case: Case, kind: str) -> None:
    record, requests = replay(case, kind)
    assert len(requests) == 1
    assert record.error is case.error, record.error_detail
    assert case.detail in record.error_detail
    if case.error is None:
        assert record.generated_tokens == case.tokens
        assert record.input_tokens == case.input_tokens
        if case.events is None:
            assert record.token_times == []
        else:
            assert len(record.token_times) == case.events
            assert record.first_token_at == record.token_times[0]
            assert record.start <= record.token_times[0] <= record.token_times[-1] <= record.end


@pytest.mark.parametrize(
    ("cut", "detail"),
    [
        pytest.param(
            lambda body: body[: body.rindex(b"data: ")], "without its final event after 12", id="before-finish"
        ),
        pytest.param(lambda body: body[: len(body) - 40], "inside an event", id="inside-finish-event"),
    ],
)
def test_real_stream_cut_short_is_dropped(tmp_path: Path, cut: Any, detail: str) -> None:
    """The captured stream, ended cleanly (a proper last chunk) before or inside its finish_reason event."""
    exchange = Exchange.load(SERVE, "chat_stream")
    (tmp_path / "cut.headers").write_bytes(exchange.head)
    (tmp_path / "cut.body").write_bytes(cut(exchange.body))
    record, _ = replay(Case(tmp_path, "cut", ("openai-chat-stream",)), "openai-chat-stream")
    assert record.error is ErrorKind.DROPPED_STREAM
    assert detail in record.error_detail


def test_request_ids_come_from_the_recorded_headers() -> None:
    record, _ = replay(CASES[0], "openai-chat-stream")
    assert record.request_id == "9f3ba698-8f13-4bd5-baf8-96383f0723af"


def test_legacy_completions_stream_parses_event_by_event() -> None:
    """No client of ours speaks ``/v1/completions``; its recorded bytes still parse as 13 SSE events."""
    events = parse_all([(SERVE / "completions_stream.body").read_bytes()])
    assert len(events) == 13
    assert '"finish_reason":"length"' in events[-1].data and '"completion_tokens":12' in events[-1].data


def test_every_fixture_is_replayed() -> None:
    """A fixture added without a test case would be silently unused."""
    on_disk = {f"{p.parent.name}/{p.stem}" for folder in (SERVE, VARIANTS) for p in folder.glob("*.body")}
    covered = {case.id for case in CASES} | {f"{SERVE.name}/completions_stream"}
    assert on_disk == covered
