"""The state machine and its Lambda functions agree through benchmark/aws/contract.py: the synthesized template
sends and sets what the handlers read, no more and no less."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmark.aws.aggregate import aggregate_run
from benchmark.aws.contract import (
    ITEM_LOAD,
    MAX_SHARDS,
    SHARD_LEAD_S,
    AggregateEnvironment,
    AggregateEvent,
    ConfigurationOutcome,
    JanitorEnvironment,
    LambdaEnvironmentError,
    LevelEvent,
    LoadTestEnvironment,
    LoadTestSizing,
    MergeEvent,
    ShardEvent,
    ShardOutcome,
    level_items,
    read_environment,
    required_fields,
    variable_names,
)
from benchmark.aws.levels import read_event, variant_name
from benchmark.matrix import load_matrix
from catalog.errors import ConfigError
from llama_constructs.benchmark.benchmark_state_machine import matrix_items
from tests.benchmark_fixtures import Built, build

LAMBDA = Path(__file__).resolve().parent.parent / "lambda"
CONTRACTS: dict[str, type[LoadTestEnvironment | AggregateEnvironment | JanitorEnvironment]] = {
    "loadtest": LoadTestEnvironment,
    "aggregate": AggregateEnvironment,
    "janitor": JanitorEnvironment,
}
# Reserved: the runtime sets them, a stack cannot (Lambda developer guide, "Defined runtime environment variables").
SET_BY_LAMBDA = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"}
SIZING = LoadTestSizing(memory_mb=1024)


@pytest.fixture(scope="module")
def built() -> Built:
    return build()


def _states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        yield name, state
        processor = state.get("ItemProcessor")
        if processor:
            yield from _states(processor)


def _state(built: Built, name: str) -> dict[str, Any]:
    return dict(_states(built.definition))[name]


def _keys(parameters: dict[str, Any]) -> set[str]:
    return {k.removesuffix(".$") for k in parameters}


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_stack_sets_exactly_the_variables_the_handler_requires(built: Built, name: str) -> None:
    function = getattr(built.stack, {"loadtest": "load_test"}.get(name, name)).function
    logical = built.stack.get_logical_id(function.node.default_child)
    variables = built.template.to_json()["Resources"][logical]["Properties"]["Environment"]["Variables"]
    assert set(variables) == set(variable_names(CONTRACTS[name]))


def _environ_reads(handler: Path) -> set[str]:
    """Names the handler reads from os.environ directly (``os.environ[...]``, ``.get(...)``, ``os.getenv``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(handler.read_text())):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            names.add(ast.literal_eval(node.slice))
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            names.add(ast.literal_eval(node.args[0]))
    return names


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_handler_reads_its_environment_only_through_the_contract(name: str) -> None:
    source = (LAMBDA / name / "handler.py").read_text()
    assert f"read_environment({CONTRACTS[name].__name__}, os.environ)" in source
    assert _environ_reads(LAMBDA / name / "handler.py") <= SET_BY_LAMBDA | set(CONTRACTS[name].optional)


def test_optional_variables_are_never_set_by_the_stack() -> None:
    for contract in CONTRACTS.values():
        assert not set(contract.optional) & set(variable_names(contract))


def test_missing_variables_are_all_named() -> None:
    with pytest.raises(LambdaEnvironmentError, match="RESULTS_BUCKET, METRICS_NAMESPACE not set"):
        read_environment(AggregateEnvironment, {"RESULTS_PREFIX": "runs/", "RESULTS_BUCKET": ""})


def test_state_machine_sends_the_contract_events(built: Built) -> None:
    assert _keys(_state(built, "RunLevels")["ItemSelector"]["level"]) == set(required_fields(LevelEvent))
    assert _keys(_state(built, "Aggregate")["Parameters"]) == set(required_fields(AggregateEvent))
    assert _keys(_state(built, "ConfigurationDone")["Parameters"]) == set(required_fields(ConfigurationOutcome))


