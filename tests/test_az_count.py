"""``-c az_count=N`` reaches the shared VPC: one isolated subnet per zone, and every endpoint uses them all."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk.assertions import Template

from settings import load_settings
from stacks.composition import add_llama_stacks


def test_az_count_sets_the_vpcs_zones_and_the_endpoints_subnets() -> None:
    settings = load_settings({"az_count": "4", "benchmark": "off", "scenarios": "latency"})
    stacks = add_llama_stacks(cdk.App(), settings)
    foundation = Template.from_stack(stacks.foundation).to_json()["Resources"]
    subnets = [r for r in foundation.values() if r["Type"] == "AWS::EC2::Subnet"]
    zones = [s["Properties"]["AvailabilityZone"] for s in subnets]
    assert zones == [{"Fn::Select": [i, {"Fn::GetAZs": ""}]} for i in range(4)]
    endpoint = Template.from_stack(stacks.endpoints["latency"]).to_json()["Resources"]
    (model,) = [r for r in endpoint.values() if r["Type"] == "AWS::SageMaker::Model"]
    assert len(model["Properties"]["VpcConfig"]["Subnets"]) == 4


def test_pinned_availability_zones_replace_fn_getazs() -> None:
    """``-c availability_zones=...`` (zones the preflight found every interface endpoint offered in) are literal."""
    zones = ("us-east-1b", "us-east-1c", "us-east-1d")
    settings = load_settings({"availability_zones": ",".join(zones), "benchmark": "off", "scenarios": "latency"})
    stacks = add_llama_stacks(cdk.App(), settings)
    foundation = Template.from_stack(stacks.foundation).to_json()["Resources"]
    subnets = [r for r in foundation.values() if r["Type"] == "AWS::EC2::Subnet"]
    assert [s["Properties"]["AvailabilityZone"] for s in subnets] == list(zones)
