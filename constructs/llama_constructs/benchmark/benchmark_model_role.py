"""The role benchmark models run as: the same grants as an endpoint's execution role, for every staged model.

It pulls exactly the images of the matrices it runs: TGI's repository in any AWS account of the region (as it
always has; the account differs by region), every other engine's (vLLM's) repository in the one account the
vendored table gives for the stack's region (``ImageLocation``: a literal with a concrete region, else a
``FindInMap`` on ``AWS::Region``), as an endpoint's execution role does.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from benchmark.aws.contract import NAME_PREFIX
from catalog.images import IMAGE_FAMILIES, ContainerImage
from constructs import Construct
from llama_constructs.benchmark.benchmark_findings import acknowledge_own_inline_policy, nag_environment
from llama_constructs.endpoint.container_image import ImageLocation
from llama_constructs.endpoint.execution_role import VpcAccess, acknowledge_scoped_wildcards

TGI_IMAGES = IMAGE_FAMILIES["tgi"]


@dataclass(frozen=True, kw_only=True)
class ModelRoleProps:
    key: kms.IKey
    vpc: ec2.IVpc  # benchmark models attach to it; their network interfaces are held to it
    weights_bucket_arn: str  # a plain ARN or an import, so that its nag finding id is predictable
    weights_finding: str  # how cdk-nag prints weights_bucket_arn (the export's name for an import)
    weights_prefix: str = "models/"  # every model's weights live under it
    images: tuple[ContainerImage, ...] = ()  # every image the matrices deploy (DeploymentConfig.image)
    prefix: str = NAME_PREFIX


class ModelRole(Construct):
    """The role benchmark models run as: read weights, pull the matrices' images, write endpoint logs and metrics."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ModelRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker execution role for benchmark models",
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[f"{props.weights_bucket_arn}/{props.weights_prefix}*"]
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[props.weights_bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{props.weights_prefix}*"]}},
            )
        )
        props.key.grant_decrypt(self.role)
        tgi = [image for image in props.images if image.engine_name == TGI_IMAGES.display_name]
        others = {(image.engine_name, image.version): image for image in props.images if image not in tgi}
        self.repositories = sorted({image.repository for image in tgi})
        self.locations = [
            ImageLocation(self, f"{engine.capitalize()}Image{version.replace('.', '')}", image=image)
            for (engine, version), image in sorted(others.items())
        ]
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[
                    *(
                        stack.format_arn(service="ecr", account="*", resource="repository", resource_name=r)
                        for r in self.repositories
                    ),
                    *sorted({location.repository_arn for location in self.locations}),
                ],
            )
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"/aws/sagemaker/Endpoints/{props.prefix}-*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["AWS/SageMaker", "/aws/sagemaker/*"]}},
            )
        )
        vpc_access = VpcAccess(stack, props.vpc)  # the same statements as every endpoint's execution role
        for statement in vpc_access.statements:
            self.role.add_to_principal_policy(statement)
        acknowledge_scoped_wildcards(self.role, vpc_access.wildcard_reasons)
        self._acknowledge(props)

    def _acknowledge(self, props: ModelRoleProps) -> None:
        """What remains after scoping each statement: names made at run time, or actions without resources."""
        partition, region, account = nag_environment(self)
        acknowledge_own_inline_policy(self.role)
        cdk.Validations.of(self.role).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken, the ec2:Describe* calls SageMaker makes for a VpcConfig and "
                "cloudwatch:PutMetricData (conditioned on the SageMaker namespaces) have no resource-level "
                "permissions; the network-interface actions are held to the VPC by ec2:Vpc",
            ),
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{props.weights_finding}/{props.weights_prefix}*]",
                reason="benchmark models read any staged model's weights; all of them live under "
                f"{props.weights_prefix}",
            ),
            *(
                cdk.Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::arn:{partition}:ecr:{region}:*:repository/{repository}]",
                    reason="the TGI image lives in an AWS-owned account that differs by region (vendored table)",
                )
                for repository in self.repositories
            ),
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{partition}:logs:{region}:{account}:"
                f"log-group:/aws/sagemaker/Endpoints/{props.prefix}-*]",
                reason="SageMaker writes endpoint logs to a group named after the endpoint, made at run time",
            ),
        )
