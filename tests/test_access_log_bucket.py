"""AccessLogBucket: props are validated, and the delivery grant is scoped to the account, prefix and source."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from llama_constructs.common.access_log_bucket import AccessLogBucket, AccessLogBucketProps, deliver_logs_by_policy

SOURCE_ARN = "arn:aws:s3:::source-bucket"


@pytest.fixture(scope="module")
def template() -> Template:
    stack = cdk.Stack(cdk.App(), "AccessLogs")
    AccessLogBucket(stack, "AnySource", props=AccessLogBucketProps(sid="AnySource", retention_days=30))
    AccessLogBucket(
        stack,
        "OneSource",
        props=AccessLogBucketProps(sid="OneSource", object_prefix="artifacts/", source_bucket_arn=SOURCE_ARN),
    )
    return Template.from_stack(stack)


def _delivery(template: Template, sid: str) -> dict[str, Any]:
    for policy in template.find_resources("AWS::S3::BucketPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Sid") == sid:
                return statement  # type: ignore[no-any-return]
    raise AssertionError(f"no statement {sid}")


@pytest.mark.parametrize(
    "kwargs",
    [{"sid": "has-dash"}, {"sid": "Ok", "object_prefix": "no-slash"}, {"sid": "Ok", "retention_days": 0}],
)
def test_bad_props_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AccessLogBucketProps(**kwargs)


def test_the_bucket_is_sse_s3_tls_only_and_expires_logs(template: Template) -> None:
    template.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "VersioningConfiguration": {"Status": "Enabled"},
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "ExpireAccessLogs",
                            "ExpirationInDays": 30,
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                            "Status": "Enabled",
                        }
                    ]
                },
            },
        },
    )


def test_delivery_is_limited_to_this_account_and_when_given_one_source_and_prefix(template: Template) -> None:
    any_source = _delivery(template, "AnySource")
    assert any_source["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert any_source["Action"] == "s3:PutObject"
    assert any_source["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert json.dumps(any_source["Resource"]).endswith('"/*"]]}')

    one_source = _delivery(template, "OneSource")
    assert one_source["Condition"] == {
        "ArnLike": {"aws:SourceArn": SOURCE_ARN},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }
    assert json.dumps(one_source["Resource"]).endswith('"/artifacts/*"]]}')


def test_a_bucket_logging_into_it_is_granted_by_policy_even_without_the_apps_feature_flag() -> None:
    stack = cdk.Stack(cdk.App(), "NoFlags")  # this app has none of cdk.json's feature flags
    deliver_logs_by_policy(stack)  # without it CDK wants the LogDeliveryWrite ACL, which ACLs-off refuses
    logs = AccessLogBucket(stack, "Logs", props=AccessLogBucketProps(sid="Logs")).bucket
    s3.Bucket(stack, "Source", server_access_logs_bucket=logs, server_access_logs_prefix="source/")
    template = Template.from_stack(stack)
    assert all("AccessControl" not in b["Properties"] for b in template.find_resources("AWS::S3::Bucket").values())
    statements = json.dumps(template.find_resources("AWS::S3::BucketPolicy"))
    assert '"aws:SourceArn": {"Fn::GetAtt": ["Source' in statements
