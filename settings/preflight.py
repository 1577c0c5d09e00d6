"""Read-only checks before a first deployment: quotas, the TGI image's region, the VPC's zones against the
interface endpoint services, the staged weights and their commit.

``python -m settings.preflight [-c key=value ...] [--region R] [--bucket B]`` reads the same settings as the
app (context keys, ``-c config=...``), then with credentials asks Service Quotas, CloudFormation, EC2 and S3,
and prints what to request, pin or stage. Without credentials it prints what it would check and exits 0. It
only reads: ListServiceQuotas, ListAWSDefaultServiceQuotas, DescribeStacks, DescribeAvailabilityZones,
DescribeSubnets, DescribeVpcEndpointServices, ListObjectsV2, GetObject.

Zones: an interface endpoint is created in every subnet of the VPC, and fails when its service is not offered
in that subnet's zone. The VPC's zones are the deployed VPC's (its subnets), else the pinned
``availability_zones``, else the first ``az_count`` of ``Fn::GetAZs``, which CloudFormation documents as the
region's zones in alphabetical order, only those with a default subnet unless none has one
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-getavailabilityzones.html;
it also says the order is not guaranteed, so the prediction is named as one, and pinning the zones removes it).

Quota arithmetic, per instance type: every endpoint of that type at its autoscaling maximum, plus one more
fleet of the largest of them, because a blue/green update runs the new fleet beside the old one (stacks are
deployed one at a time, so one update at a time). Instances already used by other endpoints are not counted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from catalog.deployment import DeploymentConfig
from catalog.errors import ConfigError, Issue
from catalog.network_options import DEFAULT_AZ_COUNT, DEFAULT_INTERFACE_ENDPOINTS, interface_endpoint_service
from settings.loading import load_settings
from settings.staging_record import StagingRecord, record_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_service_quotas import ServiceQuotasClient

FOUNDATION_STACK = "LlamaFoundationStack"
BUCKET_OUTPUT = "WeightsBucketName"
VPC_OUTPUT = "VpcId"
SERVICE_CODE = "sagemaker"


def quota_name(instance_type: str) -> str:
    return f"{instance_type} for endpoint usage"


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    message: str
    action: str = ""  # what to request or run when not ok

    def render(self) -> str:
        line = f"[{'ok' if self.ok else 'FAIL'}] {self.check}: {self.message}"
        return f"{line}\n       -> {self.action}" if self.action else line


class CloudFormationReader(Protocol):
    def describe_stacks(self, *, StackName: str) -> Mapping[str, Any]: ...  # noqa: N803 (boto3's argument name)


class Ec2Reader(Protocol):
    """The EC2 reads of the zone check (boto3's argument names)."""

    def describe_availability_zones(self, *, Filters: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]: ...  # noqa: N803
    def describe_subnets(self, *, Filters: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]: ...  # noqa: N803
    def describe_vpc_endpoint_services(self, *, ServiceNames: Sequence[str]) -> Mapping[str, Any]: ...  # noqa: N803


def instances_needed(deployments: Iterable[DeploymentConfig]) -> dict[str, int]:
    """Instance type -> instances at peak: all scaled out, plus the largest one's blue/green fleet."""
    by_type: dict[str, list[int]] = {}
    for d in deployments:
        by_type.setdefault(str(d.instance_type), []).append(int(d.max_instances or d.min_instances))
    return {t: sum(counts) + max(counts) for t, counts in sorted(by_type.items())}


def _quota_values(client: ServiceQuotasClient) -> dict[str, tuple[float, str]]:
    """Quota name -> (value, code): the applied values, then AWS defaults for quotas never changed."""
    values: dict[str, tuple[float, str]] = {}
    pages = [
        *client.get_paginator("list_service_quotas").paginate(ServiceCode=SERVICE_CODE),
        *client.get_paginator("list_aws_default_service_quotas").paginate(ServiceCode=SERVICE_CODE),
    ]
    for page in pages:
        for quota in page.get("Quotas", []):
            name, value = quota.get("QuotaName", ""), quota.get("Value")
            if name and value is not None and name not in values:
                values[name] = (float(value), quota.get("QuotaCode", ""))
    return values


def check_quotas(client: ServiceQuotasClient, needed: Mapping[str, int], region: str) -> list[Finding]:
    values = _quota_values(client)
    findings = []
    for instance_type, count in needed.items():
        name = quota_name(instance_type)
        if name not in values:
            findings.append(Finding("quota", False, f"no quota named {name!r} in {region}: the type is not offered"))
            continue
        value, code = values[name]
        message = f"{name} = {value:g}, needed {count} (all endpoints scaled out + one blue/green fleet)"
        action = (
            f"aws service-quotas request-service-quota-increase --region {region} --service-code {SERVICE_CODE} "
            f"--quota-code {code} --desired-value {count}"
        )
        findings.append(Finding("quota", value >= count, message, "" if value >= count else action))
    return findings


def check_images(deployments: Iterable[DeploymentConfig], region: str) -> list[Finding]:
    findings = []
    for d in deployments:
        try:
            uri = d.image.uri(region)
        except ConfigError as err:
            action = f"choose another region or {d.engine_spec.version_field}"
            findings.append(Finding("image", False, f"{d.endpoint_name}: {err}", action))
        else:
            findings.append(Finding("image", True, f"{d.endpoint_name}: {uri}"))
    return findings


def foundation_outputs(cloudformation: CloudFormationReader, stack_name: str = FOUNDATION_STACK) -> dict[str, str]:
    """The foundation stack's outputs; empty when it does not exist (yet)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError:
        return {}
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


@dataclass(frozen=True)
class Zones:
    names: tuple[str, ...]
    source: str  # where they come from, for the messages


def region_zones(ec2: Ec2Reader) -> list[str]:
    """The region's available zones (not Local or Wavelength Zones), by name, alphabetically."""
    zones = ec2.describe_availability_zones(
        Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}, {"Name": "state", "Values": ["available"]}]
    ).get("AvailabilityZones", [])
    return sorted(z["ZoneName"] for z in zones)


