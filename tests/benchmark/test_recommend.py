"""Recommendation rules: the right winner, limits, configurable concurrency, deterministic ties, explanations."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from benchmark.analysis.recommend import DEFAULT_RULES, recommend, recommend_one, rules_with
from tests.benchmark.factories import RESULTS, result


def test_default_rules_pick_the_expected_winner_per_model() -> None:
    recs = {(r.rule.name, r.model): r for r in recommend(RESULTS)}
    assert set(recs) == {(rule.name, m) for rule in DEFAULT_RULES for m in ("7b", "13b")}
    assert recs["cost", "7b"].winner is RESULTS[0]
    assert recs["latency", "7b"].winner is RESULTS[2]
    assert recs["throughput", "7b"].winner is RESULTS[4]
    assert recs["latency", "13b"].winner is RESULTS[6]
    assert recs["cost", "13b"].winner is None
    assert "no results for this model at concurrency 5" in recs["cost", "13b"].explanation


def test_rule_text_says_metric_concurrency_limits_and_tie_break() -> None:
    (cost, latency, throughput) = rules_with(max_error_rate=0.01, max_ms_per_token=50)
    assert cost.describe() == (
        "lowest $ per 1M output tokens at concurrency 5, among results with median ms/token <= 50 and "
        "error rate <= 1.00%; ties go to the lowest median ms per output token, then the configuration key"
    )
    assert latency.describe().startswith("lowest median ms per output token at concurrency 1")
    assert throughput.describe().startswith("highest output tokens/s at concurrency 20")


def test_limits_exclude_candidates_and_explain_when_none_qualifies() -> None:
    noisy = result("7b", "gptq", "ml.g5.2xlarge", 5, 500.0, 20.0, error_rate=0.2)
    (cost, _, _) = rules_with(max_error_rate=0.05)
    rec = recommend_one(cost, "7b", [noisy, RESULTS[0]])
    assert rec.winner is RESULTS[0] and (rec.considered, rec.qualified) == (2, 1)

    (_, _, throughput) = rules_with(max_ms_per_token=40.0)
    rec = recommend_one(throughput, "7b", RESULTS)
    assert rec.winner is None
    assert "no candidate qualifies" in rec.explanation
    assert "median ms/token 44.0 > 40" in rec.explanation and "median ms/token 90.0 > 40" in rec.explanation


def test_a_level_without_output_is_never_recommended() -> None:
    idle = result("7b", "gptq", "ml.g5.2xlarge", 20, 0.0, 10.0)
    rec = recommend_one(DEFAULT_RULES[2], "7b", [idle])
    assert rec.winner is None
    assert "no output tokens measured" in rec.explanation


def test_concurrency_is_configurable_per_rule() -> None:
    (cost, _, _) = rules_with(concurrency={"cost": 20})
    rec = recommend_one(cost, "7b", RESULTS)
    assert cost.concurrency == 20
    # at 20 users: g5.2xlarge $1.515/h / 200 tok/s = $2.10/1M beats g5.12xlarge $7.09/h / 450 = $4.38/1M
    assert rec.winner is RESULTS[5]


def test_ties_are_broken_by_secondary_metric_then_key() -> None:
    a = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 40.0, label="b")
    b = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 30.0, label="c")
    c = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 30.0, label="a")
    cost = DEFAULT_RULES[0]
    for order in ([a, b, c], [c, b, a], [b, a, c]):
        assert recommend_one(cost, "7b", order).winner is c  # same $ -> lower ms/token -> key "…/a" < "…/c"


def test_a_candidate_exactly_at_a_limit_qualifies_and_one_just_above_does_not() -> None:
    # The rule text says "<=": a limit is the worst value still accepted (0.25 and 40.0 are exact in binary).
    (cost, _, _) = rules_with(max_ms_per_token=40.0, max_error_rate=0.25)
    at_limit = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 40.0, error_rate=0.25)
    rec = recommend_one(cost, "7b", [at_limit])
    assert rec.winner is at_limit and rec.qualified == 1

    slow = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 40.000001, error_rate=0.25)
    noisy = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 40.0, error_rate=0.250001)
    assert recommend_one(cost, "7b", [slow]).winner is None
    assert recommend_one(cost, "7b", [noisy]).winner is None
    assert "error rate 25.00% > 25.00%" in recommend_one(cost, "7b", [noisy]).explanation


def test_an_unknown_error_rate_is_not_held_against_a_candidate() -> None:
    (cost, _, _) = rules_with(max_ms_per_token=40.0, max_error_rate=0.0)
    unknown_rate = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 30.0, error_rate=None)  # type: ignore[arg-type]
    assert recommend_one(cost, "7b", [unknown_rate]).winner is unknown_rate


def test_rejections_name_the_missing_metric_and_round_the_measured_value() -> None:
    (cost, latency, _) = rules_with(max_ms_per_token=40.0)
    unmeasured = result("7b", "gptq", "ml.g5.2xlarge", 1, 120.0, None)  # type: ignore[arg-type]
    rec = recommend_one(latency, "7b", [unmeasured])
    assert (rec.winner, rec.considered, rec.qualified) == (None, 1, 0)
    assert rec.explanation.endswith(": no median ms per output token")
    # cost rule: $ is known, so the missing ms/token fails the ms/token limit instead, shown as None
    at_5 = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, None)  # type: ignore[arg-type]
    assert recommend_one(cost, "7b", [at_5]).explanation.endswith(": median ms/token None > 40")
    slow = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 40.123456)
    assert recommend_one(cost, "7b", [slow]).explanation.endswith(": median ms/token 40.12 > 40")


def test_a_trickle_of_output_still_counts_and_other_models_are_not_considered() -> None:
    trickle = result("7b", "gptq", "ml.g5.2xlarge", 20, 0.5, 10.0)  # half a token per second is output
    assert recommend_one(DEFAULT_RULES[2], "7b", [trickle]).winner is trickle
    # "13b" sorts before "7b" as text: only an exact model match may enter the pool
    other_model = result("13b", "gptq", "ml.g5.2xlarge", 5, 120.0, 30.0)
    rec = recommend_one(DEFAULT_RULES[0], "7b", [other_model])
    assert (rec.winner, rec.considered, rec.qualified) == (None, 0, 0)


def test_rules_and_recommendations_are_immutable() -> None:
    rec = recommend_one(DEFAULT_RULES[0], "7b", RESULTS)
    with pytest.raises(FrozenInstanceError):
        rec.rule.concurrency = 1  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        rec.winner = None  # type: ignore[misc]
