"""Every client against the emulator over real loopback sockets, checked against its ground truth."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from benchmark.clients import KINDS, Client, create_client
from benchmark.clients.base import status_error_kind
from benchmark.clients.sagemaker import classify_client_error
from benchmark.emulator import EmulatorConfig, EmulatorServer, LatencyModel, RequestTruth
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from catalog.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TOKENS = 8
PREFILL_MS = 60.0
TPOT_MS = 20.0
# What a client may add to the server's schedule: sending, parsing, a loaded 2-core machine. Far below the
# errors these bounds exist to catch (a timestamp 50 ms late, a gap counted twice).
TTFT_SLACK_MS = 25.0
TPOT_SLACK_MS = 2.0
E2E_SLACK_MS = 40.0  # a whole answer also waits for the server to render and send the body
CONFIG = EmulatorConfig(
    latency=LatencyModel(
        prefill_base_ms=PREFILL_MS, prefill_ms_per_token=0.0, tpot_base_ms=TPOT_MS, tpot_slope_ms=0.0, tokens=TOKENS
    ),
    payload_split=3,  # every SSE event reaches the SageMaker client in three PayloadParts
    endpoint_names=("llama-ep",),
)
PROMPT = Prompt(text="Explain continuous batching in one paragraph. " * 10, id="p-1")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(CONFIG) as server:
        yield server


@pytest.fixture
def fresh(emulator: EmulatorServer) -> EmulatorServer:
    emulator.configure(CONFIG)
    emulator.reset()
    return emulator


def make(kind: str, base_url: str, *, endpoint: str = "llama-ep", **options: Any) -> Client:
    if kind.startswith("sagemaker"):
        options |= {
            "endpoint_url": base_url,
            "region_name": "us-east-1",
            "client_kwargs": {"aws_access_key_id": "x", "aws_secret_access_key": "x"},
        }
        return create_client(kind, endpoint, **options)
    return create_client(kind, base_url, **options)


def send(client: Client, params: GenerationParams, prompt: Prompt = PROMPT, *, warm: bool = False) -> RequestRecord:
    """One request; with ``warm``, an unmeasured one first so that connection set-up is not timed."""

    async def go() -> RequestRecord:
        try:
            if warm:
                await client.send(prompt, params, user=0)
            return await client.send(prompt, params, user=3)
        finally:
            await client.aclose()

    return asyncio.run(go())


def expected_events(kind: str) -> int:
    """OpenAI sends the EOS token as an empty delta: one token event fewer than the count."""
    return TOKENS - 1 if kind.startswith("openai") else TOKENS


def timing_errors(record: RequestRecord, truth: RequestTruth, kind: str) -> list[str]:
    """Where the client's timing leaves the server's schedule by more than the slack (two-sided bounds)."""
    errors: list[str] = []
    ttft = (truth.ttft_ms or 0.0) + (0.0 if kind.endswith("-stream") else sum(truth.gaps_ms))
    measured = (record.ttft_s if kind.endswith("-stream") else record.e2e_s) or 0.0
    slack = TTFT_SLACK_MS if kind.endswith("-stream") else E2E_SLACK_MS
    if not ttft - 1.0 <= measured * 1000 <= ttft + slack:
        errors.append(f"{'ttft' if kind.endswith('-stream') else 'e2e'} {measured * 1000:.1f} ms vs {ttft:.1f} ms")
    if kind.endswith("-stream"):
        # ms/token against the gaps scheduled between the same tokens (OpenAI: all but the EOS).
        scheduled = truth.gaps_ms[: expected_events(kind) - 1]
        gaps = [g * 1000 for g in record.inter_token_gaps_s]
        mean, want = sum(gaps) / len(gaps), sum(scheduled) / len(scheduled)
        if abs(mean - want) > TPOT_SLACK_MS:
            errors.append(f"ms/token {mean:.2f} vs scheduled {want:.2f}")
        if abs(sorted(gaps)[len(gaps) // 2] - TPOT_MS) > TPOT_SLACK_MS + 1.0:
            errors.append(f"median gap {sorted(gaps)[len(gaps) // 2]:.2f} ms vs {TPOT_MS} ms")
    return errors


@pytest.mark.parametrize("kind", KINDS)
def test_client_matches_server_ground_truth(fresh: EmulatorServer, kind: str) -> None:
    record = send(make(kind, fresh.base_url, timeout_s=10), GenerationParams(max_new_tokens=20), warm=True)
    assert record.ok, record.error_detail
    _, truth = fresh.truth()
    assert truth.outcome == "ok"
    assert record.request_id == truth.request_id
    assert record.user == 3 and record.prompt_id == "p-1"
    # Token counts come from the server (TOKENS < max_new_tokens: the last token is EOS).
    assert record.generated_tokens == truth.tokens == TOKENS
    assert record.input_tokens == truth.input_tokens
    assert record.start < record.end
    if kind.endswith("-stream"):
        assert len(record.token_times) == expected_events(kind)
        assert record.first_token_at == record.token_times[0]
        assert record.token_times == sorted(record.token_times)
        gaps = record.inter_token_gaps_s
        assert len(gaps) == expected_events(kind) - 1
        assert sum(gaps) == pytest.approx(record.token_times[-1] - record.token_times[0])
    else:
        assert record.token_times == [] and record.first_token_at is None
        assert record.server_timings["x-emulator-ttft-ms"] == pytest.approx(truth.ttft_ms, abs=0.01)
        assert record.server_timings["x-emulator-tpot-ms"] == pytest.approx(truth.tpot_ms, abs=0.01)
        if kind != "openai-chat":
            assert {"x-time-per-token", "x-queue-time", "x-inference-time"} <= set(record.server_timings)


@pytest.mark.parametrize("kind", KINDS)
def test_client_timing_matches_the_schedule(fresh: EmulatorServer, kind: str) -> None:
    """TTFT (streams) or end-to-end time, and ms/token, within a few ms of what the server scheduled.

    A loaded machine can delay one request; a timing bug delays every one. Up to three attempts, each
    with fresh ground truth: one attempt within bounds passes, every attempt outside fails.
    """
    failures: list[list[str]] = []
    for _ in range(3):
        fresh.reset()
        record = send(make(kind, fresh.base_url, timeout_s=10), GenerationParams(max_new_tokens=20), warm=True)
        assert record.ok, record.error_detail
        errors = timing_errors(record, fresh.truth()[-1], kind)
        if not errors:
            return
        failures.append(errors)
    pytest.fail(f"timing outside the schedule in every attempt: {failures}")


@pytest.mark.parametrize("kind", ["tgi-http", "sagemaker-stream", "openai-chat-stream"])
def test_generation_stops_at_max_new_tokens(fresh: EmulatorServer, kind: str) -> None:
    record = send(make(kind, fresh.base_url), GenerationParams(max_new_tokens=3))
    assert record.ok, record.error_detail
    assert record.generated_tokens == 3
    assert fresh.truth()[0].tokens == 3


def test_unknown_sagemaker_endpoint_is_a_4xx(fresh: EmulatorServer) -> None:
    record = send(make("sagemaker", fresh.base_url, endpoint="missing"), GenerationParams())
    assert record.error is ErrorKind.HTTP_4XX
    assert "not found" in record.error_detail


def _client_error(code: str, status: int, **extra: Any) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}, **extra}
    return ClientError(response, "InvokeEndpoint")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_client_error("ThrottlingException", 400), ErrorKind.THROTTLED),
        (_client_error("ModelNotReadyException", 429), ErrorKind.THROTTLED),
        (_client_error("ModelError", 424, OriginalStatusCode=500), ErrorKind.HTTP_5XX),
        (_client_error("ModelError", 424, OriginalStatusCode=429), ErrorKind.THROTTLED),
        (_client_error("ModelError", 424, OriginalStatusCode=422), ErrorKind.HTTP_4XX),
        (_client_error("ModelError", 424), ErrorKind.HTTP_5XX),
        (_client_error("ModelStreamError", 200), ErrorKind.DROPPED_STREAM),
        (_client_error("InternalStreamFailure", 200), ErrorKind.DROPPED_STREAM),
        (_client_error("ValidationError", 400), ErrorKind.HTTP_4XX),
        (_client_error("ServiceUnavailable", 503), ErrorKind.HTTP_5XX),
        (_client_error("InternalDependencyException", 530), ErrorKind.HTTP_5XX),
    ],
)
def test_sagemaker_error_classification(error: ClientError, kind: ErrorKind) -> None:
    assert classify_client_error(error) is kind


def test_status_error_kind() -> None:
    assert [status_error_kind(s) for s in (400, 422, 429, 500, 503)] == [
        ErrorKind.HTTP_4XX,
        ErrorKind.HTTP_4XX,
        ErrorKind.THROTTLED,
        ErrorKind.HTTP_5XX,
        ErrorKind.HTTP_5XX,
    ]


def test_unknown_client_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="client='grpc'"):
        create_client("grpc", "x")


def test_sagemaker_path_imports_without_aiohttp() -> None:
    """The Lambda has boto3 and jinja2 only: the SageMaker client and the load generator must not pull aiohttp."""
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "import benchmark.measure.loadgen, benchmark.clients, benchmark.clients.sagemaker\n"
        "from benchmark.clients import create_client\n"
        "c = create_client('sagemaker-stream', 'ep', region_name='us-east-1')\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
