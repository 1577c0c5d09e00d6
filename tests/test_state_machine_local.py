"""The rendered benchmark state machine executed in moto's Step Functions interpreter (see tests/sfn_local.py).

Three configurations per run, two levels each, against the benchmark emulator; a failure is injected at
one step for one configuration. Every execution must end, the other configurations must still run, no
endpoint, endpoint config or model may be left in SageMaker, results written before the failure must be
intact, and the failure must be recorded and reported. Executions that end ABORTED or TIMED_OUT mid-run
are torn down by the janitor from the status-change event their EventBridge rule delivers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
import boto3
import pytest
import yaml
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from moto import mock_aws
from moto.events.models import EventPattern
from moto.sagemaker.models import sagemaker_backends

from benchmark.analysis.results import LevelResult
from benchmark.aws.contract import LoadTestSizing, level_items
from benchmark.aws.janitor import TeardownIncompleteError
from benchmark.aws.levels import read_event
from benchmark.emulator import EmulatorConfig, EmulatorServer, LatencyModel
from benchmark.matrix import Matrix, parse_matrix
from benchmark.measure.load import LoadSpec
from benchmark.serialize import from_data
from catalog.engines import get_engine
from llama_constructs.benchmark.benchmark_state_machine import BenchmarkStateMachine, BenchmarkStateMachineProps
from tests.benchmark_fixtures import Built, build, definition_of, janitor_sweep_minutes, local_definition, render
from tests.lambda_handlers import load_handler, set_loadtest_env
from tests.sfn_local import (
    Execution,
    LocalLambdas,
    SageMakerStandIn,
    aborts_stay_aborted,
    pascal_case_service_errors,
    record_retry_waits,
    run_execution,
    start_execution,
    wait_for_end,
    zero_waits,
)

# Moto warns when a faked error code is not in the service's model; for ThrottlingException that is the point.
pytestmark = pytest.mark.filterwarnings("ignore:.*ThrottlingException does not match an error shape:UserWarning")

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
BUCKET = "benchmark-results"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:benchmark-notifications"
LOADTEST = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:loadtest"
AGGREGATE = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aggregate"
# A p4d and two g5 configurations of the 2023 matrix, so moto's instance-type gap is exercised.
CONFIGURATIONS = ("7b-gptq-g5-2xlarge", "13b-fp16-p4d-24xlarge", "7b-fp16-g5-12xlarge")
LEVELS = [1, 5]
# What moto's Step Functions interpreter names a failed aws-sdk:sagemaker call, in the developer guide's
# PascalCase: an error code SageMaker's model does not declare (ValidationException, ThrottlingException), and
# a declared one.
UNMODELED = "SageMaker.SageMakerException"
QUOTA = "SageMaker.ResourceLimitExceededException"
FAST = LatencyModel(prefill_base_ms=1, prefill_ms_per_token=0, tpot_base_ms=1, tpot_slope_ms=0, tokens=10)


@pytest.fixture(scope="module")
def built() -> Built:
    return build()


def deployed_environment(built: Built, function: Any, *, state_machine_arn: str) -> dict[str, str]:
    """A function's environment variables as synthesized, the state machine's reference resolved to the
    (moto) state machine the test runs; any other reference fails."""
    logical = built.stack.get_logical_id(function.node.default_child)
    machine = built.stack.get_logical_id(built.stack.state_machine.state_machine.node.default_child)  # type: ignore[arg-type]
    raw = built.template.to_json()["Resources"][logical]["Properties"]["Environment"]["Variables"]
    variables = render(raw, {machine: state_machine_arn})
    assert all(isinstance(v, str) and not v.startswith("ref-") for v in variables.values()), raw
    return dict(variables)


def janitor_environment(h: Harness, built: Built, monkeypatch: pytest.MonkeyPatch, execution_arn: str) -> None:
    """The janitor's environment as the stack deploys it, for the state machine that ran the execution."""
    machine_arn = h.sfn.describe_execution(executionArn=execution_arn)["stateMachineArn"]
    for name, value in deployed_environment(built, built.stack.janitor.function, state_machine_arn=machine_arn).items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def definition(built: Built) -> dict[str, Any]:
    """The deployed definition with moto's resources as references; waits 0 s, levels short, 3 configurations."""
    out = zero_waits(local_definition(built, bucket=BUCKET, topic=TOPIC, loadtest=LOADTEST, aggregate=AGGREGATE))
    plan = out["States"]["Matrix-2023"]["Result"]
    by_id = {c["id"]: c for c in plan["configurations"]}
    plan["configurations"] = [by_id[i] for i in CONFIGURATIONS]
    plan["levels"] = level_items(LEVELS)
    plan["load"] = dict(plan["load"], duration_s=0.2)
    return out


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(latency=FAST)) as server:
        yield server


