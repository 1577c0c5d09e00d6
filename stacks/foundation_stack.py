"""LlamaFoundationStack: what every endpoint and the benchmark share, deployed once per account and region.

The key, the isolated VPC, the weights bucket and the job that stages weights into it live here, so the
scenario stacks can come and go (and be replaced) without touching data or network. They consume these by
cross-stack reference.

The stack is environment-agnostic by default. With an explicit ``cdk.Environment`` CDK would look up the
region's availability zones (an AWS call at synth); this stack keeps ``Fn::GetAZs`` instead, or uses the zones
given in ``FoundationProps.availability_zones``, so synth stays offline either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from catalog.network_options import DEFAULT_INTERFACE_ENDPOINTS
from constructs import Construct
from llama_constructs.common.encryption import Encryption, EncryptionProps
from llama_constructs.foundation.network import Network, NetworkProps
from llama_constructs.foundation.weights_bucket import WeightsBucket, WeightsBucketProps
from llama_constructs.foundation.weights_staging import DEFAULT_TOKEN_SECRET_NAME, WeightsStaging, WeightsStagingProps

_MAX_AZS = 6


@dataclass(frozen=True, kw_only=True)
class FoundationProps:
    cidr: str = "10.42.0.0/16"
    max_azs: int = 2
    availability_zones: tuple[str, ...] = ()  # empty: the first max_azs zones of the region, via Fn::GetAZs
    interface_endpoints: tuple[str, ...] = DEFAULT_INTERFACE_ENDPOINTS
    s3_prefix_list_id: str | None = None
    token_secret_name: str = DEFAULT_TOKEN_SECRET_NAME
    staging_compute: str = "large"
    key_alias: str | None = None
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR  # flow logs and staging build logs
    extra_network: dict[str, Any] = field(default_factory=dict)  # further NetworkProps fields

    def __post_init__(self) -> None:
        if self.availability_zones and len(self.availability_zones) < self.max_azs:
            raise ValueError(
                f"availability_zones names {len(self.availability_zones)} zones, max_azs is {self.max_azs}"
            )
        if not 1 <= self.max_azs <= _MAX_AZS:
            raise ValueError(f"max_azs must be 1..{_MAX_AZS}")


class LlamaFoundationStack(cdk.Stack):
    """Exposes ``.encryption``/``.key``, ``.network``, ``.weights`` and ``.staging``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: FoundationProps | None = None,
        **kwargs: Any,
    ) -> None:
        self._props = props or FoundationProps()
        super().__init__(scope, construct_id, **kwargs)
        p = self._props
        self.encryption = Encryption(self, "Encryption", props=EncryptionProps(alias=p.key_alias))
        self.network = Network(
            self,
            "Network",
            props=NetworkProps(
                key=self.key,
                cidr=p.cidr,
                max_azs=p.max_azs,
                interface_endpoints=p.interface_endpoints,
                s3_prefix_list_id=p.s3_prefix_list_id,
                flow_log_retention=p.log_retention,
                **p.extra_network,
            ),
        )
        self.weights = WeightsBucket(self, "Weights", props=WeightsBucketProps(key=self.key))
        self.staging = WeightsStaging(
            self,
            "Staging",
            props=WeightsStagingProps(
                key=self.key,
                bucket=self.weights.bucket,
                token_secret_name=p.token_secret_name,
                compute=p.staging_compute,
                log_retention=p.log_retention,
            ),
        )
        cdk.CfnOutput(self, "WeightsBucketName", value=self.weights.bucket.bucket_name)
        cdk.CfnOutput(self, "AccessLogBucketName", value=self.weights.access_log_bucket.bucket_name)
        cdk.CfnOutput(self, "KeyArn", value=self.key.key_arn)
        cdk.CfnOutput(self, "StagingProjectName", value=self.staging.project.project_name)
        cdk.CfnOutput(self, "HubTokenSecretName", value=self.staging.token_secret_name)
        cdk.CfnOutput(self, "VpcId", value=self.network.vpc.vpc_id)

    @property
    def key(self) -> kms.IKey:
        return self.encryption.key

    @property
    def availability_zones(self) -> list[str]:
        """Zones without a context lookup, even when the stack has an explicit environment."""
        if self._props.availability_zones:
            return list(self._props.availability_zones)
        return [cdk.Fn.select(i, cdk.Fn.get_azs()) for i in range(self._props.max_azs)]
