"""The network app options: across how many availability zones (``az_count``), or which ones
(``availability_zones``), the shared VPC places its subnets, and which interface endpoints it gets.

SageMaker places an endpoint's instances in the subnets it is given, so the zones bound where g5 and p4d
capacity can be found; a blue/green update needs room for the old and the new fleet at once. Three zones by
default; a region with fewer zones than asked fails at deploy (``Fn::Select`` past the end of ``Fn::GetAZs``).

Without ``availability_zones`` the VPC takes the first ``az_count`` zones of ``Fn::GetAZs``, which CloudFormation
resolves at deploy time in the target account; synth, offline and without credentials, cannot know them, nor
whether every interface endpoint service is offered in each (not every service is in every zone of a region).
``python -m settings.preflight`` checks that with credentials (``ec2:DescribeVpcEndpointServices``);
``-c availability_zones=us-east-1a,us-east-1b,us-east-1c`` pins the zones it names as allowed.
"""

from __future__ import annotations

import re
from typing import Any

from catalog.errors import ConfigError, Issue

DEFAULT_AZ_COUNT = 3
AZ_COUNT_RANGE = (2, 6)  # at least two zones for an endpoint to survive one; six is the most CDK spreads over
_ZONE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+[a-z]$")  # a region's zone: us-east-1a (not a Local Zone)

# What the endpoints (ECR pulls, logs, metrics) and the tooling (SageMaker API and runtime calls, STS, KMS,
# Secrets Manager) call inside the VPC; the names are the service part of com.amazonaws.<region>.<name>.
DEFAULT_INTERFACE_ENDPOINTS: tuple[str, ...] = (
    "sagemaker.runtime",
    "sagemaker.api",
    "ecr.api",
    "ecr.dkr",
    "logs",
    "monitoring",
    "sts",
    "kms",
    "secretsmanager",
)


def interface_endpoint_service(region: str, name: str) -> str:
    """The endpoint service name CDK's ``InterfaceVpcEndpointAwsService(name)`` gives in a commercial region."""
    return f"com.amazonaws.{region}.{name}"


def parse_availability_zones(value: Any) -> tuple[str, ...]:
    """``-c availability_zones=us-east-1a,us-east-1b`` (or a YAML list): the VPC's zones; empty means Fn::GetAZs."""
    if value is None or value in ("", []):
        return ()
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    zones = tuple(str(z).strip() for z in items if str(z).strip())
    low, high = AZ_COUNT_RANGE
    allowed = f"must be {low} to {high} distinct zone names of one region, comma-separated, like us-east-1a,us-east-1b"
    regions = {z[:-1] for z in zones}
    if not low <= len(zones) <= high or len(set(zones)) != len(zones) or len(regions) != 1:
        raise ConfigError([Issue("availability_zones", value, allowed)])
    bad = [z for z in zones if not _ZONE.match(z)]
    if bad:
        raise ConfigError([Issue("availability_zones", ", ".join(bad), allowed)])
    return zones


def parse_az_count(value: Any) -> int:
    """``-c az_count=3`` (a string from the CLI, an int from cdk.json); None means the default."""
    if value is None or value == "":
        return DEFAULT_AZ_COUNT
    low, high = AZ_COUNT_RANGE
    allowed = f"must be a whole number from {low} to {high} (availability zones of the VPC)"
    if isinstance(value, bool):
        raise ConfigError([Issue("az_count", value, allowed)])
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError([Issue("az_count", value, allowed)]) from None
    if not low <= number <= high:
        raise ConfigError([Issue("az_count", value, allowed)])
    return number
