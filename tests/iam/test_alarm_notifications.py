"""Every alarm can notify: in every synthesized template (the default app, each model size, every pipeline stage),
CloudWatch may publish to each topic an alarm action names and may use that topic's key (issue 16, item 8).

An alarm action on an encrypted topic needs two resource policies to allow the CloudWatch service principal, and
no identity policy can stand in for either (a service principal has none):

- the topic policy, ``sns:Publish`` (AWS re:Post knowledge center, "Why didn't I receive an SNS notification for
  my CloudWatch alarm trigger?", https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger);
- the key policy, ``kms:GenerateDataKey*`` and ``kms:Decrypt`` (SNS developer guide, "Enable compatibility between
  event sources from AWS services and encrypted topics",
  https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).

Both are scoped with the confused-deputy keys those pages name, ``aws:SourceAccount`` and ``aws:SourceArn`` (the
alarm's ARN): the same alarm in another account is refused, and so is another alarm of this account on the topic.
The alarm actions are found generically (every ``AlarmActions``, ``OKActions`` and ``InsufficientDataActions`` of
every ``AWS::CloudWatch::Alarm``), so an alarm added later is covered without touching this file.
"""

from __future__ import annotations

import json

import pytest

from tests.iam.account import Account
from tests.iam.assemblies import ASSEMBLIES, accounts_of, assembly_directory
from tests.iam.evaluator import Decision, Principal, Resource
from tests.iam.services import CLOUDWATCH, AlarmNotification, alarm_context, alarm_notifications

OTHER_ACCOUNT = "999988887777"


@pytest.fixture(scope="module", params=ASSEMBLIES)
def accounts(request: pytest.FixtureRequest) -> list[Account]:
    return accounts_of(assembly_directory(request, request.param))


def _notifications(accounts: list[Account]) -> list[tuple[Account, AlarmNotification]]:
    found = [(a, n) for a in accounts for n in alarm_notifications(a)]
    assert found, "no alarm action found: the search is broken or the alarms are gone"
    return found


def _publish(account: Account, n: AlarmNotification, *, source_account: str, alarm_arn: str) -> list[Decision]:
    """What CloudWatch asks when the alarm fires: SNS Publish, and (encrypted topic) KMS for the data key."""
    cloudwatch = Principal(CLOUDWATCH, source_account, is_service=True)
    context = {"aws:SourceAccount": source_account, "aws:SourceArn": alarm_arn}
    decisions = [account.evaluate(cloudwatch, "sns:Publish", (Resource(n.topic_arn),), **context)]
    if n.key_arn is not None:
        decisions += [
            account.evaluate(cloudwatch, action, (Resource(n.key_arn),), **context)
            for action in ("kms:GenerateDataKey", "kms:Decrypt")
        ]
    return decisions


def test_every_alarm_action_may_publish_to_its_topic_and_use_its_key(accounts: list[Account]) -> None:
    problems = []
    for account, n in _notifications(accounts):
        if n.key_arn is None:
            problems.append(f"{n.stack}/{n.alarm} {n.state}: {n.topic_arn} is not encrypted")
        context = alarm_context(n, account.account)
        for decision in _publish(account, n, source_account=account.account, alarm_arn=n.alarm_arn):
            if not decision.allowed:
                problems.append(f"{n.stack}/{n.alarm} {n.state} -> {n.topic_arn}: {decision.reason}")
                continue
            for ref, _, _ in decision.used:  # the allowing statements are scoped by both confused-deputy keys
                condition = json.dumps(ref.statement.get("Condition", {})).lower()
                unscoped = [k for k in context if k.lower() not in condition]
                if unscoped:
                    problems.append(f"{ref.source}#{ref.index} allows {n.stack}/{n.alarm} without {unscoped}")
    assert not problems, "\n".join(problems)


def test_the_same_alarm_in_another_account_is_refused(accounts: list[Account]) -> None:
    for account, n in _notifications(accounts):
        elsewhere = n.alarm_arn.replace(f":{account.account}:", f":{OTHER_ACCOUNT}:")
        for decision in _publish(account, n, source_account=OTHER_ACCOUNT, alarm_arn=elsewhere):
            assert not decision.allowed, f"{n.stack}/{n.alarm}: another account's alarm was allowed"


def test_another_alarm_of_the_account_may_not_publish_to_the_topic(accounts: list[Account]) -> None:
    for account, n in _notifications(accounts):
        stranger = n.alarm_arn.rsplit(":", 1)[0] + ":someone-elses-alarm"
        (publish, *_) = _publish(account, n, source_account=account.account, alarm_arn=stranger)
        assert not publish.allowed, f"{n.topic_arn}: an alarm that does not notify it may publish"


def test_the_search_finds_the_endpoint_and_regression_alarms(accounts: list[Account]) -> None:
    """Each endpoint stack's three alarms notify on ALARM and OK, the regression alarm on ALARM."""
    found = {(n.stack, n.state) for _, n in _notifications(accounts)}
    stacks = {stack for a in accounts for stack in a.templates}
    for stack in stacks:
        if stack.endswith(("LlamaCostStack", "LlamaLatencyStack", "LlamaThroughputStack")):
            assert {(stack, "AlarmActions"), (stack, "OKActions")} <= found, stack
        if stack.endswith("LlamaBenchmarkStack"):
            assert (stack, "AlarmActions") in found, stack
