"""One real-time endpoint on either engine (TGI or vLLM): model, endpoint config and endpoint, with blue/green
updates and auto-rollback.

The engine changes only what the deployment puts into the requests (``settings.sagemaker_requests``): the image,
the container's environment (``catalog.engines.engine_environment``) and, for the vLLM images, the host AMI they
need. Everything else (weights from the S3 prefix under network isolation, VPC, roles, timeouts, routing, the
log group, blue/green and rollback) is the same construct, with the same construct ids: switching a deployed
scenario from one engine to the other is an ordinary blue/green update of the same endpoint.

Model and endpoint config have no fixed names, so a change creates new ones and CloudFormation updates the
endpoint in place, which SageMaker performs blue/green. The endpoint name is fixed (from the deployment), so
alarms, autoscaling and dashboards can name it without a reference cycle.

The variant name is fixed too: blue/green updates require the new config to keep the old variant name, and
``RetainAllVariantProperties`` carries the instance count of a variant of the same name into the new fleet.
SageMaker refuses an update that changes the instance type of a variant registered with Application Auto
Scaling, and CloudFormation would deregister the old target only after the endpoint update (cleanup runs
last), so an instance-type change takes two deploys; docs/updates.md gives the steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker

from constructs import Construct
from llama_constructs.endpoint.execution_role import ENDPOINT_LOG_GROUP_PREFIX
from settings import DeploymentConfig
from settings.sagemaker_requests import (
    VARIANT_NAME,
    cfn_properties,
    endpoint_config_request,
    model_request,
)
from settings.subnets import selection_kwargs

# Keep the old fleet this long after traffic moved, so streamed generations in flight there can finish.
TERMINATION_WAIT_S = 300
EXECUTION_MARGIN_S = 600  # instance provisioning and SageMaker's own steps, beyond the configured waits
_EXECUTION_TIMEOUT_RANGE = (600, 14400)  # SageMaker's limits for MaximumExecutionTimeoutInSeconds


@dataclass(frozen=True, kw_only=True)
class InferenceEndpointProps:
    deployment: DeploymentConfig
    weights_bucket: s3.IBucket
    key: kms.IKey  # encrypts the endpoint's log group (the NVMe instance storage is hardware-encrypted)
    image_uri: str
    role: iam.IRole
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup
    rollback_alarm_names: Sequence[str]
    log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS

    def __post_init__(self) -> None:
        if not self.rollback_alarm_names:
            raise ValueError("blue/green updates need at least one rollback alarm")


def execution_timeout_s(deployment: DeploymentConfig) -> int:
    """Whole blue/green update: download and start the new fleet, bake, then retire the old one (with margin)."""
    total = (
        int(deployment.model_data_download_timeout_s or 0)
        + int(deployment.startup_health_check_timeout_s or 0)
        + deployment.deployment_wait_s
        + TERMINATION_WAIT_S
        + EXECUTION_MARGIN_S
    )
    low, high = _EXECUTION_TIMEOUT_RANGE
    return max(low, min(high, total))


class InferenceEndpoint(Construct):
    """Exposes ``.model``, ``.endpoint_config``, ``.endpoint``, ``.log_group``, ``.endpoint_name``,
    ``.variant_name``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: InferenceEndpointProps) -> None:
        super().__init__(scope, construct_id)
        deployment = props.deployment
        instance = deployment.instance
        self.endpoint_name: str = str(deployment.endpoint_name)
        self.variant_name = VARIANT_NAME

        # SageMaker would create this group unencrypted and kept forever; own it instead.
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"{ENDPOINT_LOG_GROUP_PREFIX}{self.endpoint_name}",
            encryption_key=props.key,
            retention=props.log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        subnet_ids = props.vpc.select_subnets(**selection_kwargs(props.subnets)).subnet_ids
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            **cfn_properties(
                model_request(
                    deployment,
                    role_arn=props.role.role_arn,
                    image_uri=props.image_uri,
                    bucket_name=props.weights_bucket.bucket_name,
                    subnet_ids=subnet_ids,
                    security_group_ids=[props.security_group.security_group_id],
                )
            ),
        )
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            **cfn_properties(
                endpoint_config_request(
                    deployment, model_name=self.model.attr_model_name, kms_key_arn=props.key.key_arn
                )
            ),
        )
        if instance.has_local_nvme:
            cdk.Validations.of(self.endpoint_config).acknowledge(
                cdk.Acknowledgment(
                    id="NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured",
                    reason=f"{instance.name} serves from local NVMe instance storage, which is hardware-encrypted; "
                    "SageMaker rejects an endpoint-config KmsKeyId for instances with local NVMe",
                )
            )

        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            # An update keeps the variant's current DesiredInstanceCount (what autoscaling scaled it to) instead
            # of resetting it to InitialInstanceCount: the new fleet starts as large as the one serving now.
            retain_all_variant_properties=True,
            deployment_config=sagemaker.CfnEndpoint.DeploymentConfigProperty(
                blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                    traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                        type="ALL_AT_ONCE", wait_interval_in_seconds=deployment.deployment_wait_s
                    ),
                    termination_wait_in_seconds=TERMINATION_WAIT_S,
                    maximum_execution_timeout_in_seconds=execution_timeout_s(deployment),
                ),
                auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                    alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=name) for name in props.rollback_alarm_names]
                ),
            ),
        )
        self.endpoint.node.add_dependency(self.log_group)


# The names this construct had when TGI was the only engine (the benchmark state machine and older code import them).
TgiEndpoint = InferenceEndpoint
TgiEndpointProps = InferenceEndpointProps
