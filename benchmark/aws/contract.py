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
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, NotRequired, TypedDict, TypeVar

from benchmark.measure.load import LoadSpec
from benchmark.measure.processes import ASSUMED_STREAM_TOKENS_PER_S, CPU_S_PER_TOKEN, PROCESS_BUSY_TARGET
from benchmark.serialize import JsonShape, to_data
from catalog.engines import DEFAULT_ENGINE, PAYLOAD_TGI
from catalog.errors import ConfigError, Issue

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


def shards_prefix(results_prefix: str, run_id: str) -> str:
    """Where the shards of a fanned-out level leave their raw request records for the level's merge step."""
    return f"{results_prefix}{run_id}/shards/"


# --- how much client a level needs, and how much one load-test Lambda has ----------------------------------

# AWS Lambda developer guide, "Configure Lambda function memory"
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html): memory from 128 MB to 10,240 MB in
# 1-MB increments, CPU allocated in proportion to it; "At 1,769 MB, a function has the equivalent of one vCPU
# (one vCPU-second of credits per second)". At 10,240 MB that is 5.79 vCPU-seconds per second, spread over the
# 6 vCPUs Lambda shows a function of that size (AWS News Blog, 2020-12-01, "New for AWS Lambda - Functions with Up
# to 10 GB of Memory and 6 vCPUs").
LAMBDA_MB_PER_VCPU = 1769
LAMBDA_MIN_MEMORY_MB = 128
LAMBDA_MAX_MEMORY_MB = 10_240
LOAD_TEST_MIN_MEMORY_MB = 1024  # the load test's size before it was sized from its levels: never less
# What a level is planned for and what a client process reads on time, from the one place the CLI's worker choice
# reads them too: tokens/s per stream (10 ms per token), and the SageMaker client's measured CPU per token with the
# share of a core one event loop may keep busy.
EXPECTED_TOKENS_PER_S_PER_STREAM = ASSUMED_STREAM_TOKENS_PER_S
CLIENT_CPU_S_PER_TOKEN = CPU_S_PER_TOKEN["sagemaker"]
CLIENT_CPU_SHARE = PROCESS_BUSY_TARGET
CLIENT_TOKENS_PER_S_PER_VCPU = CLIENT_CPU_SHARE / CLIENT_CPU_S_PER_TOKEN  # about 6,400
# At most this many load-test Lambdas run one level: new accounts may have a Lambda concurrency quota of 10.
MAX_SHARDS = 10
# The shards of a level start this long after their Map state is entered: time for every shard's Lambda to
# start cold in the VPC (ENI attached, packages imported). A shard that starts later fails (SHARD_LATE_S).
SHARD_LEAD_S = 30.0
SHARD_LATE_S = 5.0


