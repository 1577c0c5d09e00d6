"""The one shape of SageMaker's CreateModel and CreateEndpointConfig requests for a ``DeploymentConfig``.

The endpoint stacks (through CloudFormation) and the benchmark state machine (through the SageMaker API) must
start the same container the same way: environment from ``DeploymentConfig.container_environment()`` (TGI's or
vLLM's, ``catalog.engines``), weights as an uncompressed S3 prefix under network isolation, SageMaker's timeouts,
least-outstanding-requests routing, the host AMI the image needs (``catalog.hosts``; none for TGI), and never
``VolumeSizeInGB`` or ``KmsKeyId`` on instances with local NVMe. Keys are the API's own
names; ``cfn_properties`` derives CloudFormation's (the same names) in the form the CDK L1 classes take.
Values may be CDK tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from catalog.deployment import DeploymentConfig

# Blue/green updates need the new config to keep the variant name; alarms and autoscaling name it too.
VARIANT_NAME = "AllTraffic"
ROUTING_STRATEGY = "LEAST_OUTSTANDING_REQUESTS"  # a long generation must not queue short ones behind it


def primary_container(deployment: DeploymentConfig, *, image_uri: str, model_data_uri: str) -> dict[str, Any]:
    """``CreateModel.PrimaryContainer``: weights read from S3 under network isolation, no Hub token."""
    return {
        "Image": image_uri,
        "Environment": deployment.container_environment(),
        "ModelDataSource": {
            "S3DataSource": {"S3Uri": model_data_uri, "S3DataType": "S3Prefix", "CompressionType": "None"}
        },
    }


def model_data_uri(deployment: DeploymentConfig, *, bucket_name: str) -> str:
    return f"s3://{bucket_name}/{deployment.weights_prefix}"


def vpc_config(*, subnet_ids: Sequence[str], security_group_ids: Sequence[str]) -> dict[str, Any]:
    """``CreateModel.VpcConfig``: the container's network interfaces live in these subnets only."""
    return {"Subnets": list(subnet_ids), "SecurityGroupIds": list(security_group_ids)}


def model_request(
    deployment: DeploymentConfig,
    *,
    role_arn: str,
    image_uri: str,
    bucket_name: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
) -> dict[str, Any]:
    """``CreateModel`` without ``ModelName`` (CloudFormation names it; the state machine adds its own)."""
    return {
        **isolated_hosting(role_arn=role_arn, subnet_ids=subnet_ids, security_group_ids=security_group_ids),
        "PrimaryContainer": primary_container(
            deployment, image_uri=image_uri, model_data_uri=model_data_uri(deployment, bucket_name=bucket_name)
        ),
    }


def isolated_hosting(*, role_arn: str, subnet_ids: Sequence[str], security_group_ids: Sequence[str]) -> dict[str, Any]:
    """The ``CreateModel`` fields every model of this project shares, whatever its container: the execution
    role, network isolation and the VPC. The state machine adds the container per configuration at run time."""
    return {
        "ExecutionRoleArn": role_arn,
        "EnableNetworkIsolation": True,
        "VpcConfig": vpc_config(subnet_ids=subnet_ids, security_group_ids=security_group_ids),
    }


def production_variant(deployment: DeploymentConfig, *, instance_count: int | None = None) -> dict[str, Any]:
    """``CreateEndpointConfig.ProductionVariants[0]`` without ``ModelName`` (added by the caller).

    ``instance_count`` defaults to the deployment's ``min_instances``.
    """
    variant: dict[str, Any] = {
        "VariantName": VARIANT_NAME,
        "InstanceType": deployment.instance_type,
        "InitialInstanceCount": deployment.min_instances if instance_count is None else instance_count,
        "InitialVariantWeight": 1.0,
        "ContainerStartupHealthCheckTimeoutInSeconds": deployment.startup_health_check_timeout_s,
        "ModelDataDownloadTimeoutInSeconds": deployment.model_data_download_timeout_s,
        "RoutingConfig": {"RoutingStrategy": ROUTING_STRATEGY},
    }
    # The vLLM images (CUDA 12.9 and 13.0) need a host driver SageMaker's default host lacks; TGI's need none.
    if deployment.inference_ami_version is not None:
        variant["InferenceAmiVersion"] = deployment.inference_ami_version
    # SageMaker rejects VolumeSizeInGB on local-NVMe instances (DeploymentConfig refuses setting it there).
    if deployment.volume_size_gb is not None and not deployment.instance.has_local_nvme:
        variant["VolumeSizeInGB"] = deployment.volume_size_gb
    return variant


def endpoint_config_request(
    deployment: DeploymentConfig, *, model_name: str, kms_key_arn: str | None = None
) -> dict[str, Any]:
    """``CreateEndpointConfig`` without its name: one variant; ``KmsKeyId`` only where SageMaker accepts it.

    SageMaker rejects ``KmsKeyId`` on local-NVMe instances, whose storage is hardware-encrypted, and
    ``DeploymentConfig`` refuses ``endpoint_config_kms`` there.
    """
    request: dict[str, Any] = {"ProductionVariants": [{**production_variant(deployment), "ModelName": model_name}]}
    if kms_key_arn is not None and deployment.endpoint_config_kms and not deployment.instance.has_local_nvme:
        request["KmsKeyId"] = kms_key_arn
    return request


_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_name(api_name: str) -> str:
    """``VolumeSizeInGB`` -> ``volume_size_in_gb``: the Python name CDK gives a CloudFormation property."""
    return _WORD_BOUNDARY.sub("_", api_name).lower()


def _camel_name(api_name: str) -> str:
    first, *rest = snake_name(api_name).split("_")
    return first + "".join(part.capitalize() for part in rest)


def cfn_properties(request: dict[str, Any], *, keep: Sequence[str] = ("Environment",)) -> dict[str, Any]:
    """A request as keyword arguments of a CDK L1 class (``CfnModel``, ``CfnEndpointConfig``).

    Top-level names become Python keywords; nested structures are passed as JSON objects, which the L1 classes
    read by their (camel-case) JavaScript names. Maps whose keys are data, not property names (the container
    ``Environment``), keep their keys.
    """

    def convert(key: str, value: Any) -> Any:
        if key in keep:
            return value
        if isinstance(value, dict):
            return {_camel_name(k): convert(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert("", item) for item in value]
        return value

    return {snake_name(k): convert(k, v) for k, v in request.items()}
