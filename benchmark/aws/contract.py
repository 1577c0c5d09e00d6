"""What the benchmark state machine and its Lambda functions agree on, owned here and imported by both sides.

The stack (CDK) builds the events, tags, names and environments from these definitions; the handlers and
their logic read them through the same definitions. A field renamed here is renamed on both sides, and the
tests compare the synthesized template with these definitions rather than with copies of them.

The per-level payload is typed: :class:`LevelEvent` (with :class:`EndpointConfiguration` and the level's
:class:`~benchmark.measure.load.LoadSpec`). The state machine's Pass state carries each configuration and the
matrix's shared load as :func:`benchmark.serialize.to_data` writes them, its RunLevels map merges each level
item (:func:`level_items`) over that load and selects the event's fields (:func:`selector`), and the load-test
Lambda reads the event back with :func:`benchmark.serialize.from_data`.
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired from evaluated annotations.
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NotRequired, TypedDict, TypeVar

from benchmark.measure.load import LoadSpec
from benchmark.serialize import JsonShape, to_data
from catalog.engines import DEFAULT_ENGINE, PAYLOAD_TGI

# --- names, tags, locations ------------------------------------------------------------------------------

NAME_PREFIX = "llmbench"  # default prefix of every model, endpoint config and endpoint a run creates
BENCHMARK_TAG = "llama-benchmark"  # value "true": the only resources the janitor may delete
TTL_TAG = "llama-benchmark-ttl-hours"
RUN_TAG = "llama-benchmark-run"
# The SHA-256 (hex) of the execution ARN: the teardown of an aborted, timed-out or failed execution finds
# its resources by it (a hash: execution names may hold characters tags refuse).
EXECUTION_TAG = "llama-benchmark-execution"
RESULTS_PREFIX = "runs/"  # every object a run writes lives under it
METRICS_NAMESPACE = "LlamaBenchmark"  # the aggregate function's headline metrics
OUTCOME_SUCCEEDED = "succeeded"  # a configuration's outcome, set by the state machine, counted by aggregate
OUTCOME_FAILED = "failed"
# SageMaker refuses DeleteEndpoint in these states: the state machine's teardown waits, the janitor retries.
BUSY_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack")


def levels_prefix(results_prefix: str, run_id: str) -> str:
    """Where a run's level records live; failures and the report sit beside it, not under it."""
    return f"{results_prefix}{run_id}/levels/"


def failures_prefix(results_prefix: str, run_id: str) -> str:
    """Where the state machine's RecordFailure stores each failed configuration's state."""
    return f"{results_prefix}{run_id}/failures/"


def report_prefix(results_prefix: str, run_id: str) -> str:
    return f"{results_prefix}{run_id}/report/"


# --- events ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class EndpointConfiguration:
    """One configuration of a matrix as the state machine carries it: what it deploys, and what a level records."""

    id: str  # the matrix's configuration id: in resource names, and the results' label
    description: str
    model: str
    quantization: str
    instance_type: str
    tgi_version: str
    container: Mapping[str, Any]  # CreateModel's PrimaryContainer (image, weights, Environment)
    variant: Mapping[str, Any]  # CreateEndpointConfig's production variant; ModelName is added at run time
    # The serving engine, its image version when not TGI, and what the load test sends to /invocations
    # (benchmark.clients.sagemaker ``payload``). At TGI's values they are left out of the state machine's
    # payload (configuration_data), so TGI-only matrices keep the definition they had before vLLM.
    engine: str = DEFAULT_ENGINE
    vllm_version: str | None = None
    payload: str = PAYLOAD_TGI
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)


# What a TGI configuration leaves out of the definition: its engine fields at their defaults.
TGI_ENGINE_FIELDS: Mapping[str, Any] = {"engine": DEFAULT_ENGINE, "vllm_version": None, "payload": PAYLOAD_TGI}


def configuration_data(configuration: EndpointConfiguration) -> dict[str, Any]:
    """One configuration as the state machine's Pass state carries it: its fields, but the engine fields at
    TGI's values (the load test reads them back as defaults)."""
    data: dict[str, Any] = to_data(configuration)
    return {k: v for k, v in data.items() if k not in TGI_ENGINE_FIELDS or v != TGI_ENGINE_FIELDS[k]}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LevelEvent:
    """State machine -> load-test Lambda: one item of the RunLevels map, one level on one endpoint."""

    run_id: str
    matrix: str
    endpoint_name: str
    configuration: EndpointConfiguration
    load: LoadSpec  # the matrix's shared load with the level's own fields merged over it (level_items)
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)


# The LoadSpec field each RunLevels item sets; the matrix's shared load gives the others.
LEVEL_FIELD = "concurrency"