@dataclass
class Harness:
    sfn: Any
    s3: Any
    sagemaker: Any
    sqs: Any
    queue_url: str
    machine_arn: str
    stand_in: SageMakerStandIn
    lambdas: LocalLambdas
    retry_waits: list[float]

    def run(self, machine_arn: str | None = None) -> Execution:
        return run_execution(self.sfn, machine_arn or self.machine_arn, {"matrix": "2023"})

    def machine(self, name: str, definition: dict[str, Any]) -> str:
        """Another state machine in this account (a variant of the definition)."""
        arn = self.sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
        )["stateMachineArn"]
        return str(arn)

    def keys(self, prefix: str) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]

    def leftovers(self) -> dict[str, list[str]]:
        return {
            "endpoints": [e["EndpointName"] for e in self.sagemaker.list_endpoints()["Endpoints"]],
            "configs": [c["EndpointConfigName"] for c in self.sagemaker.list_endpoint_configs()["EndpointConfigs"]],
            "models": [m["ModelName"] for m in self.sagemaker.list_models()["Models"]],
        }

    def notification(self) -> dict[str, Any]:
        (message,) = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)["Messages"]
        return json.loads(message["Body"])  # type: ignore[no-any-return]


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch, definition: dict[str, Any], emulator: EmulatorServer) -> Iterator[Harness]:
    set_loadtest_env(monkeypatch, region=REGION, bucket=BUCKET, runtime_url=emulator.base_url)
    stand_in = SageMakerStandIn()
    stand_in.install(monkeypatch)
    pascal_case_service_errors(monkeypatch)
    aborts_stay_aborted(monkeypatch)
    retry_waits = record_retry_waits(monkeypatch)
    lambdas = LocalLambdas({LOADTEST: load_handler("loadtest").handler, AGGREGATE: load_handler("aggregate").handler})
    lambdas.install(monkeypatch)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sns = boto3.client("sns", region_name=REGION)
        assert sns.create_topic(Name="benchmark-notifications")["TopicArn"] == TOPIC
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=TOPIC, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine_arn = sfn.create_state_machine(
            name="benchmark", definition=json.dumps(definition), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
        )["stateMachineArn"]
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        yield Harness(sfn, s3, sagemaker, sqs, queue_url, machine_arn, stand_in, lambdas, retry_waits)


def outcomes(execution: Execution) -> dict[str, str]:
    return {c["id"]: c["outcome"] for c in execution.output["configurations"]}


def level_keys(h: Harness, run_id: str, configuration: str) -> list[int]:
    """Concurrency levels with a readable record for the configuration."""
    found = []
    for key in h.keys(f"runs/{run_id}/levels/"):
        record = from_data(LevelResult, json.loads(h.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        if record.configuration.label == configuration:
            found.append(record.concurrency)
    return sorted(found)


def assert_clean_end(h: Harness, execution: Execution, failed: str | None) -> str:
    """Succeeded, every configuration reached ConfigurationDone, nothing left, failure recorded and reported."""
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    run_id = execution.output["run_id"]
    expected = {c: "succeeded" for c in CONFIGURATIONS}
    if failed:
        expected[failed] = "failed"
    assert outcomes(execution) == expected
    assert h.leftovers() == {"endpoints": [], "configs": [], "models": []}
    for configuration in CONFIGURATIONS:
        if configuration != failed:
            assert level_keys(h, run_id, configuration) == LEVELS
    failures = h.keys(f"runs/{run_id}/failures/")
    assert failures == ([f"runs/{run_id}/failures/{failed}.json"] if failed else [])
    notification = h.notification()
    assert notification["run_id"] == run_id and notification["report"]["configurations_failed"] == (
        [failed] if failed else []
    )
    report = h.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/report/report.md")["Body"].read().decode()
    if failed:
        assert f"{failed} failed" in report
    return str(run_id)


def failure_record(h: Harness, run_id: str, configuration: str) -> dict[str, Any]:
    body = h.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/failures/{configuration}.json")["Body"].read()
    return json.loads(body)  # type: ignore[no-any-return]


def test_success_runs_every_level_on_one_endpoint_per_configuration(harness: Harness) -> None:
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed=None)
    invoked = [e for name, e in harness.lambdas.calls if name == LOADTEST]
    assert len(invoked) == len(CONFIGURATIONS) * len(LEVELS)
    assert len({e["endpoint_name"] for e in invoked}) == len(CONFIGURATIONS)  # one endpoint per configuration
    assert execution.entered().count("CreateEndpoint") == len(CONFIGURATIONS)
    assert execution.output["report"]["levels"] == len(CONFIGURATIONS) * len(LEVELS)
    assert all(e["endpoint_name"].startswith(f"llmbench-{run_id}-") for e in invoked)


@pytest.mark.parametrize(
    ("method", "action"),
    [
        ("create_model", "createModel"),
        ("create_endpoint_config", "createEndpointConfig"),
        ("create_endpoint", "createEndpoint"),
    ],
)
def test_create_failure_tears_down_what_was_created(harness: Harness, method: str, action: str) -> None:
    harness.stand_in.fail[method] = "13b-fp16-p4d-24xlarge"
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed="13b-fp16-p4d-24xlarge")
    record = failure_record(harness, run_id, "13b-fp16-p4d-24xlarge")
    assert record["error"]["Error"] == UNMODELED  # a ValidationException, as moto's interpreter names it
    assert f"injected: {method} failed" in record["error"]["Cause"]
    assert level_keys(harness, run_id, "13b-fp16-p4d-24xlarge") == []
    # Step Functions cannot tell a persistent validation error from throttling by its name: the call is
    # retried (three times, bounded), then caught and recorded.
    assert execution.task_errors(action) == [UNMODELED] * 4


