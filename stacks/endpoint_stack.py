"""LlamaEndpointStack: one production Llama 2 endpoint per scenario, on the shared foundation's resources.

The stack only composes constructs: the image location, the execution role, the endpoint, its alarms and
its autoscaling. Everything it is allowed to touch (key, VPC, weights bucket) comes in as ``SharedResources``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from constructs import Construct
from llama_constructs.endpoint.autoscaling import EndpointAutoscaling, EndpointAutoscalingProps
from llama_constructs.endpoint.container_image import ImageLocation
from llama_constructs.endpoint.execution_role import ExecutionRole, ExecutionRoleProps
from llama_constructs.endpoint.inference_endpoint import InferenceEndpoint, InferenceEndpointProps
from llama_constructs.endpoint.monitoring import EndpointMonitoring, EndpointMonitoringProps
from settings import DeploymentConfig
from settings.sagemaker_requests import VARIANT_NAME


@dataclass(frozen=True, kw_only=True)
class SharedResources:
    """What an endpoint stack uses from the foundation; a plain record so tests and stages can build one."""

    key: kms.IKey
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection  # isolated subnets: the endpoint reaches S3/ECR/Logs via VPC endpoints
    endpoint_security_group: ec2.ISecurityGroup
    weights_bucket: s3.IBucket


class _Network(Protocol):
    @property
    def vpc(self) -> ec2.IVpc: ...
    @property
    def subnet_selection(self) -> ec2.SubnetSelection: ...
    @property
    def endpoint_security_group(self) -> ec2.ISecurityGroup: ...


class _Weights(Protocol):
    @property
    def bucket(self) -> s3.IBucket: ...


class Foundation(Protocol):
    """The attributes of ``LlamaFoundationStack`` this module reads (structural, to avoid an import cycle)."""

    @property
    def key(self) -> kms.IKey: ...
    @property
    def network(self) -> _Network: ...
    @property
    def weights(self) -> _Weights: ...


def shared_resources(foundation: Foundation) -> SharedResources:
    return SharedResources(
        key=foundation.key,
        vpc=foundation.network.vpc,
        subnets=foundation.network.subnet_selection,
        endpoint_security_group=foundation.network.endpoint_security_group,
        weights_bucket=foundation.weights.bucket,
    )


def stack_description(deployment: DeploymentConfig) -> str:
    """What the stack serves; the engine is named when it is not TGI, the engine these stacks were written for."""
    served = f"Llama 2 {deployment.model.upper()} {deployment.quantization} on {deployment.instance_type}"
    if deployment.engine != "tgi":
        served += f" with {deployment.engine_spec.display_name} {deployment.engine_version}"
    return f"{served} ({deployment.scenario} scenario): SageMaker endpoint {deployment.endpoint_name}"


class LlamaEndpointStack(cdk.Stack):
    """Exposes ``.deployment``, ``.image``, ``.execution_role``, ``.endpoint``, ``.monitoring``, ``.autoscaling``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: DeploymentConfig,
        shared: SharedResources,
        env: cdk.Environment | None = None,
    ) -> None:
        super().__init__(scope, construct_id, env=env, description=stack_description(deployment))
        self.deployment = deployment
        self.image = ImageLocation(self, "Image", image=deployment.image)
        self.execution_role = ExecutionRole(
            self,
            "ExecutionRole",
            props=ExecutionRoleProps(
                endpoint_name=str(deployment.endpoint_name),
                weights_bucket=shared.weights_bucket,
                weights_prefix=str(deployment.weights_prefix),
                key=shared.key,
                image_repository_arn=self.image.repository_arn,
                vpc=shared.vpc,
            ),
        )
        self.monitoring = EndpointMonitoring(
            self,
            "Monitoring",
            props=EndpointMonitoringProps(deployment=deployment, variant_name=VARIANT_NAME, key=shared.key),
        )
        # "Tgi" for both engines: the construct ids (and so the logical ids) stay the same whichever engine serves,
        # so that switching a deployed scenario's engine is a blue/green update of the same endpoint and log group.
        self.endpoint = InferenceEndpoint(
            self,
            "Tgi",
            props=InferenceEndpointProps(
                deployment=deployment,
                weights_bucket=shared.weights_bucket,
                key=shared.key,
                image_uri=self.image.uri,
                role=self.execution_role.role,
                vpc=shared.vpc,
                subnets=shared.subnets,
                security_group=shared.endpoint_security_group,
                rollback_alarm_names=self.monitoring.alarm_names.rollback,
            ),
        )
        # The rollback alarms are named literally; make sure they exist before the endpoint refers to them.
        self.endpoint.endpoint.node.add_dependency(
            self.monitoring.error_rate_alarm, self.monitoring.model_latency_alarm
        )
        # ``autoscaling: false`` deregisters the variant (the first step of an instance-type change, docs/updates.md).
        self.autoscaling = (
            EndpointAutoscaling(
                self,
                "Autoscaling",
                props=EndpointAutoscalingProps(
                    deployment=deployment, endpoint=self.endpoint.endpoint, variant_name=self.endpoint.variant_name
                ),
            )
            if deployment.autoscaling
            else None
        )
        cdk.CfnOutput(self, "EndpointName", value=self.endpoint.endpoint_name, description="SageMaker endpoint name")
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn, description="Alarm notifications")
