"""The Llama 2 stacks of one environment: the shared foundation and one endpoint stack per selected scenario.

Used by ``app.py`` and by pipeline stages, so the scope may be an App or a ``cdk.Stage``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass

import aws_cdk as cdk

from catalog.errors import ConfigError, Issue
from constructs import Construct
from settings import STACK_NAMES, Settings
from stacks.endpoint_stack import LlamaEndpointStack, shared_resources
from stacks.foundation_stack import LlamaFoundationStack

FOUNDATION_STACK_NAME = "LlamaFoundationStack"


@dataclass(frozen=True)
class LlamaStacks:
    foundation: LlamaFoundationStack
    endpoints: Mapping[str, LlamaEndpointStack]  # scenario -> stack


def environment_for(settings: Settings, env: cdk.Environment | None) -> cdk.Environment | None:
    """The explicit environment if given; else the region the deployments name (all must agree); else agnostic."""
    regions = {d.region for d in settings.deployments.values() if d.region is not None}
    if env is not None:
        clash = {r for r in regions if env.region is not None and r != env.region}
        if clash:
            raise ConfigError(
                [Issue("region", ", ".join(sorted(clash)), f"must match the target environment's {env.region}")]
            )
        return env
    if len(regions) > 1:
        raise ConfigError(
            [Issue("region", ", ".join(sorted(regions)), "must be the same for every scenario: they share a VPC")]
        )
    return cdk.Environment(region=regions.pop()) if regions else None


def add_llama_stacks(scope: Construct, settings: Settings, *, env: cdk.Environment | None = None) -> LlamaStacks:
    environment = environment_for(settings, env)
    foundation = LlamaFoundationStack(scope, FOUNDATION_STACK_NAME, env=environment)
    shared = shared_resources(foundation)
    endpoints = {
        scenario: LlamaEndpointStack(
            scope, STACK_NAMES[scenario], deployment=deployment, shared=shared, env=environment
        )
        for scenario, deployment in settings.deployments.items()
    }
    for stack in endpoints.values():
        stack.add_stack_dependency(foundation)
    return LlamaStacks(foundation=foundation, endpoints=types.MappingProxyType(endpoints))
