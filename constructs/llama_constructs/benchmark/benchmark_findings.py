"""How cdk-nag names the benchmark's resources in granular finding ids, and the acknowledgment its roles share.

Each benchmark construct acknowledges the findings on the resources it owns; these helpers keep the finding
ids (which must match cdk-nag's rendering exactly) in one place.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from benchmark.aws.contract import RESULTS_PREFIX
from constructs import Construct, IConstruct
from llama_constructs.endpoint.execution_role import nag_name

OWN_INLINE_POLICY = cdk.Acknowledgment(
    id="NIST.800.53.R5-IAMNoInlinePolicy",
    reason="CDK grants write this role's own policy, scoped to this stack's resources; "
    "a separate managed policy would hold the same statements",
)


def acknowledge_own_inline_policy(role: iam.IRole) -> None:
    cdk.Validations.of(role).acknowledge(OWN_INLINE_POLICY)


def arn_ref(scope: IConstruct) -> str:
    """``<LogicalId.Arn>``: how cdk-nag prints the ARN of a construct's CloudFormation resource."""
    child = scope.node.default_child
    assert isinstance(child, cdk.CfnElement)
    return f"<{cdk.Stack.of(scope).get_logical_id(child)}.Arn>"


def acknowledge_results_objects(role: iam.IRole, bucket: s3.IBucket) -> None:
    """Writes and reads under the results prefix: object names carry the run id, made at run time."""
    cdk.Validations.of(role).acknowledge(
        cdk.Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{arn_ref(bucket)}/{RESULTS_PREFIX}*]",
            reason="one object per run, configuration and level under the results prefix; names are made at run time",
        )
    )


def nag_environment(scope: Construct) -> tuple[str, str, str]:
    """Partition, region and account as cdk-nag prints them: ``<AWS::Region>`` etc. when environment-agnostic,
    literals inside a pipeline stage."""
    stack = cdk.Stack.of(scope)
    partition, region, account = (nag_name(stack, v) for v in (stack.partition, stack.region, stack.account))
    return partition, region, account


def sagemaker_arn_prefix(scope: Construct) -> str:
    partition, region, account = nag_environment(scope)
    return f"Resource::arn:{partition}:sagemaker:{region}:{account}"
