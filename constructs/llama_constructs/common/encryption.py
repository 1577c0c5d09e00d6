"""The project's one customer-managed KMS key: weights, logs, alarms' SNS topics and build artifacts use it.

One key (not one per resource) keeps the key policy reviewable in one place and the cost at one key. The
key policy is CDK's default (the account administers the key through IAM) plus two service grants that
IAM cannot express, because the caller is an AWS service, not a principal of the account:

- CloudWatch Logs encrypts log groups with the key only for log groups of this account and region
  (``kms:EncryptionContext:aws:logs:arn``), so no other account's log group can borrow it;
- CloudWatch alarms publish to SNS topics encrypted with the key; the alarm service needs
  ``kms:GenerateDataKey*``/``kms:Decrypt`` for that (SNS developer guide, "Enable compatibility between event
  sources from AWS services and encrypted topics",
  https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services), limited
  to alarms of this account and region (``aws:SourceAccount`` and ``aws:SourceArn``, the confused-deputy keys
  that page tells to add). The topic's own policy must allow ``sns:Publish`` too
  (``llama_constructs.common.notification_topic.allow_alarm_notifications``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from constructs import Construct

_ALIAS = re.compile(r"^alias/[a-zA-Z0-9/_-]{1,250}$")
CLOUDWATCH_ALARMS = "cloudwatch.amazonaws.com"  # the service principal alarm actions run as


@dataclass(frozen=True, kw_only=True)
class EncryptionProps:
    alias: str | None = None  # default: alias/<stack name>, unique per stack and stage
    description: str = "Llama 2 on SageMaker: weights, logs, alarm topics and build artifacts"
    alarm_notifications: bool = True  # CloudWatch alarms of this account and region may publish to its topics
    pending_window_days: int = 30
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN

    def __post_init__(self) -> None:
        if self.alias is not None and (not _ALIAS.match(self.alias) or self.alias.startswith("alias/aws/")):
            raise ValueError(f"alias {self.alias!r} must match alias/<name> and not use the reserved alias/aws/")
        if not 7 <= self.pending_window_days <= 30:
            raise ValueError("pending_window_days must be 7..30 (the KMS limits)")


class Encryption(Construct):
    """A rotating customer-managed key with an alias; exposes ``.key`` and ``.alias``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: EncryptionProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description=props.description,
            enable_key_rotation=True,
            pending_window=cdk.Duration.days(props.pending_window_days),
            removal_policy=props.removal_policy,
        )
        alias_name = props.alias or f"alias/{re.sub(r'[^a-zA-Z0-9/_-]', '-', stack.stack_name)}"
        self.alias = self.key.add_alias(alias_name)

        log_groups = stack.format_arn(
            service="logs", resource="log-group", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.{stack.url_suffix}")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
            )
        )
        if props.alarm_notifications:
            alarms = stack.format_arn(
                service="cloudwatch", resource="alarm", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
            )
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="AlarmsPublishToEncryptedTopics",
                    principals=[iam.ServicePrincipal(CLOUDWATCH_ALARMS)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": alarms},
                    },
                )
            )
