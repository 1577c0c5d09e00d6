"""The role one SageMaker model runs as: read its weights prefix, pull its engine's image, write its own logs.

Least privilege instead of AmazonSageMakerFullAccess: every statement names the resources this endpoint uses,
and the few actions AWS offers no resource scoping for are conditioned (namespace, VPC) and acknowledged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from constructs import Construct, IValidation

ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
METRIC_NAMESPACES = ("/aws/sagemaker/Endpoints", "AWS/SageMaker")
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
ENI_MUTATE_ACTIONS = (
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
)
VPC_DESCRIBE_ACTIONS = (
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)


class VpcAccess:
    """What SageMaker needs to attach a model to a VPC, for every role a model runs as (one builder, one truth).

    The ENI actions are held to the VPC by ``ec2:Vpc`` on every resource they authorise (the network interface,
    its subnet and its security group), the pattern AWS documents for SageMaker VPC access; the ``Describe*``
    calls have no resource-level permissions in the Service Authorization Reference, so they stay on ``*``.
    """

    def __init__(self, stack: cdk.Stack, vpc: ec2.IVpc) -> None:
        eni, security_group, subnet = (
            stack.format_arn(service="ec2", resource=kind, resource_name="*")
            for kind in ("network-interface", "security-group", "subnet")
        )
        in_vpc = {"ArnEquals": {"ec2:Vpc": vpc.vpc_arn}}
        self.statements = [
            iam.PolicyStatement(
                sid="CreateEniInVpc",
                actions=["ec2:CreateNetworkInterface"],
                resources=[eni, security_group, subnet],
                conditions=in_vpc,
            ),
            iam.PolicyStatement(
                sid="ManageEniInVpc", actions=list(ENI_MUTATE_ACTIONS), resources=[eni], conditions=in_vpc
            ),
            iam.PolicyStatement(sid="DescribeVpc", actions=list(VPC_DESCRIBE_ACTIONS), resources=["*"]),
        ]
        self.wildcard_reasons = {
            eni: "SageMaker creates and deletes the endpoint's ENIs at run time, so their ids are unknown in advance; "
            "the ec2:Vpc condition keeps them in this VPC",
            security_group: "CreateNetworkInterface authorises the security group as a resource; the model's "
            "VpcConfig fixes which one and the ec2:Vpc condition keeps it in this VPC",
            subnet: "CreateNetworkInterface authorises the subnet as a resource; the model's VpcConfig fixes which "
            "ones and the ec2:Vpc condition keeps them in this VPC",
        }


def acknowledge_scoped_wildcards(scope: Construct, reasons: dict[str, str]) -> None:
    """cdk-nag names each wildcard resource by its resolved form, which for a resource of another stack is only
    known once CDK has turned the reference into an import: acknowledge from validation, after that step."""
    scope.node.add_validation(_AcknowledgeResolved(scope, reasons))


@dataclass(frozen=True, kw_only=True)
class ExecutionRoleProps:
    endpoint_name: str
    weights_bucket: s3.IBucket
    weights_prefix: str  # "models/llama-2-7b-fp16/": validated by DeploymentConfig
    key: kms.IKey
    image_repository_arn: str  # may be a token (FindInMap on the region)
    vpc: ec2.IVpc

    def __post_init__(self) -> None:
        if not self.weights_prefix.endswith("/") or self.weights_prefix.startswith("/"):
            raise ValueError(f"weights_prefix must be relative and end with '/': {self.weights_prefix!r}")


class ExecutionRole(Construct):
    """Exposes ``.role`` and its customer-managed ``.policy``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ExecutionRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        prefix = props.weights_prefix
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{ENDPOINT_LOG_GROUP_PREFIX}{props.endpoint_name}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        weights_objects = props.weights_bucket.arn_for_objects(f"{prefix}*")
        vpc_access = VpcAccess(stack, props.vpc)
        statements = [
            iam.PolicyStatement(sid="ReadWeights", actions=["s3:GetObject"], resources=[weights_objects]),
            iam.PolicyStatement(
                sid="ListWeights",
                actions=["s3:ListBucket"],
                resources=[props.weights_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
            ),
            iam.PolicyStatement(sid="DecryptWeights", actions=["kms:Decrypt"], resources=[props.key.key_arn]),
            iam.PolicyStatement(
                sid="PullImage", actions=list(ECR_PULL_ACTIONS), resources=[props.image_repository_arn]
            ),
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                sid="WriteLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[log_group_arn],
            ),
            iam.PolicyStatement(
                sid="PutMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": list(METRIC_NAMESPACES)}},
            ),
            *vpc_access.statements,
        ]
        # A customer-managed policy (not inline, per NIST AC-6), attached through the role's ManagedPolicyArns so
        # that the role resource, which the model depends on, only exists once its permissions do.
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"What SageMaker endpoint {props.endpoint_name} may do at run time",
            statements=statements,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of endpoint {props.endpoint_name}",
            managed_policies=[self.policy],
        )
        scoped_wildcards = {
            weights_objects: "the model reads every object under its own weights prefix; the file names (shards) "
            "are only known once the weights are staged",
            log_group_arn: "SageMaker names the endpoint's log streams per instance at run time, inside the "
            "endpoint's own log group",
            **vpc_access.wildcard_reasons,
        }
        ack = cdk.Validations.of(self)
        ack.acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken, cloudwatch:PutMetricData and the ec2:Describe* calls SageMaker "
                "makes for a VpcConfig support no resource-level permissions; PutMetricData is limited to the "
                "SageMaker namespaces by condition",
            )
        )
        acknowledge_scoped_wildcards(self, scoped_wildcards)


@jsii.implements(IValidation)
class _AcknowledgeResolved:
    """Adds one IAM5 acknowledgment per scoped wildcard resource, named as cdk-nag names it; never fails."""

    def __init__(self, scope: Construct, reasons: dict[str, str]) -> None:
        self._scope = scope
        self._reasons = reasons

    def validate(self) -> list[str]:
        stack = cdk.Stack.of(self._scope)
        for arn, reason in self._reasons.items():
            cdk.Validations.of(self._scope).acknowledge(
                cdk.Acknowledgment(id=f"AwsSolutions-IAM5[Resource::{nag_name(stack, arn)}]", reason=reason)
            )
        return []


def nag_name(stack: cdk.Stack, value: str) -> str:
    """How cdk-nag prints a resource in a granular finding id: ``<Ref>``, ``<Res.Attr>``, import names as is,
    other intrinsics (``Fn::GetStackOutput`` of a cross-stack reference) as compact JSON."""
    return _render(stack.resolve(value))


def _render(node: object) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:  # an intrinsic function
        ((fn, arg),) = node.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{'.'.join(arg)}>"
        if fn == "Fn::Join":
            sep, parts = arg
            return str(sep).join(_render(p) for p in parts)
        if fn == "Fn::ImportValue":
            return _render(arg)
    return json.dumps(node, separators=(",", ":"))  # how cdk-nag prints any other intrinsic
