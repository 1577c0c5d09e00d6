"""The janitor against moto's SageMaker and Step Functions with the real boto3 clients: tagged and expired goes,
the rest stays; an execution's teardown deletes exactly what carries its execution tag; the sweep deletes what
executions that moto's interpreter ended (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) left, once deletable, and keeps
what a running execution uses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

from benchmark.aws.contract import BENCHMARK_TAG as TAG_KEY
from benchmark.aws.contract import EXECUTION_TAG as EXECUTION_TAG_KEY
from benchmark.aws.contract import TTL_TAG as TTL_TAG_KEY
from benchmark.aws.contract import LambdaEnvironmentError
from benchmark.aws.janitor import (
    TeardownIncompleteError,
    ended_execution,
    execution_tag,
    require_complete,
    scheduled_sweep,
    sweep,
    teardown_execution,
)
from tests.lambda_handlers import load_handler

ROLE = "arn:aws:iam::123456789012:role/sm"


def _create(client, name: str, tags: list[dict[str, str]]) -> None:
    client.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"}, Tags=tags)
    client.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
        Tags=tags,
    )
    client.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)


@pytest.fixture
def sagemaker(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("sagemaker", region_name="us-east-1")


def test_deletes_only_tagged_expired_resources(sagemaker) -> None:
    bench = [{"Key": TAG_KEY, "Value": "true"}, {"Key": TTL_TAG_KEY, "Value": "2"}]
    _create(sagemaker, "llmbench-old", bench)
    _create(sagemaker, "production-endpoint", [])  # untagged: never touched, even when old
    _create(sagemaker, "llmbench-false", [{"Key": TAG_KEY, "Value": "false"}])
    now = datetime.now(UTC) + timedelta(hours=3)
    report = sweep(sagemaker, now=now, default_ttl_hours=6, name_prefix="")
    assert report.deleted_endpoints == ["llmbench-old"]
    assert report.deleted_configs == ["llmbench-old"]
    assert report.deleted_models == ["llmbench-old"]
    left = {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]}
    assert left == {"production-endpoint", "llmbench-false"}
    assert {m["ModelName"] for m in sagemaker.list_models()["Models"]} == {"production-endpoint", "llmbench-false"}


def test_keeps_tagged_endpoints_within_their_ttl(sagemaker) -> None:
    _create(sagemaker, "llmbench-young", [{"Key": TAG_KEY, "Value": "true"}, {"Key": TTL_TAG_KEY, "Value": "5"}])
    report = sweep(sagemaker, now=datetime.now(UTC) + timedelta(hours=4), default_ttl_hours=6, name_prefix="")
    assert report.deleted_endpoints == [] and report.kept == ["llmbench-young"]
    report = sweep(sagemaker, now=datetime.now(UTC) + timedelta(hours=6), default_ttl_hours=6, name_prefix="")
    assert report.deleted_endpoints == ["llmbench-young"]


def test_default_ttl_applies_without_ttl_tag(sagemaker) -> None:
    _create(sagemaker, "llmbench-notl", [{"Key": TAG_KEY, "Value": "true"}])
    assert (
        sweep(
            sagemaker, now=datetime.now(UTC) + timedelta(hours=5), default_ttl_hours=6, name_prefix=""
        ).deleted_endpoints
        == []
    )
    assert sweep(
        sagemaker, now=datetime.now(UTC) + timedelta(hours=7), default_ttl_hours=6, name_prefix=""
    ).deleted_endpoints == ["llmbench-notl"]


def _machine(name: str, definition: dict[str, Any]) -> str:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=f"{ROLE}-sfn")
    return str(arn["stateMachineArn"])


WAIT = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": True}}}


def test_handler_runs_the_sweep(sagemaker, monkeypatch) -> None:
    monkeypatch.setenv("DEFAULT_TTL_HOURS", "0")
    monkeypatch.setenv("NAME_PREFIX", "llmbench-")
    monkeypatch.setenv("STATE_MACHINE_ARN", _machine("benchmark", WAIT))
    _create(sagemaker, "llmbench-now", [{"Key": TAG_KEY, "Value": "true"}])
    _create(sagemaker, "other", [])
    scheduled = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}  # what the rate rule sends
    out = load_handler("janitor").handler(scheduled, None)
    assert out["deleted_endpoints"] == ["llmbench-now"]
    assert "other" in out["kept"]


@pytest.mark.parametrize("missing", ["DEFAULT_TTL_HOURS", "NAME_PREFIX", "STATE_MACHINE_ARN"])
def test_handler_refuses_to_start_without_its_environment(sagemaker, monkeypatch, missing: str) -> None:
    """No silent default (a sweep with the wrong TTL, prefix or state machine deletes the wrong things): the
    error names it."""
    monkeypatch.setenv("DEFAULT_TTL_HOURS", "6")
    monkeypatch.setenv("NAME_PREFIX", "llmbench-")
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:benchmark")
    monkeypatch.delenv(missing)
    _create(sagemaker, "llmbench-now", [{"Key": TAG_KEY, "Value": "true"}])
    with pytest.raises(LambdaEnvironmentError, match=missing):
        load_handler("janitor").handler({}, None)
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == ["llmbench-now"]


def test_handler_refuses_a_ttl_that_is_not_a_number(monkeypatch) -> None:
    monkeypatch.setenv("DEFAULT_TTL_HOURS", "six")
    monkeypatch.setenv("NAME_PREFIX", "llmbench-")
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:benchmark")
    with pytest.raises(LambdaEnvironmentError, match="DEFAULT_TTL_HOURS='six': must be a number"):
        load_handler("janitor").handler({}, None)


EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:LlamaBenchmarkRunner:3f1c2a9e-run"
OTHER = "arn:aws:states:us-east-1:123456789012:execution:LlamaBenchmarkRunner:other-run"


def _of(execution_arn: str) -> list[dict[str, str]]:
    return [{"Key": TAG_KEY, "Value": "true"}, {"Key": EXECUTION_TAG_KEY, "Value": execution_tag(execution_arn)}]


def _names(client: Any) -> dict[str, set[str]]:
    return {
        "endpoints": {e["EndpointName"] for e in client.list_endpoints()["Endpoints"]},
        "configs": {c["EndpointConfigName"] for c in client.list_endpoint_configs()["EndpointConfigs"]},
        "models": {m["ModelName"] for m in client.list_models()["Models"]},
    }


def test_teardown_deletes_exactly_the_executions_tagged_resources(sagemaker) -> None:
    _create(sagemaker, "llmbench-a1-7b", _of(EXECUTION))
    _create(sagemaker, "llmbench-a1-13b", _of(EXECUTION))
    _create(sagemaker, "llmbench-b2-7b", _of(OTHER))  # another execution's
    _create(
        sagemaker, "llmbench-c3-7b", [{"Key": EXECUTION_TAG_KEY, "Value": execution_tag(EXECUTION)}]
    )  # not benchmark
    _create(sagemaker, "production", _of(EXECUTION))  # outside the name prefix
    report = teardown_execution(sagemaker, execution_arn=EXECUTION, name_prefix="llmbench-")
    assert sorted(report.deleted_endpoints) == ["llmbench-a1-13b", "llmbench-a1-7b"]
    assert sorted(report.deleted_configs) == sorted(report.deleted_models) == ["llmbench-a1-13b", "llmbench-a1-7b"]
    left = {"llmbench-b2-7b", "llmbench-c3-7b", "production"}
    assert _names(sagemaker) == {"endpoints": left, "configs": left, "models": left}
    require_complete(report, execution_arn=EXECUTION)  # nothing pending, no errors


def test_teardown_leaves_a_busy_endpoint_and_what_it_uses_pending(sagemaker) -> None:
    _create(sagemaker, "llmbench-a1-7b", _of(EXECUTION))
    _create(sagemaker, "llmbench-a1-13b", _of(EXECUTION))
    sagemaker_backends["123456789012"]["us-east-1"].endpoints["llmbench-a1-13b"].endpoint_status = "Creating"
    report = teardown_execution(sagemaker, execution_arn=EXECUTION, name_prefix="llmbench-")
    assert report.pending == ["llmbench-a1-13b"] and report.deleted_endpoints == ["llmbench-a1-7b"]
    kept = {"llmbench-a1-13b"}  # SageMaker: do not delete a config (or model) while CreateEndpoint runs
    assert _names(sagemaker) == {"endpoints": kept, "configs": kept, "models": kept}
    with pytest.raises(TeardownIncompleteError, match=r"pending \(busy\) \['llmbench-a1-13b'\]"):
        require_complete(report, execution_arn=EXECUTION)


def _status_change(**detail: Any) -> dict[str, Any]:
    base = {"executionArn": EXECUTION, "stateMachineArn": EXECUTION.replace(":execution:", ":stateMachine:")}
    return {"detail-type": "Step Functions Execution Status Change", "source": "aws.states", "detail": base | detail}


def test_ended_execution_reads_the_status_change_and_refuses_what_the_rule_must_not_send() -> None:
    ended = ended_execution(_status_change(status="TIMED_OUT"))
    assert ended is not None and (ended.execution_arn, ended.status) == (EXECUTION, "TIMED_OUT")
    assert ended_execution({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}) is None
    with pytest.raises(ValueError, match=r"detail.status='SUCCEEDED': must be one of ABORTED, TIMED_OUT, FAILED"):
        ended_execution(_status_change(status="SUCCEEDED"))
    with pytest.raises(ValueError, match=r"detail.executionArn=None: must be an ARN"):
        ended_execution(_status_change(status="FAILED", executionArn=None))
    with pytest.raises(ValueError, match=r"source='aws.sagemaker'"):
        ended_execution(_status_change(status="FAILED") | {"source": "aws.sagemaker"})


# --- the sweep: what executions that are no longer running left -----------------------------------------------

# One state machine per way an execution ends, run by moto's interpreter: it decides each status.
ENDINGS: dict[str, dict[str, Any]] = {
    "SUCCEEDED": {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}},
    "FAILED": {"StartAt": "Broken", "States": {"Broken": {"Type": "Fail", "Error": "Broken", "Cause": "test"}}},
    "TIMED_OUT": {**WAIT, "TimeoutSeconds": 1},
    "ABORTED": WAIT,  # stopped below
    "RUNNING": WAIT,  # still waiting when the sweep runs
}


@pytest.fixture
def executing(monkeypatch) -> Iterator[Any]:
    """Moto with its Step Functions interpreter on; SageMaker and Step Functions clients."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("sagemaker", region_name="us-east-1"), boto3.client("stepfunctions", region_name="us-east-1")


