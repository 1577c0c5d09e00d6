"""SageMaker CreateModel / CreateEndpointConfig request fragments derived from a ``DeploymentConfig``.

One pure function per request part, so the benchmark state machine (which calls the SageMaker API
itself) and the endpoint stacks send the same container settings: environment from
``DeploymentConfig.container_environment()``, weights as an uncompressed S3 prefix, SageMaker's timeouts,
and never ``VolumeSizeInGB`` or ``KmsKeyId`` on instances with local NVMe. Values may be CDK tokens.
"""

from __future__ import annotations

from typing import Any

from settings.deployment import DeploymentConfig

VARIANT_NAME = "AllTraffic"


def primary_container(deployment: DeploymentConfig, *, image_uri: str, model_data_uri: str) -> dict[str, Any]:
    """``CreateModel.PrimaryContainer``: weights read from S3 under network isolation, no Hub token."""
    return {
        "Image": image_uri,
        "Environment": deployment.container_environment(),
        "ModelDataSource": {
            "S3DataSource": {"S3Uri": model_data_uri, "S3DataType": "S3Prefix", "CompressionType": "None"}
        },
    }


def production_variant(deployment: DeploymentConfig, *, instance_count: int = 1) -> dict[str, Any]:
    """``CreateEndpointConfig.ProductionVariants[0]`` without ``ModelName`` (added by the caller)."""
    variant: dict[str, Any] = {
        "VariantName": VARIANT_NAME,
        "InstanceType": deployment.instance_type,
        "InitialInstanceCount": instance_count,
        "ContainerStartupHealthCheckTimeoutInSeconds": deployment.startup_health_check_timeout_s,
        "ModelDataDownloadTimeoutInSeconds": deployment.model_data_download_timeout_s,
    }
    if deployment.volume_size_gb is not None and not deployment.instance.has_local_nvme:
        variant["VolumeSizeInGB"] = deployment.volume_size_gb
    return variant


def endpoint_config_kms_allowed(deployment: DeploymentConfig) -> bool:
    """SageMaker rejects an endpoint-config ``KmsKeyId`` on instances with local (hardware-encrypted) NVMe."""
    return deployment.endpoint_config_kms and not deployment.instance.has_local_nvme
