"""The evaluator against the behaviour the AWS documentation states, case by case (independent truth).

Sources: IAM User Guide, "IAM JSON policy elements: Condition operators" (missing keys, ...IfExists, Null,
negated operators), "Multivalued context keys" (ForAnyValue / ForAllValues), "Policy evaluation logic"
(explicit deny, implicit deny), "IAM JSON policy elements: Resource" (wildcards per ARN component); KMS
Developer Guide, "Key policies" (the key policy must allow; the account root delegates to IAM).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.iam.evaluator import (
    Policies,
    Principal,
    Request,
    Resource,
    UnsupportedPolicyError,
    arn_matches,
    condition_matches,
    evaluate,
    statements_of,
)

ROLE = Principal("arn:aws:iam::111122223333:role/worker", "111122223333")
BUCKET_OBJECT = "arn:aws:s3:::amzn-s3-demo-bucket/reports/a.json"


def _allowed(statements: list[dict[str, Any]], action: str, arn: str, **context: Any) -> bool:
    request = Request(ROLE, action, (Resource(arn),), context)
    return evaluate(request, Policies(statements_of("test", {"Statement": statements}))).allowed


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        # "If the key ... is not present in the request context, the values do not match and the condition is false."
        ("StringEquals", False),
        ("StringLike", False),
        ("ArnEquals", False),
        ("NumericLessThan", False),
        ("Bool", False),
        # "If the policy condition requires that the key is not matched, such as StringNotLike or ArnNotLike, and
        # the right key is not present, the condition is true."
        ("StringNotEquals", True),
        ("StringNotLike", True),
        ("ArnNotEquals", True),
        # "...IfExists": "If the policy key is present in the context of the request, process the key as specified
        # in the policy. If the key is not present, evaluate the condition element as true."
        ("StringNotEqualsIfExists", True),
        ("StringEqualsIfExists", True),
        ("ArnLikeIfExists", True),
    ],
)
def test_a_missing_key(operator: str, expected: bool) -> None:
    assert condition_matches(operator, "s3:x-amz-server-side-encryption", "aws:kms", {}) is expected


def test_if_exists_still_tests_a_present_key() -> None:
    assert condition_matches("StringNotEqualsIfExists", "k", "aws:kms", {"k": "AES256"})
    assert not condition_matches("StringNotEqualsIfExists", "k", "aws:kms", {"k": "aws:kms"})


def test_null_tests_presence_only() -> None:
    # "Null": true when the key is absent, "false" when it is present (whatever its value).
    assert condition_matches("Null", "aws:TokenIssueTime", "true", {})
    assert not condition_matches("Null", "aws:TokenIssueTime", "true", {"aws:TokenIssueTime": "x"})
    assert condition_matches("Null", "aws:TokenIssueTime", "false", {"aws:TokenIssueTime": "x"})
    assert not condition_matches("Null", "aws:TokenIssueTime", "false", {})


def test_values_of_one_key_are_ored_and_a_negated_operator_needs_none_to_match() -> None:
    regions = ["us-east-1", "us-west-1"]
    assert condition_matches("StringEquals", "aws:RequestedRegion", regions, {"aws:RequestedRegion": "us-west-1"})
    # The documented "deny outside these regions" pattern: StringNotEquals over a list is true only for others.
    assert not condition_matches(
        "StringNotEquals", "aws:RequestedRegion", regions, {"aws:RequestedRegion": "us-east-1"}
    )
    assert condition_matches("StringNotEquals", "aws:RequestedRegion", regions, {"aws:RequestedRegion": "eu-west-1"})


def test_keys_and_operators_of_a_condition_block_are_anded() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/team": "ml"}, "Bool": {"aws:SecureTransport": "true"}},
    }
    assert _allowed(
        [statement], "s3:GetObject", BUCKET_OBJECT, **{"aws:PrincipalTag/team": "ml", "aws:SecureTransport": True}
    )
    assert not _allowed(
        [statement], "s3:GetObject", BUCKET_OBJECT, **{"aws:PrincipalTag/team": "ml", "aws:SecureTransport": False}
    )


def test_set_operators_on_multivalued_keys() -> None:
    allowed = ["environment", "cost-center"]
    # ForAllValues: every request value must be in the set; true when the request has no such key (documented).
    assert condition_matches("ForAllValues:StringEquals", "aws:TagKeys", allowed, {"aws:TagKeys": ["environment"]})
    assert not condition_matches(
        "ForAllValues:StringEquals", "aws:TagKeys", allowed, {"aws:TagKeys": ["environment", "x"]}
    )
    assert condition_matches("ForAllValues:StringEquals", "aws:TagKeys", allowed, {})
    # ForAnyValue: at least one request value in the set; false when the key is missing.
    assert condition_matches("ForAnyValue:StringEquals", "aws:TagKeys", allowed, {"aws:TagKeys": ["x", "cost-center"]})
    assert not condition_matches("ForAnyValue:StringEquals", "aws:TagKeys", allowed, {"aws:TagKeys": ["x"]})
    assert not condition_matches("ForAnyValue:StringEquals", "aws:TagKeys", allowed, {})


def test_a_multivalued_key_needs_a_set_operator() -> None:
    with pytest.raises(UnsupportedPolicyError, match="ForAnyValue/ForAllValues"):
        condition_matches("StringEquals", "aws:TagKeys", "a", {"aws:TagKeys": ["a"]})


def test_explicit_deny_beats_any_allow_and_nothing_allowed_is_denied() -> None:
    allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    deny = {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*"}
    assert not _allowed([allow, deny], "s3:PutObject", BUCKET_OBJECT)
    assert _allowed([allow, deny], "s3:GetObject", BUCKET_OBJECT)
    assert not _allowed([], "s3:GetObject", BUCKET_OBJECT)


def test_actions_match_case_insensitively_with_wildcards() -> None:
    statement = {"Effect": "Allow", "Action": "S3:get*", "Resource": "*"}
    assert _allowed([statement], "s3:GetObject", BUCKET_OBJECT)
    assert not _allowed([statement], "s3:PutObject", BUCKET_OBJECT)
    assert _allowed([{"Effect": "Allow", "NotAction": "s3:PutObject", "Resource": "*"}], "s3:GetObject", BUCKET_OBJECT)


def test_resource_wildcards_stay_within_their_arn_component() -> None:
    assert arn_matches("arn:aws:s3:::amzn-s3-demo-bucket/*", BUCKET_OBJECT)
    assert arn_matches(
        "arn:aws:logs:*:111122223333:log-group:/aws/x*",
        "arn:aws:logs:us-east-1:111122223333:log-group:/aws/x:log-stream:a",
    )
    assert not arn_matches("arn:aws:*:::amzn-s3-demo-bucket/*", "arn:aws:sqs:us-east-1:111122223333:amzn")
    assert not arn_matches(
        "arn:aws:sagemaker:us-east-1:111122223333:endpoint/llmbench-*",
        "arn:aws:sagemaker:us-east-1:111122223333:endpoint-config/llmbench-a",
    )
    assert arn_matches("arn:aws:ecr:us-east-1:*:repository/r", "arn:aws:ecr:us-east-1:763104351884:repository/r")
    assert not arn_matches("arn:aws:s3:::Bucket/*", "arn:aws:s3:::bucket/a")  # ARNs are case-sensitive


def _kms(key_policy: list[dict[str, Any]], identity: list[dict[str, Any]]) -> bool:
    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policies = Policies(
        statements_of("identity", {"Statement": identity}),
        statements_of("key", {"Statement": key_policy}),
        is_kms_key_policy=True,
    )
    return evaluate(Request(ROLE, "kms:Decrypt", (Resource(key),)), policies).allowed


def test_kms_needs_the_key_policy() -> None:
    root = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    role = {"Effect": "Allow", "Principal": {"AWS": ROLE.arn}, "Action": "kms:Decrypt", "Resource": "*"}
    grant = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}
    # The default key policy lets IAM policies grant access: both must allow.
    assert _kms([root], [grant])
    assert not _kms([root], [])
    # "No IAM policy by itself is sufficient": without a key policy statement for the account, IAM cannot grant.
    assert not _kms([], [grant])
    # A key policy naming the role grants it without any IAM policy.
    assert _kms([role], [])


def test_a_resource_policy_naming_the_role_allows_in_the_same_account() -> None:
    bucket_policy = {"Effect": "Allow", "Principal": {"AWS": ROLE.arn}, "Action": "s3:GetObject", "Resource": "*"}
    request = Request(ROLE, "s3:GetObject", (Resource(BUCKET_OBJECT),))
    assert evaluate(request, Policies((), statements_of("bucket", {"Statement": [bucket_policy]}))).allowed
    assert not evaluate(
        request, Policies((), statements_of("bucket", {"Statement": [bucket_policy]}), cross_account=True)
    ).allowed