def _end(sfn: Any, machine: str, status: str) -> str:
    """An execution of ``machine`` that moto's interpreter reports as ``status``; its ARN."""
    arn = str(sfn.start_execution(stateMachineArn=machine, name=status.lower().replace("_", "-"))["executionArn"])
    deadline = time.monotonic() + 30
    if status == "ABORTED":
        # moto's worker thread sets up the interpreter's environment after start_execution returns, and stopping
        # before that raises inside moto: stop once the interpreter has entered the first state.
        while len(sfn.get_execution_history(executionArn=arn)["events"]) < 2:
            assert time.monotonic() < deadline, "moto did not start the execution"
            time.sleep(0.05)
        sfn.stop_execution(executionArn=arn)
    while sfn.describe_execution(executionArn=arn)["status"] != status:
        assert time.monotonic() < deadline, f"moto did not end the execution {status}"
        time.sleep(0.05)
    return arn


def _executions(sfn: Any) -> dict[str, str]:
    """Status -> ARN of one execution per way of ending, all of one state machine."""
    machine = _machine("benchmark", ENDINGS["RUNNING"])
    arns = {}
    for status, definition in ENDINGS.items():
        sfn.update_state_machine(stateMachineArn=machine, definition=json.dumps(definition))
        arns[status] = _end(sfn, machine, status)
    return arns