def test_create_endpoint_transient_validation_error_is_retried(harness: Harness) -> None:
    """CreateEndpoint right after CreateEndpointConfig may not find the config yet (SageMaker API reference:
    retry); one such failure costs one retry and nothing else."""
    harness.stand_in.fail["create_endpoint"] = "13b-fp16-p4d-24xlarge"
    harness.stand_in.fail_times["create_endpoint"] = 1
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed=None)
    assert execution.task_errors("createEndpoint") == [UNMODELED]
    assert harness.retry_waits == [5]
    assert level_keys(harness, run_id, "13b-fp16-p4d-24xlarge") == LEVELS


@pytest.mark.parametrize(("method", "action"), [("create_model", "createModel"), ("create_endpoint", "createEndpoint")])
def test_throttled_create_is_retried_under_the_name_moto_gives_it(harness: Harness, method: str, action: str) -> None:
    """SageMaker throttles with ThrottlingException, a code its model does not declare: moto's interpreter names
    it SageMaker.SageMakerException, and the definition's Retry must match that name (a Retry on
    SageMaker.ThrottlingException alone never would: the execution would record the configuration as failed)."""
    harness.stand_in.fail[method] = "7b-gptq-g5-2xlarge"
    harness.stand_in.fail_code[method] = "ThrottlingException"
    harness.stand_in.fail_times[method] = 2
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed=None)
    assert execution.task_errors(action) == [UNMODELED, UNMODELED]
    assert harness.retry_waits == [5, 10]  # the backoff: 5 s, doubled
    assert level_keys(harness, run_id, "7b-gptq-g5-2xlarge") == LEVELS


def test_quota_error_is_caught_at_once_under_its_modeled_name(harness: Harness) -> None:
    """ResourceLimitExceeded is in SageMaker's model: moto's interpreter names it
    SageMaker.ResourceLimitExceededException. A quota does not pass in seconds: not retried, caught, recorded
    under that name, torn down."""
    harness.stand_in.fail["create_endpoint"] = "13b-fp16-p4d-24xlarge"
    harness.stand_in.fail_code["create_endpoint"] = "ResourceLimitExceeded"
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed="13b-fp16-p4d-24xlarge")
    assert execution.task_errors("createEndpoint") == [QUOTA]
    record = failure_record(harness, run_id, "13b-fp16-p4d-24xlarge")
    assert record["error"]["Error"] == QUOTA and "injected: create_endpoint failed" in record["error"]["Cause"]


@pytest.mark.parametrize("bound", [None, 2])
def test_parallel_endpoints_never_exceed_the_map_bound(
    harness: Harness, definition: dict[str, Any], bound: int | None
) -> None:
    """Parallelism is bounded by the Map's MaxConcurrency (no reserved Lambda concurrency): the deployed
    bound, and a bound of 2 to show that iterations do overlap up to it and not beyond."""
    copy = json.loads(json.dumps(definition))
    if bound is not None:
        copy["States"]["ForEachConfiguration"]["MaxConcurrency"] = bound
    limit = copy["States"]["ForEachConfiguration"]["MaxConcurrency"]
    assert 1 <= limit < len(CONFIGURATIONS)
    execution = harness.run(harness.machine(f"bounded-{bound}", copy))
    assert_clean_end(harness, execution, failed=None)
    assert harness.stand_in.peak_endpoints == limit
    assert 1 <= harness.lambdas.peak_in_flight <= limit


