"""The calls of each component of the default app (foundation, scenario endpoints, benchmark), as ``Call``s.

Lambda handlers' SDK calls are found in their code (``tests.iam.code_calls``); each one found must be mapped to
requests here (``HANDLER_CALLS``) or named as not reached from that handler, with the reason
(``NOT_REACHED``), so a new call in the code fails the suite until someone says what it touches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.iam.account import Account, Role
from tests.iam.calls import (
    Call,
    Hosting,
    _key,
    _s3_object,
    bucket_key,
    foundation_vpc_arn,
    hosting_of_endpoint_stack,
    s3_kms_calls,
    sagemaker_hosting_calls,
    state_machine_definition,
    tasks_of,
)
from tests.iam.code_calls import ROOT
from tests.iam.intrinsics import ACCOUNT, REGION, Resolver

FOUNDATION = "LlamaFoundationStack"
BENCHMARK = "LlamaBenchmarkStack"
SCENARIOS = ("LlamaCostStack", "LlamaLatencyStack", "LlamaThroughputStack")
RUN_NAME = "llmbench-r20261202-7b-fp16-g5"  # what the state machine names a run's model, config and endpoint
RUN_ID = "r20261202"


@dataclass(frozen=True)
class Benchmark:
    """Names the benchmark's components use at run time, resolved from its template."""

    account: Account
    results_bucket: str
    results_key: str

    @classmethod
    def read(cls, account: Account) -> Benchmark:
        r = Resolver(account.templates, BENCHMARK)
        (bucket,) = [
            r.ref(k) for k, v in r.resources.items() if v["Type"] == "AWS::S3::Bucket" and k.startswith("ResultsBucket")
        ]
        return cls(account, bucket, bucket_key(account, bucket))

    def role(self, prefix: str) -> Role:
        return self.account.role(BENCHMARK, prefix)


# --- Lambda: what the service does with the function's role, and what the handler calls --------------------


def lambda_service_calls(account: Account, name: str) -> Iterator[Call]:
    """Logs, VPC ENIs, X-Ray and the dead-letter queue: Lambda uses the function's role for each."""
    r = Resolver(account.templates, BENCHMARK)
    role = account.role(BENCHMARK, f"{name}Role")
    (function,) = [v for k, v in r.resources.items() if v["Type"] == "AWS::Lambda::Function" and k.startswith(name)]
    props = function["Properties"]
    group = r.resolve(props["LoggingConfig"]["LogGroup"])
    stream = {"log-stream": {"LogGroupName": group, "LogStreamName": "2026/12/02/[$LATEST]0123abcd"}}
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        yield Call(f"Lambda {name}: logs", role, action, stream)
    subnet = r.resolve(props["VpcConfig"]["SubnetIds"][0])
    group_id = r.resolve(props["VpcConfig"]["SecurityGroupIds"][0])
    eni = {"NetworkInterfaceId": "eni-0fedcba9876543210"}
    yield Call(
        f"Lambda {name}: Hyperplane ENI",
        role,
        "ec2:CreateNetworkInterface",
        {"network-interface": eni, "subnet": {"SubnetId": subnet}, "security-group": {"SecurityGroupId": group_id}},
    )
    for action in ("ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"):
        yield Call(f"Lambda {name}: Hyperplane ENI", role, action, {"network-interface": eni})
    for action in (
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    ):
        yield Call(f"Lambda {name}", role, action)
    dlq_arn = r.resolve(props["DeadLetterConfig"]["TargetArn"])
    queue = dlq_arn.rsplit(":", 1)[1]
    yield Call(
        f"Lambda {name}: failed async event to its DLQ", role, "sqs:SendMessage", {"queue": {"QueueName": queue}}
    )
    (dlq,) = [v for k, v in r.resources.items() if v["Type"] == "AWS::SQS::Queue" and r.get_att(k, "Arn") == dlq_arn]
    key = r.resolve(dlq["Properties"]["KmsMasterKeyId"])
    via_sqs = {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"}
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):  # SQS SSE: what a producer needs on the queue's key
        yield Call(f"Lambda {name}: encrypted DLQ", role, action, _key(key), via_sqs)


