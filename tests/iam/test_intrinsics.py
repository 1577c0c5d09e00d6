"""The intrinsic resolver on a hand-written pair of templates: CloudFormation's documented semantics of each
function, and a cross-stack reference resolving to the same string as the resource in its own stack."""

from __future__ import annotations

from typing import Any

import pytest

from tests.iam.intrinsics import ACCOUNT, REGION, Resolver, UnresolvedIntrinsicError

TEMPLATES: dict[str, dict[str, Any]] = {
    "Producer": {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "amzn-s3-demo-bucket"}},
            "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
        },
        "Outputs": {
            "BucketArn": {"Value": {"Fn::GetAtt": ["Bucket", "Arn"]}, "Export": {"Name": "Producer-BucketArn"}},
            "KeyArn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}},
        },
        "Mappings": {"Images": {REGION: {"account": "763104351884"}}},
    },
    "Consumer": {"Resources": {}},
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "AWS::AccountId"}, ACCOUNT),
        (
            {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": "Bucket"}, "/models/*"]]},
            "arn:aws:s3:::amzn-s3-demo-bucket/models/*",
        ),
        (
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:x"},
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:x",
        ),
        ({"Fn::Sub": ["${B}/k", {"B": {"Fn::GetAtt": ["Bucket", "Arn"]}}]}, "arn:aws:s3:::amzn-s3-demo-bucket/k"),
        ({"Fn::Sub": "${Bucket.Arn}/*"}, "arn:aws:s3:::amzn-s3-demo-bucket/*"),
        ({"Fn::Select": [1, ["a", "b"]]}, "b"),
        ({"Fn::FindInMap": ["Images", {"Ref": "AWS::Region"}, "account"]}, "763104351884"),
    ],
)
def test_functions_resolve_as_cloudformation_documents(value: Any, expected: str) -> None:
    assert Resolver(TEMPLATES, "Producer").resolve(value) == expected


def test_cross_stack_references_resolve_to_the_producers_values() -> None:
    producer, consumer = Resolver(TEMPLATES, "Producer"), Resolver(TEMPLATES, "Consumer")
    assert consumer.resolve({"Fn::ImportValue": "Producer-BucketArn"}) == producer.get_att("Bucket", "Arn")
    output = {"Fn::GetStackOutput": {"StackName": "Producer", "OutputName": "KeyArn"}}
    assert consumer.resolve(output) == producer.get_att("Key", "Arn")
    assert producer.get_att("Key", "Arn").startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")


def test_anything_unmodelled_fails_instead_of_guessing() -> None:
    with pytest.raises(UnresolvedIntrinsicError, match="Fn::Base64"):
        Resolver(TEMPLATES, "Producer").resolve({"Fn::Base64": "x"})
    with pytest.raises(UnresolvedIntrinsicError, match="unknown Missing"):
        Resolver(TEMPLATES, "Producer").resolve({"Ref": "Missing"})