def test_endpoint_never_in_service_hits_the_deadline(harness: Harness, definition: dict[str, Any]) -> None:
    harness.stand_in.endpoint_status["7b-fp16-g5-12xlarge"] = "Creating"
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed="7b-fp16-g5-12xlarge")
    assert failure_record(harness, run_id, "7b-fp16-g5-12xlarge")["error"]["Error"] == "EndpointDeadline"
    states = definition["States"]["ForEachConfiguration"]["ItemProcessor"]["States"]
    (max_polls,) = [
        c["NumericGreaterThanEquals"]
        for c in states["EndpointInService?"]["Choices"]
        if "NumericGreaterThanEquals" in c
    ]
    (teardown_rule,) = states["EndpointDeletable?"]["Choices"]
    (max_teardown_polls,) = [c["NumericLessThan"] for c in teardown_rule["And"] if "NumericLessThan" in c]
    # The stuck endpoint: the first describe plus one per poll until the deadline, then teardown waits while
    # it is still Creating (SageMaker refuses to delete it) for its own bound before deleting anyway.
    # The other two: one describe while creating and one before deleting.
    assert harness.stand_in.describe_calls == (max_polls + 1) + (max_teardown_polls + 1) + 2 * 2


def test_describe_failure_in_the_poll_loop_is_caught_and_torn_down(harness: Harness) -> None:
    harness.stand_in.fail["describe_endpoint"] = "7b-gptq-g5-2xlarge"
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed="7b-gptq-g5-2xlarge")
    record = failure_record(harness, run_id, "7b-gptq-g5-2xlarge")
    assert record["error"]["Error"] == UNMODELED and "injected: describe_endpoint failed" in record["error"]["Cause"]
    assert level_keys(harness, run_id, "7b-gptq-g5-2xlarge") == []
    # Retried as a throttled call would be, then caught: four attempts in the poll loop, four in the teardown
    # (whose describe fails too, and then deletes anyway).
    assert execution.task_errors("describeEndpoint") == [UNMODELED] * 8


def test_describe_throttled_once_in_the_poll_loop_is_retried(harness: Harness) -> None:
    harness.stand_in.fail["describe_endpoint"] = "7b-gptq-g5-2xlarge"
    harness.stand_in.fail_code["describe_endpoint"] = "ThrottlingException"
    harness.stand_in.fail_times["describe_endpoint"] = 1
    execution = harness.run()
    assert_clean_end(harness, execution, failed=None)
    assert execution.task_errors("describeEndpoint") == [UNMODELED]
    assert harness.retry_waits == [5] and harness.stand_in.fail_times["describe_endpoint"] == 0


def test_endpoint_failed_is_recorded_and_torn_down(harness: Harness) -> None:
    harness.stand_in.endpoint_status["7b-gptq-g5-2xlarge"] = "Failed"
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed="7b-gptq-g5-2xlarge")
    assert failure_record(harness, run_id, "7b-gptq-g5-2xlarge")["error"]["Error"] == "EndpointFailed"


def crash_on(configuration: str, concurrency: int, error: BaseException) -> Any:
    """A ``LocalLambdas.crash`` hook: the load test of that level fails with ``error``."""

    def crash(arn: str, event: dict[str, Any]) -> BaseException | None:
        hit = arn == LOADTEST and event["configuration"]["id"] == configuration
        return error if hit and event["load"]["concurrency"] == concurrency else None

    return crash


def test_load_test_crash_on_level_two_keeps_level_one(harness: Harness) -> None:
    killed = MemoryError("injected: Runtime exited with error: signal: killed")
    harness.lambdas.crash = crash_on("13b-fp16-p4d-24xlarge", 5, killed)
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed="13b-fp16-p4d-24xlarge")
    assert level_keys(harness, run_id, "13b-fp16-p4d-24xlarge") == [1]  # written before the crash, intact
    assert failure_record(harness, run_id, "13b-fp16-p4d-24xlarge")["error"]["Error"] == "MemoryError"


class LevelFailedError(RuntimeError):
    """What the load-test Lambda raises when every request of a level failed (issue 9)."""


def test_level_whose_requests_all_failed_fails_the_configuration(harness: Harness) -> None:
    failed = LevelFailedError("all 12 requests failed: 12 x http_503")
    harness.lambdas.crash = crash_on("7b-gptq-g5-2xlarge", 1, failed)
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed="7b-gptq-g5-2xlarge")
    record = failure_record(harness, run_id, "7b-gptq-g5-2xlarge")
    assert record["error"]["Error"] == "LevelFailedError" and "all 12 requests failed" in record["error"]["Cause"]
    assert level_keys(harness, run_id, "7b-gptq-g5-2xlarge") == []


def test_results_write_failure_keeps_earlier_levels(harness: Harness) -> None:
    harness.stand_in.fail["s3.put_object"] = r"7b-fp16-g5-12xlarge.*concurrency-0005"
    execution = harness.run()
    run_id = assert_clean_end(harness, execution, failed="7b-fp16-g5-12xlarge")
    assert level_keys(harness, run_id, "7b-fp16-g5-12xlarge") == [1]
    assert "InternalError" in failure_record(harness, run_id, "7b-fp16-g5-12xlarge")["error"]["Cause"]