def _sweep_now(sagemaker: Any, sfn: Any, machine: str) -> Any:
    return scheduled_sweep(
        sagemaker, sfn, now=datetime.now(UTC), default_ttl_hours=6, name_prefix="llmbench-", state_machine_arn=machine
    )


def test_sweep_deletes_what_ended_executions_left_and_keeps_what_a_running_one_uses(executing) -> None:
    sagemaker, sfn = executing
    arns = _executions(sfn)
    try:
        for status, arn in arns.items():
            _create(sagemaker, f"llmbench-{status.lower().replace('_', '')}", _of(arn))
        _create(sagemaker, "llmbench-unknown", _of(OTHER))  # an execution the state machine never ran
        _create(sagemaker, "production", [])
        machine = sfn.describe_execution(executionArn=arns["RUNNING"])["stateMachineArn"]
        report = _sweep_now(sagemaker, sfn, machine)
        gone = {"llmbench-succeeded", "llmbench-failed", "llmbench-timedout", "llmbench-aborted"}
        assert set(report.deleted_endpoints) == set(report.deleted_configs) == set(report.deleted_models) == gone
        assert report.errors == report.pending == []
        left = {"llmbench-running", "llmbench-unknown", "production"}
        assert _names(sagemaker) == {"endpoints": left, "configs": left, "models": left}
    finally:
        sfn.stop_execution(executionArn=arns["RUNNING"])  # ends moto's worker thread