def _levels_key(b: Benchmark) -> str:
    return f"runs/{RUN_ID}/levels/7b-fp16-g5/concurrency-0001.json"


def shard_key() -> str:
    """Where a shard of a fanned-out level leaves its raw records (benchmark.aws.shards.shard_key)."""
    return f"runs/{RUN_ID}/shards/7b-fp16-g5/concurrency-0256/shard-01-of-04.json"


def _loadtest(b: Benchmark, op: str) -> Iterator[Call]:
    role = b.role("LoadtestRole")
    if op == "PutObject":
        yield Call("load test: level record", role, "s3:PutObject", _s3_object(b.results_bucket, _levels_key(b)))
        yield Call("load test: a shard's raw records", role, "s3:PutObject", _s3_object(b.results_bucket, shard_key()))
        yield from s3_kms_calls("load test", role, b.results_key, b.results_bucket, write=True, read=False)
    elif op == "GetObject":
        shard = _s3_object(b.results_bucket, shard_key())
        yield Call("load test: a fanned-out level's merge reads its shards", role, "s3:GetObject", shard)
        yield from s3_kms_calls("load test (merge)", role, b.results_key, b.results_bucket, write=False, read=True)
    elif op == "GetMetricData":
        yield Call("load test: endpoint utilisation", role, "cloudwatch:GetMetricData")
    elif op in ("InvokeEndpoint", "InvokeEndpointWithResponseStream"):
        yield Call("load test: requests", role, f"sagemaker:{op}", {"endpoint": {"EndpointName": RUN_NAME}})


def _aggregate(b: Benchmark, op: str) -> Iterator[Call]:
    role = b.role("AggregateRole")
    prefix = f"runs/{RUN_ID}/levels/"
    if op == "ListObjectsV2":
        bucket = {"bucket": {"BucketName": b.results_bucket}}
        yield Call("aggregate: list level records", role, "s3:ListBucket", bucket, {"s3:prefix": prefix})
    elif op == "GetObject":
        yield Call("aggregate: read records", role, "s3:GetObject", _s3_object(b.results_bucket, _levels_key(b)))
        yield from s3_kms_calls("aggregate", role, b.results_key, b.results_bucket, write=False, read=True)
    elif op == "PutObject":
        report = _s3_object(b.results_bucket, f"runs/{RUN_ID}/report/report.html")
        yield Call("aggregate: write the report", role, "s3:PutObject", report)
        yield from s3_kms_calls("aggregate", role, b.results_key, b.results_bucket, write=True, read=False)
    elif op == "PutMetricData":
        namespace = {"cloudwatch:namespace": "LlamaBenchmark"}
        yield Call("aggregate: headline metrics", role, "cloudwatch:PutMetricData", context=namespace)


def _janitor(b: Benchmark, op: str) -> Iterator[Call]:
    role = b.role("JanitorRole")
    tagged = {"aws:ResourceTag/llama-benchmark": "true"}
    # A tagged resource the janitor reads or deletes: operation -> (resource kind, why).
    on_tagged = {
        "DescribeEndpoint": ("endpoint", "what a busy endpoint of an ended execution holds"),
        "DescribeEndpointConfig": ("endpoint-config", "what a busy endpoint-config of an ended execution holds"),
        "DeleteEndpoint": ("endpoint", "delete an expired tagged endpoint"),
        "DeleteEndpointConfig": ("endpoint-config", "delete an expired tagged endpoint-config"),
        "DeleteModel": ("model", "delete an expired tagged model"),
    }
    name_vars = {"endpoint": "EndpointName", "endpoint-config": "EndpointConfigName", "model": "ModelName"}
    if op == "ListExecutions":
        machine_arn, _ = state_machine_definition(b.account, BENCHMARK)
        machine = {"statemachine": {"StateMachineName": machine_arn.rsplit(":", 1)[1]}}
        yield Call("janitor: which executions of the benchmark have ended", role, "states:ListExecutions", machine)
    elif op.startswith("List"):
        if op == "ListTags":
            resources = {"endpoint": {"EndpointName": RUN_NAME}}
            yield Call("janitor: read TTL tags", role, "sagemaker:ListTags", resources)
        else:
            yield Call("janitor: find benchmark resources", role, f"sagemaker:{op}")
    elif op in on_tagged:
        kind, why = on_tagged[op]
        yield Call(
            f"janitor: {why}",
            role,
            f"sagemaker:{op}",
            {kind: {name_vars[kind]: RUN_NAME}},
            resource_context={kind: tagged},
        )