def vpc_zones(ec2: Ec2Reader, *, vpc_id: str | None, pinned: Sequence[str], az_count: int) -> Zones:
    """The zones the VPC uses: the deployed VPC's subnets, else the pinned ones, else Fn::GetAZs' first az_count."""
    if vpc_id:
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]).get("Subnets", [])
        return Zones(tuple(sorted({s["AvailabilityZone"] for s in subnets})), f"the subnets of the deployed {vpc_id}")
    if pinned:
        return Zones(tuple(pinned), "availability_zones")
    names = region_zones(ec2)
    defaults = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}]).get("Subnets", [])
    with_default = {s["AvailabilityZone"] for s in defaults}
    if with_default:
        names = [n for n in names if n in with_default]
    rule = "alphabetical, zones with a default subnet" if with_default else "alphabetical"
    return Zones(tuple(names[:az_count]), f"the first {az_count} of Fn::GetAZs, predicted ({rule})")


def check_interface_endpoints(
    ec2: Ec2Reader, region: str, zones: Zones, *, services: Sequence[str] = DEFAULT_INTERFACE_ENDPOINTS
) -> list[Finding]:
    """Each interface endpoint service is offered in each zone of the VPC (DescribeVpcEndpointServices)."""
    offered: dict[str, set[str]] = {}
    for name in services:
        service = interface_endpoint_service(region, name)
        try:
            details = ec2.describe_vpc_endpoint_services(ServiceNames=[service]).get("ServiceDetails", [])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "InvalidServiceName":
                raise
            details = []  # not offered in the region at all
        offered[service] = {
            z for d in details if d.get("ServiceName") == service for z in d.get("AvailabilityZones", [])
        }
    everywhere = sorted(set.intersection(*offered.values())) if offered else []
    count = len(zones.names)
    pin = (
        f"pin {count} zones where every endpoint service is offered, from {', '.join(everywhere)}: "
        f"-c availability_zones={','.join(everywhere[:count])}"
        if len(everywhere) >= count
        else f"only {len(everywhere)} zones of {region} offer every endpoint service "
        f"({', '.join(everywhere) or 'none'}): lower az_count or choose another region"
    )
    findings: list[Finding] = []
    for service, where in offered.items():
        missing = [z for z in zones.names if z not in where]
        if not where:
            findings.append(Finding("zones", False, f"{service} is not offered in {region}", "choose another region"))
        elif missing:
            message = (
                f"{service} is not offered in {', '.join(missing)} ({zones.source}: {', '.join(zones.names)}); "
                f"it is offered in {', '.join(sorted(where))}"
            )
            findings.append(Finding("zones", False, message, pin))
    if findings:
        return findings
    message = f"all {len(offered)} interface endpoint services are offered in {', '.join(zones.names)} ({zones.source})"
    return [Finding("zones", True, message)]


