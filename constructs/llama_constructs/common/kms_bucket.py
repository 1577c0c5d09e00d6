"""The project's data bucket: one definition of what every bucket holding our data must be.

Encrypted with a customer-managed key (bucket key on, to keep KMS calls and cost down), TLS 1.2 or
later only, versioned, no public access, ACLs disabled, server access logs to a separate log bucket, and
uploads that ask for any other encryption refused (``require_bucket_key``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from constructs import Construct

SSE = "s3:x-amz-server-side-encryption"
SSE_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"


def require_bucket_key(bucket: s3.IBucket, *, key_ids: Sequence[str]) -> None:
    """Refuse every upload that would not be encrypted under ``key_ids`` (the bucket's key, as writers name it).

    - ``DenyOtherEncryption``: a header asking for SSE-S3 or DSSE-KMS;
    - ``DenyOtherKeys``: a key id header naming another key;
    - ``DenyAwsManagedKey``: ``aws:kms`` without a key id, which S3 encrypts under the AWS managed key ``aws/s3``
      (S3 API reference, PutObject, ``x-amz-server-side-encryption-aws-kms-key-id``:
      https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html), outside this key's policy.

    An upload with no encryption header is allowed: the bucket's default encryption (this key) applies. The Null
    guards matter: a negated operator alone matches a request without the header and would refuse those too, and
    the parts of a multipart upload cannot carry the headers. PutObject, CreateMultipartUpload and CopyObject
    are all authorised as ``s3:PutObject``.
    """
    if not key_ids:
        raise ValueError("require_bucket_key needs the key id(s) writers name for the bucket's key")
    objects = [bucket.arn_for_objects("*")]
    allowed: str | list[str] = key_ids[0] if len(key_ids) == 1 else list(key_ids)
    for sid, conditions in (
        ("DenyOtherEncryption", {"StringNotEquals": {SSE: "aws:kms"}, "Null": {SSE: "false"}}),
        ("DenyOtherKeys", {"StringNotEquals": {SSE_KEY: allowed}, "Null": {SSE_KEY: "false"}}),
        ("DenyAwsManagedKey", {"StringEquals": {SSE: "aws:kms"}, "Null": {SSE_KEY: "true"}}),
    ):
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=objects,
                conditions=conditions,
            )
        )


def kms_bucket(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    access_logs: s3.IBucket,
    log_prefix: str,
    **extra: Any,  # bucket properties a particular use adds, e.g. lifecycle_rules, removal_policy
) -> s3.Bucket:
    bucket = s3.Bucket(
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
    require_bucket_key(bucket, key_ids=[key.key_arn])
    return bucket