def shared_load(load: LoadSpec) -> dict[str, Any]:
    """The load every level of a matrix shares, as the Pass state carries it: LoadSpec but LEVEL_FIELD.

    Null fields are left out (a Pass state's Result cannot hold null: CDK drops it), which is why only a field
    whose default is null may be null here: the load test reads the default back.
    """
    data: dict[str, Any] = to_data(load)
    del data[LEVEL_FIELD]
    defaults = to_data(LoadSpec())
    lost = [key for key, value in data.items() if value is None and defaults[key] is not None]
    if lost:
        raise ValueError(f"{', '.join(lost)}: null cannot travel in the state machine's payload")
    return {key: value for key, value in data.items() if value is not None}


def level_items(levels: Sequence[int]) -> list[dict[str, int]]:
    """The RunLevels map's items: each one's fields, merged over the shared load, make the level's LoadSpec."""
    return [{LEVEL_FIELD: level} for level in levels]


class ConfigurationOutcome(TypedDict):
    """What each configuration of the outer map returns: its id, resource name and outcome."""

    id: str
    name: str
    outcome: str  # OUTCOME_SUCCEEDED or OUTCOME_FAILED


class AggregateEvent(TypedDict):
    """State machine -> aggregate Lambda, after every configuration."""

    run_id: str
    matrix: str
    configurations: list[ConfigurationOutcome]
    skipped: list[Mapping[str, Any]]
    slo: NotRequired[str]  # the benchmark.slo option, when set: capacity under it is compared run over run


# EventBridge -> janitor: an execution's status change, sent by Standard workflows to the default bus.
STATUS_CHANGE_SOURCE = "aws.states"
STATUS_CHANGE = "Step Functions Execution Status Change"
ENDED_WITHOUT_TEARDOWN = ("ABORTED", "TIMED_OUT", "FAILED")  # statuses whose execution skipped its teardown
STATUS_CHANGE_ARNS = ("executionArn", "stateMachineArn")  # what the janitor reads of ``detail``, with "status"


def required_fields(event: type[Any]) -> tuple[str, ...]:
    """The keys an event (a TypedDict or a dataclass) requires, in declaration order."""
    if dataclasses.is_dataclass(event):
        return tuple(
            f.name
            for f in dataclasses.fields(event)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
    required: frozenset[str] = event.__required_keys__
    return tuple(k for k in event.__annotations__ if k in required)


def payload(event: type[Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """An event's payload with exactly the fields its contract requires (values or Step Functions paths)."""
    if set(fields) != set(required_fields(event)):
        raise ValueError(
            f"{event.__name__} needs fields {required_fields(event)}, the state machine sends {tuple(fields)}"
        )
    return dict(fields)


def selector(event: type[Any], paths: Mapping[str, str]) -> dict[str, str]:
    """JSONPath parameters (``key.$``) building ``event`` from a state's input: exactly its required fields."""
    return {f"{key}.$": path for key, path in payload(event, paths).items()}


# --- environments ----------------------------------------------------------------------------------------


class LambdaEnvironmentError(RuntimeError):
    """A variable its stack sets is missing or malformed: the function was not deployed by this stack."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Environment:
    """Each field is one environment variable, named by the field in upper case; the stack sets every one.

    ``optional``: variables the handler reads with a default and the stack never sets (local overrides)."""

    optional: ClassVar[tuple[str, ...]] = ()

    def variables(self) -> dict[str, str]:
        return {f.name.upper(): str(getattr(self, f.name)) for f in dataclasses.fields(self)}


_E = TypeVar("_E", bound=_Environment)


def variable_names(environment: type[_Environment]) -> tuple[str, ...]:
    return tuple(f.name.upper() for f in dataclasses.fields(environment))


def read_environment(environment: type[_E], environ: Mapping[str, str]) -> _E:
    """The handler's environment, or an error naming every variable that is missing."""
    missing = [name for name in variable_names(environment) if not environ.get(name)]
    if missing:
        raise LambdaEnvironmentError(
            f"environment variable(s) {', '.join(missing)} not set: {environment.__name__} needs "
            f"{', '.join(variable_names(environment))}, which the benchmark stack sets on the function"
        )
    fields = {f.name: f.type for f in dataclasses.fields(environment)}
    values: dict[str, Any] = {}
    for name, kind in fields.items():
        raw = environ[name.upper()]
        try:
            values[name] = float(raw) if kind in (float, "float") else raw
        except ValueError:
            raise LambdaEnvironmentError(f"{name.upper()}={raw!r}: must be a number") from None
    return environment(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadTestEnvironment(_Environment):
    # The tests point the runtime client at the emulator and skip the wait for CloudWatch; AWS_REGION is
    # set by Lambda itself.
    optional: ClassVar[tuple[str, ...]] = ("BENCHMARK_RUNTIME_ENDPOINT_URL", "UTILIZATION_SETTLE_S")
    results_bucket: str
    results_prefix: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class AggregateEnvironment(_Environment):
    results_bucket: str
    results_prefix: str
    metrics_namespace: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class JanitorEnvironment(_Environment):
    default_ttl_hours: float  # for a tagged resource without a readable TTL tag
    name_prefix: str  # "<prefix>-": the names the state machine gives what it creates
    state_machine_arn: str  # whose ended executions the sweep cleans up after
