"""The promotion pipeline's own AWS calls: the source action's connection and the cross-account smoke test."""

from __future__ import annotations

from typing import Any

import pytest

from settings.stages import StagesConfig, load_stages
from stacks.pipeline_stack import PIPELINE_STACK_NAME
from tests.conftest import PIPELINE_STAGE_FILE, AppAssembly
from tests.iam import reference
from tests.iam.account import Account
from tests.iam.code_calls import ROOT, aws_calls
from tests.iam.evaluator import Decision, Policies, Principal, Request, Resource, evaluate, statements_of
from tests.iam.intrinsics import Resolver


@pytest.fixture(scope="module")
def stages() -> StagesConfig:
    return load_stages(PIPELINE_STAGE_FILE, base_dir=ROOT)


@pytest.fixture(scope="module")
def pipeline(pipeline_assembly: AppAssembly) -> Account:
    return Account({PIPELINE_STACK_NAME: pipeline_assembly.template_json(PIPELINE_STACK_NAME)})


def _stage_template(assembly: AppAssembly, stage: str, part: str) -> tuple[str, dict[str, Any]]:
    (name,) = [n for n in assembly.stacks if n.startswith(f"{stage}-") and part in n]
    return name, assembly.template_json(name)


def test_the_source_action_may_use_its_connection(pipeline: Account, stages: StagesConfig) -> None:
    """The action's service prefix is the connection ARN's (``codeconnections`` since the rename), per the
    Service Authorization Reference; ``codestar-connections:UseConnection`` does not match that ARN."""
    connection = str(stages.pipeline.source.connection_arn)
    _, _, service, region, account, resource = connection.split(":", 5)
    action = f"{service}:UseConnection"
    arn = reference.arn(
        action, "Connection", {"ConnectionId": resource.split("/", 1)[1]}, account=account, region=region
    )
    assert arn == connection
    (role,) = [r for r in pipeline.all_roles() if "Source" in r.logical_id]
    decision = pipeline.evaluate(role, action, (Resource(arn),))
    assert decision.allowed, decision.reason


def test_smoke_test_may_assume_its_role_and_invoke_only_its_endpoints(
    pipeline_assembly: AppAssembly, pipeline: Account, stages: StagesConfig
) -> None:
    # What benchmark.aws.smoke calls, found in its code: nothing else may appear without being modelled here.
    found = {(c.service, c.operation) for c in aws_calls(ROOT / "benchmark" / "aws" / "smoke.py")}
    assert found == {("sts", "AssumeRole"), ("sagemaker-runtime", "InvokeEndpoint")}
    p = stages.pipeline
    for stage in stages.stages:
        runner_name, target_name = f"{p.name}-{stage.name}-smoke-runner", f"{p.name}-{stage.name}-smoke-test"
        runner_arn = f"arn:aws:iam::{p.account}:role/{runner_name}"
        (runner,) = [r for r in pipeline.all_roles() if r.logical_id.startswith(f"SmokeRunner{stage.name}")]
        access_name, access = _stage_template(pipeline_assembly, stage.name, "SmokeTestAccess")
        (trust_role,) = [v for v in access["Resources"].values() if v["Type"] == "AWS::IAM::Role"]
        resolver = Resolver({access_name: access}, access_name)
        trust = statements_of(access_name, resolver.resolve(trust_role["Properties"]["AssumeRolePolicyDocument"]))
        target = reference.arn("sts:AssumeRole", "role", {"RoleNameWithPath": target_name}, account=stage.account)
        principal = Principal(runner_arn, p.account)
        assume = Request(principal, "sts:AssumeRole", (Resource(target),), {"aws:PrincipalArn": runner_arn})
        decision = evaluate(assume, Policies(runner.statements, trust, cross_account=stage.account != p.account))
        assert decision.allowed, f"{stage.name}: {decision.reason}"
        intruder = Principal(f"arn:aws:iam::{p.account}:role/someone-else", p.account)
        other = Request(intruder, "sts:AssumeRole", (Resource(target),), {"aws:PrincipalArn": intruder.arn})
        assert not evaluate(other, Policies(runner.statements, trust, cross_account=True)).allowed

        (policy,) = [v for v in access["Resources"].values() if v["Type"] == "AWS::IAM::ManagedPolicy"]
        statements = statements_of(access_name, resolver.resolve(policy["Properties"]["PolicyDocument"]))
        smoke = Principal(target, stage.account)
        for endpoint in _stage_endpoints(pipeline_assembly, stage.name):
            arn = reference.arn(
                "sagemaker:InvokeEndpoint",
                "endpoint",
                {"EndpointName": endpoint},
                account=stage.account,
                region=stage.region,
            )
            assert _invoke(smoke, arn, statements).allowed, f"{stage.name}: may not invoke {endpoint}"
        outside = reference.arn(
            "sagemaker:InvokeEndpoint",
            "endpoint",
            {"EndpointName": "llmbench-other"},
            account=stage.account,
            region=stage.region,
        )
        assert not _invoke(smoke, outside, statements).allowed


def _invoke(principal: Principal, arn: str, statements: Any) -> Decision:
    return evaluate(Request(principal, "sagemaker:InvokeEndpoint", (Resource(arn),)), Policies(statements))


def _stage_endpoints(assembly: AppAssembly, stage: str) -> list[str]:
    names = []
    for name in assembly.stacks:
        if name.startswith(f"{stage}-"):
            for res in assembly.template_json(name)["Resources"].values():
                if res["Type"] == "AWS::SageMaker::Endpoint":
                    names.append(str(res["Properties"]["EndpointName"]).lower())
    assert names, f"stage {stage} has no endpoint"
    return names
