"""What every benchmark Lambda function shares: the packages bundled with it, its network and its key."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from constructs import Construct
from llama_constructs.benchmark.benchmark_findings import acknowledge_own_inline_policy
from llama_constructs.common.python_function import PythonFunction, PythonFunctionProps

# The handlers' logic is the benchmark distribution (benchmark, catalog; no settings); pure-Python third-party
# packages for the report templates and the matrices (the runtime has boto3).
THIRD_PARTY = ("jinja2", "markupsafe", "yaml")


@dataclass(frozen=True, kw_only=True)
class FunctionPlacement:
    """Where every benchmark function runs and what encrypts its logs, environment and dead-letter queue."""

    key: kms.IKey  # the benchmark's own key (results objects too)
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup


@dataclass(frozen=True, kw_only=True)
class ResultsFunctionProps:
    placement: FunctionPlacement
    results_bucket: s3.IBucket  # where the function reads and writes under the results prefix


def benchmark_function(
    scope: Construct,
    *,
    name: str,
    description: str,
    placement: FunctionPlacement,
    environment: dict[str, str],
    timeout: cdk.Duration,
    memory_mb: int = 512,
) -> PythonFunction:
    """The function ``lambda/<name>/``, as the construct's default child (so its logical ids are the construct's).

    Results are SSE-KMS, and the dead-letter queue is encrypted with the key: Lambda sends a failed
    asynchronous event there with the function's role, which SQS then needs to use the key for.
    """
    function = PythonFunction(
        scope,
        "Default",
        props=PythonFunctionProps(
            name=name,
            description=description,
            distribution=True,
            third_party=THIRD_PARTY,
            environment=environment,
            key=placement.key,
            vpc=placement.vpc,
            subnets=placement.subnets,
            security_group=placement.security_group,
            timeout=timeout,
            memory_mb=memory_mb,
        ),
    )
    acknowledge_own_inline_policy(function.role)
    return function