def test_sweep_keeps_retrying_a_busy_endpoint_of_an_ended_execution(executing) -> None:
    sagemaker, sfn = executing
    machine = _machine("benchmark", WAIT)
    arn = _end(sfn, machine, "ABORTED")
    _create(sagemaker, "llmbench-a1-70b", _of(arn))
    endpoint = sagemaker_backends["123456789012"]["us-east-1"].endpoints["llmbench-a1-70b"]
    endpoint.endpoint_status = "Creating"  # SageMaker refuses to delete it, and its config and model, for now

    report = _sweep_now(sagemaker, sfn, machine)
    assert report.pending == ["llmbench-a1-70b"] and report.deleted_endpoints == report.deleted_models == []
    kept = {"llmbench-a1-70b"}
    assert _names(sagemaker) == {"endpoints": kept, "configs": kept, "models": kept}
    endpoint.endpoint_status = "InService"
    report = _sweep_now(sagemaker, sfn, machine)
    assert report.deleted_endpoints == report.deleted_configs == report.deleted_models == ["llmbench-a1-70b"]
    assert _names(sagemaker) == {"endpoints": set(), "configs": set(), "models": set()}


def test_sweep_without_the_executions_still_sweeps_by_ttl_and_says_why(executing) -> None:
    """Step Functions unreachable or the machine gone: moto answers StateMachineDoesNotExist. The pass deletes
    what outlived its TTL, keeps the rest, and reports the error."""
    sagemaker, sfn = executing
    _create(sagemaker, "llmbench-old", [{"Key": TAG_KEY, "Value": "true"}, {"Key": TTL_TAG_KEY, "Value": "1"}])
    _create(sagemaker, "llmbench-a1-7b", _of(EXECUTION))
    missing = "arn:aws:states:us-east-1:123456789012:stateMachine:gone"
    report = scheduled_sweep(
        sagemaker,
        sfn,
        now=datetime.now(UTC) + timedelta(hours=2),
        default_ttl_hours=6,
        name_prefix="llmbench-",
        state_machine_arn=missing,
    )
    assert report.deleted_endpoints == ["llmbench-old"] and "llmbench-a1-7b" in report.kept
    (error,) = report.errors
    assert error.startswith(f"executions of {missing} unknown") and "StateMachineDoesNotExist" in error
