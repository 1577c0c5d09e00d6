"""Delete benchmark endpoints (and their configs and models) that nothing will delete otherwise.

Two triggers. An execution of the benchmark state machine that ends ABORTED, TIMED_OUT or FAILED never
reaches its own teardown: EventBridge delivers its status change and :func:`teardown_execution` deletes
what that execution created, found by its ``llama-benchmark-execution`` tag, within minutes. SageMaker refuses
to delete an endpoint while it is ``Creating`` (up to an hour for a large model): Lambda retries the event
twice (after 1 and 2 minutes), then it goes to the dead-letter queue. The sweep, every few minutes
(:func:`scheduled_sweep`), finishes the job: it deletes what carries the tag of an execution of this state
machine that is no longer running (Step Functions' ListExecutions: SUCCEEDED, FAILED, TIMED_OUT, ABORTED) as
soon as SageMaker can delete it, leaving a busy endpoint and what it holds for the next pass, and, as the last
line of defence, whatever outlived its TTL.

Only resources tagged ``llama-benchmark=true`` are candidates; an untagged endpoint is never touched, whatever
its name. The TTL comes from the resource's ``llama-benchmark-ttl-hours`` tag (the default when absent).
The role's delete permissions carry the same tag condition, so a bug here cannot widen what is deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from benchmark.aws.contract import (
    BENCHMARK_TAG,
    BUSY_STATUSES,
    ENDED_WITHOUT_TEARDOWN,
    EXECUTION_TAG,
    STATUS_CHANGE,
    STATUS_CHANGE_ARNS,
    STATUS_CHANGE_SOURCE,
    TTL_TAG,
)

# Execution statuses that are final (ListExecutions also reports RUNNING and PENDING_REDRIVE).
EXECUTION_ENDED = ("SUCCEEDED", *ENDED_WITHOUT_TEARDOWN)


@dataclass
class JanitorReport:
    deleted_endpoints: list[str] = field(default_factory=list)
    deleted_configs: list[str] = field(default_factory=list)
    deleted_models: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # endpoints SageMaker cannot delete yet (busy)


class TeardownIncompleteError(RuntimeError):
    """Raised after a teardown that left something: Lambda retries the asynchronous event; the sweep finishes."""


def _tags(client: Any, arn: str) -> dict[str, str]:
    tags = client.list_tags(ResourceArn=arn).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def expired(tags: Mapping[str, str], created: datetime, now: datetime, default_ttl_hours: float) -> bool:
    if tags.get(BENCHMARK_TAG) != "true":
        return False
    try:
        ttl = float(tags.get(TTL_TAG, default_ttl_hours))
    except ValueError:
        ttl = default_ttl_hours
    return created + timedelta(hours=ttl) <= now


def _delete(report: JanitorReport, bucket: list[str], name: str, call: Any, **kwargs: str) -> None:
    try:
        call(**kwargs)
        bucket.append(name)
    except ClientError as err:
        if "Could not find" not in str(err) and err.response["Error"]["Code"] != "ResourceNotFound":
            report.errors.append(f"{name}: {err}")


def execution_tag(execution_arn: str) -> str:
    """The execution tag's value, as the state machine computes it: ``States.Hash($$.Execution.Id, 'SHA-256')``."""
    return hashlib.sha256(execution_arn.encode()).hexdigest()


@dataclass(frozen=True)
class EndedExecution:
    execution_arn: str
    state_machine_arn: str
    status: str


