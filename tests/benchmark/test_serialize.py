"""benchmark.serialize: every record type survives JSON and back (property tests), and the rules it reads by."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.cost import CostEstimate
from benchmark.analysis.headroom import Headroom
from benchmark.analysis.results import SCHEMA, LevelResult
from benchmark.aws.contract import EndpointConfiguration, LevelEvent
from benchmark.emulator.config import EmulatorConfig, FaultKind, FaultRule, LatencyModel
from benchmark.emulator.engine import RequestTruth
from benchmark.measure.load import ARRIVALS, BUILTIN_DATASET, LoadSpec
from benchmark.measure.metrics import LevelMetrics
from benchmark.measure.percentiles import PERCENTILES, Distribution
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.serialize import Codec, JsonShape, dumps, from_data, loads, to_data
from benchmark.sizing.levels import MeasuredLevel, RequestSample
from catalog.errors import ConfigError

T = TypeVar("T")
EXAMPLES = settings(max_examples=40, deadline=None)

finite = st.floats(allow_nan=False, allow_infinity=False)
optional_float = st.none() | finite
small = st.integers(min_value=0, max_value=10**9)
text = st.text(max_size=20)
texts = st.lists(text, max_size=3).map(tuple)


def through_json(value: T) -> T:
    """What a reader gets back from the file a writer wrote."""
    back: T = loads(type(value), dumps(value))
    return back


distributions = st.builds(
    Distribution,
    count=small,
    mean=optional_float,
    minimum=optional_float,
    maximum=optional_float,
    median=optional_float,
    p90=optional_float,
    p95=optional_float,
    p99=optional_float,
    unsupported=st.lists(st.sampled_from(list(PERCENTILES)), unique=True).map(tuple),
)
metrics = st.builds(
    LevelMetrics,
    concurrency=st.integers(1, 1024),
    window_s=finite,
    requests_total=small,
    requests_ok=small,
    requests_failed=small,
    errors_by_kind=st.dictionaries(st.sampled_from([k.value for k in ErrorKind]), small),
    error_rate=optional_float,
    output_tokens=small,
    tokens_per_s=optional_float,
    requests_per_min=optional_float,
    ms_per_token=distributions,
    ms_per_token_sources=st.dictionaries(text, small, max_size=3),
    inter_token_ms=distributions,
    ttft_ms=distributions,
    e2e_ms=distributions,
    derived_tokens_per_s_2023=optional_float,
    max_new_tokens=st.none() | st.integers(1, 4096),
    notes=texts,
    completed_tokens_per_s=optional_float,
    steady_start_s=optional_float,
    steady_end_s=optional_float,
    requests_resent=small,
    completed_requests_per_min=optional_float,
    streamed_ok=small,
    coalesced_first_tokens=small,
)
costs = st.builds(
    CostEstimate,
    instance_type=text,
    region=text,
    usd_per_hour=finite,
    price_as_of=text,
    price_source=text,
    tokens_per_s=optional_float,
    minutes_per_1m_tokens=optional_float,
    usd_per_1m_tokens=optional_float,
)
headrooms = st.builds(
    Headroom,
    bound_ms_per_token=finite,
    weights_gb_per_gpu=finite,
    gpu=text,
    gpu_count=st.integers(1, 8),
    gpu_bandwidth_gb_per_s=finite,
    measured_ms_per_token_median=optional_float,
    efficiency=optional_float,
)
setting_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
configurations = st.builds(
    BenchmarkConfiguration,
    model=st.sampled_from(["7b", "13b"]),
    quantization=st.sampled_from(["fp16", "gptq"]),
    instance_type=st.sampled_from(["ml.g5.12xlarge", "ml.p4d.24xlarge", ""]),
    tgi_version=st.sampled_from(["3.3.6", "1.0.3"]),
    region=st.sampled_from(["us-east-1", "eu-west-1"]),
    label=st.from_regex(r"[a-z0-9._-]{0,12}", fullmatch=True),
    settings=st.dictionaries(setting_names, st.text(max_size=8), max_size=3).map(lambda d: tuple(d.items())),
)
json_scalars = st.none() | st.booleans() | small | finite | text
results = st.builds(
    LevelResult,
    configuration=configurations,
    load=st.dictionaries(text, json_scalars, max_size=4),
    metrics=metrics,
    cost=st.none() | costs,
    headroom=st.none() | headrooms,
    started_at=text,
    finished_at=text,
    tool_version=text,
    source=text,
    utilization=st.none() | st.dictionaries(text, finite, max_size=4),
    notes=texts,
    definitions=st.dictionaries(text, text, max_size=2),
)
samples = st.builds(
    RequestSample,
    ok=st.booleans(),
    ttft_ms=optional_float,
    ms_per_token=optional_float,
    e2e_ms=finite,
    tokens=st.none() | small,
)
measured_levels = st.builds(
    MeasuredLevel,
    result=results,
    samples=st.none() | st.lists(samples, max_size=5).map(tuple),
    repeat=st.integers(0, 5),
)
request_records = st.builds(
    RequestRecord,
    user=small,
    start=finite,
    end=finite,
    input_tokens=st.none() | small,
    generated_tokens=st.none() | small,
    first_token_at=optional_float,
    token_times=st.lists(finite, max_size=5),
    server_timings=st.dictionaries(text, finite, max_size=2),
    error=st.none() | st.sampled_from(ErrorKind),
    error_detail=text,
    warmup=st.booleans(),
    request_id=st.none() | text,
    prompt_id=st.none() | text,
    resent=st.booleans(),
)
non_negative = st.floats(min_value=0, max_value=1e6)
emulator_configs = st.builds(
    EmulatorConfig,
    latency=st.builds(
        LatencyModel,
        prefill_base_ms=non_negative,
        prefill_ms_per_token=non_negative,
        tpot_base_ms=non_negative,
        tpot_slope_ms=non_negative,
        max_batch=st.integers(1, 512),
        max_concurrent=st.none() | st.integers(1, 512),
        tokens=st.integers(1, 512),
    ),
    faults=st.lists(
        st.builds(
            FaultRule, kind=st.sampled_from(FaultKind), every_nth=st.integers(1, 10), rate=st.none() | st.floats(0, 1)
        ),
        max_size=3,
    ).map(tuple),
    stall_s=non_negative,
    seed=small,
    payload_split=st.integers(1, 8),
    endpoint_names=st.none() | st.lists(text, max_size=3).map(tuple),
    openai_done=st.booleans(),
    api_key=st.none() | text,
    model_name=st.none() | text,
)
truths = st.builds(
    RequestTruth,
    request_id=text,
    protocol=text,
    stream=st.booleans(),
    input_tokens=small,
    tokens=small,
    fault=st.none() | text,
    in_flight_at_arrival=small,
    queue_ms=finite,
    ttft_ms=optional_float,
    gaps_ms=st.lists(finite, max_size=4),
    tokens_sent=small,
    max_lag_ms=finite,
    outcome=text,
    sent_at=st.lists(finite, max_size=4),
)


load_specs = st.builds(
    LoadSpec,
    concurrency=st.integers(1, 1024),
    request_rate=st.none() | st.floats(0.01, 1e4),
    duration_s=st.none() | st.floats(0.01, 1e5),
    max_requests=st.integers(1, 10**6),
    warmup_requests=st.integers(0, 100),
    max_new_tokens=st.integers(1, 4096),
    streaming=st.booleans(),
    timeout_s=st.floats(0.01, 1e4),
    dataset=st.sampled_from([BUILTIN_DATASET, "prompts.jsonl"]),
    fail_fast_requests=st.integers(0, 100),
    max_error_rate=st.none() | st.floats(0, 0.99),
    ramp_up_s=st.floats(0, 100),
    arrival=st.sampled_from(ARRIVALS),
    seed=small,
)
json_objects = st.dictionaries(text, json_scalars, max_size=3)
level_events = st.builds(
    LevelEvent,
    run_id=text,
    matrix=text,
    endpoint_name=text,
    configuration=st.builds(
        EndpointConfiguration,
        id=text,
        description=text,
        model=text,
        quantization=text,
        instance_type=text,
        tgi_version=text,
        container=json_objects,
        variant=json_objects,
    ),
    load=load_specs,
)

RECORDS = {
    "Distribution": distributions,
    "LevelMetrics": metrics,
    "CostEstimate": costs,
    "Headroom": headrooms,
    "BenchmarkConfiguration": configurations,
    "LevelResult": results,
    "RequestSample": samples,
    "MeasuredLevel": measured_levels,
    "RequestRecord": request_records,
    "EmulatorConfig": emulator_configs,
    "RequestTruth": truths,
    "LoadSpec": load_specs,
    "LevelEvent": level_events,
}


@pytest.mark.parametrize("records", list(RECORDS.values()), ids=list(RECORDS))
@EXAMPLES
@given(data=st.data())
def test_every_record_type_round_trips_through_json(records: Any, data: st.DataObject) -> None:
    value = data.draw(records)
    assert through_json(value) == value


@EXAMPLES
@given(metrics)
def test_derived_values_are_written_for_readers_and_recomputed_on_reading(m: LevelMetrics) -> None:
    data = to_data(m)
    assert (data["coalesced_first_token_share"], data["late_first_tokens"]) == (
        m.coalesced_first_token_share,
        m.late_first_tokens,
    )
    data["late_first_tokens"] = not m.late_first_tokens  # a stale derived value is not believed
    assert from_data(LevelMetrics, data) == m


def test_a_result_record_names_its_schema_tool_and_key_and_refuses_another_schema() -> None:
    configuration = BenchmarkConfiguration(model="7b", quantization="gptq", instance_type="ml.g5.2xlarge")
    record = LevelResult(configuration, {}, LevelMetrics(concurrency=1), None, None, "t0", "t1", "v")
    data = json.loads(dumps(record))
    assert (data["schema"], data["tool"], data["configuration_key"]) == (
        SCHEMA,
        "llama2-sagemaker-benchmark",
        configuration.key,
    )
    with pytest.raises(ConfigError, match=f"schema='other/1': must be {SCHEMA}"):
        from_data(LevelResult, {**data, "schema": "other/1"})
    with pytest.raises(ConfigError, match=r"metrics\.window_s='slow': must be a number"):
        from_data(LevelResult, {**data, "metrics": {**data["metrics"], "window_s": "slow"}})
    with pytest.raises(ConfigError, match=r"configuration\.instance_type='ml.p4d.12xlarge': must be one of"):
        from_data(LevelResult, {**data, "configuration": {**data["configuration"], "instance_type": "ml.p4d.12xlarge"}})
    del data["started_at"]
    with pytest.raises(ConfigError, match="started_at=None: is required"):
        from_data(LevelResult, data)


def test_a_strict_record_names_the_unknown_key_and_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"colour='red': is not a field; allowed: .*instance_type"):
        from_data(BenchmarkConfiguration, {"model": "7b", "instance_type": "ml.g5.2xlarge", "colour": "red"})
    with pytest.raises(ConfigError, match="settings"):
        from_data(BenchmarkConfiguration, {"model": "7b", "instance_type": "ml.g5.2xlarge", "settings": [1]})


@dataclass(frozen=True)
class _Inner:
    value: float
    kind: ErrorKind = ErrorKind.CLIENT


@dataclass(frozen=True)
class _Outer:
    inner: _Inner
    pairs: tuple[tuple[str, int], ...] = ()
    many: list[_Inner] = field(default_factory=list)
    by_name: dict[str, _Inner | None] = field(default_factory=dict)
    coded: int = 0
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(
        keys={"many": "items"}, codecs={"coded": Codec(encode=str, decode=int)}, omitted=("pairs",)
    )


def test_reading_follows_the_annotations() -> None:
    data = {"inner": {"value": 3, "kind": "timeout"}, "items": [{"value": 1.5}], "by_name": {"a": None}, "coded": "7"}
    outer = from_data(_Outer, data)
    assert outer == _Outer(_Inner(3.0, ErrorKind.TIMEOUT), (), [_Inner(1.5)], {"a": None}, 7)
    assert isinstance(outer.inner.value, float)
    assert to_data(outer) == {
        "inner": {"value": 3.0, "kind": "timeout"},
        "items": [{"value": 1.5, "kind": "client"}],
        "by_name": {"a": None},
        "coded": "7",
    }
    with pytest.raises(ConfigError, match=r"inner=None: is required"):
        from_data(_Outer, {})
    with pytest.raises(ConfigError, match=r"inner=None: must not be null"):
        from_data(_Outer, {"inner": None})
    with pytest.raises(ConfigError, match=r"items=.*: must be a JSON array"):
        from_data(_Outer, {"inner": {"value": 1}, "items": {"value": 1}})
    with pytest.raises(ConfigError, match=r"inner\.kind='late': must be one of http_4xx"):
        from_data(_Outer, {"inner": {"value": 1, "kind": "late"}})
    with pytest.raises(ConfigError, match=r"inner\.value=True: must be a number"):
        from_data(_Outer, {"inner": {"value": True}})
    with pytest.raises(ConfigError, match="_Outer=3: must be a JSON object"):
        from_data(_Outer, 3)
