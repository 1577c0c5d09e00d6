"""The documented CloudFormation execution policy covers what CloudFormation's own resource handlers declare
they call for every resource type the app deploys (the registry schemas that cfn-lint ships), plus the
``cloudformation:DescribeStacks`` that ``Fn::GetStackOutput`` needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.execution_policy import MANAGED_POLICY_MAX_CHARS, handler_permissions, resource_types
from tests.conftest import AppAssembly

DOCUMENTED = Path(__file__).resolve().parent.parent / "docs" / "cfn-execution-policy"


def _documents() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(DOCUMENTED.glob("part-*.json"))]


def _actions() -> set[str]:
    return {
        a
        for policy in _documents()
        for s in policy["Statement"]
        if s["Effect"] == "Allow" and s["Resource"] == "*"
        for a in s["Action"]
    }


def test_each_part_fits_a_managed_policy() -> None:
    assert len(_documents()) >= 2
    for policy in _documents():
        assert len(json.dumps(policy, separators=(",", ":"))) <= MANAGED_POLICY_MAX_CHARS == 6144


def _templates(assembly: AppAssembly) -> list[dict[str, Any]]:
    return [assembly.template_json(name) for name in assembly.stacks]


def test_every_deployed_type_is_covered_by_the_documented_policy(app_assembly: AppAssembly) -> None:
    documented = _actions()
    for resource_type in sorted(resource_types(_templates(app_assembly))):
        missing = handler_permissions(resource_type) - documented
        assert not missing, f"{resource_type}: CloudFormation's handlers also call {sorted(missing)}"


def test_cross_stack_values_need_describe_stacks(app_assembly: AppAssembly) -> None:
    assert any("Fn::GetStackOutput" in json.dumps(t) for t in _templates(app_assembly))
    assert "cloudformation:DescribeStacks" in _actions()


def test_handler_permissions_come_from_the_registry_schema() -> None:
    endpoint = handler_permissions("AWS::SageMaker::Endpoint")
    assert {"sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint"} <= endpoint
    assert "states:CreateStateMachine" in handler_permissions("AWS::StepFunctions::StateMachine")
    with pytest.raises(KeyError, match="not a CloudFormation resource type"):
        handler_permissions("AWS::SageMaker::Nothing")
