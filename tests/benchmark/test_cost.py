"""Cost per 1M tokens and the bandwidth bound against hand-computed values."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.cost import (
    CostEstimate,
    estimate,
    import_price,
    minutes_per_million,
    parse_price_overrides,
    price_for,
    usd_per_million,
)
from benchmark.analysis.headroom import headroom
from benchmark.serialize import from_data, to_data
from catalog import get_price
from catalog.errors import ConfigError


def test_minutes_and_dollars_per_million_tokens() -> None:
    # 1e6 / 120.0941633 = 8326.7993 s -> 138.78 min; x 1.515 / 3600 -> $3.50
    assert round(minutes_per_million(120.0941633), 2) == 138.78
    assert round(usd_per_million(120.0941633, 1.515), 2) == 3.50
    # 1e6 / 449.9423027 = 2222.507 s -> 37.04 min; x 7.09 / 3600 -> $4.38
    assert round(minutes_per_million(449.9423027), 2) == 37.04
    assert round(usd_per_million(449.9423027, 7.09), 2) == 4.38


def test_estimate_carries_price_date_and_source() -> None:
    price = get_price("ml.g5.2xlarge", "us-east-1")
    cost = estimate(100.0, price)
    assert cost.usd_per_hour == 1.515
    assert (cost.price_as_of, cost.price_source) == (price.as_of, price.source)
    assert cost.minutes_per_1m_tokens == pytest.approx(1e6 / 100 / 60)
    assert cost.usd_per_1m_tokens == pytest.approx(1e6 / 100 / 3600 * 1.515)


def test_dollars_are_not_rounded_to_whole_seconds() -> None:
    # 1e6 x 7.09 / (450 x 3600) = 7.09e6 / 1.62e6 = 4.376543209876543 (1e6 // 450 would give 4.37606)
    assert usd_per_million(450.0, 7.09) == pytest.approx(4.376543209876543, rel=1e-12)
    assert minutes_per_million(450.0) == pytest.approx(1e6 / 27_000, rel=1e-12)  # 37.037037...


def test_a_fraction_of_a_token_per_second_still_has_a_cost() -> None:
    cost = estimate(0.5, get_price("ml.g5.2xlarge", "us-east-1"))
    # 1e6 / 0.5 = 2e6 s -> 33333.33 min; x 1.515 / 3600 -> $841.67
    assert cost.minutes_per_1m_tokens == pytest.approx(2e6 / 60)
    assert cost.usd_per_1m_tokens == pytest.approx(2e6 / 3600 * 1.515)


@pytest.mark.parametrize("tps", [0.0, None, -0.5, -5.0])
def test_no_tokens_means_no_cost_figures(tps: float | None) -> None:
    cost = estimate(tps, get_price("ml.g5.2xlarge"))
    assert cost.minutes_per_1m_tokens is None and cost.usd_per_1m_tokens is None


def test_cost_estimate_reads_back_from_a_results_file() -> None:
    row = {
        "instance_type": "ml.g5.2xlarge",
        "region": "us-east-1",
        "usd_per_hour": "1.515",
        "tokens_per_s": 120,
        "minutes_per_1m_tokens": None,
    }
    cost = from_data(CostEstimate, row)
    assert (cost.usd_per_hour, cost.tokens_per_s) == (1.515, 120.0)
    assert isinstance(cost.tokens_per_s, float)
    assert (cost.minutes_per_1m_tokens, cost.usd_per_1m_tokens) == (None, None)  # null and absent alike
    assert (cost.price_as_of, cost.price_source) == ("", "")
    with pytest.raises(FrozenInstanceError):
        cost.usd_per_hour = 2.0  # type: ignore[misc]


def test_price_override_wins_and_is_labelled() -> None:
    overrides = parse_price_overrides(["g5.2xlarge=2.5"])
    assert overrides == {"ml.g5.2xlarge": 2.5}
    price = price_for("ml.g5.2xlarge", "us-east-1", overrides)
    assert (price.usd_per_hour, price.source) == (2.5, "user override")
    assert price_for("ml.g5.12xlarge", "us-east-1", overrides).usd_per_hour == 7.09
    # "ml.g5.12xlarge" sorts before "ml.g5.2xlarge": an override applies to its own instance only
    other = parse_price_overrides(["ml.g5.12xlarge=9"])
    assert price_for("ml.g5.2xlarge", "us-east-1", other).usd_per_hour == 1.515


@pytest.mark.parametrize("usd", [0.5, 1.0, 2.5])
def test_any_positive_price_override_is_accepted(usd: float) -> None:
    assert parse_price_overrides([f"ml.g5.2xlarge={usd}"]) == {"ml.g5.2xlarge": usd}


@pytest.mark.parametrize(
    ("item", "field", "text"),
    [
        ("ml.g5.2xlarge", "price_override", "instance=usd"),
        ("ml.g5.2xlarge=abc", "price_override", "number"),
        ("ml.g5.2xlarge=-1", "price_override", "positive"),
        ("ml.g5.2xlarge=0", "price_override", "positive"),
        ("ml.g5.2xlarge=inf", "price_override", "positive"),
        ("ml.p4d.12xlarge=30", "price_override", "ml.p4d.24xlarge"),
    ],
)
def test_bad_price_override_is_refused(item: str, field: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_price_overrides([item])
    assert err.value.fields == (field,)
    assert text in str(err.value)


def test_missing_catalog_price_names_region() -> None:
    with pytest.raises(ConfigError, match="region"):
        price_for("ml.g5.4xlarge", "eu-west-1")


def test_bandwidth_bound_and_efficiency() -> None:
    # 7B fp16: 6.74e9 params x 2 bytes = 13.48 GB; one A10G at 600 GB/s -> 22.467 ms/token
    single = headroom(BenchmarkConfiguration(model="7b", instance_type="ml.g5.2xlarge"), 44.933)
    assert single is not None
    assert single.bound_ms_per_token == pytest.approx(22.4667, abs=1e-3)
    assert single.efficiency == pytest.approx(0.5, abs=1e-3)
    # over 4 GPUs: 3.37 GB each -> 5.617 ms/token
    sharded = headroom(BenchmarkConfiguration(model="7b", instance_type="ml.g5.12xlarge"), None)
    assert sharded is not None
    assert sharded.bound_ms_per_token == pytest.approx(5.6167, abs=1e-3)
    assert sharded.weights_gb_per_gpu == pytest.approx(3.37)
    assert sharded.efficiency is None
    # 70B fp16 on 8 x A100 at 1555 GB/s: 137.96 GB / 8 / 1555 -> 11.09 ms/token
    big = headroom(BenchmarkConfiguration(model="70b", instance_type="ml.p4d.24xlarge"), 41.35)
    assert big is not None
    assert big.bound_ms_per_token == pytest.approx(11.090, abs=1e-3)
    # No instance type (a URL measured as it is): no GPU, no bound.
    assert headroom(BenchmarkConfiguration(model="7b", instance_type=""), 41.35) is None


def test_configuration_validates_and_has_stable_key() -> None:
    c = BenchmarkConfiguration(model="Llama-2-7b", quantization="None", instance_type="g5.2xlarge", tgi_version="3.3")
    assert (c.model, c.quantization, c.instance_type, c.tgi_version) == ("7b", "fp16", "ml.g5.2xlarge", "3.3.6")
    assert c.key == "7b/fp16/ml.g5.2xlarge/tgi-3.3.6/us-east-1"
    labelled = BenchmarkConfiguration(
        model="7b", instance_type="ml.g5.2xlarge", label="run-2", settings=(("MAX_TOTAL_TOKENS", "2048"),)
    )
    assert labelled.key == "7b/fp16/ml.g5.2xlarge/tgi-3.3.6/us-east-1/run-2/MAX_TOTAL_TOKENS=2048"
    assert from_data(BenchmarkConfiguration, to_data(labelled)) == labelled


def test_unknown_instance_is_refused_naming_field_value_and_allowed() -> None:
    with pytest.raises(ConfigError) as err:
        BenchmarkConfiguration(model="13b", instance_type="ml.p4d.12xlarge", region="nowhere")
    assert err.value.fields == ("instance_type", "region")
    text = str(err.value)
    assert "'ml.p4d.12xlarge'" in text and "ml.p4d.24xlarge" in text


def test_configuration_that_cannot_fit_is_refused_before_deploying() -> None:
    with pytest.raises(ConfigError, match="too small"):
        BenchmarkConfiguration(model="13b", instance_type="ml.g5.2xlarge").check_deployable()
    BenchmarkConfiguration(model="13b", quantization="gptq", instance_type="ml.g5.2xlarge").check_deployable()


def fail(field: str, value: object, allowed: str) -> Exception:
    return ValueError(f"{field}={value!r}: {allowed}")


def test_imported_row_keeps_its_own_price_unless_the_user_overrides_that_instance() -> None:
    own = import_price("ml.g5.2xlarge", "us-east-1", None, fail, file_usd_per_hour=1.2, file_source="run.csv")
    assert (own.usd_per_hour, own.as_of, own.source) == (1.2, "from file", "run.csv")
    # overrides of other instances, sorting before ("12xlarge") and after ("4xlarge") it, change nothing
    others = {"ml.g5.12xlarge": 9.0, "ml.g5.4xlarge": 8.0}
    assert import_price("ml.g5.2xlarge", "us-east-1", others, fail, file_usd_per_hour=1.2).usd_per_hour == 1.2
    mine = import_price("ml.g5.2xlarge", "us-east-1", {"ml.g5.2xlarge": 2.5}, fail, file_usd_per_hour=1.2)
    assert (mine.usd_per_hour, mine.source) == (2.5, "user override")
    catalog = import_price("ml.g5.2xlarge", "us-east-1", others, fail)
    assert catalog.usd_per_hour == 1.515
    with pytest.raises(TypeError):
        import_price("ml.g5.2xlarge", "us-east-1", None, fail, 1.2)  # type: ignore[call-arg]


def test_imported_row_without_any_price_names_the_flag_that_gives_one() -> None:
    with pytest.raises(ValueError, match=r"--price-override ml\.g5\.4xlarge=USD_PER_HOUR") as err:
        import_price("ml.g5.4xlarge", "eu-west-1", None, fail)
    assert "eu-west-1" in str(err.value)
