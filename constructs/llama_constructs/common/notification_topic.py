"""The benchmark's notification topic (run summaries and failures, regression alarms), and the one way any of
the project's encrypted topics lets CloudWatch alarms publish to it.

An alarm notifies an encrypted topic only when both policies allow the CloudWatch service principal: the key
policy (``kms:GenerateDataKey*``/``kms:Decrypt``, ``llama_constructs.common.encryption``) and the topic policy
(``sns:Publish``, here). ``enforce_ssl`` replaces SNS's default topic policy, so the allow must be explicit. It
is limited with the confused-deputy keys AWS documents for alarm actions (Amazon CloudWatch user guide,
"Notifying users on alarm changes"; AWS re:Post knowledge center, "Why didn't I receive an SNS notification for
my CloudWatch alarm trigger?", https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger):
``aws:SourceAccount`` (this account) and ``aws:SourceArn`` (the alarms that notify this topic, by ARN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns

from constructs import Construct
from llama_constructs.common.encryption import CLOUDWATCH_ALARMS


def allow_alarm_notifications(topic: sns.ITopic, *, alarms: Sequence[cw.IAlarm], sid: str) -> None:
    """Let exactly ``alarms`` (this account's, by ARN) publish to ``topic``; its key must admit CloudWatch too."""
    if not alarms:
        raise ValueError("allow_alarm_notifications needs the alarms that notify the topic")
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            principals=[iam.ServicePrincipal(CLOUDWATCH_ALARMS)],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": cdk.Stack.of(topic).account},
                "ArnEquals": {"aws:SourceArn": [alarm.alarm_arn for alarm in alarms]},
            },
        )
    )


@dataclass(frozen=True, kw_only=True)
class NotificationTopicProps:
    key: kms.IKey  # its policy must admit CloudWatch alarms (EncryptionProps.alarm_notifications) for alarm actions


class NotificationTopic(Construct):
    """Exposes ``.topic`` (the default child, so its logical id is this construct's)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: NotificationTopicProps) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Default", master_key=props.key, enforce_ssl=True)