def ended_execution(event: Mapping[str, Any]) -> EndedExecution | None:
    """The execution a Step Functions status-change event reports ended without its teardown; None for any
    other event (the sweep schedule's). A status-change event that is malformed or reports another status
    is refused: the rule that delivers it would be wrong."""
    if event.get("detail-type") != STATUS_CHANGE:
        return None
    if event.get("source") != STATUS_CHANGE_SOURCE:
        raise ValueError(
            f"source={event.get('source')!r}: a {STATUS_CHANGE!r} event must come from {STATUS_CHANGE_SOURCE!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise ValueError(f"detail={detail!r}: must be an object with {', '.join(STATUS_CHANGE_ARNS)} and status")
    status = detail.get("status")
    if status not in ENDED_WITHOUT_TEARDOWN:
        raise ValueError(f"detail.status={status!r}: must be one of {', '.join(ENDED_WITHOUT_TEARDOWN)}")
    fields = {}
    for name in STATUS_CHANGE_ARNS:
        value = detail.get(name)
        if not isinstance(value, str) or not value.startswith("arn:"):
            raise ValueError(f"detail.{name}={value!r}: must be an ARN")
        fields[name] = value
    return EndedExecution(fields["executionArn"], fields["stateMachineArn"], str(status))


# Whether a resource is to go: its name, its tags, its creation time.
Due = Callable[[str, Mapping[str, str], datetime], bool]


def _held_by(client: Any, endpoint_name: str) -> set[str]:
    """The config and model names a busy endpoint still needs (SageMaker: do not delete them mid-create)."""
    try:
        config = str(client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"])
        variants = client.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    except ClientError:  # gone meanwhile: hold what the state machine names after the endpoint
        return {endpoint_name}
    return {config} | {v["ModelName"] for v in variants if "ModelName" in v}


def _delete_due(
    client: Any, report: JanitorReport, due: Due, *, endpoints: Iterable[Mapping[str, Any]], name_prefix: str
) -> None:
    """Delete the due endpoints SageMaker can delete now, then the due configs and models no busy endpoint
    holds; a busy endpoint (and what it uses) is left ``pending`` for the next attempt."""
    held: set[str] = set()
    for ep in endpoints:
        name = ep["EndpointName"]
        if not due(name, _tags(client, ep["EndpointArn"]), ep["CreationTime"]):
            report.kept.append(name)
        elif ep.get("EndpointStatus") in BUSY_STATUSES:
            report.pending.append(name)
            held |= _held_by(client, name)
        else:
            _delete(report, report.deleted_endpoints, name, client.delete_endpoint, EndpointName=name)
    for page in client.get_paginator("list_endpoint_configs").paginate(NameContains=name_prefix):
        for cfg in page["EndpointConfigs"]:
            name = cfg["EndpointConfigName"]
            if name not in held and due(name, _tags(client, cfg["EndpointConfigArn"]), cfg["CreationTime"]):
                _delete(report, report.deleted_configs, name, client.delete_endpoint_config, EndpointConfigName=name)
    for page in client.get_paginator("list_models").paginate(NameContains=name_prefix):
        for model in page["Models"]:
            name = model["ModelName"]
            if name not in held and due(name, _tags(client, model["ModelArn"]), model["CreationTime"]):
                _delete(report, report.deleted_models, name, client.delete_model, ModelName=name)


def _of_execution(tags: Mapping[str, str], name: str, *, executions: Set[str], name_prefix: str) -> bool:
    """Benchmark-tagged, of one of these executions, and named with the prefix (not left to NameContains alone)."""
    return name.startswith(name_prefix) and tags.get(BENCHMARK_TAG) == "true" and tags.get(EXECUTION_TAG) in executions


def teardown_execution(client: Any, *, execution_arn: str, name_prefix: str) -> JanitorReport:
    """Delete every endpoint, config and model tagged with this execution; a busy endpoint (and what it
    uses) is left ``pending`` for a retry, since SageMaker refuses to delete it until it settles."""
    mine = {execution_tag(execution_arn)}
    report = JanitorReport()
    endpoints = (
        ep
        for page in client.get_paginator("list_endpoints").paginate(NameContains=name_prefix)
        for ep in page["Endpoints"]
    )
    _delete_due(
        client,
        report,
        lambda name, tags, _: _of_execution(tags, name, executions=mine, name_prefix=name_prefix),
        endpoints=endpoints,
        name_prefix=name_prefix,
    )
    return report


def sweep(
    client: Any,
    *,
    now: datetime,
    default_ttl_hours: float,
    name_prefix: str,
    ended_executions: Set[str] = frozenset(),
) -> JanitorReport:
    """One pass over every tagged endpoint, then over configs and models (from creates that failed half-way):
    what outlived its TTL, or carries the tag of an execution in ``ended_executions`` (execution tags), goes as
    soon as SageMaker can delete it."""

    def due(name: str, tags: Mapping[str, str], created: datetime) -> bool:
        ended = _of_execution(tags, name, executions=ended_executions, name_prefix=name_prefix)
        return ended or expired(tags, created, now, default_ttl_hours)

    report = JanitorReport()
    endpoints = (ep for page in client.get_paginator("list_endpoints").paginate() for ep in page["Endpoints"])
    _delete_due(client, report, due, endpoints=endpoints, name_prefix=name_prefix)
    return report


def ended_execution_tags(sfn: Any, *, state_machine_arn: str) -> frozenset[str]:
    """The execution tags of the state machine's executions that have ended, as the state machine computes them.
    Executions Step Functions no longer lists (closed more than 90 days ago) are left to the TTL."""
    return frozenset(
        execution_tag(execution["executionArn"])
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn)
        for execution in page["executions"]
        if execution["status"] in EXECUTION_ENDED
    )


def scheduled_sweep(
    client: Any, sfn: Any, *, now: datetime, default_ttl_hours: float, name_prefix: str, state_machine_arn: str
) -> JanitorReport:
    """The periodic pass: what ended executions left, and what outlived its TTL. If Step Functions cannot be
    asked, the pass still sweeps by TTL and reports why it did no more."""
    try:
        ended = ended_execution_tags(sfn, state_machine_arn=state_machine_arn)
        problem = None
    except (ClientError, BotoCoreError) as err:
        ended, problem = frozenset(), f"executions of {state_machine_arn} unknown ({err}): swept by TTL only"
    report = sweep(
        client, now=now, default_ttl_hours=default_ttl_hours, name_prefix=name_prefix, ended_executions=ended
    )
    if problem:
        report.errors.append(problem)
    return report


def require_complete(report: JanitorReport, *, execution_arn: str) -> None:
    if report.pending or report.errors:
        raise TeardownIncompleteError(
            f"teardown of {execution_arn} incomplete: pending (busy) {report.pending}, errors {report.errors}"
        )
