"""What the first deployment needs from the benchmark stack's wiring: no reserved Lambda concurrency (it
fails in accounts whose unreserved minimum forbids it), the rule that sends an execution's bad ending to the
janitor, the sweep's schedule and the janitor's way to Step Functions. The behaviour behind them runs in
tests/test_state_machine_local.py and tests/test_janitor.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.benchmark_fixtures import Built, build, janitor_sweep_minutes


@pytest.fixture(scope="module")
def built() -> Built:
    return build()


def _logical(built: Built, construct: Any) -> str:
    return str(built.stack.get_logical_id(construct.node.default_child))


def test_no_function_reserves_concurrency(built: Built) -> None:
    functions = built.template.find_resources("AWS::Lambda::Function")
    assert len(functions) == 3  # load test, aggregate, janitor
    assert [n for n, f in functions.items() if "ReservedConcurrentExecutions" in f["Properties"]] == []


def test_the_bad_ending_rule_invokes_the_janitor_only(built: Built) -> None:
    janitor = _logical(built, built.stack.janitor.function)
    machine = _logical(built, built.stack.state_machine.state_machine)
    rules = built.template.find_resources("AWS::Events::Rule")
    (rule_id,) = [r for r, v in rules.items() if "EventPattern" in v["Properties"]]
    rule = rules[rule_id]["Properties"]
    assert rule["EventPattern"]["detail"]["stateMachineArn"] == [{"Ref": machine}]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [janitor, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    permissions = built.template.find_resources("AWS::Lambda::Permission")
    allowed = [
        p["Properties"]
        for p in permissions.values()
        if p["Properties"].get("SourceArn") == {"Fn::GetAtt": [rule_id, "Arn"]}
    ]
    assert allowed == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [janitor, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        }
    ]


def test_the_sweep_deletes_within_the_hour_after_an_endpoint_becomes_deletable(built: Built) -> None:
    """An ended execution's endpoint that becomes deletable just after a sweep began goes at the next one: at
    worst one interval plus the function's run later (tests/test_state_machine_local.py runs it)."""
    function = built.template.to_json()["Resources"][_logical(built, built.stack.janitor.function)]
    assert janitor_sweep_minutes(built) * 60 + function["Properties"]["Timeout"] <= 3600


def test_the_janitor_reaches_step_functions_only_for_its_one_call(built: Built) -> None:
    """The janitor runs in the isolated VPC: an interface endpoint for Step Functions in one subnet, behind the
    foundation's interface-endpoint group (443 in from the workloads, nothing out), whose policy admits
    ListExecutions on this state machine, by this account."""
    machine = _logical(built, built.stack.state_machine.state_machine)
    (endpoint,) = built.template.find_resources("AWS::EC2::VPCEndpoint").values()
    props = endpoint["Properties"]
    assert props["VpcEndpointType"] == "Interface"
    assert props["ServiceName"] == {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".states"]]}
    assert props["PrivateDnsEnabled"] is True and len(props["SubnetIds"]) == 1
    (statement,) = props["PolicyDocument"]["Statement"]
    assert statement["Action"] == "states:ListExecutions" and statement["Resource"] == {"Ref": machine}
    assert statement["Principal"] == {"AWS": "*"}
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    (group,) = props["SecurityGroupIds"]
    assert "InterfaceEndpointSg" in json.dumps(group)  # the stand-in foundation's group, imported
    assert not built.template.find_resources("AWS::EC2::SecurityGroup")  # no group of its own