HandlerCalls = Callable[[Benchmark, str], Iterator[Call]]
HANDLER_CALLS: dict[str, tuple[HandlerCalls, set[tuple[str, str]]]] = {
    "loadtest": (
        _loadtest,
        {
            ("s3", "PutObject"),
            ("s3", "GetObject"),
            ("cloudwatch", "GetMetricData"),
            ("sagemaker-runtime", "InvokeEndpoint"),
            ("sagemaker-runtime", "InvokeEndpointWithResponseStream"),
        },
    ),
    "aggregate": (
        _aggregate,
        {("s3", "ListObjectsV2"), ("s3", "GetObject"), ("s3", "PutObject"), ("cloudwatch", "PutMetricData")},
    ),
    "janitor": (
        _janitor,
        {
            ("stepfunctions", "ListExecutions"),
            *(
                ("sagemaker", op)
                for op in (
                    "ListEndpoints",
                    "ListEndpointConfigs",
                    "ListModels",
                    "ListTags",
                    "DescribeEndpoint",
                    "DescribeEndpointConfig",
                    "DeleteEndpoint",
                    "DeleteEndpointConfig",
                    "DeleteModel",
                )
            ),
        },
    ),
}
# (handler, module, service, operation) found in the import closure but not reachable from the handler.
_RESUME_ONLY = "S3ResultsStore.load: resuming a CLI run only"
_LOADTEST_WRITER = "S3ResultsStore.append: the load test's writer"
NOT_REACHED: dict[tuple[str, str, str, str], str] = {
    (
        "loadtest",
        "benchmark/analysis/results.py",
        "s3",
        "ListObjectsV2",
    ): _RESUME_ONLY,
    ("loadtest", "benchmark/analysis/results.py", "s3", "GetObject"): _RESUME_ONLY,
    (
        "aggregate",
        "benchmark/analysis/results.py",
        "s3",
        "ListObjectsV2",
    ): _RESUME_ONLY,
    ("aggregate", "benchmark/analysis/results.py", "s3", "GetObject"): _RESUME_ONLY,
    ("aggregate", "benchmark/analysis/results.py", "s3", "PutObject"): _LOADTEST_WRITER,
    # The scanner matches attribute names: this ``.search`` is a regular expression's, on an image tag.
    ("janitor", "catalog/images.py", "sagemaker", "Search"): "re.Pattern.search on an image tag, no AWS call",
}


def handler_path(name: str) -> Path:
    return ROOT / "lambda" / name / "handler.py"


# --- the state machine ---------------------------------------------------------------------------------------

_NAME_PARAMETERS = {"ModelName": "model", "EndpointConfigName": "endpoint-config", "EndpointName": "endpoint"}


def state_machine_calls(b: Benchmark) -> Iterator[Call]:
    role = b.role("RunnerStateMachineRole")
    machine_arn, definition = state_machine_definition(b.account, BENCHMARK)
    for state, task in tasks_of(definition):
        yield from _task_calls(b, role, state, task)
    r = Resolver(b.account.templates, BENCHMARK)
    (machine,) = [v for v in r.resources.values() if v["Type"] == "AWS::StepFunctions::StateMachine"]
    key = r.resolve(machine["Properties"]["EncryptionConfiguration"]["KmsKeyId"])
    context = {"kms:EncryptionContext:aws:states:stateMachineArn": machine_arn}
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):  # executions' data, encrypted with the key
        yield Call("state machine: encrypted execution data", role, action, _key(key), context)
    logs_context = {"kms:EncryptionContext:SourceArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:*"}
    yield Call("state machine: encrypted log delivery", role, "kms:GenerateDataKey", _key(key), logs_context)
    for action in (
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    ):
        yield Call("state machine: logging to CloudWatch Logs", role, action)
    for action in (
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    ):
        yield Call("state machine: X-Ray tracing", role, action)


