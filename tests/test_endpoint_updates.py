"""Changing the instance type of a deployed, autoscaled endpoint: the two deploys docs/updates.md describes.

SageMaker refuses an UpdateEndpoint that changes the instance type of a variant registered with Application
Auto Scaling, and CloudFormation deletes a removed resource only in its cleanup phase, after every update. So
the first deploy (``autoscaling: false``) must change nothing but the autoscaling resources, and the second
(the new instance type, autoscaling back on) must update the endpoint before it registers the target again.
"""

from __future__ import annotations

from typing import Any

import pytest

from catalog.errors import ConfigError
from settings import STACK_NAMES, load_settings
from tests.fixtures_endpoint import resources, synth_model

STACK = STACK_NAMES["latency"]
NEW_TYPE = "ml.g5.48xlarge"
SERVING = ("AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint")
SCALING = ("AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy")


def _template(**context: str) -> dict[str, Any]:
    return synth_model("7b", **context).templates[STACK]


@pytest.fixture(scope="module")
def deployed() -> dict[str, Any]:
    return _template()


@pytest.fixture(scope="module")
def step_one() -> dict[str, Any]:
    return _template(**{"latency.autoscaling": "false"})


@pytest.fixture(scope="module")
def step_two() -> dict[str, Any]:
    return _template(**{"latency.instance_type": NEW_TYPE})


def test_step_one_removes_only_the_scalable_target_and_its_policy(
    deployed: dict[str, Any], step_one: dict[str, Any]
) -> None:
    for kind in SCALING:
        assert resources(deployed, kind), kind
        assert not resources(step_one, kind), f"{kind} must go, which deregisters the variant"
    for kind in SERVING:
        # Same logical ids and properties: CloudFormation leaves model, config and endpoint untouched.
        assert resources(step_one, kind) == resources(deployed, kind), kind


def test_step_two_updates_the_endpoint_before_registering_the_new_target(
    deployed: dict[str, Any], step_two: dict[str, Any]
) -> None:
    (config,) = resources(step_two, "AWS::SageMaker::EndpointConfig").values()
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["InstanceType"] == NEW_TYPE
    (old_variant,) = next(iter(resources(deployed, "AWS::SageMaker::EndpointConfig").values()))["Properties"][
        "ProductionVariants"
    ]
    assert variant["VariantName"] == old_variant["VariantName"], "blue/green requires the same variant name"
    (endpoint_id,) = resources(step_two, "AWS::SageMaker::Endpoint")
    (target,) = resources(step_two, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert endpoint_id in target["DependsOn"], "register only once the endpoint runs the new instance type"


def test_autoscaling_is_a_validated_boolean_setting() -> None:
    settings = load_settings({"latency.autoscaling": "false"})
    assert settings.deployments["latency"].autoscaling is False
    assert settings.deployments["cost"].autoscaling is True
    with pytest.raises(ConfigError, match=r"autoscaling \(cdk context latency\.\*\).*'maybe'.*true or false"):
        load_settings({"latency.autoscaling": "maybe"})
