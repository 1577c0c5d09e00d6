"""Versioning, expiry, server access logs and key-only uploads for the artifact buckets CDK Pipelines creates.

``CodePipeline(cross_account_keys=True)`` creates the artifact bucket itself (KMS key with rotation, TLS-only,
public access blocked, key and bucket policies for the stage accounts' bootstrap roles), and for a stage in
another region a support stack there with a replication bucket (its key referenced by alias). Passing our own
buckets would turn ``cross_account_keys`` off (or, with ``crossRegionReplicationBuckets``, leave us to rebuild
the cross-account key policies CDK writes), so this construct completes a generated bucket instead, in the
bucket's own stack and region: versioning with an expiry for old versions, access logs to a separate bucket
encrypted with S3-managed keys (S3 log delivery supports only SSE-S3 on the target bucket), and the bucket
policy of every KMS bucket of the project (``require_bucket_key``), naming the key as the pipeline's artifact
store does: the key ARN for the pipeline's own bucket, the alias ARN for a support bucket (its key ARN too).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from constructs import Construct
from llama_constructs.common.access_log_bucket import AccessLogBucket, AccessLogBucketProps
from llama_constructs.common.kms_bucket import require_bucket_key

_LOG_PREFIX = "artifacts/"


@dataclass(frozen=True, kw_only=True)
class ArtifactBucketHardeningProps:
    bucket: s3.IBucket  # a bucket CDK Pipelines made (artifacts, or a region's replication), in this stack
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
        key = props.bucket.encryption_key
        if key is None:
            raise TypeError("ArtifactBucketHardening needs a bucket encrypted with a KMS key of this app")
        key_ids = [key.key_arn]  # what the artifact store names: the key, or the alias a support bucket uses
        if isinstance(key, kms.Alias):
            key_ids.append(key.alias_target_key.key_arn)
        require_bucket_key(props.bucket, key_ids=key_ids)
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