def expected_tokens_per_s(concurrency: int) -> float:
    """The token rate a level of ``concurrency`` streams is planned for (EXPECTED_TOKENS_PER_S_PER_STREAM each)."""
    return concurrency * EXPECTED_TOKENS_PER_S_PER_STREAM


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadTestSizing:
    """The load-test Lambda's memory, and what follows from it: vCPUs, worker processes, tokens/s it can drive."""

    memory_mb: int

    def __post_init__(self) -> None:
        m = self.memory_mb
        if not isinstance(m, int) or isinstance(m, bool) or not LAMBDA_MIN_MEMORY_MB <= m <= LAMBDA_MAX_MEMORY_MB:
            allowed = f"an integer number of MB from {LAMBDA_MIN_MEMORY_MB} to {LAMBDA_MAX_MEMORY_MB} (Lambda's range)"
            raise ConfigError([Issue("memory_mb", m, allowed)], context="load-test Lambda")

    @classmethod
    def for_levels(cls, levels: Sequence[int]) -> "LoadTestSizing":
        """Enough client for the largest level's expected rate, within Lambda's range; larger levels are sharded.

        Up to one vCPU the level runs in the handler's own process, so memory follows the vCPU share it needs; past
        one it runs in one worker process per whole vCPU, so memory buys whole vCPUs (a fraction of a vCPU more
        would not be a process more: :attr:`tokens_per_s`)."""
        if not levels:
            raise ConfigError([Issue("levels", list(levels), "at least one level is needed")], context="load test")
        vcpus = expected_tokens_per_s(max(levels)) / CLIENT_TOKENS_PER_S_PER_VCPU
        memory = math.ceil((vcpus if vcpus <= 1 else math.ceil(vcpus)) * LAMBDA_MB_PER_VCPU)
        return cls(memory_mb=min(LAMBDA_MAX_MEMORY_MB, max(LOAD_TEST_MIN_MEMORY_MB, memory)))

    @property
    def vcpus(self) -> float:
        """vCPU-seconds per second (Lambda's credits), in proportion to memory."""
        return self.memory_mb / LAMBDA_MB_PER_VCPU

    @property
    def workers(self) -> int:
        """Worker processes for a level: one per whole vCPU from two on; 0 (the handler's own process) below."""
        whole = math.floor(self.vcpus)
        return whole if whole >= 2 else 0

    def capacity(self, *, open_loop: bool = False) -> float:
        """The token rate one function of this size drives with each client process's CPU within
        CLIENT_CPU_SHARE: its processes (one for an open-loop level, which never spreads over workers), each with
        at most one vCPU, and together with no more than the function's vCPUs."""
        processes = 1 if open_loop else max(1, self.workers)
        return min(self.vcpus, processes) * CLIENT_TOKENS_PER_S_PER_VCPU

    @property
    def tokens_per_s(self) -> float:
        """:meth:`capacity` of a closed-loop level."""
        return self.capacity()

    def shards(self, concurrency: int, *, open_loop: bool = False) -> int:
        """How many functions of this size run a level of ``concurrency`` streams (at most one per stream)."""
        needed = math.ceil(expected_tokens_per_s(concurrency) / self.capacity(open_loop=open_loop) - 1e-9)
        count = max(1, min(concurrency, needed))
        if count > MAX_SHARDS:
            issue = Issue(
                "concurrency",
                concurrency,
                f"needs {count} load-test Lambdas of {self.memory_mb} MB at {EXPECTED_TOKENS_PER_S_PER_STREAM:g} "
                f"tokens/s per stream; at most {MAX_SHARDS} run one level",
            )
            raise ConfigError([issue], context="benchmark level")
        return count


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
class ShardEvent:
    """Which part of a fanned-out level one load-test Lambda runs, and when every part starts.

    The common start is ``map_started_at`` (the level's shard Map state's ``$$.State.EnteredTime``, the same
    for every shard) plus ``lead_s``: Step Functions cannot add to a timestamp, so the event carries both.
    """

    index: int  # 0..count-1: its share of the users (shares differ by at most one) and its users' numbers
    count: int
    map_started_at: str  # ISO 8601, UTC
    lead_s: float
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)

    def __post_init__(self) -> None:
        issues = []
        if not isinstance(self.count, int) or not 1 <= self.count <= MAX_SHARDS:
            issues.append(Issue("shard.count", self.count, f"must be an integer from 1 to {MAX_SHARDS}"))
        elif not isinstance(self.index, int) or not 0 <= self.index < self.count:
            issues.append(Issue("shard.index", self.index, f"must be an integer from 0 to {self.count - 1}"))
        if not self.lead_s >= 0:
            issues.append(Issue("shard.lead_s", self.lead_s, "must be >= 0 seconds"))
        try:
            datetime.fromisoformat(self.map_started_at)
        except (TypeError, ValueError):
            issues.append(Issue("shard.map_started_at", self.map_started_at, "must be an ISO 8601 timestamp"))
        if issues:
            raise ConfigError(issues, context="shard event")

    @property
    def start_epoch_s(self) -> float:
        """The common start, in seconds since the epoch (every shard's wall clock, NTP-synchronised)."""
        return datetime.fromisoformat(self.map_started_at).timestamp() + self.lead_s


@dataclasses.dataclass(frozen=True, kw_only=True)
class LevelEvent:
    """State machine -> load-test Lambda: one item of the RunLevels map, one level on one endpoint.

    ``shard`` is set when the level is fanned out: the function then runs its share and leaves its raw records
    under :func:`shards_prefix` for :class:`MergeEvent`; unset, it runs the whole level as before.
    """

    run_id: str
    matrix: str
    endpoint_name: str
    configuration: EndpointConfiguration
    load: LoadSpec  # the matrix's shared load with the level's own fields merged over it (level_items)
    shard: ShardEvent | None = None
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShardOutcome:
    """Load-test Lambda -> state machine, for one shard: where its raw records are."""

    index: int
    count: int
    key: str  # the object under shards_prefix
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MergeEvent:
    """State machine -> load-test Lambda, once every shard of a level succeeded: merge them into its record."""

    level: LevelEvent  # the level as a whole (no shard)
    shards: list[ShardOutcome]  # the shard Map's output, one per shard
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)


# The LoadSpec field each RunLevels item sets; the matrix's shared load gives the others.
LEVEL_FIELD = "concurrency"
# A RunLevels item: its LoadSpec fields (merged over the shared load) and its shards (none when not fanned out).
ITEM_LOAD = "load"
ITEM_SHARDS = "shards"


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


def level_items(levels: Sequence[int], sizing: LoadTestSizing | None = None) -> list[dict[str, Any]]:
    """The RunLevels map's items: each one's ``load`` merged over the shared load makes the level's LoadSpec, and
    its ``shards`` are the parts of its shard Map: none (the level runs whole in one load-test Lambda, as before
    fan-out existed) unless ``sizing`` says it needs more than one."""
    items = []
    for level in levels:
        needed = sizing.shards(level) if sizing else 1
        items.append(level_item(level, needed if needed > 1 else 0))
    return items


def level_item(level: int, shards: int) -> dict[str, Any]:
    """One RunLevels item: the level's LoadSpec field and its shards (0: not fanned out; n: n load-test Lambdas)."""
    if not isinstance(shards, int) or not 0 <= shards <= min(level, MAX_SHARDS):
        allowed = f"must be 0 (not fanned out) or up to {min(level, MAX_SHARDS)} (one stream per shard at least)"
        raise ConfigError([Issue("shards", shards, allowed)], context=f"level {level}")
    return {ITEM_LOAD: {LEVEL_FIELD: level}, ITEM_SHARDS: [{"index": i, "count": shards} for i in range(shards)]}


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
