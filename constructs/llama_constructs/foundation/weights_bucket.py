"""The bucket that holds model weights, uncompressed, one prefix per model under ``models/``.

SageMaker reads a prefix as ``ModelDataSource.S3DataSource`` (``S3Prefix``, ``CompressionType: None``), so
the helpers here hand out ``s3://bucket/models/<name>/`` URIs and the matching object ARNs. Only prefixes under
``models/`` are accepted: the staging job may write nowhere else, so any other prefix would stay empty.

Server access logs go to a separate bucket encrypted with S3-managed keys: S3 log delivery supports only
SSE-S3 as the target bucket's default encryption (Amazon S3 user guide, "Enabling Amazon S3 server access
logging"), so the customer key cannot be used there. The log bucket accepts deliveries from any bucket of
this account (for example the benchmark's results bucket) and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from catalog.errors import ConfigError, Issue
from constructs import Construct
from llama_constructs.common.access_log_bucket import AccessLogBucket, AccessLogBucketProps, deliver_logs_by_policy
from llama_constructs.common.kms_bucket import kms_bucket

WEIGHTS_ROOT = "models/"
_PREFIX = re.compile(r"^models/[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$")


def check_weights_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a folder under ``models/`` (``models/<name>/``), else raise ConfigError."""
    if not _PREFIX.match(prefix) or "/../" in f"/{prefix}" or "/./" in f"/{prefix}":
        raise ConfigError(
            [Issue("weights_prefix", prefix, "must be a folder under models/, like models/llama-2-7b-fp16/")]
        )
    return prefix


@dataclass(frozen=True, kw_only=True)
class WeightsBucketProps:
    key: kms.IKey
    noncurrent_version_days: int = 30  # how long a replaced or deleted weight file can be restored
    access_log_days: int = 365
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN

    def __post_init__(self) -> None:
        if self.noncurrent_version_days < 1:
            raise ValueError("noncurrent_version_days must be at least 1")
        if self.access_log_days < 1:
            raise ValueError("access_log_days must be at least 1")


class WeightsBucket(Construct):
    """Exposes ``.bucket`` (weights, SSE-KMS with the key) and ``.access_log_bucket`` (SSE-S3)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: WeightsBucketProps) -> None:
        super().__init__(scope, construct_id)
        deliver_logs_by_policy(self)
        self.access_log_bucket = AccessLogBucket(
            self,
            "AccessLogs",
            props=AccessLogBucketProps(
                sid="ServerAccessLogsFromThisAccount",
                retention_days=props.access_log_days,
                removal_policy=props.removal_policy,
            ),
        ).bucket
        self.bucket = kms_bucket(
            self,
            "Bucket",
            key=props.key,
            access_logs=self.access_log_bucket,
            log_prefix="weights/",
            removal_policy=props.removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireReplacedWeights",
                    noncurrent_version_expiration=cdk.Duration.days(props.noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                )
            ],
        )
        # Uploads asking for SSE-S3, another key, or aws:kms without a key id (aws/s3) are refused by kms_bucket's
        # policy, so every weight file is under the key; ``aws s3 sync`` sends no header and gets the default.
        self._acknowledge()

    def _acknowledge(self) -> None:
        cdk.Validations.of(self.bucket).acknowledge(
            cdk.Acknowledgment(
                id="NIST.800.53.R5-S3BucketReplicationEnabled",
                reason="single-region deployment: the weights are a re-stageable copy of Hugging Face Hub "
                "repositories (the staging build recreates them), and versioning covers accidental overwrite or delete",
            )
        )

    def model_data_uri(self, prefix: str) -> str:
        """``s3://<bucket>/<prefix>``: the S3Uri of a SageMaker ``S3Prefix`` model data source."""
        return f"s3://{self.bucket.bucket_name}/{check_weights_prefix(prefix)}"

    def arn_for_prefix(self, prefix: str) -> str:
        """The ARN pattern of every object under ``prefix`` (for read grants scoped to one model)."""
        return self.bucket.arn_for_objects(f"{check_weights_prefix(prefix)}*")
