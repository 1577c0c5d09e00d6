"""Builds BenchmarkStack once against a small stand-in foundation and renders its state machine to ASL.

The stand-in holds only what BenchmarkStack takes (key, isolated VPC, security groups, weights bucket),
so these tests do not depend on LlamaFoundationStack's other resources.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from settings.benchmark_options import BenchmarkOptions
from stacks.benchmark_stack import BenchmarkStack, BenchmarkStackProps

ACCOUNT = "111122223333"
REGION = "us-east-1"


@dataclass(frozen=True)
class Built:
    stack: BenchmarkStack
    template: Template
    definition: dict[str, Any]
    outdir: Path


def render(value: Any, refs: dict[str, str]) -> Any:
    """Resolve the intrinsics a DefinitionString uses into plain strings (placeholders for references)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [render(v, refs) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(str(render(p, refs)) for p in parts)
    if "Ref" in value:
        name = value["Ref"]
        return {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name, refs.get(name, f"ref-{name.lower()}"))
    if "Fn::GetAtt" in value:
        logical, attr = value["Fn::GetAtt"]
        if attr == "Arn":
            return refs.get(f"{logical}.Arn", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical.lower()}")
        return f"{logical.lower()}-{attr.lower()}"
    if "Fn::ImportValue" in value:
        return f"import-{str(render(value['Fn::ImportValue'], refs)).lower()}"
    if "Fn::FindInMap" in value:
        return "763104351884"
    return {k: render(v, refs) for k, v in value.items()}


def definition_of(template: Template, refs: dict[str, str] | None = None) -> dict[str, Any]:
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    definition: dict[str, Any] = json.loads(render(machine["Properties"]["DefinitionString"], refs or {}))
    return definition


def local_definition(built: Built, *, bucket: str, topic: str, loadtest: str, aggregate: str) -> dict[str, Any]:
    """The deployed definition with the local stand-ins' names for the results bucket, the topic and the two
    functions' ARNs (any other reference fails), for tests/sfn_local.py; its waits are left as deployed."""
    stack = built.stack

    def logical(construct: Any) -> str:
        return str(stack.get_logical_id(construct.node.default_child))

    refs = {
        logical(stack.results.bucket): bucket,
        logical(stack.topic): topic,
        f"{logical(stack.load_test.function)}.Arn": loadtest,
        f"{logical(stack.aggregate.function)}.Arn": aggregate,
    }
    return definition_of(built.template, refs)


@cache
def build(outdir: str | None = None) -> Built:
    """Synthesize once per process; by default into a fresh temp dir, so xdist workers and runs from another
    directory never share or litter an output folder."""
    if outdir is None:
        outdir = tempfile.mkdtemp(prefix="cdk.out.benchmark-tests-")
        atexit.register(shutil.rmtree, outdir, ignore_errors=True)
    app = cdk.App(outdir=outdir)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))
    foundation = cdk.Stack(app, "StandInFoundation")
    key = kms.Key(foundation, "Key", enable_key_rotation=True)
    vpc = ec2.Vpc(
        foundation,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        restrict_default_security_group=False,
        subnet_configuration=[ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
    )
    weights = s3.Bucket(foundation, "Weights", encryption_key=key, enforce_ssl=True)
    for finding in (
        "NIST.800.53.R5-VPCFlowLogsEnabled",
        "NIST.800.53.R5-VPCDefaultSecurityGroupClosed",
        "NIST.800.53.R5-S3BucketLoggingEnabled",
        "NIST.800.53.R5-S3BucketPublicReadProhibited",
        "NIST.800.53.R5-S3BucketPublicWriteProhibited",
        "NIST.800.53.R5-S3BucketReplicationEnabled",
        "NIST.800.53.R5-S3BucketVersioningEnabled",
        "AwsSolutions-S1",
        "AwsSolutions-VPC7",
    ):
        cdk.Validations.of(foundation).acknowledge(cdk.Acknowledgment(id=finding, reason="test stand-in, not deployed"))
    lambda_group = ec2.SecurityGroup(foundation, "LambdaSg", vpc=vpc, allow_all_outbound=False)
    endpoint_group = ec2.SecurityGroup(foundation, "InterfaceEndpointSg", vpc=vpc, allow_all_outbound=False)
    endpoint_group.add_ingress_rule(lambda_group, ec2.Port.tcp(443), "HTTPS from the functions")  # as the foundation
    stack = BenchmarkStack(
        app,
        "LlamaBenchmarkStack",
        props=BenchmarkStackProps(
            weights_key=key,
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            endpoint_security_group=ec2.SecurityGroup(foundation, "EndpointSg", vpc=vpc),
            lambda_security_group=lambda_group,
            interface_endpoint_security_group=endpoint_group,
            weights_bucket=weights,
            options=BenchmarkOptions(),
        ),
    )
    app.synth()  # raises ValidationFailed on any unacknowledged nag finding
    template = Template.from_stack(stack)
    return Built(stack, template, definition_of(template), Path(outdir))


def janitor_sweep_minutes(built: Built) -> int:
    """The rate, in minutes, of the schedule that invokes the janitor, as synthesized."""
    function = built.stack.janitor.function.node.default_child
    janitor = {"Fn::GetAtt": [built.stack.get_logical_id(function), "Arn"]}  # type: ignore[arg-type]
    rules = built.template.find_resources("AWS::Events::Rule").values()
    (expression,) = [
        r["Properties"]["ScheduleExpression"]
        for r in rules
        if "ScheduleExpression" in r["Properties"] and any(t["Arn"] == janitor for t in r["Properties"]["Targets"])
    ]
    rate = re.fullmatch(r"rate\((\d+) (minutes?|hours?)\)", expression)
    assert rate, expression
    return int(rate[1]) * (60 if rate[2].startswith("hour") else 1)
