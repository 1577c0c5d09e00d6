"""The benchmark's results bucket: every record, failure and report a run writes, under ``runs/``."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from constructs import Construct
from llama_constructs.common.access_log_bucket import AccessLogBucket, AccessLogBucketProps, deliver_logs_by_policy
from llama_constructs.common.kms_bucket import kms_bucket

_LOG_PREFIX = "benchmark-results/"


@dataclass(frozen=True, kw_only=True)
class ResultsBucketProps:
    key: kms.IKey
    access_log_bucket: s3.IBucket | None = None  # a new one is created when the foundation exposes none


class ResultsBucket(Construct):
    """KMS (customer key), TLS-only, versioned, access-logged, no public access."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ResultsBucketProps) -> None:
        super().__init__(scope, construct_id)
        deliver_logs_by_policy(self)
        logs_bucket = props.access_log_bucket
        if logs_bucket is None:
            # Its grant admits this account's deliveries under the prefix; CDK adds one pinned to the results bucket.
            logs_bucket = AccessLogBucket(
                self,
                "AccessLogs",
                props=AccessLogBucketProps(sid="ServerAccessLogsOfTheResultsBucket", object_prefix=_LOG_PREFIX),
            ).bucket
        self.bucket = kms_bucket(self, "Bucket", key=props.key, access_logs=logs_bucket, log_prefix=_LOG_PREFIX)
        cdk.Validations.of(self.bucket).acknowledge(
            cdk.Acknowledgment(
                id="NIST.800.53.R5-S3BucketReplicationEnabled",
                reason="benchmark results are reproducible by re-running the matrix; versioning guards overwrites",
            )
        )