def test_failure_record_write_failing_still_tears_down(harness: Harness) -> None:
    harness.stand_in.fail["create_endpoint"] = "7b-gptq-g5-2xlarge"
    harness.stand_in.fail["s3.put_object"] = r"/failures/"
    execution = harness.run()
    assert execution.status == "SUCCEEDED"
    assert outcomes(execution)["7b-gptq-g5-2xlarge"] == "failed"
    assert harness.leftovers() == {"endpoints": [], "configs": [], "models": []}
    run_id = execution.output["run_id"]
    assert harness.keys(f"runs/{run_id}/failures/") == []  # the record never landed ...
    assert harness.notification()["report"]["configurations_failed"] == ["7b-gptq-g5-2xlarge"]  # ... still failed
    report = harness.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/report/report.md")["Body"].read().decode()
    assert "7b-gptq-g5-2xlarge failed" in report


def test_unknown_matrix_fails_without_creating_anything(harness: Harness) -> None:
    execution = run_execution(harness.sfn, harness.machine_arn, {"matrix": "nope"})
    assert execution.status == "FAILED" and execution.error == "UnknownMatrix"
    assert harness.leftovers() == {"endpoints": [], "configs": [], "models": []}


# --- a matrix's load, from its file to the load test ------------------------------------------------------

# Every load key a matrix may set, none at its default: the fail-fast limits included, which the load test reads.
ROUND_TRIP_MATRIX = """
name: roundtrip
load:
  concurrency: [1, 2]
  duration_s: 0.3
  max_requests: 40
  warmup_requests: 1
  max_new_tokens: 8
  streaming: false
  timeout_s: 30
  fail_fast_requests: 3
  max_error_rate: 0.25
  ramp_up_s: 0.05
configurations:
  - {model: 7b, quantization: gptq, instance_type: ml.g5.2xlarge, max_total_tokens: 2048, max_input_tokens: 1024}
"""


