"""The project's data bucket: one definition of what every bucket holding our data must be.

Encrypted with a customer-managed key (bucket key on, to keep KMS calls and cost down), TLS 1.2 or
later only, versioned, no public access, ACLs disabled, server access logs to a separate log bucket.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from constructs import Construct


def kms_bucket(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    access_logs: s3.IBucket,
    log_prefix: str,
    **extra: Any,  # bucket properties a particular use adds, e.g. lifecycle_rules, removal_policy
) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=log_prefix,
        **extra,
    )
