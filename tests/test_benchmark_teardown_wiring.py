"""What the first deployment needs from the benchmark stack's wiring: no reserved Lambda concurrency (it
fails in accounts whose unreserved minimum forbids it), and the rule that sends an execution's bad ending
to the janitor. The behaviour behind both runs in tests/test_state_machine_local.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.benchmark_fixtures import Built, build


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
