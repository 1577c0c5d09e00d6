"""Subnet selections as CDK's Python API takes them (no CDK import at run time: the Lambda bundles carry settings/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_cdk import aws_ec2 as ec2

_SELECTION_FIELDS = (
    "availability_zones",
    "one_per_az",
    "subnet_filters",
    "subnet_group_name",
    "subnets",
    "subnet_type",
)


def selection_kwargs(selection: ec2.SubnetSelection) -> dict[str, Any]:
    """``IVpc.select_subnets`` takes a selection's fields as keyword arguments in Python, not the selection."""
    return {k: getattr(selection, k) for k in _SELECTION_FIELDS if getattr(selection, k) is not None}
