"""What AWS services do with the resource policies we write: they call as service principals, so only the
bucket, key and topic policies can allow them (no identity policy applies)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tests.iam.account import Account
from tests.iam.calls import Call, _key, _s3_object
from tests.iam.evaluator import ContextValue, Principal
from tests.iam.intrinsics import ACCOUNT, PARTITION, REGION, Resolver

CLOUDWATCH = "cloudwatch.amazonaws.com"


def service(name: str) -> Principal:
    return Principal(name, ACCOUNT, is_service=True)


def log_group_encryption_calls(account: Account) -> Iterator[Call]:
    """CloudWatch Logs encrypts each log group's data with its key, naming the group in the encryption context
    (CloudWatch Logs user guide, "Encrypt log data using AWS KMS")."""
    logs = service(f"logs.{REGION}.amazonaws.com")
    for stack in account.templates:
        r = Resolver(account.templates, stack)
        for logical, res in r.resources.items():
            if res["Type"] != "AWS::Logs::LogGroup" or "KmsKeyId" not in res.get("Properties", {}):
                continue
            group = r.get_att(logical, "Arn").removesuffix(":*")
            key = r.resolve(res["Properties"]["KmsKeyId"])
            context = {"kms:EncryptionContext:aws:logs:arn": group, "aws:SourceAccount": ACCOUNT}
            for action in ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:DescribeKey"):
                yield Call(f"CloudWatch Logs encrypts {group}", logs, action, _key(key), context)


def access_log_delivery_calls(account: Account) -> Iterator[Call]:
    """S3 server access logging writes with its service principal, naming the source bucket and account."""
    delivery = service("logging.s3.amazonaws.com")
    for stack in account.templates:
        r = Resolver(account.templates, stack)
        for logical, res in r.resources.items():
            logging = (
                res.get("Properties", {}).get("LoggingConfiguration") if res["Type"] == "AWS::S3::Bucket" else None
            )
            if not logging:
                continue
            source = f"arn:{PARTITION}:s3:::{r.ref(logical)}"
            target = r.resolve(logging["DestinationBucketName"])
            key = f"{logging.get('LogFilePrefix', '')}2026-12-02-10-00-00-0123456789ABCDEF"
            context = {"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT}
            yield Call(f"S3 access logs of {source}", delivery, "s3:PutObject", _s3_object(target, key), context)


ALARM_ACTION_PROPERTIES = ("AlarmActions", "OKActions", "InsufficientDataActions")


@dataclass(frozen=True)
class AlarmNotification:
    """One action of one alarm that notifies an SNS topic, resolved: the topic, its key and their policies."""

    stack: str
    alarm: str  # logical id
    alarm_arn: str
    state: str  # which of ALARM_ACTION_PROPERTIES
    topic_arn: str
    key_arn: str | None  # the topic's KmsMasterKeyId, resolved; None for an unencrypted topic


def _topics(account: Account) -> dict[str, tuple[str, str]]:
    """Topic ARN -> (stack, logical id), over every template of the account."""
    found: dict[str, tuple[str, str]] = {}
    for stack in account.templates:
        r = account.resolver(stack)
        for logical, res in r.resources.items():
            if res["Type"] == "AWS::SNS::Topic":
                found[r.get_att(logical, "Arn")] = (stack, logical)
    return found


def alarm_notifications(account: Account) -> Iterator[AlarmNotification]:
    """Every ARN in every alarm's AlarmActions, OKActions and InsufficientDataActions, in every template; each must
    be a topic of these templates (an action this cannot resolve fails the test that asks)."""
    topics = _topics(account)
    for stack in account.templates:
        r = account.resolver(stack)
        for logical, res in r.resources.items():
            if res["Type"] != "AWS::CloudWatch::Alarm":
                continue
            for state in ALARM_ACTION_PROPERTIES:
                for action in res.get("Properties", {}).get(state, []):
                    arn = str(r.resolve(action))
                    if arn not in topics:
                        raise AssertionError(f"{stack}/{logical} {state}: {arn} is not a topic of these templates")
                    topic_stack, topic = topics[arn]
                    owner = r.for_stack(topic_stack)
                    key = owner.resources[topic].get("Properties", {}).get("KmsMasterKeyId")
                    key_arn = None if key is None else owner.resolve(key)
                    yield AlarmNotification(stack, logical, r.get_att(logical, "Arn"), state, arn, key_arn)


def alarm_context(notification: AlarmNotification, account: str) -> dict[str, ContextValue]:
    """What CloudWatch's requests carry for an alarm action: the alarm as source, its account."""
    return {"aws:SourceAccount": account, "aws:SourceArn": notification.alarm_arn}


def alarm_notification_calls(account: Account) -> Iterator[Call]:
    """CloudWatch alarms publish to their topics; an encrypted topic needs the key too (SNS developer guide, "Enable
    compatibility between event sources from AWS services and encrypted topics")."""
    alarms = service(CLOUDWATCH)
    for n in alarm_notifications(account):
        context = alarm_context(n, ACCOUNT)
        topic = {"topic": {"TopicName": n.topic_arn.rsplit(":", 1)[1]}}
        yield Call(f"{n.stack}/{n.alarm} {n.state}", alarms, "sns:Publish", topic, context)
        if n.key_arn is not None:
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                yield Call(f"{n.stack}/{n.alarm} {n.state} (encrypted topic)", alarms, action, _key(n.key_arn), context)


def vended_log_delivery_calls(account: Account) -> Iterator[Call]:
    """Step Functions' vended log delivery reads execution data encrypted with the state machine's key."""
    delivery = service("delivery.logs.amazonaws.com")
    r = Resolver(account.templates, "LlamaBenchmarkStack")
    for res in r.resources.values():
        if res["Type"] == "AWS::StepFunctions::StateMachine":
            key = r.resolve(res["Properties"]["EncryptionConfiguration"]["KmsKeyId"])
            yield Call("Step Functions log delivery", delivery, "kms:Decrypt", _key(key))


def service_calls(account: Account) -> list[Call]:
    return [
        *log_group_encryption_calls(account),
        *access_log_delivery_calls(account),
        *alarm_notification_calls(account),
        *vended_log_delivery_calls(account),
    ]