def check_zones(
    ec2: Ec2Reader, region: str, *, vpc_id: str | None, pinned: Sequence[str], az_count: int
) -> list[Finding]:
    """The VPC's zones exist and offer every interface endpoint service."""
    zones = vpc_zones(ec2, vpc_id=vpc_id, pinned=pinned, az_count=az_count)
    if not vpc_id and pinned:
        available = region_zones(ec2)
        unknown = [z for z in pinned if z not in available]
        if unknown:
            message = f"availability_zones names {', '.join(unknown)}: not an available zone of {region}"
            return [Finding("zones", False, message, f"choose from {', '.join(available)}")]
    elif not vpc_id and len(zones.names) < az_count:
        message = f"{zones.source} gives {len(zones.names)} zones in {region}, az_count is {az_count}"
        return [Finding("zones", False, message, f"set -c az_count={len(zones.names)} or pin availability_zones")]
    return check_interface_endpoints(ec2, region, zones)


def check_weights(s3: S3Client, bucket: str, deployment: DeploymentConfig) -> list[Finding]:
    """The prefix holds config.json and safetensors; the record beside it names the configured Hub commit."""
    prefix = str(deployment.weights_prefix)
    stage = f"stage them: docs/staging-weights.md (HF_MODEL_ID={deployment.hf_model_id}, WEIGHTS_PREFIX={prefix})"
    names: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        names += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
    where = f"s3://{bucket}/{prefix}"
    if "config.json" not in names or not any(n.endswith(".safetensors") for n in names):
        return [Finding("weights", False, f"{where} has no config.json and safetensors shards", stage)]
    found = [Finding("weights", True, f"{where}: {len(names)} files")]
    try:
        body = s3.get_object(Bucket=bucket, Key=record_key(prefix))["Body"].read()
        record = StagingRecord.parse(body)
    except (ClientError, ValueError) as err:
        return [*found, Finding("commit", False, f"no staging record for {where} ({err})", stage)]
    problems = record.mismatches(str(deployment.hf_model_id), deployment.hf_revision)
    if problems:
        return [*found, Finding("commit", False, f"{where}: {'; '.join(problems)}", f"re-{stage}")]
    pinned = "" if deployment.hf_revision else " (hf_revision unset: any commit accepted)"
    return [*found, Finding("commit", True, f"{where} holds {record.hf_model_id}@{record.revision}{pinned}")]


def run_checks(
    deployments: Sequence[DeploymentConfig],
    region: str,
    *,
    quotas: ServiceQuotasClient,
    s3: S3Client,
    cloudformation: CloudFormationReader,
    ec2: Ec2Reader | None = None,  # None: the zone check is left out (the command always passes one)
    pinned_zones: Sequence[str] = (),
    az_count: int = DEFAULT_AZ_COUNT,
    bucket: str | None = None,
) -> list[Finding]:
    findings = check_images(deployments, region)
    findings += check_quotas(quotas, instances_needed(deployments), region)
    outputs = foundation_outputs(cloudformation) if bucket is None or ec2 is not None else {}
    if ec2 is not None:
        findings += check_zones(ec2, region, vpc_id=outputs.get(VPC_OUTPUT), pinned=pinned_zones, az_count=az_count)
    bucket = bucket or outputs.get(BUCKET_OUTPUT)
    if bucket is None:
        deploy = f"deploy it first: npx cdk deploy {FOUNDATION_STACK}"
        return [*findings, Finding("weights", False, f"{FOUNDATION_STACK} not found in {region}", deploy)]
    for d in _distinct_weights(deployments):
        findings += check_weights(s3, bucket, d)
    return findings


