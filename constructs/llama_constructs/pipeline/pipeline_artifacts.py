"""Versioning, expiry and server access logs for the artifact bucket CDK Pipelines creates.

``CodePipeline(cross_account_keys=True)`` creates the artifact bucket itself (KMS key with rotation, TLS-only,
public access blocked, key and bucket policies for the stage accounts' bootstrap roles). Passing our own bucket
would turn ``cross_account_keys`` off, so this construct completes the generated one instead: versioning with
an expiry for old versions, and access logs to a separate bucket encrypted with S3-managed keys (S3 log
delivery supports only SSE-S3 on the target bucket).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

from constructs import Construct
from llama_constructs.common.access_log_bucket import AccessLogBucket, AccessLogBucketProps

_LOG_PREFIX = "artifacts/"


@dataclass(frozen=True, kw_only=True)
class ArtifactBucketHardeningProps:
    bucket: s3.IBucket  # the pipeline's own artifact bucket, in this stack
    artifact_days: int = 90  # artifacts are rebuilt from the source on every execution
    access_log_days: int = 365

    def __post_init__(self) -> None:
        if self.artifact_days < 1 or self.access_log_days < 1:
            raise ValueError("artifact_days and access_log_days must be at least 1")


class ArtifactBucketHardening(Construct):
    """Exposes ``.access_log_bucket``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ArtifactBucketHardeningProps) -> None:
        super().__init__(scope, construct_id)
        cfn = props.bucket.node.default_child
        if not isinstance(cfn, s3.CfnBucket):
            raise TypeError("ArtifactBucketHardening needs a bucket created in this app, not an imported one")
        self.access_log_bucket = AccessLogBucket(
            self,
            "AccessLogs",
            props=AccessLogBucketProps(
                sid="ServerAccessLogsOfTheArtifactBucket",
                object_prefix=_LOG_PREFIX,
                source_bucket_arn=props.bucket.bucket_arn,
                retention_days=props.access_log_days,
            ),
        ).bucket
        cfn.versioning_configuration = s3.CfnBucket.VersioningConfigurationProperty(status="Enabled")
        cfn.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=self.access_log_bucket.bucket_name, log_file_prefix=_LOG_PREFIX
        )
        cfn.lifecycle_configuration = s3.CfnBucket.LifecycleConfigurationProperty(
            rules=[
                s3.CfnBucket.RuleProperty(
                    id="ExpireOldArtifacts",
                    status="Enabled",
                    expiration_in_days=props.artifact_days,
                    noncurrent_version_expiration=s3.CfnBucket.NoncurrentVersionExpirationProperty(noncurrent_days=7),
                    abort_incomplete_multipart_upload=s3.CfnBucket.AbortIncompleteMultipartUploadProperty(
                        days_after_initiation=1
                    ),
                )
            ]
        )
        cdk.Validations.of(props.bucket).acknowledge(
            cdk.Acknowledgment(
                id="NIST.800.53.R5-S3BucketReplicationEnabled",
                reason="pipeline artifacts are rebuilt from the source repository on every execution; a replica "
                "would add nothing a re-run does not",
            )
        )