def synthesized_definition(matrix: Matrix) -> dict[str, Any]:
    """The definition BenchmarkStateMachine synthesizes for ``matrix`` alone (in a stack of stand-ins), with the
    harness's bucket, topic and functions as its references and no waits."""
    app = cdk.App()
    stack = cdk.Stack(app, "RoundTrip", env=cdk.Environment(account=ACCOUNT, region=REGION))
    isolated = ec2.SubnetType.PRIVATE_ISOLATED
    vpc = ec2.Vpc(
        stack, "Vpc", max_azs=1, subnet_configuration=[ec2.SubnetConfiguration(name="i", subnet_type=isolated)]
    )
    code = lambda_.Code.from_inline("def handler(event, context): pass")
    functions = [
        lambda_.Function(stack, name, runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler", code=code)
        for name in ("Loadtest", "Aggregate")
    ]
    results, topic = s3.Bucket(stack, "Results"), sns.Topic(stack, "Topic")
    BenchmarkStateMachine(
        stack,
        "Runner",
        props=BenchmarkStateMachineProps(
            matrices={matrix.name: matrix},
            key=kms.Key(stack, "Key"),
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_type=isolated),
            endpoint_security_group=ec2.SecurityGroup(stack, "Endpoints", vpc=vpc),
            weights_bucket=s3.Bucket(stack, "Weights"),
            results_bucket=results,
            execution_role=iam.Role(stack, "Model", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com")),
            load_test_function=functions[0],
            load_test_sizing=LoadTestSizing.for_levels(matrix.levels),
            aggregate_function=functions[1],
            topic=topic,
        ),
    )

    def logical(construct: Any) -> str:
        return str(stack.get_logical_id(construct.node.default_child))

    refs = {logical(results): BUCKET, logical(topic): TOPIC}
    refs |= {f"{logical(f)}.Arn": arn for f, arn in zip(functions, (LOADTEST, AGGREGATE), strict=True)}
    return zero_waits(definition_of(Template.from_stack(stack), refs))


def test_a_matrix_load_reaches_the_load_test_as_the_matrix_file_says(harness: Harness) -> None:
    """Matrix file -> synthesized definition -> the event each load test receives -> its LoadSpec and record."""
    matrix = parse_matrix(yaml.safe_load(ROUND_TRIP_MATRIX))
    assert (matrix.load.fail_fast_requests, matrix.load.max_error_rate) == (3, 0.25)
    shared = set(yaml.safe_load(ROUND_TRIP_MATRIX)["load"]) - {"concurrency"}
    assert all(getattr(matrix.load, key) != getattr(LoadSpec(), key) for key in shared)
    assert matrix.levels == (1, 2)
    machine = harness.machine("roundtrip", synthesized_definition(matrix))
    execution = run_execution(harness.sfn, machine, {"matrix": "roundtrip"})
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    events = [event for name, event in harness.lambdas.calls if name == LOADTEST]
    assert [read_event(event).load for event in events] == list(matrix.level_specs)
    records = [
        from_data(LevelResult, json.loads(harness.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        for key in harness.keys(f"runs/{execution.output['run_id']}/levels/")
    ]
    recorded = sorted((dict(r.load) for r in records), key=lambda load: load["concurrency"])
    assert [from_data(LoadSpec, {k: v for k, v in load.items() if k != "target"}) for load in recorded] == list(
        matrix.level_specs
    )


# A matrix of one TGI and one vLLM entry, streamed (the truth server serves SageMaker's streaming route only).
ENGINES_ROUND_TRIP = """
name: engines-roundtrip
defaults: {model: 7b, quantization: gptq, instance_type: ml.g5.2xlarge, max_total_tokens: 2048, max_input_tokens: 1024}
load:
  concurrency: [1, 2]
  duration_s: 0.3
  max_requests: 6
  warmup_requests: 0
  max_new_tokens: 4
  streaming: true
  timeout_s: 30
configurations:
  - {id: on-tgi}
  - {id: on-vllm, engine: vllm}
"""


@pytest.fixture
def truth_server() -> Iterator[str]:
    """scripts/truth_server.py, the independent ground truth: it logs which body each request carried (a
    ``messages`` list is an OpenAI chat completion, ``sagemaker-chat``; TGI's ``/generate`` body, ``sagemaker``)."""
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [sys.executable, str(root / "scripts" / "truth_server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().split()[-1]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_vllm_entry_reaches_its_load_test_and_the_wire_as_openai_chat(
    harness: Harness, truth_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matrix with a vLLM entry -> synthesized definition -> moto's interpreter -> each load test's event -> the
    client it builds -> the bytes the truth server received: OpenAI chat for vLLM, TGI's body for TGI."""
    from benchmark.clients.sagemaker import SageMakerClient  # noqa: PLC0415 (boto3-heavy; only this test)

    matrix = parse_matrix(yaml.safe_load(ENGINES_ROUND_TRIP))
    built_clients: list[tuple[str, str]] = []
    init = SageMakerClient.__init__

    def recording_init(client: SageMakerClient, endpoint: str, *args: Any, **kwargs: Any) -> None:
        init(client, endpoint, *args, **kwargs)
        built_clients.append((endpoint, client.payload))

    monkeypatch.setattr(SageMakerClient, "__init__", recording_init)
    monkeypatch.setenv("BENCHMARK_RUNTIME_ENDPOINT_URL", truth_server)
    machine = harness.machine("engines", synthesized_definition(matrix))
    execution = run_execution(harness.sfn, machine, {"matrix": "engines-roundtrip"})
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert outcomes(execution) == {"on-tgi": "succeeded", "on-vllm": "succeeded"}

    events = [read_event(event) for name, event in harness.lambdas.calls if name == LOADTEST]
    told = sorted({(e.configuration.id, e.configuration.engine, e.configuration.payload) for e in events})
    assert told == [("on-tgi", "tgi", "tgi"), ("on-vllm", "vllm", "openai-chat")]
    by_endpoint = {e.endpoint_name: e.configuration.id for e in events}
    assert sorted({(by_endpoint[name], payload) for name, payload in built_clients}) == [
        ("on-tgi", "tgi"),
        ("on-vllm", "openai-chat"),
    ]
    with urllib.request.urlopen(truth_server + "/truth", timeout=10) as answered:
        protocols = [request["protocol"] for request in json.loads(answered.read())]
    records = [
        from_data(LevelResult, json.loads(harness.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        for key in harness.keys(f"runs/{execution.output['run_id']}/levels/")
    ]
    sent = {
        label: sum(r.metrics.requests_total for r in records if r.configuration.label == label)
        for label in by_endpoint.values()
    }
    assert all(r.metrics.requests_failed == 0 and r.metrics.requests_ok > 0 for r in records), records
    # Each record is keyed by its engine, and a vLLM record's settings are its tunables, not the wiring its
    # model, quantization and instance imply.
    engines = {(r.configuration.label, r.configuration.engine, r.configuration.key.split("/")[3]) for r in records}
    vllm_key = f"vllm-{get_engine('vllm').default_version}"
    assert engines == {("on-tgi", "tgi", "tgi-3.3.6"), ("on-vllm", "vllm", vllm_key)}
    vllm_settings = {k for r in records if r.configuration.engine == "vllm" for k, _ in r.configuration.settings}
    assert vllm_settings and not vllm_settings & {"SM_VLLM_MODEL", "SM_VLLM_TENSOR_PARALLEL_SIZE", "SM_VLLM_PORT"}
    # Warm-up is off, so every request the truth server saw is one a record counts, each under its engine's body.
    assert sorted(protocols) == sorted(["sagemaker"] * sent["on-tgi"] + ["sagemaker-chat"] * sent["on-vllm"])


# --- executions that end without their own teardown: the EventBridge rule and the janitor -----------------

BYSTANDERS = ("llmbench-otherrun-7b-gptq-g5-2xlarge", "production-endpoint")


def status_change_event(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """The event Step Functions sends to EventBridge when an execution's status changes, in the shape of the
    Step Functions developer guide's examples ("EventBridge (CloudWatch Events) for Step Functions execution
    status changes"), filled in from DescribeExecution."""
    described = sfn.describe_execution(executionArn=execution_arn)

    def millis(value: Any) -> int | None:
        return int(value.timestamp() * 1000) if value else None

    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": ACCOUNT,
        "time": "2026-12-02T16:00:00Z",
        "region": REGION,
        "resources": [execution_arn],
        "detail": {
            "executionArn": execution_arn,
            "stateMachineArn": described["stateMachineArn"],
            "name": described["name"],
            "status": described["status"],
            "startDate": millis(described.get("startDate")),
            "stopDate": millis(described.get("stopDate")),
            "input": described.get("input"),
            "output": None,
            "inputDetails": {"included": True},
            "outputDetails": None,
        },
    }


def rule_pattern(built: Built, machine_arn: str) -> dict[str, Any]:
    """The synthesized teardown rule's event pattern, with the state machine reference resolved."""
    stack = built.stack
    machine = str(stack.get_logical_id(stack.state_machine.state_machine.node.default_child))  # type: ignore[arg-type]
    rules = built.template.find_resources("AWS::Events::Rule")
    (pattern,) = [r["Properties"]["EventPattern"] for r in rules.values() if "EventPattern" in r["Properties"]]
    return render(pattern, {machine: machine_arn})  # type: ignore[no-any-return]


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's pattern matching as moto's EventBridge implements it for rules (its TestEventPattern
    API is a stub)."""
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(cast(Any, event)))


def create_bystanders(h: Harness) -> None:
    """Another execution's tagged benchmark endpoint and an untagged endpoint: the teardown must keep both."""
    other = [
        {"Key": "llama-benchmark", "Value": "true"},
        {"Key": "llama-benchmark-execution", "Value": "0" * 64},
    ]
    for name, tags in zip(BYSTANDERS, (other, []), strict=True):
        h.sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
            PrimaryContainer={"Image": "i"},
            Tags=tags,
        )
        variant = {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.g5.2xlarge"}
        h.sagemaker.create_endpoint_config(
            EndpointConfigName=name, ProductionVariants=[dict(variant, InitialInstanceCount=1)], Tags=tags
        )
        h.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)


def hold_load_test(h: Harness, configuration: str) -> tuple[threading.Event, threading.Event]:
    """The configuration's first load test blocks until released: the run is mid-level, endpoint InService."""
    reached, release = threading.Event(), threading.Event()

    def hold(arn: str, event: dict[str, Any]) -> BaseException | None:
        if arn == LOADTEST and event["configuration"]["id"] == configuration:
            reached.set()
            release.wait(30)
        return None

    h.lambdas.crash = hold
    return reached, release


def end_mid_run(h: Harness, definition: dict[str, Any], status: str) -> str:
    """Start an execution and make it end ``status`` mid-run; its ARN.

    ABORTED: stopped while it polls an endpoint that is still Creating (a real 1 s poll wait in this copy;
    moto fails a Map iteration stopped inside a Lambda task, which Step Functions does not).
    TIMED_OUT: the execution's timeout (2 s in this copy) passes during a load test, endpoint InService.
    FAILED: a defect, the poll loop's DescribeEndpoint without its Catch, meets a failing DescribeEndpoint."""
    copy = json.loads(json.dumps(definition))
    states = copy["States"]["ForEachConfiguration"]["ItemProcessor"]["States"]
    release = threading.Event()
    if status == "ABORTED":
        states["WaitForEndpoint"]["Seconds"] = 1
        h.stand_in.endpoint_status["7b-gptq-g5-2xlarge"] = "Creating"
    elif status == "TIMED_OUT":
        copy["TimeoutSeconds"] = 2
        release = hold_load_test(h, "7b-gptq-g5-2xlarge")[1]
    else:
        del states["DescribeEndpoint"]["Catch"]
        h.stand_in.fail["describe_endpoint"] = "13b-fp16-p4d-24xlarge"
    machine = h.machine(f"ends-{status.lower().replace('_', '-')}", copy)
    arn = start_execution(h.sfn, machine, {"matrix": "2023"})
    if status == "ABORTED":
        deadline = time.monotonic() + 30
        while h.stand_in.describe_calls < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        h.sfn.stop_execution(executionArn=arn, error="Operator", cause="stopped mid-run")
    try:
        ended = wait_for_end(h.sfn, arn, timeout_s=60)
        assert ended.status == status, (ended.error, ended.cause)
    finally:
        release.set()
    time.sleep(0.3)  # a held load test returns now; the ended execution must not go on
    return arn


@pytest.mark.parametrize("status", ["ABORTED", "TIMED_OUT", "FAILED"])
def test_execution_ended_mid_run_is_torn_down_from_its_status_change(
    harness: Harness, definition: dict[str, Any], built: Built, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    create_bystanders(harness)
    arn = end_mid_run(harness, definition, status)
    janitor_environment(harness, built, monkeypatch, arn)
    left = harness.leftovers()
    own = {k: sorted(set(v) - set(BYSTANDERS)) for k, v in left.items()}
    assert len(own["endpoints"]) == 1 and own["endpoints"] == own["configs"] == own["models"]  # no teardown ran

    event = status_change_event(harness.sfn, arn)
    assert event["detail"]["status"] == status
    assert matches(rule_pattern(built, event["detail"]["stateMachineArn"]), event)
    janitor = load_handler("janitor")
    if status == "ABORTED":  # SageMaker cannot delete a Creating endpoint: left, with its config and model
        with pytest.raises(TeardownIncompleteError, match="pending"):
            janitor.handler(event, None)
        assert harness.leftovers() == left
        (name,) = own["endpoints"]
        harness.stand_in.set_status(sagemaker_backends[ACCOUNT][REGION], name, "InService")
    report = janitor.handler(event, None)  # Lambda's retry of the event, for ABORTED

    assert report["deleted_endpoints"] == own["endpoints"] and report["pending"] == []
    assert harness.leftovers() == {k: sorted(BYSTANDERS) for k in left}


SCHEDULED = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "region": REGION, "detail": {}}


def test_aborted_while_creating_is_deleted_within_the_hour_after_it_becomes_deletable(
    harness: Harness, definition: dict[str, Any], built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An execution aborted while its endpoint is Creating (a p4d can take most of an hour): the status-change
    teardown cannot delete it, Lambda's two retries of the event (after 1 and 2 minutes) neither, and the event
    goes to the dead-letter queue. The sweep, at the synthesized schedule's rate, keeps it (and its config and
    model) while it is Creating and deletes all three at its first pass after it can be deleted."""
    create_bystanders(harness)
    arn = end_mid_run(harness, definition, "ABORTED")
    janitor_environment(harness, built, monkeypatch, arn)
    left = harness.leftovers()
    ((name,),) = {tuple(sorted(set(v) - set(BYSTANDERS))) for v in left.values()}  # endpoint, config, model
    janitor = load_handler("janitor")
    event = status_change_event(harness.sfn, arn)
    for _ in range(3):  # the invocation and Lambda's two retries of an asynchronous event
        with pytest.raises(TeardownIncompleteError, match="pending"):
            janitor.handler(event, None)
    assert harness.leftovers() == left

    rate = janitor_sweep_minutes(built)
    deletable_at = 47  # minutes after the abort: the endpoint leaves Creating (InService) then
    backend = sagemaker_backends[ACCOUNT][REGION]
    minute = 0
    while True:
        minute += rate
        assert minute < deletable_at + 60, f"still there an hour after it became deletable (sweep every {rate} min)"
        harness.stand_in.set_status(backend, name, "Creating" if minute < deletable_at else "InService")
        report = janitor.handler(SCHEDULED, None)
        if minute >= deletable_at:
            break
        assert report["pending"] == [name] and report["errors"] == []  # kept, and tried again next time
        assert harness.leftovers() == left

    assert (report["deleted_endpoints"], report["deleted_configs"], report["deleted_models"]) == ([name],) * 3
    assert minute - deletable_at < rate  # the first pass after it became deletable
    assert harness.leftovers() == {k: sorted(BYSTANDERS) for k in left}  # another run's and untagged ones stay


def test_teardown_rule_matches_only_this_machines_bad_endings(harness: Harness, built: Built) -> None:
    event = status_change_event(harness.sfn, harness.run().arn)
    pattern = rule_pattern(built, harness.machine_arn)
    assert event["detail"]["status"] == "SUCCEEDED" and not matches(pattern, event)
    for status in ("ABORTED", "TIMED_OUT", "FAILED"):
        assert matches(pattern, {**event, "detail": {**event["detail"], "status": status}})
    for status in ("RUNNING", "PENDING_REDRIVE"):
        assert not matches(pattern, {**event, "detail": {**event["detail"], "status": status}})
    other = {**event["detail"], "status": "FAILED", "stateMachineArn": harness.machine_arn + "-other"}
    assert not matches(pattern, {**event, "detail": other})
    assert not matches(pattern, {**event, "source": "aws.sagemaker", "detail": {**event["detail"], "status": "FAILED"}})