def _distinct_weights(deployments: Sequence[DeploymentConfig]) -> list[DeploymentConfig]:
    """One per (prefix, Hub id, commit): scenarios that share staged weights are checked once."""
    seen: dict[tuple[str, str, str | None], DeploymentConfig] = {}
    for d in deployments:
        seen.setdefault((str(d.weights_prefix), str(d.hf_model_id), d.hf_revision), d)
    return list(seen.values())


def offline_plan(
    deployments: Sequence[DeploymentConfig],
    region: str | None,
    *,
    pinned_zones: Sequence[str] = (),
    az_count: int = DEFAULT_AZ_COUNT,
) -> str:
    """What the preflight would check, from the settings alone (no credentials, no network)."""
    lines = [f"No AWS credentials: nothing was asked. With credentials for the target account, in {region or '?'}:"]
    for instance_type, count in instances_needed(deployments).items():
        lines.append(f"- Service Quotas: '{quota_name(instance_type)}' must be at least {count}")
    zones = ", ".join(pinned_zones) if pinned_zones else f"the first {az_count} zones of Fn::GetAZs"
    lines.append(
        f"- EC2: each interface endpoint service ({', '.join(DEFAULT_INTERFACE_ENDPOINTS)}) is offered in each zone "
        f"of the VPC ({zones}); synth cannot know this offline"
    )
    for d in _distinct_weights(deployments):
        lines.append(
            f"- S3: s3://<{BUCKET_OUTPUT} of {FOUNDATION_STACK}>/{d.weights_prefix} holds config.json and "
            f"safetensors, and {record_key(str(d.weights_prefix))} names {d.hf_model_id}@{d.hf_revision or 'any'}"
        )
    lines.append(
        "- the image of each deployment's engine (tgi_version or vllm_version) exists in the region (checked offline "
        "below)"
    )
    if region is not None:
        lines += [f.render() for f in check_images(deployments, region)]
    return "\n".join(lines)


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError([Issue("-c", item, "must be KEY=VALUE, as for cdk")])
    return key, value


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m settings.preflight", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="as for cdk")
    parser.add_argument("--region", help="default: the settings' region, else the AWS configuration's")
    parser.add_argument("--bucket", help=f"the weights bucket (default: {FOUNDATION_STACK}'s {BUCKET_OUTPUT})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, session: Any = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        context = dict(_pair(item) for item in args.context)
        settings = load_settings(context)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    deployments = list(settings.deployments.values())
    pinned, az_count = settings.options.availability_zones, settings.options.az_count
    session = session or boto3.Session()
    region = args.region or next((d.region for d in deployments if d.region), None) or session.region_name
    if session.get_credentials() is None or region is None:
        print(offline_plan(deployments, region, pinned_zones=pinned, az_count=az_count))
        return 0
    try:
        findings = run_checks(
            deployments,
            region,
            quotas=session.client("service-quotas", region_name=region),
            s3=session.client("s3", region_name=region),
            cloudformation=cast(CloudFormationReader, session.client("cloudformation", region_name=region)),
            ec2=cast(Ec2Reader, session.client("ec2", region_name=region)),
            pinned_zones=pinned,
            az_count=az_count,
            bucket=args.bucket,
        )
    except (BotoCoreError, ClientError) as err:
        print(f"preflight could not read what it needs: {err}", file=sys.stderr)
        return 1
    print("\n".join(f.render() for f in findings))
    return 0 if all(f.ok for f in findings) else 1


if __name__ == "__main__":
    sys.exit(main())