def _task_calls(b: Benchmark, role: Role, state: str, task: Mapping[str, Any]) -> Iterator[Call]:
    resource = str(task["Resource"])
    params = {k.removesuffix(".$"): v for k, v in dict(task.get("Parameters") or {}).items()}
    component = f"state machine: {state}"
    if resource.startswith("arn:aws:states:::aws-sdk:sagemaker:"):
        api = resource.rsplit(":", 1)[1]
        action = f"sagemaker:{api[0].upper()}{api[1:]}"
        named = {kind: {var: RUN_NAME} for var, kind in _NAME_PARAMETERS.items() if var in params}
        yield Call(component, role, action, named)
        if "Tags" in params:  # the reference lists AddTags as a dependent action of the Create* calls
            created = {"sagemaker:CreateModel": "model", "sagemaker:CreateEndpointConfig": "endpoint-config"}.get(
                action, "endpoint"
            )
            yield Call(f"{component} (tags)", role, "sagemaker:AddTags", {created: named[created]})
        if "ExecutionRoleArn" in params:
            passed = str(params["ExecutionRoleArn"]).rsplit("/", 1)[1]
            yield Call(
                f"{component} (pass the model role)",
                role,
                "iam:PassRole",
                {"role": {"RoleNameWithPath": passed}},
                {"iam:PassedToService": "sagemaker.amazonaws.com"},
            )
    elif resource == "arn:aws:states:::aws-sdk:s3:putObject":
        key = f"runs/{RUN_ID}/failures/7b-fp16-g5.json"
        yield Call(component, role, "s3:PutObject", _s3_object(str(params["Bucket"]), key))
        yield from s3_kms_calls(component, role, b.results_key, b.results_bucket, write=True, read=False)
    elif resource.startswith("arn:aws:lambda:"):
        yield Call(component, role, "lambda:InvokeFunction", {"function": {"FunctionName": resource.rsplit(":", 1)[1]}})
    elif resource == "arn:aws:states:::sns:publish":
        topic = str(params["TopicArn"])
        yield Call(component, role, "sns:Publish", {"topic": {"TopicName": topic.rsplit(":", 1)[1]}})
        key = _topic_key(b.account, topic)
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):  # SNS SSE: what a publisher needs on the topic's key
            yield Call(
                f"{component} (encrypted topic)",
                role,
                action,
                _key(key),
                {"kms:ViaService": f"sns.{REGION}.amazonaws.com"},
            )
    else:
        raise AssertionError(
            f"{state}: no IAM mapping for task resource {resource}; add one to tests/iam/components.py"
        )


def _topic_key(account: Account, topic_arn: str) -> str:
    r = Resolver(account.templates, BENCHMARK)
    for logical, res in r.resources.items():
        if res["Type"] == "AWS::SNS::Topic" and r.ref(logical) == topic_arn:
            return str(r.resolve(res["Properties"]["KmsMasterKeyId"]))
    raise KeyError(topic_arn)


# --- the rest ----------------------------------------------------------------------------------------------


def benchmark_configurations(b: Benchmark) -> Iterator[tuple[str, dict[str, Any]]]:
    """(matrix, configuration) for every configuration the state machine carries, as its Pass states hold them."""
    _, definition = state_machine_definition(b.account, BENCHMARK)
    for state_name, state in sorted(definition["States"].items()):
        if state_name.startswith("Matrix-"):
            for configuration in state["Result"]["configurations"]:
                yield state_name.removeprefix("Matrix-"), configuration


