"""The load generator: closed-loop concurrency held exactly, bounds, warm-up, open loop, validation."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import pytest

from benchmark.clients import create_client
from benchmark.emulator import EmulatorConfig, EmulatorServer, LatencyModel
from benchmark.loadgen import LevelRun, LoadSpec, run_level
from benchmark.prompts import GenerationParams, Prompt, builtin_prompts
from benchmark.records import ErrorKind, RequestRecord
from catalog.errors import ConfigError

PROMPTS = [Prompt(text=f"prompt {i}", id=f"p{i}") for i in range(3)]
PARAMS = GenerationParams()


class FakeClient:
    """Counts requests in flight; optionally fails or hangs on chosen requests."""

    name = "fake"
    streaming = False

    def __init__(self, delay_s: float = 0.002, fail_every: int = 0, hang_every: int = 0) -> None:
        self.delay_s, self.fail_every, self.hang_every = delay_s, fail_every, hang_every
        self.in_flight = self.max_in_flight = self.sent = 0
        self.prompt_ids: list[str] = []

    async def send(self, prompt: Prompt, params: GenerationParams, *, user: int) -> RequestRecord:
        self.sent += 1
        number = self.sent
        self.prompt_ids.append(prompt.id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        record = RequestRecord(user=user, start=time.perf_counter(), end=0.0, generated_tokens=params.max_new_tokens)
        try:
            if self.hang_every and number % self.hang_every == 0:
                await asyncio.sleep(3600)
            await asyncio.sleep(self.delay_s)
            if self.fail_every and number % self.fail_every == 0:
                raise RuntimeError("client bug")
        finally:
            self.in_flight -= 1
        record.end = time.perf_counter()
        return record

    async def aclose(self) -> None:
        pass


def run(client: FakeClient, spec: LoadSpec, **kwargs: object) -> LevelRun:
    return asyncio.run(run_level(client, PROMPTS, PARAMS, spec, **kwargs))  # type: ignore[arg-type]


def test_closed_loop_holds_exactly_the_concurrency() -> None:
    client = FakeClient()
    result = run(client, LoadSpec(concurrency=7, duration_s=None, max_requests=70))
    assert client.max_in_flight == 7
    assert len(result.records) == 70
    assert {r.user for r in result.records} == set(range(7))


def test_max_requests_and_warmup() -> None:
    client = FakeClient()
    seen: list[int] = []
    result = run(
        client, LoadSpec(concurrency=3, duration_s=None, max_requests=10, warmup_requests=4), progress=seen.append
    )
    assert [r.warmup for r in result.records].count(True) == 4
    assert len(result.measured) == 10
    assert client.sent == 14
    assert seen == list(range(1, 11))
    assert all(r.start >= result.window_start for r in result.measured)
    assert result.window_end == max(r.end for r in result.measured)
    assert client.prompt_ids[:6] == ["p0", "p1", "p2", "p0", "p1", "p2"]  # round robin over the prompts


def test_duration_bounds_the_window() -> None:
    result = run(FakeClient(delay_s=0.005), LoadSpec(concurrency=2, duration_s=0.15))
    assert result.window_end - result.window_start == pytest.approx(0.15)
    assert result.measured
    assert all(r.start < result.window_end for r in result.measured)


def test_errors_never_stop_the_run() -> None:
    result = run(FakeClient(fail_every=3), LoadSpec(concurrency=2, duration_s=None, max_requests=12))
    assert len(result.records) == 12
    failed = [r for r in result.records if not r.ok]
    assert len(failed) == 4
    assert {r.error for r in failed} == {ErrorKind.CLIENT}
    assert "client bug" in failed[0].error_detail


def test_backstop_timeout_records_a_hung_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("benchmark.loadgen._BACKSTOP_S", 0.0)
    result = run(FakeClient(hang_every=2), LoadSpec(concurrency=2, duration_s=None, max_requests=4, timeout_s=0.1))
    assert [r.error for r in result.records].count(ErrorKind.TIMEOUT) == 2


def test_open_loop_constant_rate_keeps_the_schedule() -> None:
    client = FakeClient(delay_s=0.05)  # slower than the arrival gap: several in flight at once
    result = run(
        client, LoadSpec(concurrency=10, duration_s=None, max_requests=8, request_rate=100, arrival="constant")
    )
    starts = sorted(r.start for r in result.records)
    assert len(starts) == 8
    # Each record starts at its scheduled arrival, whatever the event loop's lateness.
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([0.01] * 7, abs=1e-9)
    assert client.max_in_flight > 1


def test_open_loop_caps_in_flight_at_the_concurrency() -> None:
    client = FakeClient(delay_s=0.03)
    run(client, LoadSpec(concurrency=2, duration_s=None, max_requests=10, request_rate=500, seed=1))
    assert client.max_in_flight == 2


def test_spec_validation_names_every_field() -> None:
    with pytest.raises(ConfigError) as err:
        LoadSpec(concurrency=0, duration_s=-1, warmup_requests=-2, request_rate=0, timeout_s=0, arrival="burst")
    assert set(err.value.fields) == {
        "concurrency",
        "duration_s",
        "warmup_requests",
        "request_rate",
        "timeout_s",
        "arrival",
    }
    assert "concurrency=0: must be an integer >= 1" in str(err.value)
    with pytest.raises(ConfigError, match="must bound the run"):
        LoadSpec(concurrency=1, duration_s=None)


def test_no_prompts_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="prompts"):
        asyncio.run(run_level(FakeClient(), [], PARAMS, LoadSpec(concurrency=1, max_requests=1)))


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    latency = LatencyModel(prefill_base_ms=50, prefill_ms_per_token=0, tpot_base_ms=4, tpot_slope_ms=0.5, tokens=10)
    with EmulatorServer(EmulatorConfig(latency=latency)) as server:
        yield server


@pytest.mark.parametrize(
    ("kind", "concurrency"), [("tgi-http-stream", 12), ("sagemaker-stream", 6), ("openai-chat", 5)]
)
def test_emulator_sees_exactly_the_concurrency(emulator: EmulatorServer, kind: str, concurrency: int) -> None:
    """In-flight count observed by the server never exceeds, and reaches, the number of virtual users."""
    emulator.reset()
    options: dict[str, object] = {}
    target = emulator.base_url
    if kind.startswith("sagemaker"):
        target, options = (
            "ep",
            {
                "endpoint_url": emulator.base_url,
                "region_name": "us-east-1",
                "client_kwargs": {"aws_access_key_id": "x", "aws_secret_access_key": "x"},
            },
        )

    async def go() -> LevelRun:
        client = create_client(kind, target, concurrency=concurrency, timeout_s=10, **options)
        try:
            spec = LoadSpec(concurrency=concurrency, duration_s=None, max_requests=concurrency * 4, warmup_requests=2)
            return await run_level(client, builtin_prompts((16,), per_length=2), PARAMS, spec)
        finally:
            await client.aclose()

    result = asyncio.run(go())
    assert all(r.ok for r in result.records), [r.error_detail for r in result.records if not r.ok]
    assert emulator.stats()["max_in_flight"] == concurrency
    truths = emulator.truth()
    assert len(truths) == concurrency * 4 + 2
    assert max(t.in_flight_at_arrival for t in truths) == concurrency
    # Token counts equal the server's.
    assert sorted(r.generated_tokens or 0 for r in result.records) == sorted(t.tokens for t in truths)
