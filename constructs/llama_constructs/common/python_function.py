"""A Python Lambda function bundled without Docker, in the isolated VPC, encrypted, traced and logged.

Bundling copies ``lambda/<name>/`` (the thin handler), the files of the benchmark distribution when asked (its
packages as its wheel holds them: ``distribution.py``) and the pure-Python third-party packages it needs from the
current environment into ``build/lambda/<name>-<hash>/``. The hash
covers every copied file, so the asset (and the template) only changes when the code does. Compiled
extension modules are left out: the runtime may differ from the build machine, and the packages we ship
(jinja2, markupsafe, yaml) fall back to pure Python without them. boto3 is not copied: the runtime has it.
The runtime matches the local interpreter, which is what the bundled code is tested with.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from llama_constructs.common.distribution import distribution_files

PROJECT_ROOT = Path(__file__).resolve().parents[3]  # constructs/llama_constructs/common/ -> the checkout
LAMBDA_SOURCE = PROJECT_ROOT / "lambda"
BUILD_ROOT = PROJECT_ROOT / "build" / "lambda"
_EXCLUDED_DIRS = {"__pycache__", "tests", ".mypy_cache", ".pytest_cache"}
_EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".so", ".pyd"}
# Lambda's Python runtimes that are not deprecated; the bundle's pure-Python packages come from this interpreter.
_RUNTIMES = {
    (3, 11): lambda_.Runtime.PYTHON_3_11,
    (3, 12): lambda_.Runtime.PYTHON_3_12,
    (3, 13): lambda_.Runtime.PYTHON_3_13,
    (3, 14): lambda_.Runtime.PYTHON_3_14,
}


def local_runtime(version: tuple[int, int] | None = None) -> lambda_.Runtime:
    """The Lambda runtime matching this interpreter, so the bundle runs on the Python it was tested with."""
    key = version or (sys.version_info.major, sys.version_info.minor)
    if key not in _RUNTIMES:
        supported = ", ".join(f"{major}.{minor}" for major, minor in _RUNTIMES)
        raise RuntimeError(
            f"Python {key[0]}.{key[1]} has no Lambda runtime here: synthesize with one of {supported} "
            "(the bundled functions run on the Lambda runtime of the synthesizing interpreter)"
        )
    return _RUNTIMES[key]


@dataclass(frozen=True, kw_only=True)
class PythonFunctionProps:
    name: str  # folder under lambda/ holding handler.py
    description: str
    distribution: bool = False  # ship the benchmark distribution (pyproject.toml): benchmark, catalog
    third_party: Sequence[str] = ()  # importable names of pure-Python packages, e.g. ("jinja2", "markupsafe")
    environment: Mapping[str, str] = field(default_factory=dict)
    key: kms.IKey
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup
    timeout: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(1))
    memory_mb: int = 512
    # None (the default): no reserved concurrency. Reserving fails in accounts whose unreserved minimum
    # forbids it (new accounts); bound parallelism where the function is called instead.
    reserved_concurrency: int | None = None
    log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS

    def __post_init__(self) -> None:
        if not (LAMBDA_SOURCE / self.name / "handler.py").is_file():
            raise ValueError(f"lambda/{self.name}/handler.py does not exist")
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError("memory_mb must be 128..10240")
        if self.reserved_concurrency is not None and self.reserved_concurrency < 1:
            raise ValueError(f"reserved_concurrency={self.reserved_concurrency}: must be at least 1, or None")


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _EXCLUDED_DIRS for part in rel.parts) or path.suffix in _EXCLUDED_SUFFIXES:
            continue
        if path.is_file():
            yield path


def _third_party_root(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"third-party package {name!r} is not installed as a package in this environment")
    return Path(next(iter(spec.submodule_search_locations)))


def stage_bundle(props: PythonFunctionProps, *, build_root: Path = BUILD_ROOT) -> Path:
    """Copy the handler and its packages into a content-addressed folder; reuse it when it exists."""
    handler = LAMBDA_SOURCE / props.name
    plan = [(file, file.relative_to(handler)) for file in _files(handler)]
    if props.distribution:
        plan += distribution_files(PROJECT_ROOT)
    for package in props.third_party:
        root = _third_party_root(package)
        plan += [(file, Path(package) / file.relative_to(root)) for file in _files(root)]
    digest = hashlib.sha256()
    for file, target in plan:
        digest.update(str(target).encode() + b"\0" + file.read_bytes() + b"\0")
    out = build_root / f"{props.name}-{digest.hexdigest()[:16]}"
    if not out.is_dir():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for file, target in plan:
            (tmp / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, tmp / target)
        try:
            tmp.rename(out)
        except OSError:  # another process staged the same content first
            shutil.rmtree(tmp, ignore_errors=True)
    _prune_stale(build_root, props.name, keep=out)
    return out


STALE_AFTER_S = 3600.0


def _prune_stale(build_root: Path, name: str, *, keep: Path) -> None:
    """Drop this function's bundles of older sources, so build/ does not grow with every edit.

    Only bundles untouched for an hour go, so a synth running in parallel never loses the one it uses.
    """
    cutoff = time.time() - STALE_AFTER_S
    for old in build_root.glob(f"{name}-*"):
        if old != keep and old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)


class PythonFunction(Construct):
    """One Lambda function with its own role, encrypted log group, DLQ for async calls and X-Ray tracing."""

    def __init__(self, scope: Construct, construct_id: str, *, props: PythonFunctionProps) -> None:
        super().__init__(scope, construct_id)
        self.bundle_dir = stage_bundle(props)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            encryption_key=props.key,
            retention=props.log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=props.description
        )
        # What AWSLambdaVPCAccessExecutionRole grants, inline rather than as a managed policy.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            )
        )
        self.log_group.grant_write(self.role)
        self.dead_letter_queue = sqs.Queue(
            self,
            "Dlq",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=props.key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=props.description,
            runtime=local_runtime(),
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(self.bundle_dir), display_name=f"{_display_path(self)}/Function/Code"),
            role=self.role,
            timeout=props.timeout,
            memory_size=props.memory_mb,
            environment=dict(props.environment),
            environment_encryption=props.key,
            vpc=props.vpc,
            vpc_subnets=props.subnets,
            security_groups=[props.security_group],
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            reserved_concurrent_executions=props.reserved_concurrency,
            dead_letter_queue=self.dead_letter_queue,
        )
        # CDK makes the function depend on its role and policy; the role is already ordered by the GetAtt
        # (cfn-lint W3005). Keep the policy: the function needs its VPC rights before it is created.
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        function = self.function.node.default_child
        assert isinstance(policy, cdk.CfnResource) and isinstance(function, cdk.CfnResource)
        function.add_override("DependsOn", [cdk.Stack.of(self).resolve(policy.logical_id)])
        _acknowledge(self, reserved=props.reserved_concurrency)


def _display_path(scope: Construct) -> str:
    """The stack-relative path CDK would show for the asset, without ``Default`` ids (which CDK also leaves out
    of logical ids), so wrapping the function as a construct's default child renames nothing in a pipeline."""
    stack = cdk.Stack.of(scope)
    ids = [s.node.id for s in scope.node.scopes[len(stack.node.scopes) :]]
    return "/".join(i for i in ids if i != "Default")


def _acknowledge(fn: PythonFunction, *, reserved: int | None) -> None:
    ack = cdk.Validations.of(fn.role)
    ack.acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="Lambda creates a VPC function's network interfaces with this role and, when the function is "
            "created or its VPC configuration changes, checks that the role may call the ENI actions without naming "
            "a resource; a role whose ENI actions are scoped to subnets or a VPC fails that check "
            "(aws/serverless-application-model#1074), so they stay on * as in AWSLambdaVPCAccessExecutionRole. "
            "X-Ray PutTraceSegments and PutTelemetryRecords have no resource types",
        )
    )
    cdk.Validations.of(fn.function).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-L1",
            reason="the runtime matches the local interpreter the bundled code and packages are tested with",
        )
    )
    if reserved is None:
        cdk.Validations.of(fn.function).acknowledge(
            cdk.Acknowledgment(
                id="NIST.800.53.R5-LambdaConcurrency",
                reason="reserved concurrency fails in accounts whose unreserved minimum forbids it (new "
                "accounts); the caller bounds parallelism (the benchmark state machine's Map MaxConcurrency)",
            )
        )
