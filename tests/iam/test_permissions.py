"""Permissions are sufficient, not only tight: every call each component makes is allowed by the synthesized
identity and resource policies, and every grant is needed by some call (issue 8)."""

from __future__ import annotations

import json

import pytest

from tests.iam.account import Account
from tests.iam.calls import Call
from tests.iam.code_calls import aws_calls
from tests.iam.components import HANDLER_CALLS, NOT_REACHED, all_calls, handler_path
from tests.iam.services import service_calls
from tests.iam.usage import Unused, unused_grants


@pytest.fixture(scope="module")
def calls(account: Account) -> list[Call]:
    return [*all_calls(account), *service_calls(account)]


def test_every_call_is_allowed(account: Account, calls: list[Call]) -> None:
    denied = [
        f"{c.component}: {c.action} on {[r.arn for r in c.request_resources()]}: {d.reason}"
        for c in calls
        if not (d := c.evaluate(account)).allowed
    ]
    assert not denied, "\n".join(denied)


def _generated_by_cdk(finding: Unused) -> str | None:
    """Grants CDK writes that our calls cannot use; the reason, or None when the finding is ours to fix."""
    statement = finding.ref.statement
    if finding.owner.startswith("RunnerStateMachineRole"):
        if finding.what == "resource" and finding.item.startswith("arn:aws:lambda:") and finding.item.endswith(":*"):
            return "CDK's Lambda task grants the function's versions and aliases too; the ASL names the function"
        condition = json.dumps(statement.get("Condition", {}))
        if "aws:states:stateMachineArn" in condition and condition.endswith(':stateMachine:"}}'):
            return (
                "CDK conditions the execution-data key grant on the machine's ARN, built from a name it does not "
                "know for a generated name, so it never matches; the results grant on the same key covers the calls"
            )
    return None


def test_no_grant_without_a_call(account: Account, calls: list[Call]) -> None:
    findings = unused_grants(account, account.all_roles(), calls)
    ours = [str(f) for f in findings if _generated_by_cdk(f) is None]
    assert not ours, "grants no call needs:\n" + "\n".join(ours)
    # Both CDK-generated extras still occur; when CDK stops writing one, drop it from _generated_by_cdk.
    assert len({_generated_by_cdk(f) for f in findings} - {None}) == 2


@pytest.mark.parametrize("handler", sorted(HANDLER_CALLS))
def test_every_sdk_call_in_a_handler_is_modelled(handler: str) -> None:
    """A new boto3 call in a handler (or in what it imports) fails here until its requests are modelled."""
    found = aws_calls(handler_path(handler))
    modelled = HANDLER_CALLS[handler][1]
    unexplained = [
        f"{c.module}:{c.line} {c.service}.{c.operation}"
        for c in sorted(found)
        if (c.service, c.operation) not in modelled and (handler, c.module, c.service, c.operation) not in NOT_REACHED
    ]
    assert not unexplained, f"{handler}: model these calls in tests/iam/components.py:\n" + "\n".join(unexplained)
    in_code = {(c.service, c.operation) for c in found}
    assert modelled <= in_code, f"{handler}: modelled but no longer in the code: {sorted(modelled - in_code)}"
    stale = [k for k in NOT_REACHED if k[0] == handler and (k[2], k[3]) not in in_code]
    assert not stale, f"NOT_REACHED entries with no such call any more: {stale}"
