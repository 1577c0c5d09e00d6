"""Metrics against hand-computed ground truth, including every ms/token source and the window rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmark.metrics import LevelMetrics, TokenTimeSource, compute_metrics, derived_tokens_per_s_2023, ms_per_token
from benchmark.percentiles import Distribution, min_samples, percentile
from benchmark.records import ErrorKind, RequestRecord


@dataclass(frozen=True)
class Spec:
    concurrency: int


@dataclass
class Run:
    spec: Spec
    window_start: float
    window_end: float
    records: list[RequestRecord] = field(default_factory=list)


def stream(start: float, first: float, gap: float, n: int, end: float) -> RequestRecord:
    times = [first + i * gap for i in range(n)]
    return RequestRecord(user=0, start=start, end=end, generated_tokens=n, first_token_at=first, token_times=times)


# --- percentiles -----------------------------------------------------------------------------------------


def test_type7_percentile_matches_hand_computation() -> None:
    data = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(data, 0.0) == 15.0
    assert percentile(data, 1.0) == 50.0
    assert percentile(data, 0.5) == 35.0
    assert percentile(data, 0.4) == pytest.approx(29.0)  # h = 1.6: 20 + 0.6 * (35 - 20)
    assert percentile(data, 0.9) == pytest.approx(46.0)  # h = 3.6: 40 + 0.6 * 10
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.5) == 1.5


def test_percentile_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 1.5)


def test_support_rule_needs_one_sample_beyond_the_percentile() -> None:
    assert [min_samples(q) for q in (0.5, 0.9, 0.95, 0.99)] == [2, 10, 20, 100]
    full = Distribution.of(float(i) for i in range(1, 101))
    assert full.unsupported == ()
    assert full.p99 == pytest.approx(99.01)  # h = 98.01
    short = Distribution.of(float(i) for i in range(1, 100))
    assert short.unsupported == ("p99",)
    assert Distribution.of([3.0]).unsupported == ("median", "p90", "p95", "p99")
    empty = Distribution.of([])
    assert empty.count == 0 and empty.median is None


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=60), st.floats(0, 1), st.floats(0, 1))
def test_percentile_is_monotone_and_within_range(values: list[float], a: float, b: float) -> None:
    data = sorted(values)
    low, high = sorted((a, b))
    assert data[0] <= percentile(data, low) <= percentile(data, high) + 1e-6 <= data[-1] + 1e-6


def test_distribution_round_trips_through_json() -> None:
    d = Distribution.of([1.0, 2.0, 4.0])
    assert Distribution.from_dict(d.to_dict()) == d


# --- ms per token sources ----------------------------------------------------------------------------------


def test_ms_per_token_prefers_stream_times_then_ttft_then_server_then_e2e() -> None:
    def check(record: RequestRecord, ms: float, source: TokenTimeSource) -> None:
        found = ms_per_token(record)
        assert found is not None
        assert found[0] == pytest.approx(ms)
        assert found[1] is source

    check(stream(0.0, 0.5, 0.025, 9, 1.0), 25.0, TokenTimeSource.STREAM)
    check(
        RequestRecord(user=0, start=0.0, end=3.0, generated_tokens=26, first_token_at=0.5),
        100.0,
        TokenTimeSource.E2E_MINUS_TTFT,
    )
    server = RequestRecord(user=0, start=0.0, end=3.0, generated_tokens=26, server_timings={"x-time-per-token": 42.0})
    check(server, 42.0, TokenTimeSource.SERVER)
    check(RequestRecord(user=0, start=0.0, end=4.0, generated_tokens=20), 200.0, TokenTimeSource.E2E_OVER_N)
    assert ms_per_token(RequestRecord(user=0, start=0.0, end=1.0)) is None


# --- a whole level ------------------------------------------------------------------------------------------


@pytest.fixture
def level() -> Run:
    records = [
        RequestRecord(user=0, start=-3.0, end=-1.0, generated_tokens=50, warmup=True),
        stream(0.0, 0.5, 0.03, 50, 2.0),  # 30 ms/token, TTFT 500, e2e 2000
        stream(1.0, 1.4, 0.05, 50, 4.0),  # 50 ms/token, TTFT 400, e2e 3000
        RequestRecord(user=2, start=2.0, end=5.0, generated_tokens=40, server_timings={"x-time-per-token": 70.0}),
        RequestRecord(user=3, start=3.0, end=6.0, generated_tokens=26, first_token_at=3.5),  # (3000-500)/25 = 100
        RequestRecord(user=1, start=4.0, end=8.0, generated_tokens=20),  # 4000/20 = 200
        RequestRecord(user=0, start=9.0, end=11.0, generated_tokens=50),  # ends after the window
        RequestRecord(user=1, start=5.0, end=9.0, error=ErrorKind.TIMEOUT),
        RequestRecord(user=2, start=6.0, end=6.1, error=ErrorKind.THROTTLED),
        RequestRecord(user=3, start=6.2, end=6.3, error=ErrorKind.THROTTLED),
    ]
    return Run(Spec(concurrency=4), 0.0, 10.0, records)


def test_level_metrics_match_ground_truth(level: Run) -> None:
    m = compute_metrics(level, max_new_tokens=50)
    assert m.concurrency == 4
    assert m.window_s == 10.0
    assert (m.requests_total, m.requests_ok, m.requests_failed) == (9, 5, 3)
    assert m.error_rate == pytest.approx(3 / 9)
    assert m.errors_by_kind == {"throttled": 2, "timeout": 1}
    assert m.output_tokens == 186  # 50 + 50 + 40 + 26 + 20; warm-up and late request excluded
    assert m.tokens_per_s == pytest.approx(18.6)
    assert m.requests_per_min == pytest.approx(30.0)

    # per-request ms/token: [30, 50, 70, 100, 200]
    assert m.ms_per_token.count == 5
    assert m.ms_per_token.median == pytest.approx(70.0)
    assert m.ms_per_token.p90 == pytest.approx(160.0)  # h = 3.6: 100 + 0.6 * 100
    assert m.ms_per_token.p95 == pytest.approx(180.0)
    assert m.ms_per_token.p99 == pytest.approx(196.0)
    assert m.ms_per_token.unsupported == ("p90", "p95", "p99")
    assert m.ms_per_token_sources == {"e2e_minus_ttft": 1, "e2e_over_n": 1, "server_time_per_token": 1, "stream": 2}
    assert m.ms_per_token_source == "mixed"

    assert m.inter_token_ms.count == 98
    assert m.inter_token_ms.median == pytest.approx(40.0)  # 49 gaps of 30 ms and 49 of 50 ms
    assert m.ttft_ms.count == 3
    assert m.ttft_ms.median == pytest.approx(500.0)
    assert m.e2e_ms.mean == pytest.approx(3000.0)
    assert m.derived_tokens_per_s_2023 == pytest.approx(4 * 50 * 1000 / 3000)
    assert any("outside the measurement window" in note for note in m.notes)
    assert any("e2e / tokens" in note for note in m.notes)


def test_metrics_round_trip_through_json(level: Run) -> None:
    m = compute_metrics(level, max_new_tokens=50)
    assert LevelMetrics.from_dict(m.to_dict()) == m


def test_all_failed_level_has_no_throughput_or_latency() -> None:
    run = Run(Spec(2), 0.0, 5.0, [RequestRecord(user=0, start=0.0, end=1.0, error=ErrorKind.HTTP_5XX)])
    m = compute_metrics(run, max_new_tokens=50)
    assert m.error_rate == 1.0
    assert m.tokens_per_s == 0.0
    assert m.ms_per_token.median is None
    assert m.derived_tokens_per_s_2023 is None


def test_derived_2023_formula() -> None:
    assert derived_tokens_per_s_2023(20, 50, [2000.0, 2500.0]) == pytest.approx(20 * 50 * 1000 / 2250)
    assert derived_tokens_per_s_2023(1, 50, []) is None