def image_of(configuration: Mapping[str, Any]) -> tuple[str, str]:
    """(registry account, repository) of a configuration's image URI, ``ACCOUNT.dkr.ecr.REGION.SUFFIX/REPO:TAG``."""
    uri = str(configuration["container"]["Image"])
    host, _, path = uri.partition("/")
    return host.split(".", 1)[0], path.rsplit(":", 1)[0]


def benchmark_model_calls(b: Benchmark) -> Iterator[Call]:
    """SageMaker hosting every configuration of every matrix the state machine carries (its image and weights as
    the definition names them) with the benchmark model role."""
    role = b.role("ModelRole")
    r = Resolver(b.account.templates, BENCHMARK)
    _, definition = state_machine_definition(b.account, BENCHMARK)
    (create,) = [t for name, t in tasks_of(definition) if name == "CreateModel"]
    vpc = create["Parameters"]["VpcConfig"]
    weights = r.resolve({"Fn::ImportValue": f"{BENCHMARK}-WeightsBucketArn"}).split(":::")[1]
    for matrix, config in benchmark_configurations(b):
        image_account, repository = image_of(config)
        source = str(config["container"]["ModelDataSource"]["S3DataSource"]["S3Uri"])
        bucket, _, prefix = source.removeprefix("s3://").partition("/")
        assert bucket == weights, (source, weights)
        hosting = Hosting(
            endpoint=RUN_NAME,
            bucket=weights,
            prefix=prefix,
            key_arn=bucket_key(b.account, weights),
            image_account=image_account,
            repository=repository,
            vpc_arn=foundation_vpc_arn(b.account),
            subnet=vpc["Subnets"][0],
            security_group=vpc["SecurityGroupIds"][0],
        )
        yield from sagemaker_hosting_calls(f"benchmark model {matrix}/{config['id']}", role, hosting)


def schedule_calls(b: Benchmark) -> Iterator[Call]:
    role = b.role("ScheduleRole")
    machine_arn, _ = state_machine_definition(b.account, BENCHMARK)
    yield Call(
        "schedule: start a run",
        role,
        "states:StartExecution",
        {"statemachine": {"StateMachineName": machine_arn.rsplit(":", 1)[1]}},
    )
    r = Resolver(b.account.templates, BENCHMARK)
    (schedule,) = [v for v in r.resources.values() if v["Type"] == "AWS::Scheduler::Schedule"]
    key = r.resolve(schedule["Properties"]["KmsKeyArn"])
    yield Call("schedule: decrypt its encrypted target input", role, "kms:Decrypt", _key(key))


def staging_calls(account: Account) -> Iterator[Call]:
    """The CodeBuild job: CodeBuild with the role (logs, secret, project key) and the build's ``aws s3 sync``."""
    role = account.role(FOUNDATION, "StagingRole")
    r = Resolver(account.templates, FOUNDATION)
    (project,) = [v for v in r.resources.values() if v["Type"] == "AWS::CodeBuild::Project"]
    props = project["Properties"]
    group = r.resolve(props["LogsConfig"]["CloudWatchLogs"]["GroupName"])
    stream = {"log-stream": {"LogGroupName": group, "LogStreamName": "0123abcd-build"}}
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        yield Call("staging: build logs", role, action, stream)
    spec = json.loads(props["Source"]["BuildSpec"])
    for secret in spec["env"].get("secrets-manager", {}).values():  # CodeBuild resolves these with the role
        secret_id = {"Secret": {"SecretId": f"{secret}-AbCdEf"}}  # Secrets Manager appends 6 random characters
        yield Call("staging: Hub token", role, "secretsmanager:GetSecretValue", secret_id)
    key = r.resolve(props["EncryptionKey"])
    for action in (
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:DescribeKey",
    ):  # CodeBuild's documented use
        yield Call("staging: CodeBuild with the project key", role, action, _key(key))
    yield from cli_calls(account, role, spec)


