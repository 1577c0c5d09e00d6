"""What AWS services do with the resource policies we write: they call as service principals, so only the
bucket, key and topic policies can allow them (no identity policy applies)."""

from __future__ import annotations

from collections.abc import Iterator

from tests.iam.account import Account
from tests.iam.calls import Call, _key, _s3_object
from tests.iam.evaluator import Principal
from tests.iam.intrinsics import ACCOUNT, PARTITION, REGION, Resolver


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


def alarm_notification_calls(account: Account) -> Iterator[Call]:
    """CloudWatch alarms publish to each scenario's encrypted topic (SNS developer guide, "Encryption at rest":
    the key policy must let cloudwatch.amazonaws.com use the key)."""
    alarms = service("cloudwatch.amazonaws.com")
    for stack in account.templates:
        r = Resolver(account.templates, stack)
        for logical, res in r.resources.items():
            if res["Type"] != "AWS::SNS::Topic" or not logical.startswith("MonitoringTopic"):
                continue
            topic = r.ref(logical)
            context = {
                "aws:SourceAccount": ACCOUNT,
                "aws:SourceArn": f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{stack}-5xx",
            }
            yield Call(
                f"alarms of {stack}", alarms, "sns:Publish", {"topic": {"TopicName": topic.rsplit(":", 1)[1]}}, context
            )
            key = r.resolve(res["Properties"]["KmsMasterKeyId"])
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                yield Call(f"alarms of {stack} (encrypted topic)", alarms, action, _key(key), context)


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