def test_a_fanned_out_level_sends_the_contract_events(built: Built) -> None:
    """Each shard gets the level's event and its ShardEvent, every shard the Map's one entered time; the merge gets
    the level and the shard Map's outputs (each the handler's ShardOutcome)."""
    shard_map = _state(built, "ShardLevel")
    selector = shard_map["ItemSelector"]
    assert _keys(selector) == {*required_fields(LevelEvent), "shard"}
    assert {k: v for k, v in selector.items() if k != "shard"} == {
        f"{name}.$": f"$.level.{name}" for name in required_fields(LevelEvent)
    }
    assert _keys(selector["shard"]) == set(required_fields(ShardEvent))
    assert selector["shard"]["map_started_at.$"] == "$$.State.EnteredTime"
    assert selector["shard"]["lead_s"] == SHARD_LEAD_S
    assert shard_map["MaxConcurrency"] == MAX_SHARDS  # every shard runs at once
    assert _keys(_state(built, "MergeShards")["Parameters"]) == set(required_fields(MergeEvent))
    assert set(required_fields(ShardOutcome)) == {"index", "count", "key"}


def test_a_throttled_shard_is_retried_within_the_common_lead(built: Built) -> None:
    """Lambda.TooManyRequestsException (the account's concurrency; Step Functions' name for Lambda's 429) is
    retried, and every wait together ends before the shards' common start."""
    retries = _state(built, "ShardLoadTest")["Retry"]
    throttled = [r for r in retries if "Lambda.TooManyRequestsException" in r["ErrorEquals"]]
    assert len(throttled) == 1
    rule = throttled[0]
    waits = [rule["IntervalSeconds"] * rule["BackoffRate"] ** n for n in range(rule["MaxAttempts"])]
    assert sum(waits) < SHARD_LEAD_S


def test_the_load_test_is_sized_from_the_largest_level_of_its_matrices(built: Built) -> None:
    sizing = LoadTestSizing.for_levels(
        [lvl for m in built.stack.state_machine.props.matrices.values() for lvl in m.levels]
    )
    logical = built.stack.get_logical_id(built.stack.load_test.function.node.default_child)  # type: ignore[arg-type]
    memory = built.template.to_json()["Resources"][logical]["Properties"]["MemorySize"]
    assert memory == sizing.memory_mb == built.stack.state_machine.props.load_test_sizing.memory_mb
    assert memory == 1024  # the 2023 matrix's 20 streams (2,000 tokens/s) fit the floor; larger levels: test_shards.py


class Recording(dict[str, Any]):
    """An event that remembers which of its keys were read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def _level_event() -> dict[str, Any]:
    plan = matrix_items(
        load_matrix("smoke"), image_for=lambda v: f"tgi:{v}", weights_bucket_name="weights", sizing=SIZING
    )
    (item,) = level_items([1])
    return {
        "run_id": "run1",
        "matrix": "smoke",
        "endpoint_name": "llmbench-run1-a",
        "configuration": plan["configurations"][0],
        "load": {**plan["load"], **item[ITEM_LOAD]},
    }


def test_load_test_reads_only_the_level_event_and_requires_each_field() -> None:
    event = Recording(_level_event())
    read_event(event)
    assert event.read == set(required_fields(LevelEvent))
    for field in required_fields(LevelEvent):
        with pytest.raises(ConfigError, match=field):
            read_event({k: v for k, v in _level_event().items() if k != field})
    with pytest.raises(ConfigError, match="colour"):
        read_event({**_level_event(), "colour": "red"})


def test_load_test_requires_the_variant_the_state_machine_sends() -> None:
    """No "AllTraffic" fallback: the variant name comes from the configuration's production variant."""
    event = _level_event()
    assert variant_name(read_event(event).configuration) == event["configuration"]["variant"]["VariantName"]
    del event["configuration"]["variant"]["VariantName"]
    with pytest.raises(ConfigError, match="variant"):
        variant_name(read_event(event).configuration)
    del event["configuration"]["variant"]
    with pytest.raises(ConfigError, match="variant"):
        read_event(event)


@pytest.mark.parametrize("field", required_fields(AggregateEvent)[:2])
def test_aggregate_requires_the_run_it_reports(field: str) -> None:
    event = {"run_id": "r1", "matrix": "smoke", "configurations": [], "skipped": []}
    del event[field]
    with pytest.raises(ConfigError, match=field):
        aggregate_run(event, bucket="b", results_prefix="runs/", namespace="n", s3=None, cloudwatch=None)