def cli_calls(account: Account, role: Role, spec: dict[str, Any]) -> Iterator[Call]:
    """The buildspec's AWS CLI commands as requests; an ``aws`` command not modelled here fails the test."""
    prefix = "models/llama-2-7b-fp16/"  # a WEIGHTS_PREFIX the pre_build check accepts
    bucket = weights_bucket(account)
    for phase in spec["phases"].values():
        for command in phase.get("commands", []):
            for part in re.split(r"[;&|]+", command):
                words = part.split()
                if not words or words[0] != "aws":
                    continue
                if words[1:3] == ["s3", "sync"]:
                    yield from upload_calls(account, role, prefix)
                elif words[1:4] == ["s3", "cp", "-"]:
                    # The staging record beside the weights, streamed from stdin: one small PutObject.
                    record = _s3_object(bucket, prefix.rstrip("/") + ".staging.json")
                    yield Call("staging: record the staged commit", role, "s3:PutObject", record)
                elif words[1:3] == ["s3", "ls"]:
                    listing = {"bucket": {"BucketName": bucket}}
                    yield Call("staging: aws s3 ls", role, "s3:ListBucket", listing, {"s3:prefix": prefix})
                else:
                    raise AssertionError(f"buildspec runs {part.strip()!r}: model its requests in tests/iam")


def upload_calls(account: Account, role: Role, prefix: str) -> Iterator[Call]:
    """``aws s3 sync``: list the destination, then PutObject (small files) or a multipart upload (shards),
    aborted on failure; no encryption headers, so the bucket's default key applies."""
    bucket = weights_bucket(account)
    yield Call(
        "staging: aws s3 sync lists the target",
        role,
        "s3:ListBucket",
        {"bucket": {"BucketName": bucket}},
        {"s3:prefix": prefix},
    )
    for name in ("config.json", "model-00001-of-00002.safetensors"):
        # PutObject, CreateMultipartUpload, UploadPart and CompleteMultipartUpload are all s3:PutObject.
        yield Call("staging: upload", role, "s3:PutObject", _s3_object(bucket, prefix + name))
    shard = _s3_object(bucket, prefix + "model-00002-of-00002.safetensors")
    yield Call("staging: abort a failed multipart upload", role, "s3:AbortMultipartUpload", shard)
    yield from s3_kms_calls("staging", role, bucket_key(account, bucket), bucket, write=True, read=False)


def weights_bucket(account: Account) -> str:
    r = Resolver(account.templates, FOUNDATION)
    (bucket,) = [
        r.ref(k) for k, v in r.resources.items() if v["Type"] == "AWS::S3::Bucket" and k.startswith("WeightsBucket")
    ]
    return bucket


def flow_log_calls(account: Account) -> Iterator[Call]:
    role = account.role(FOUNDATION, "NetworkFlowLogRole")
    r = Resolver(account.templates, FOUNDATION)
    (log,) = [v for v in r.resources.values() if v["Type"] == "AWS::EC2::FlowLog"]
    group = r.resolve(log["Properties"]["LogGroupName"])
    yield Call("VPC flow logs", role, "logs:DescribeLogStreams", {"log-group": {"LogGroupName": group}})
    stream = {"log-stream": {"LogGroupName": group, "LogStreamName": "eni-0123456789abcdef0-all"}}
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        yield Call("VPC flow logs", role, action, stream)


def all_calls(account: Account) -> list[Call]:
    """Every request the default app's components make, with the role each one is made with."""
    b = Benchmark.read(account)
    calls = [*staging_calls(account), *flow_log_calls(account)]
    for stack in SCENARIOS:
        role = account.role(stack, "ExecutionRole")
        calls += sagemaker_hosting_calls(f"{stack} endpoint", role, hosting_of_endpoint_stack(account, stack))
    calls += benchmark_model_calls(b)
    calls += state_machine_calls(b)
    calls += schedule_calls(b)
    for name, (builder, operations) in HANDLER_CALLS.items():
        calls += lambda_service_calls(account, name.title())
        for _service, operation in sorted(operations):
            calls += builder(b, operation)
    return calls
