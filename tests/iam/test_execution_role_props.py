"""ExecutionRoleProps: keyword-only, frozen, and a weights prefix that can only name a folder inside the bucket.

The prefix becomes ``<bucket arn>/<prefix>*`` in the role's GetObject grant: a missing trailing slash would
also grant ``models/llama-2-7b-fp16-other/...``, a leading one an object key no upload ever writes.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from llama_constructs.endpoint.execution_role import ExecutionRole, ExecutionRoleProps


@pytest.fixture(scope="module")
def parts() -> dict[str, Any]:
    stack = cdk.Stack(cdk.App(), "Parts")
    return {
        "endpoint_name": "llama-2-7b",
        "weights_bucket": s3.Bucket(stack, "Weights"),
        "key": kms.Key(stack, "Key"),
        "image_repository_arn": "arn:aws:ecr:us-east-1:763104351884:repository/huggingface-pytorch-tgi-inference",
        "vpc": ec2.Vpc(stack, "Vpc"),
    }


@pytest.mark.parametrize("prefix", ["models/llama-2-7b-fp16", "/models/llama-2-7b-fp16/", "/models/x"])
def test_execution_role_props_refuse_a_prefix_that_is_not_a_relative_folder(parts: dict[str, Any], prefix: str) -> None:
    with pytest.raises(ValueError, match="weights_prefix must be relative and end with '/'"):
        ExecutionRoleProps(weights_prefix=prefix, **parts)


def test_execution_role_props_are_keyword_only_and_frozen(parts: dict[str, Any]) -> None:
    props = ExecutionRoleProps(weights_prefix="models/llama-2-7b-fp16/", **parts)
    assert props.weights_prefix == "models/llama-2-7b-fp16/"
    with pytest.raises(AttributeError):
        props.weights_prefix = "models/"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ExecutionRoleProps(*parts.values(), "models/x/")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ExecutionRole(cdk.Stack(cdk.App(), "Positional"), "Role", props)  # type: ignore[call-arg]
