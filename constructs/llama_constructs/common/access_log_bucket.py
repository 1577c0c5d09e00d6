"""A bucket that receives S3 server access logs, built the same way wherever the project needs one.

S3 log delivery supports only SSE-S3 as the target bucket's default encryption (Amazon S3 user guide,
"Enabling Amazon S3 server access logging"), so this bucket cannot use the customer key the logged buckets
use. Delivery is granted by a bucket policy to ``logging.s3.amazonaws.com`` (ACLs are disabled), limited to
this account and, when given, to one source bucket and one key prefix.

The bucket is the construct's default child, so its logical ID is the one a plain ``s3.Bucket`` with the
construct's id would get: moving an existing log bucket into this construct does not replace it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from constructs import Construct

LOG_DELIVERY_BY_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"
_SID = re.compile(r"^[A-Za-z0-9]+$")  # IAM statement ids: alphanumerics only
_PREFIX = re.compile(r"^([A-Za-z0-9!_.*'()-]+/)*$")  # "" or folders ending in "/"


def deliver_logs_by_policy(scope: Construct) -> None:
    """Buckets created under ``scope`` from now on grant log delivery with a bucket policy statement, not the
    LogDeliveryWrite ACL (ACLs are disabled on the log bucket), whatever the app's feature flags say."""
    scope.node.set_context(LOG_DELIVERY_BY_POLICY, True)


@dataclass(frozen=True, kw_only=True)
class AccessLogBucketProps:
    sid: str  # names the delivery statement in the bucket policy
    object_prefix: str = ""  # log deliveries may write only under it ("" = anywhere in the bucket)
    source_bucket_arn: str | None = None  # if given, only that bucket's logs are accepted
    retention_days: int = 365
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN

    def __post_init__(self) -> None:
        if not _SID.match(self.sid):
            raise ValueError(f"sid must be alphanumeric, got {self.sid!r}")
        if not _PREFIX.match(self.object_prefix):
            raise ValueError(f"object_prefix must be empty or end in '/', got {self.object_prefix!r}")
        if self.retention_days < 1:
            raise ValueError("retention_days must be at least 1")


class AccessLogBucket(Construct):
    """SSE-S3, TLS 1.2+ only, versioned, no public access, bucket-owner-enforced, expiring. Exposes ``.bucket``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: AccessLogBucketProps) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Default",  # the default child: keeps the logical ID of a bucket created directly under this id
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=props.removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=cdk.Duration.days(props.retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
        )
        conditions: dict[str, dict[str, str]] = {}
        if props.source_bucket_arn is not None:
            conditions["ArnLike"] = {"aws:SourceArn": props.source_bucket_arn}
        conditions["StringEquals"] = {"aws:SourceAccount": cdk.Stack.of(self).account}
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=props.sid,
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{props.object_prefix}*")],
                conditions=conditions,
            )
        )
        cdk.Validations.of(self.bucket).acknowledge(
            cdk.Acknowledgment(
                id="NIST.800.53.R5-S3BucketReplicationEnabled",
                reason="access logs describe buckets in this region only and are kept versioned for their "
                "retention; a replica would need a bucket in a second region for data that only describes this one",
            ),
            cdk.Acknowledgment(
                id="NIST.800.53.R5-S3DefaultEncryptionKMS",
                reason="S3 server access log delivery supports only SSE-S3 as the target bucket's default "
                "encryption (S3 user guide, Enabling server access logging); SSE-KMS would drop the logs",
            ),
        )
