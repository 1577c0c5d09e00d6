"""Delete benchmark endpoints (and their configs and models) that nothing will delete otherwise.

Two triggers. An execution of the benchmark state machine that ends ABORTED, TIMED_OUT or FAILED never
reaches its own teardown: EventBridge delivers its status change and :func:`teardown_execution` deletes
what that execution created, found by its ``llama-benchmark-execution`` tag, within minutes. The hourly
:func:`sweep` is the last line of defence (EventBridge delivers these events best effort): it deletes what
outlived its TTL.

Only resources tagged ``llama-benchmark=true`` are candidates; an untagged endpoint is never touched, whatever
its name. The TTL comes from the resource's ``llama-benchmark-ttl-hours`` tag (the default when absent).
The role's delete permissions carry the same tag condition, so a bug here cannot widen what is deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

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


@dataclass
class JanitorReport:
    deleted_endpoints: list[str] = field(default_factory=list)
    deleted_configs: list[str] = field(default_factory=list)
    deleted_models: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # endpoints SageMaker cannot delete yet (busy)


class TeardownIncompleteError(RuntimeError):
    """Raised after a teardown that left something: Lambda retries the asynchronous event, then the sweep."""


def _tags(client: Any, arn: str) -> dict[str, str]:
    tags = client.list_tags(ResourceArn=arn).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def expired(tags: dict[str, str], created: datetime, now: datetime, default_ttl_hours: float) -> bool:
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


def sweep(client: Any, *, now: datetime, default_ttl_hours: float, name_prefix: str) -> JanitorReport:
    """One pass over endpoints, then over orphan configs and models (from creates that failed half-way)."""
    report = JanitorReport()
    for page in client.get_paginator("list_endpoints").paginate():
        for ep in page["Endpoints"]:
            name = ep["EndpointName"]
            if not expired(_tags(client, ep["EndpointArn"]), ep["CreationTime"], now, default_ttl_hours):
                report.kept.append(name)
                continue
            _delete(report, report.deleted_endpoints, name, client.delete_endpoint, EndpointName=name)
    for page in client.get_paginator("list_endpoint_configs").paginate(NameContains=name_prefix):
        for cfg in page["EndpointConfigs"]:
            name = cfg["EndpointConfigName"]
            if expired(_tags(client, cfg["EndpointConfigArn"]), cfg["CreationTime"], now, default_ttl_hours):
                _delete(report, report.deleted_configs, name, client.delete_endpoint_config, EndpointConfigName=name)
    for page in client.get_paginator("list_models").paginate(NameContains=name_prefix):
        for model in page["Models"]:
            name = model["ModelName"]
            if expired(_tags(client, model["ModelArn"]), model["CreationTime"], now, default_ttl_hours):
                _delete(report, report.deleted_models, name, client.delete_model, ModelName=name)
    return report


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
    other event (the hourly schedule's). A status-change event that is malformed or reports another status
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


def _owned(client: Any, arn: str, tag: str, *, name: str, prefix: str) -> bool:
    """Benchmark-tagged, of this execution, and named with the prefix (not left to NameContains alone)."""
    if not name.startswith(prefix):
        return False
    tags = _tags(client, arn)
    return tags.get(BENCHMARK_TAG) == "true" and tags.get(EXECUTION_TAG) == tag


def _held_by(client: Any, endpoint_name: str) -> set[str]:
    """The config and model names a busy endpoint still needs (SageMaker: do not delete them mid-create)."""
    try:
        config = str(client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"])
        variants = client.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    except ClientError:  # gone meanwhile: hold what the state machine names after the endpoint
        return {endpoint_name}
    return {config} | {v["ModelName"] for v in variants if "ModelName" in v}


def teardown_execution(client: Any, *, execution_arn: str, name_prefix: str) -> JanitorReport:
    """Delete every endpoint, config and model tagged with this execution; a busy endpoint (and what it
    uses) is left ``pending`` for a retry, since SageMaker refuses to delete it until it settles."""
    tag = execution_tag(execution_arn)
    report = JanitorReport()
    held: set[str] = set()
    for page in client.get_paginator("list_endpoints").paginate(NameContains=name_prefix):
        for ep in page["Endpoints"]:
            name = ep["EndpointName"]
            if not _owned(client, ep["EndpointArn"], tag, name=name, prefix=name_prefix):
                continue
            if ep.get("EndpointStatus") in BUSY_STATUSES:
                report.pending.append(name)
                held |= _held_by(client, name)
                continue
            _delete(report, report.deleted_endpoints, name, client.delete_endpoint, EndpointName=name)
    for page in client.get_paginator("list_endpoint_configs").paginate(NameContains=name_prefix):
        for cfg in page["EndpointConfigs"]:
            name = cfg["EndpointConfigName"]
            if name not in held and _owned(client, cfg["EndpointConfigArn"], tag, name=name, prefix=name_prefix):
                _delete(report, report.deleted_configs, name, client.delete_endpoint_config, EndpointConfigName=name)
    for page in client.get_paginator("list_models").paginate(NameContains=name_prefix):
        for model in page["Models"]:
            name = model["ModelName"]
            if name not in held and _owned(client, model["ModelArn"], tag, name=name, prefix=name_prefix):
                _delete(report, report.deleted_models, name, client.delete_model, ModelName=name)
    return report


def require_complete(report: JanitorReport, *, execution_arn: str) -> None:
    if report.pending or report.errors:
        raise TeardownIncompleteError(
            f"teardown of {execution_arn} incomplete: pending (busy) {report.pending}, errors {report.errors}"
        )
