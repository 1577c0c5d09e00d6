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
from stacks.benchmark_stack import BenchmarkStack, BenchmarkStackProps
from stacks.endpoint_stack import LlamaEndpointStack, shared_resources
from stacks.foundation_stack import FoundationProps, LlamaFoundationStack

FOUNDATION_STACK_NAME = "LlamaFoundationStack"
BENCHMARK_STACK_NAME = "LlamaBenchmarkStack"


@dataclass(frozen=True)
class LlamaStacks:
    foundation: LlamaFoundationStack
    endpoints: Mapping[str, LlamaEndpointStack]  # scenario -> stack
    benchmark: BenchmarkStack | None = None  # built unless ``-c benchmark=off``; its schedule is off by default


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
    foundation = LlamaFoundationStack(
        scope,
        FOUNDATION_STACK_NAME,
        props=FoundationProps(
            max_azs=settings.options.az_count, availability_zones=settings.options.availability_zones
        ),
        env=environment,
    )
    shared = shared_resources(foundation)
    endpoints = {
        scenario: LlamaEndpointStack(
            scope, STACK_NAMES[scenario], deployment=deployment, shared=shared, env=environment
        )
        for scenario, deployment in settings.deployments.items()
    }
    for stack in endpoints.values():
        stack.add_stack_dependency(foundation)
    benchmark = _benchmark_stack(scope, foundation, settings, environment)
    return LlamaStacks(foundation=foundation, endpoints=types.MappingProxyType(endpoints), benchmark=benchmark)


def _benchmark_stack(
    scope: Construct, foundation: LlamaFoundationStack, settings: Settings, env: cdk.Environment | None
) -> BenchmarkStack | None:
    options = settings.options.benchmark
    if not options.include:
        return None
    network = foundation.network
    stack = BenchmarkStack(
        scope,
        BENCHMARK_STACK_NAME,
        props=BenchmarkStackProps(
            weights_key=foundation.key,
            vpc=network.vpc,
            subnets=network.subnet_selection,
            endpoint_security_group=network.endpoint_security_group,
            lambda_security_group=network.lambda_security_group,
            interface_endpoint_security_group=network.interface_endpoint_security_group,
            weights_bucket=foundation.weights.bucket,
            # Its own access-log bucket: logging into the foundation's would widen that bucket's policy.
            access_log_bucket=None,
            options=options,
        ),
        env=env,
    )
    stack.add_stack_dependency(foundation)
    return stack
