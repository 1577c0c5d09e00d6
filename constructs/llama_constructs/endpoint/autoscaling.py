"""Instance-count autoscaling for one endpoint variant, on concurrent requests per model copy.

``SageMakerVariantConcurrentRequestsPerModelHighResolution`` is published every 10 seconds and counts a streamed
request until its last token, so it tracks what limits an LLM server (requests in flight), unlike
invocations per minute. Real-time endpoints cannot scale to zero: the minimum is at least one instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam

from constructs import Construct
from settings import DeploymentConfig

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SERVICE_LINKED_ROLE = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
PREDEFINED_METRIC = appscaling.PredefinedMetric.SAGEMAKER_VARIANT_CONCURRENT_REQUESTS_PER_MODEL_HIGH_RESOLUTION


@dataclass(frozen=True, kw_only=True)
class EndpointAutoscalingProps:
    deployment: DeploymentConfig
    endpoint: cdk.CfnResource  # the scalable target can only be registered once the endpoint exists
    variant_name: str


def resource_id(endpoint_name: str, variant_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


class EndpointAutoscaling(Construct):
    """Exposes ``.target`` and ``.policy``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: EndpointAutoscalingProps) -> None:
        super().__init__(scope, construct_id)
        deployment = props.deployment
        self.target = appscaling.ScalableTarget(
            self,
            "Target",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=resource_id(str(deployment.endpoint_name), props.variant_name),
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=deployment.min_instances,
            max_capacity=int(deployment.max_instances or deployment.min_instances),
            # Without a role CDK creates an empty one; SageMaker targets use this service-linked role anyway.
            role=iam.Role.from_role_arn(
                self,
                "ServiceLinkedRole",
                cdk.Stack.of(self).format_arn(
                    service="iam", region="", resource="role", resource_name=SERVICE_LINKED_ROLE
                ),
                mutable=False,
            ),
        )
        self.target.node.add_dependency(props.endpoint)
        self.policy = self.target.scale_to_track_metric(
            "ConcurrentRequests",
            target_value=float(deployment.autoscaling_target or 1.0),
            predefined_metric=PREDEFINED_METRIC,
            scale_in_cooldown=cdk.Duration.seconds(deployment.scale_in_cooldown_s),
            scale_out_cooldown=cdk.Duration.seconds(deployment.scale_out_cooldown_s),
        )
