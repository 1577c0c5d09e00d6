"""Metrics against hand-computed ground truth, including every ms/token source and the window rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmark.measure.metrics import (
    LevelMetrics,
    TokenTimeSource,
    coalesced_first_token,
    compute_metrics,
    derived_tokens_per_s_2023,
    ms_per_token,
    output_tokens,
    steady_requests_per_s,
    steady_window,
)
from benchmark.measure.percentiles import Distribution, min_samples, percentile
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.serialize import from_data, to_data


@dataclass(frozen=True)
class Spec:
    concurrency: int


@dataclass
class Run:
    spec: Spec
    window_start: float
    window_end: float
    records: list[RequestRecord] = field(default_factory=list)


def stream(
    start: float, first: float, gap: float, n: int, end: float, *, user: int = 0, counted: bool = True
) -> RequestRecord:
    times = [first + i * gap for i in range(n)]
    return RequestRecord(
        user=user,
        start=start,
        end=end,
        generated_tokens=n if counted else None,
        first_token_at=first,
        token_times=times,
    )


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
    assert from_data(Distribution, to_data(d)) == d


@pytest.mark.parametrize("q", [-0.5, -1e-9, 1.0 + 1e-9, 1.5])
def test_a_quantile_outside_zero_to_one_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="within"):
        percentile([1.0, 2.0], q)
    with pytest.raises(ValueError, match="within"):
        min_samples(q)


def test_support_rule_at_its_ends() -> None:
    assert min_samples(0.0) == 1  # the minimum: every sample lies at or beyond it
    assert min_samples(0.75) == 4
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        min_samples(1.0)  # the maximum is never supported: no sample can lie beyond it


def test_distribution_summary_by_hand() -> None:
    d = Distribution.of([4.0, 1.0, 2.0])  # unsorted on purpose
    # mean 7/3; median h = 1 -> 2.0; p90 h = 1.8 -> 2 + 0.8 * 2 = 3.6
    assert (d.count, d.minimum, d.maximum, d.median) == (3, 1.0, 4.0, 2.0)
    assert d.mean == pytest.approx(7 / 3, rel=1e-12)
    assert d.p90 == pytest.approx(3.6)
    assert d.unsupported == ("p90", "p95", "p99") and d.is_supported("median") and not d.is_supported("p99")
    with pytest.raises(AttributeError):
        d.count = 4  # type: ignore[misc]


def test_distribution_from_a_file_without_count_has_none() -> None:
    d = from_data(Distribution, {"mean": 2.0, "median": "2.5"})
    assert (d.count, d.mean, d.median, d.p99) == (0, 2.0, 2.5, None)
    assert from_data(Distribution, None) == Distribution.of([])


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
        # A warm-up request that ends inside the window: it must count nowhere.
        RequestRecord(user=3, start=-1.0, end=1.0, generated_tokens=50, first_token_at=-0.5, warmup=True),
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
    assert m.completed_tokens_per_s == pytest.approx(18.6)
    assert m.requests_per_min == pytest.approx(30.0)
    # Users' first outputs (0.5, 8.0, 5.0, 3.5) come after the first idle user (6.1): no steady state.
    assert m.steady_start_s is None and m.tokens_per_s == m.completed_tokens_per_s
    assert any("no steady state" in note for note in m.notes)

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
    assert m.ttft_ms.count == 3  # the warm-up's TTFT (500 ms) is not among them
    assert m.ttft_ms.median == pytest.approx(500.0)
    assert m.ttft_ms.mean == pytest.approx(1400 / 3)  # (500 + 400 + 500) / 3
    assert m.e2e_ms.mean == pytest.approx(3000.0)
    assert m.derived_tokens_per_s_2023 == pytest.approx(4 * 50 * 1000 / 3000)
    assert any("outside the measurement window" in note for note in m.notes)
    assert any("e2e / tokens" in note for note in m.notes)


def test_metrics_round_trip_through_json(level: Run) -> None:
    m = compute_metrics(level, max_new_tokens=50)
    assert from_data(LevelMetrics, to_data(m)) == m


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


# --- steady-state throughput ------------------------------------------------------------------------------


def cycle(user: int, first_start: float, requests: int, *, counted: bool = True) -> list[RequestRecord]:
    """A closed-loop user: first token 0.5 s after sending, 8 tokens 0.125 s apart, next request at once.

    Binary-exact times, so the window edges below are exact ties, not float accidents.
    """
    records = []
    start = first_start
    for _ in range(requests):
        end = start + 0.5 + 7 * 0.125
        records.append(stream(start, start + 0.5, 0.125, 8, end, user=user, counted=counted))
        start = end
    return records


@pytest.fixture
def steady_level() -> Run:
    # User 0 sends at 0, 1.375, ..., ends at 6.875; user 1 at 0.25, ..., ends at 7.125.
    return Run(Spec(concurrency=2), 0.0, 7.0, [*cycle(0, 0.0, 5), *cycle(1, 0.25, 5)])


def test_steady_window_opens_after_every_cold_start_and_closes_when_a_user_goes_idle(steady_level: Run) -> None:
    # Opens at user 1's first token (0.75); closes when user 0 finishes its last request (6.875).
    assert steady_window(steady_level.records) == (0.75, 6.875)
    m = compute_metrics(steady_level)
    assert (m.steady_start_s, m.steady_end_s, m.steady_window_s) == (0.75, 6.875, 6.125)
    # Counted in (0.75, 6.875]: user 0 loses 0.5, 0.625 and 0.75 of its 40 tokens; user 1 its opening
    # token (0.75) and the two after 6.875 (7.0, 7.125). The true rate is 2 x 8 / 1.375 = 11.6 tokens/s.
    assert m.tokens_per_s == pytest.approx(74 / 6.125)
    # Completion-counted over the load window [0, 7]: all 10 requests ended by 7.0 except user 1's last.
    assert m.completed_tokens_per_s == pytest.approx(72 / 7.0)
    assert not any("steady" in note for note in m.notes)


def test_warmup_tokens_inside_the_steady_window_do_not_count(steady_level: Run) -> None:
    warmup = stream(1.0, 1.5, 0.125, 8, 2.375, user=2)
    warmup.warmup = True
    steady_level.records.append(warmup)
    m = compute_metrics(steady_level)
    assert (m.steady_start_s, m.steady_end_s) == (0.75, 6.875)
    assert m.tokens_per_s == pytest.approx(74 / 6.125)
    assert m.completed_tokens_per_s == pytest.approx(72 / 7.0)
    assert m.requests_total == 10


def test_failed_requests_shape_the_window_but_add_no_tokens(steady_level: Run) -> None:
    # User 1's third request fails after 5 of its 8 tokens: they are not delivered output.
    failed = steady_level.records[7]
    failed.error = ErrorKind.DROPPED_STREAM
    m = compute_metrics(steady_level)
    assert steady_window(steady_level.records) == (0.75, 6.875)
    assert m.tokens_per_s == pytest.approx(66 / 6.125)


def test_stream_without_a_server_count_counts_its_token_events() -> None:
    record = stream(0.0, 0.5, 0.125, 7, 1.25, counted=False)
    assert output_tokens(record) == 7
    assert output_tokens(RequestRecord(user=0, start=0.0, end=1.0)) is None
    run = Run(Spec(concurrency=2), 0.0, 7.0, [*cycle(0, 0.0, 5, counted=False), *cycle(1, 0.25, 5, counted=False)])
    m = compute_metrics(run)
    assert m.output_tokens == 72  # 9 completed requests x 8 token events
    assert m.tokens_per_s == pytest.approx(74 / 6.125)


def test_server_count_spreads_over_the_token_events() -> None:
    # The server counted 16 tokens for 8 events (two tokens per chunk): each event carries two.
    records = [*cycle(0, 0.0, 5), *cycle(1, 0.25, 5)]
    for record in records:
        record.generated_tokens = 16
    m = compute_metrics(Run(Spec(concurrency=2), 0.0, 7.0, records))
    assert m.tokens_per_s == pytest.approx(148 / 6.125)


def test_requests_without_token_times_count_at_completion_inside_the_steady_window() -> None:
    # Non-streaming closed loop: each request takes 1 s and returns 10 tokens; user 1 offset by 0.5 s.
    records = [
        RequestRecord(user=u, start=u * 0.5 + k, end=u * 0.5 + k + 1.0, generated_tokens=10)
        for u in (0, 1)
        for k in range(6)
    ]
    m = compute_metrics(Run(Spec(concurrency=2), 0.0, 6.0, records))
    # Opens at user 1's first completion (1.5), closes at user 0's last (6.0); completions in (1.5, 6.0]:
    # 2, 3, 4, 5, 6 (user 0) and 2.5, 3.5, 4.5, 5.5 (user 1) = 9 requests in 4.5 s: exactly 2 x 10 tokens/s.
    assert (m.steady_start_s, m.steady_end_s) == (1.5, 6.0)
    assert m.tokens_per_s == pytest.approx(20.0)


# --- edges the rules name ------------------------------------------------------------------------------------


def per_token(record: RequestRecord) -> tuple[float, TokenTimeSource]:
    found = ms_per_token(record)
    assert found is not None
    return round(found[0], 9), found[1]


def test_ms_per_token_at_the_two_token_boundary() -> None:
    # Two stream events 0.3 -> 0.9 s: one gap of 600 ms (a span measured from 0.3, not from 0).
    two = RequestRecord(user=0, start=0.0, end=1.0, generated_tokens=2, first_token_at=0.3, token_times=[0.3, 0.9])
    assert per_token(two) == (600.0, TokenTimeSource.STREAM)
    # One event but a server count of 2: (e2e 1.0 - TTFT 0.3) / 1 gap = 700 ms
    one_event = RequestRecord(user=0, start=0.0, end=1.0, generated_tokens=2, first_token_at=0.3, token_times=[0.3])
    assert per_token(one_event) == (700.0, TokenTimeSource.E2E_MINUS_TTFT)
    # A single token has no gap after the first: e2e / n is all that is left
    single = RequestRecord(user=0, start=0.0, end=1.0, generated_tokens=1, first_token_at=0.3)
    assert per_token(single) == (1000.0, TokenTimeSource.E2E_OVER_N)


def test_a_level_names_its_single_ms_per_token_source(steady_level: Run) -> None:
    m = compute_metrics(steady_level)
    assert (m.ms_per_token_sources, m.ms_per_token_source) == ({"stream": 9}, "stream")
    empty = compute_metrics(Run(Spec(concurrency=1), 0.0, 1.0, []))
    assert (empty.ms_per_token_sources, empty.ms_per_token_source) == ({}, "none")
    with pytest.raises(AttributeError):
        m.window_s = 1.0  # type: ignore[misc]


def test_window_is_closed_with_float_slack_and_need_not_start_at_zero() -> None:
    def ending(end: float) -> RequestRecord:
        return RequestRecord(user=0, start=end - 1.0, end=end, generated_tokens=10)

    records = [ending(t) for t in (9.5, 10.0, 13.0, 20.0, 20.0 + 1e-10, 20.0 + 1e-6)]
    m = compute_metrics(Run(Spec(concurrency=1), 10.0, 20.0, records))
    assert m.window_s == 10.0
    assert m.requests_ok == 4  # 10.0, 13.0, 20.0 and 20.0 + 1e-10 (clock noise) are inside [10, 20]
    assert m.completed_tokens_per_s == pytest.approx(4.0)  # 40 tokens / 10 s
    assert m.completed_requests_per_min == pytest.approx(24.0)  # 4 requests / 10 s
    # The requests' steady window runs from the user's first completion (9.5) to its last (20 + 1e-6):
    # 5 completions in (9.5, 20.000001].
    assert m.requests_per_min == pytest.approx(5 / (10.5 + 1e-6) * 60)
    assert "2 successful request(s) ended outside the measurement window and are not counted" in m.notes


def test_uncounted_requests_are_counted_in_the_note() -> None:
    records = [
        RequestRecord(user=0, start=0.0, end=1.0),  # no count, no token times
        RequestRecord(user=0, start=1.0, end=2.0, generated_tokens=10),
    ]
    m = compute_metrics(Run(Spec(concurrency=1), 0.0, 0.5 + 1.5, records))
    assert m.output_tokens == 10
    assert "1 successful request(s) reported no token count and add 0 tokens to throughput" in m.notes
    assert not any("outside the measurement window" in note for note in m.notes)


def test_a_window_shorter_than_a_second_still_has_rates_and_an_empty_one_has_none() -> None:
    short = compute_metrics(
        Run(Spec(concurrency=1), 0.0, 0.5, [RequestRecord(user=0, start=0.0, end=0.5, generated_tokens=5)])
    )
    assert (short.completed_tokens_per_s, short.requests_per_min) == (10.0, 120.0)  # 5 / 0.5 and 1 / 0.5 x 60
    empty = compute_metrics(Run(Spec(concurrency=1), 3.0, 3.0, []))
    assert (empty.window_s, empty.completed_tokens_per_s, empty.requests_per_min) == (0.0, None, None)


def test_derived_2023_mean_is_not_rounded_and_needs_a_positive_time() -> None:
    assert derived_tokens_per_s_2023(1, 50, [1000.0, 1001.0]) == pytest.approx(50_000 / 1000.5, rel=1e-12)
    assert derived_tokens_per_s_2023(1, 50, [0.5]) == pytest.approx(100_000.0)
    assert derived_tokens_per_s_2023(1, 50, [0.0, 0.0]) is None


def test_metrics_from_a_minimal_row_have_zero_counts() -> None:
    m = from_data(LevelMetrics, {"concurrency": 3})
    assert (m.concurrency, m.window_s, m.requests_total, m.requests_ok, m.requests_failed) == (3, 0.0, 0, 0, 0)
    assert (m.output_tokens, m.tokens_per_s, m.errors_by_kind, m.max_new_tokens) == (0, None, {}, None)


# --- requests/s in steady state ------------------------------------------------------------------------------


def fixed_cycle(user: int, offset: float, cycle: float, requests: int) -> list[RequestRecord]:
    """A closed-loop user repeating one request of ``cycle`` seconds (no token times), from ``offset``."""
    return [
        RequestRecord(user=user, start=offset + k * cycle, end=offset + (k + 1) * cycle, generated_tokens=10)
        for k in range(requests)
    ]


@pytest.mark.parametrize("step", [2**-10, 0.125], ids=["in-step", "out-of-step"])
def test_requests_per_s_is_the_users_cycle_rate_in_step_or_not(step: float) -> None:
    # 4 users, each a 0.5 s cycle, 16 requests, user u starting u x step later: by hand 4 / 0.5 = 8 requests/s.
    # In step (a millisecond apart), every user but the first to go idle ends its last request just after
    # the window closes: one shared window would count 15 + 3 x 14 completions in 7.5 s (7.6 requests/s).
    records = [r for u in range(4) for r in fixed_cycle(u, u * step, 0.5, 16)]
    assert steady_requests_per_s(records) == pytest.approx(8.0)
    m = compute_metrics(Run(Spec(concurrency=4), 0.0, 8.0, records))
    assert m.requests_per_min == pytest.approx(8.0 * 60)
    # Counted from the first send, as before: the cold first cycle lowers it (15 of 16 cycles end by 8 s).
    expected_completed = sum(1 for r in records if r.end <= 8.0) / 8.0 * 60
    assert m.completed_requests_per_min == pytest.approx(expected_completed)
    assert m.completed_requests_per_min is not None and m.completed_requests_per_min < 0.97 * 8.0 * 60


def test_requests_per_s_counts_a_stall_and_leaves_out_failures_and_warmups() -> None:
    fast = fixed_cycle(0, 0.0, 0.5, 16)  # 2 requests/s
    # User 1: 0.5 s cycles, then a request that fails after 4 s across the window's end.
    slow = fixed_cycle(1, 0.0, 0.5, 8)
    slow.append(RequestRecord(user=1, start=4.0, end=8.0, error=ErrorKind.TIMEOUT))
    warmup = RequestRecord(user=2, start=-1.0, end=3.0, generated_tokens=10, warmup=True)
    rate = steady_requests_per_s([*fast, *slow, warmup])
    # Window: opens at 0.5 (both users' first completion), closes at 8.0 (user 1's last end). User 0: 15
    # completions in (0.5, 8.0] = 2/s; user 1: its 7 successful completions in (0.5, 8.0], over 7.5 s.
    assert rate == pytest.approx(15 / 7.5 + 7 / 7.5)
    assert steady_requests_per_s(fixed_cycle(0, 0.0, 1.0, 1)) is None  # one request: no steady state


# --- coalesced first tokens (kernel stamps shared with later bytes) ----------------------------------------


def streams_with_coalesced(total: int, coalesced: int, *, single: int = 0) -> list[RequestRecord]:
    """``total`` successful streams of 4 tokens, one user each; the first ``coalesced`` have their first two
    tokens in one read (the same time); then ``single`` one-token streams whose token arrived with the end."""
    records = []
    for user in range(total):
        record = stream(0.0, 0.1, 0.01, 4, 0.2, user=user)
        if user < coalesced:
            record.token_times[0] = record.first_token_at = record.token_times[1]
        records.append(record)
    for user in range(total, total + single):
        records.append(
            RequestRecord(user=user, start=0.0, end=0.15, generated_tokens=1, first_token_at=0.15, token_times=[0.15])
        )
    return records


@pytest.mark.parametrize(
    ("coalesced", "single", "share", "flagged"),
    [
        (0, 0, 0.0, False),
        (1, 0, 0.01, False),  # exactly 1 %: not above the limit
        (2, 0, 0.02, True),
        (1, 1, 0.02, True),  # a one-token stream stamped with its end counts too
    ],
)
def test_coalesced_first_tokens_are_counted_and_flagged_above_one_percent(
    coalesced: int, single: int, share: float, flagged: bool
) -> None:
    records = streams_with_coalesced(100 - single, coalesced, single=single)
    records.append(RequestRecord(user=500, start=0.0, end=0.2, generated_tokens=4))  # not streamed: not counted
    records.append(RequestRecord(user=501, start=0.0, end=0.2, error=ErrorKind.TIMEOUT))  # failed: not counted
    m = compute_metrics(Run(Spec(concurrency=102), 0.0, 1.0, records))
    assert (m.streamed_ok, m.coalesced_first_tokens) == (100, coalesced + single)
    assert m.coalesced_first_token_share == pytest.approx(share)
    assert m.late_first_tokens is flagged
    data = to_data(m)
    assert (data["coalesced_first_token_share"], data["late_first_tokens"]) == (m.coalesced_first_token_share, flagged)
    assert from_data(LevelMetrics, data) == m
    assert any(note.startswith("TTFT may read late") and "--workers" in note for note in m.notes) is flagged


def test_a_level_without_streams_has_no_coalesced_share() -> None:
    m = compute_metrics(Run(Spec(concurrency=1), 0.0, 1.0, [RequestRecord(user=0, start=0.0, end=0.5)]))
    assert (m.streamed_ok, m.coalesced_first_token_share, m.late_first_tokens) == (0, None, False)
    assert coalesced_first_token(RequestRecord(user=0, start=0.0, end=0.5)) is None
