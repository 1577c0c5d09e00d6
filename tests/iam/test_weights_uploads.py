"""Uploads into the weights bucket, evaluated over the synthesized bucket policy, the staging role's policy and
the key policy: what ``aws s3 sync`` sends is allowed, a wrong encryption request is refused (issue 8, item 1),
and so is ``aws:kms`` without a key id, which S3 would encrypt under ``aws/s3`` (issue 16, item 9; every KMS
bucket of every template: test_kms_bucket_uploads.py).

PutObject, CreateMultipartUpload, UploadPart and CompleteMultipartUpload are all authorised as
``s3:PutObject`` (S3 user guide, "Multipart upload API and permissions"); only PutObject and
CreateMultipartUpload can carry the encryption headers, so UploadPart and CompleteMultipartUpload never do.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.iam.account import Account
from tests.iam.calls import Call, _s3_object, bucket_key, s3_kms_calls
from tests.iam.components import FOUNDATION, weights_bucket
from tests.iam.intrinsics import ACCOUNT, REGION

SSE = "s3:x-amz-server-side-encryption"
SSE_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"
OTHER_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0f0f0f0f-1111-2222-3333-444455556666"


def _put(account: Account, operation: str, headers: dict[str, Any]) -> Call:
    role = account.role(FOUNDATION, "StagingRole")
    key = _s3_object(weights_bucket(account), "models/llama-2-7b-fp16/model-00001-of-00002.safetensors")
    return Call(f"staging: {operation}", role, "s3:PutObject", key, headers)


@pytest.mark.parametrize(
    ("operation", "headers"),
    [
        ("PutObject", {}),
        ("CreateMultipartUpload", {}),
        ("UploadPart", {}),
        ("CompleteMultipartUpload", {}),
    ],
)
def test_uploads_without_or_with_the_right_encryption_are_allowed(
    account: Account, operation: str, headers: dict[str, Any]
) -> None:
    decision = _put(account, operation, headers).evaluate(account)
    assert decision.allowed, decision.reason


def test_the_key_s3_uses_for_an_upload_is_usable_by_the_stager(account: Account) -> None:
    role = account.role(FOUNDATION, "StagingRole")
    bucket = weights_bucket(account)
    for call in s3_kms_calls("staging", role, bucket_key(account, bucket), bucket, write=True, read=False):
        decision = call.evaluate(account)
        assert decision.allowed, f"{call.action}: {decision.reason}"


def test_the_right_key_named_explicitly_is_allowed(account: Account) -> None:
    own = bucket_key(account, weights_bucket(account))
    decision = _put(account, "PutObject", {SSE: "aws:kms", SSE_KEY: own}).evaluate(account)
    assert decision.allowed, decision.reason


@pytest.mark.parametrize(
    ("headers", "sid"),
    [
        ({SSE: "aws:kms", SSE_KEY: OTHER_KEY}, "DenyOtherKeys"),
        ({SSE: "aws:kms"}, "DenyAwsManagedKey"),  # S3 would use aws/s3 (PutObject API reference)
        ({SSE: "AES256"}, "DenyOtherEncryption"),
        ({SSE: "aws:kms:dsse"}, "DenyOtherEncryption"),
    ],
)
def test_uploads_asking_for_other_encryption_are_denied_by_the_bucket(
    account: Account, headers: dict[str, Any], sid: str
) -> None:
    decision = _put(account, "PutObject", headers).evaluate(account)
    assert not decision.allowed
    assert f"({sid})" in decision.reason, decision.reason
