"""The tight side: calls each component must NOT be able to make, evaluated like the sufficient side.

Each case is a near miss of a call the component does make (another name prefix, another model's weights,
another VPC, an untagged resource), so a widened grant (``*``, a dropped condition) fails here even though
every needed call still passes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.iam.account import Account, Role
from tests.iam.calls import (
    Call,
    _s3_object,
    foundation_vpc_arn,
    pass_role_call,
    sagemaker_call,
    state_machine_definition,
)
from tests.iam.components import BENCHMARK, FOUNDATION, RUN_ID, RUN_NAME, Benchmark, weights_bucket
from tests.iam.evaluator import Principal
from tests.iam.intrinsics import Resolver

OUTSIDE = "llama2-7b-fp16-latency"  # a production scenario endpoint, not a benchmark one
OTHER_VPC = "arn:aws:ec2:us-east-1:111122223333:vpc/vpc-0otheraccountvpc"


def _eni(role: Role, vpc: str) -> Call:
    in_vpc = {"ec2:Vpc": vpc}
    return Call(
        "ENI",
        role,
        "ec2:CreateNetworkInterface",
        {
            "network-interface": {"NetworkInterfaceId": "eni-0123456789abcdef0"},
            "subnet": {"SubnetId": "subnet-0abc"},
            "security-group": {"SecurityGroupId": "sg-0abc"},
        },
        resource_context={"network-interface": in_vpc, "subnet": in_vpc, "security-group": in_vpc},
    )


def _invoke(account: Account, action: str) -> Call:
    return Call("", account.role(BENCHMARK, "LoadtestRole"), action, {"endpoint": {"EndpointName": OUTSIDE}})


def _loadtest_reads(account: Account, key: str) -> Call:
    bucket = Benchmark.read(account).results_bucket
    return Call("", account.role(BENCHMARK, "LoadtestRole"), "s3:GetObject", _s3_object(bucket, key))


def _machine_invokes(account: Account, function_prefix: str) -> Call:
    """The state machine invoking a benchmark function other than the two its tasks name."""
    r = Resolver(account.templates, BENCHMARK)
    (name,) = [
        r.ref(k)
        for k, v in r.resources.items()
        if v["Type"] == "AWS::Lambda::Function" and k.startswith(function_prefix)
    ]
    function = {"function": {"FunctionName": name}}
    return Call("", account.role(BENCHMARK, "RunnerStateMachineRole"), "lambda:InvokeFunction", function)


def _benchmark_machine(account: Account) -> str:
    return state_machine_definition(account, BENCHMARK)[0].rsplit(":", 1)[1]


def _list_executions(account: Account, kind: str, names: dict[str, str]) -> Call:
    return Call("", account.role(BENCHMARK, "JanitorRole"), "states:ListExecutions", {kind: names})


CASES: dict[str, Callable[[Account], Call]] = {
    "load test invokes a production endpoint": lambda a: _invoke(a, "sagemaker:InvokeEndpoint"),
    "load test streams from a production endpoint": lambda a: _invoke(a, "sagemaker:InvokeEndpointWithResponseStream"),
    "load test (merge) reads a level record": lambda a: _loadtest_reads(
        a, f"runs/{RUN_ID}/levels/7b-fp16-g5/concurrency-0001.json"
    ),
    "load test (merge) reads a run's failures": lambda a: _loadtest_reads(a, f"runs/{RUN_ID}/failures/7b-fp16-g5.json"),
    "load test (merge) reads shards outside the results prefix": lambda a: _loadtest_reads(
        a, f"other/{RUN_ID}/shards/7b-fp16-g5/concurrency-0256/shard-01-of-04.json"
    ),
    "state machine (fan-out) invokes the janitor": lambda a: _machine_invokes(a, "Janitor"),
    "state machine creates an endpoint outside its prefix": lambda a: sagemaker_call(
        a.role(BENCHMARK, "RunnerStateMachineRole"), "sagemaker:CreateEndpoint", "endpoint", OUTSIDE
    ),
    "state machine deletes a production endpoint": lambda a: sagemaker_call(
        a.role(BENCHMARK, "RunnerStateMachineRole"), "sagemaker:DeleteEndpoint", "endpoint", OUTSIDE
    ),
    "state machine deletes a production model": lambda a: sagemaker_call(
        a.role(BENCHMARK, "RunnerStateMachineRole"), "sagemaker:DeleteModel", "model", OUTSIDE
    ),
    "state machine passes the model role to Lambda": lambda a: pass_role_call(
        a.role(BENCHMARK, "RunnerStateMachineRole"), a.role(BENCHMARK, "ModelRole"), "lambda.amazonaws.com"
    ),
    "state machine passes another role to SageMaker": lambda a: pass_role_call(
        a.role(BENCHMARK, "RunnerStateMachineRole"), a.role(BENCHMARK, "LoadtestRole"), "sagemaker.amazonaws.com"
    ),
    "janitor deletes an untagged endpoint": lambda a: sagemaker_call(
        a.role(BENCHMARK, "JanitorRole"), "sagemaker:DeleteEndpoint", "endpoint", OUTSIDE
    ),
    "janitor deletes an endpoint tagged false": lambda a: sagemaker_call(
        a.role(BENCHMARK, "JanitorRole"),
        "sagemaker:DeleteEndpoint",
        "endpoint",
        RUN_NAME,
        **{"llama-benchmark": "false"},
    ),
    "janitor lists another state machine's executions": lambda a: _list_executions(
        a, "statemachine", {"StateMachineName": "LlamaOtherStateMachine"}
    ),
    "janitor lists the executions of a Map Run of the benchmark": lambda a: _list_executions(
        a, "maprun", {"StateMachineName": _benchmark_machine(a), "MapRunLabel": "levels", "MapRunId": "0123"}
    ),
    "endpoint reads another model's weights": lambda a: Call(
        "",
        a.role("LlamaLatencyStack", "ExecutionRole"),
        "s3:GetObject",
        _s3_object(weights_bucket(a), "models/llama-2-70b-fp16/config.json"),
    ),
    "endpoint lists another model's weights": lambda a: Call(
        "",
        a.role("LlamaLatencyStack", "ExecutionRole"),
        "s3:ListBucket",
        {"bucket": {"BucketName": weights_bucket(a)}},
        {"s3:prefix": "models/llama-2-70b-fp16/"},
    ),
    "endpoint attaches to another VPC": lambda a: _eni(a.role("LlamaLatencyStack", "ExecutionRole"), OTHER_VPC),
    "benchmark model attaches to another VPC": lambda a: _eni(a.role(BENCHMARK, "ModelRole"), OTHER_VPC),
    "benchmark model reads outside models/": lambda a: Call(
        "", a.role(BENCHMARK, "ModelRole"), "s3:GetObject", _s3_object(weights_bucket(a), "private/notes.txt")
    ),
    "staging writes outside models/": lambda a: Call(
        "", a.role(FOUNDATION, "StagingRole"), "s3:PutObject", _s3_object(weights_bucket(a), "other/x.bin")
    ),
    "staging uploads over plain HTTP": lambda a: Call(
        "",
        a.role(FOUNDATION, "StagingRole"),
        "s3:PutObject",
        _s3_object(weights_bucket(a), "models/llama-2-7b-fp16/config.json"),
        {"aws:SecureTransport": False},
    ),
    "staging uploads over TLS 1.1": lambda a: Call(
        "",
        a.role(FOUNDATION, "StagingRole"),
        "s3:PutObject",
        _s3_object(weights_bucket(a), "models/llama-2-7b-fp16/config.json"),
        {"s3:TlsVersion": 1.1},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_near_misses_are_denied(account: Account, case: str) -> None:
    decision = CASES[case](account).evaluate(account)
    assert not decision.allowed, f"{case}: allowed by {[(u[0].source, u[0].index) for u in decision.used]}"


def test_the_endpoints_own_vpc_is_allowed(account: Account) -> None:
    """The near-miss VPC test above is meaningful only if the right VPC passes."""
    for role in (account.role("LlamaLatencyStack", "ExecutionRole"), account.role(BENCHMARK, "ModelRole")):
        decision = _eni(role, foundation_vpc_arn(account)).evaluate(account)
        assert decision.allowed, decision.reason


@pytest.mark.parametrize("action", ["s3:GetObject", "s3:PutObject"])
def test_the_weights_bucket_policy_grants_nobody_by_itself(account: Account, action: str) -> None:
    """Access comes from IAM grants only: a principal of this account or another with no identity policy is denied."""
    key = _s3_object(weights_bucket(account), "models/llama-2-7b-fp16/config.json")
    for principal in (
        Principal("arn:aws:iam::111122223333:role/no-grants", "111122223333"),
        Principal("arn:aws:iam::999999999999:role/elsewhere", "999999999999"),
    ):
        assert not Call("", principal, action, key).evaluate(account).allowed
