"""SLO parsing, per-level verdicts and goodput, checked against hand-computed values and the stdlib's type-7
percentile (``statistics.quantiles(method="inclusive")``), not against our own percentile code."""

from __future__ import annotations

import statistics

import pytest

from benchmark.sizing.goodput import EXCEEDED, MET, NO_DATA, TOO_FEW, evaluate
from benchmark.sizing.levels import MeasuredLevel
from benchmark.sizing.plan import SizingOptions, Traffic
from benchmark.sizing.slo import Limit, Slo, parse_slo
from catalog.errors import ConfigError
from tests.benchmark.factories import result
from tests.benchmark.sizing_factories import level


def test_parse_reads_every_limit_and_a_percent_error_rate() -> None:
    slo = parse_slo("ttft_ms.p90<=1500, ms_per_token.p90<=60, e2e_ms.p99.9<=20000, error_rate<=1%")
    assert slo.limits == (
        Limit("ttft_ms", 90.0, 1500.0),
        Limit("ms_per_token", 90.0, 60.0),
        Limit("e2e_ms", 99.9, 20000.0),
    )
    assert slo.max_error_rate == pytest.approx(0.01)
    assert parse_slo("ms_per_token.median<=40").limits == (Limit("ms_per_token", 50.0, 40.0),)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "slo"),  # no limits at all
        ("ttft_ms.p120<=1500", "slo.ttft_ms.percentile"),  # a percentile above 100
        ("ttft_ms.p0<=1500", "slo.ttft_ms.percentile"),
        ("tpot.p90<=60", "slo.metric"),  # an unknown metric
        ("ms_per_token.p90<=-5", "slo.ms_per_token.limit"),
        ("ms_per_token.p90<=fast", "slo.ms_per_token.limit"),
        ("ms_per_token<=60", "slo.percentile"),
        ("ms_per_token.p90<=60, ms_per_token.p90<=50", "slo.ms_per_token"),
        ("error_rate<=1.5", "slo.error_rate"),
        ("ms_per_token > 60", "slo"),
    ],
)
def test_bad_slo_names_the_field(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_slo(text)
    assert [issue.field for issue in caught.value.issues] == [field]
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"peak_rps": -8.0, "average_rps": 3.0}, "peak_rps"),
        ({"peak_rps": 8.0, "average_rps": -1.0}, "average_rps"),
        ({"peak_rps": 8.0, "average_rps": 9.0}, "average_rps"),
        ({"peak_rps": 8.0, "average_rps": 3.0, "daily_profile": (1.0,) * 23}, "daily_profile"),
    ],
)
def test_bad_traffic_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Traffic(**kwargs)  # type: ignore[arg-type]
    assert field in [issue.field for issue in caught.value.issues]


def test_margin_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="margin"):
        SizingOptions(margin=1.0)


def test_verdict_uses_the_type7_percentile_of_the_requests() -> None:
    values = [float(v) for v in range(10, 110, 10)]  # 10 requests: 10, 20, ..., 100 ms/token
    truth = statistics.quantiles(values, n=10, method="inclusive")[8]  # p90, type 7 = 91.0
    under, over = level(4, values), level(4, values)
    assert evaluate(under, parse_slo(f"ms_per_token.p90<={truth}")).meets
    verdict = evaluate(over, parse_slo(f"ms_per_token.p90<={truth - 0.01}"))
    assert not verdict.meets
    assert verdict.checks[0].status == EXCEEDED
    assert verdict.checks[0].value == pytest.approx(truth)
    assert "ms_per_token.p90 91.0 >" in verdict.reason


def test_goodput_counts_the_requests_that_met_every_limit() -> None:
    # 10 ok requests (ms/token 10..100) and 2 failures over a 4 s window; limit 55 -> 5 requests meet it.
    verdict = evaluate(
        level(4, [float(v) for v in range(10, 110, 10)], failed=2, window_s=4.0, tokens=50),
        parse_slo("ms_per_token.median<=55, ttft_ms.p90<=1000, error_rate<=0.2"),
    )
    assert verdict.share_meeting == pytest.approx(5 / 12)
    assert verdict.goodput_rps == pytest.approx(5 / 4.0)
    assert verdict.goodput_tokens_per_s == pytest.approx(5 * 50 / 4.0)
    assert verdict.error_rate == pytest.approx(2 / 12)
    assert verdict.error_status == MET
    assert verdict.meets  # median of 10..100 is 55


def test_error_rate_above_the_limit_fails_the_level() -> None:
    verdict = evaluate(level(4, [10.0] * 10, failed=1), parse_slo("ms_per_token.p90<=60, error_rate<=0.05"))
    assert not verdict.meets
    assert "error rate 0.091" in verdict.reason


def test_too_few_requests_for_the_percentile_does_not_pass() -> None:
    verdict = evaluate(level(1, [10.0] * 9), parse_slo("ms_per_token.p90<=60"))  # p90 needs 10
    assert verdict.checks[0].status == TOO_FEW
    assert not verdict.meets
    assert "needs 10 requests, the level had 9" in verdict.reason


def test_results_without_requests_are_judged_on_their_stored_percentiles() -> None:
    stored = MeasuredLevel(result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 34.0))  # median 34 ms/token, no TTFT
    assert evaluate(stored, parse_slo("ms_per_token.median<=35")).meets
    assert not evaluate(stored, parse_slo("ms_per_token.median<=33")).meets
    verdict = evaluate(stored, parse_slo("ms_per_token.median<=35, ttft_ms.p90<=1000"))
    assert verdict.checks[1].status == NO_DATA and not verdict.meets
    assert verdict.goodput_rps is None and verdict.share_meeting is None
    assert evaluate(stored, parse_slo("ms_per_token.p75<=35")).checks[0].status == NO_DATA  # not stored


def test_slo_with_only_an_error_rate_is_accepted() -> None:
    assert str(Slo((), 0.01)) == "error_rate<=0.01"
