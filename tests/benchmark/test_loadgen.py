"""The load generator: closed-loop concurrency held exactly, bounds, warm-up, open loop, validation."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import pytest

from benchmark.clients import create_client
from benchmark.emulator import EmulatorConfig, EmulatorServer, LatencyModel
from benchmark.measure.loadgen import LevelRun, LoadSpec, run_level
from benchmark.measure.prompts import GenerationParams, Prompt, builtin_prompts
from benchmark.measure.records import ErrorKind, RequestRecord
from catalog.errors import ConfigError

PROMPTS = [Prompt(text=f"prompt {i}", id=f"p{i}") for i in range(3)]
PARAMS = GenerationParams()


class FakeClient:
    """Counts requests in flight; optionally fails or hangs on chosen requests."""

    name = "fake"
    streaming = False

    def __init__(
        self, delay_s: float = 0.002, fail_every: int = 0, hang_every: int = 0, block_first_s: float = 0.0
    ) -> None:
        self.delay_s, self.fail_every, self.hang_every = delay_s, fail_every, hang_every
        self.block_first_s = block_first_s  # the first send blocks the event loop this long (a stalled loop)
        self.in_flight = self.max_in_flight = self.sent = 0
        self.prompt_ids: list[str] = []
        self.sent_at: dict[int, float] = {}  # user -> when its first request really reached the client

    async def send(self, prompt: Prompt, params: GenerationParams, *, user: int) -> RequestRecord:
        self.sent += 1
        number = self.sent
        self.sent_at.setdefault(user, time.perf_counter())
        if number == 1 and self.block_first_s:
            time.sleep(self.block_first_s)
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
    monkeypatch.setattr("benchmark.measure.loadgen._BACKSTOP_S", 0.0)
    result = run(FakeClient(hang_every=2), LoadSpec(concurrency=2, duration_s=None, max_requests=4, timeout_s=0.1))
    assert [r.error for r in result.records].count(ErrorKind.TIMEOUT) == 2


def test_open_loop_constant_rate_keeps_the_schedule() -> None:
    client = FakeClient(delay_s=0.05)  # slower than the arrival gap: several in flight at once
    result = run(
        client, LoadSpec(concurrency=10, duration_s=None, max_requests=8, request_rate=100, arrival="constant")
    )
    starts = sorted(r.start for r in result.records)
    assert len(starts) == 8
    # Each record starts at its scheduled arrival ...
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([0.01] * 7, abs=1e-9)
    # ... and, by the client's own clock, really went out then (user = request number here), never early; the
    # lateness is what the loop reports. The bound is loose (a busy 2-core CI machine can deschedule the loop
    # for a few ms); falling behind for real is tested with a deterministic stall below.
    sent = [client.sent_at[user] for user in range(8)]
    lateness = [actual - scheduled for actual, scheduled in zip(sent, starts, strict=True)]
    assert all(0 <= late < 0.05 for late in lateness)
    assert len(result.dispatch_lag_s) == 8
    assert all(0 <= lag < 0.05 for lag in result.dispatch_lag_s)
    assert client.max_in_flight > 1


def test_open_loop_falling_behind_is_reported_and_counted_as_latency() -> None:
    # The first send stalls the event loop for 60 ms: arrivals due at 10, 20, ... 50 ms go out late.
    client = FakeClient(delay_s=0.001, block_first_s=0.06)
    result = run(
        client, LoadSpec(concurrency=10, duration_s=None, max_requests=6, request_rate=100, arrival="constant")
    )
    assert max(result.dispatch_lag_s) >= 0.04
    by_start = sorted(result.records, key=lambda r: r.start)
    # The second arrival (due at 10 ms) was sent after the stall: its latency includes the 50 ms wait.
    assert client.sent_at[1] - by_start[1].start >= 0.045
    assert by_start[1].e2e_s >= 0.045


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


def test_ramp_up_spreads_the_first_requests_evenly() -> None:
    client = FakeClient(delay_s=0.001)
    run(client, LoadSpec(concurrency=4, duration_s=0.3, ramp_up_s=0.2))
    first = [client.sent_at[user] - client.sent_at[0] for user in range(4)]
    for user, offset in enumerate(first):
        assert 0.05 * user - 0.002 <= offset < 0.05 * user + 0.03  # user 0 itself may go out a little late


def test_without_ramp_up_every_user_sends_at_once() -> None:
    client = FakeClient(delay_s=0.001)
    run(client, LoadSpec(concurrency=4, duration_s=None, max_requests=8))
    assert max(client.sent_at.values()) - min(client.sent_at.values()) < 0.03
