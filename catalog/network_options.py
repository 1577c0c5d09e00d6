"""The ``az_count`` app option: across how many availability zones the shared VPC places its subnets.

SageMaker places an endpoint's instances in the subnets it is given, so the zones bound where g5 and p4d
capacity can be found; a blue/green update needs room for the old and the new fleet at once. Three zones by
default; a region with fewer zones than asked fails at deploy (``Fn::Select`` past the end of ``Fn::GetAZs``).
"""

from __future__ import annotations

from typing import Any

from catalog.errors import ConfigError, Issue

DEFAULT_AZ_COUNT = 3
AZ_COUNT_RANGE = (2, 6)  # at least two zones for an endpoint to survive one; six is the most CDK spreads over


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
