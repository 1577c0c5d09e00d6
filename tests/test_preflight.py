"""The preflight against botocore's Stubber: every request it makes and every response it reads is checked
against the real service models (Service Quotas, S3, CloudFormation, EC2) by botocore itself; and against moto's
EC2 (default VPC and subnets, DescribeAvailabilityZones, DescribeVpcEndpointServices) for the zone check. moto
offers every endpoint service in every zone, so a service missing from a zone is a Stubber response in the shape
the EC2 API reference documents (ServiceDetail: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ServiceDetail.html).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from catalog.deployment import DeploymentConfig
from catalog.network_options import DEFAULT_INTERFACE_ENDPOINTS, interface_endpoint_service
from settings import load_settings
from settings.preflight import (
    BUCKET_OUTPUT,
    FOUNDATION_STACK,
    Finding,
    Zones,
    check_interface_endpoints,
    check_zones,
    instances_needed,
    main,
    quota_name,
    run_checks,
    vpc_zones,
)
from settings.staging_record import record_key
from tests.conftest import AppAssembly
from tests.iam.intrinsics import Resolver

REGION = "us-east-1"
BUCKET = "llama-weights-bucket"
LATENCY = load_settings({"scenarios": "latency"}).deployments["latency"]  # 7B fp16, ml.g5.12xlarge, max 4


@dataclass
class Aws:
    quotas: Any
    s3: Any
    cloudformation: Any
    stubs: dict[str, Stubber]

    def quota(self, instance_type: str, value: float, code: str = "L-12345678") -> None:
        quota = {"QuotaName": quota_name(instance_type), "QuotaCode": code, "Value": value, "ServiceCode": "sagemaker"}
        self.stubs["quotas"].add_response("list_service_quotas", {"Quotas": [quota]}, {"ServiceCode": "sagemaker"})
        self.stubs["quotas"].add_response(
            "list_aws_default_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"}
        )

    def foundation(self) -> None:
        stack = {
            "StackName": FOUNDATION_STACK,
            "CreationTime": datetime(2026, 12, 1, tzinfo=UTC),
            "StackStatus": "CREATE_COMPLETE",
            "Outputs": [{"OutputKey": BUCKET_OUTPUT, "OutputValue": BUCKET}],
        }
        self.stubs["cfn"].add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": FOUNDATION_STACK})

    def weights(self, d: DeploymentConfig, files: list[str], record: dict[str, str] | None) -> None:
        prefix = str(d.weights_prefix)
        contents = [{"Key": prefix + f, "Size": 1} for f in files]
        listed = {"Contents": contents, "KeyCount": len(contents), "IsTruncated": False}
        self.stubs["s3"].add_response("list_objects_v2", listed, {"Bucket": BUCKET, "Prefix": prefix})
        if not files:
            return
        key = {"Bucket": BUCKET, "Key": record_key(prefix)}
        if record is None:
            self.stubs["s3"].add_client_error("get_object", "NoSuchKey", http_status_code=404, expected_params=key)
            return
        body = json.dumps(record).encode()
        self.stubs["s3"].add_response("get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))}, key)

    def staged(self, files: list[str], record: dict[str, str] | None, quota: float = 8.0) -> list[Finding]:
        """The latency deployment against a foundation stack whose bucket holds ``files`` and ``record``."""
        self.quota("ml.g5.12xlarge", quota, code="L-ABCDEF12")
        self.foundation()
        self.weights(LATENCY, files, record)
        return self.run([LATENCY])

    def run(self, deployments: list[DeploymentConfig]) -> list[Finding]:
        return run_checks(deployments, REGION, quotas=self.quotas, s3=self.s3, cloudformation=self.cloudformation)


@pytest.fixture
def aws() -> Iterator[Aws]:
    session = boto3.Session(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    quotas, s3, cfn = session.client("service-quotas"), session.client("s3"), session.client("cloudformation")
    stubs = {"quotas": Stubber(quotas), "s3": Stubber(s3), "cfn": Stubber(cfn)}
    with ExitStack() as stack:
        for stub in stubs.values():
            stack.enter_context(stub)
        yield Aws(quotas, s3, cfn, stubs)
        for stub in stubs.values():
            stub.assert_no_pending_responses()  # every stubbed call was made


SHARDS = ["config.json", "tokenizer.model", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def _record(d: DeploymentConfig) -> dict[str, str]:
    return {"hf_model_id": str(d.hf_model_id), "revision": str(d.hf_revision), "build_id": "b:1"}


def test_peak_counts_every_endpoint_scaled_out_plus_one_blue_green_fleet() -> None:
    deployments = load_settings({}).deployments.values()  # 7B: cost g5.2xlarge, latency and throughput g5.12xlarge
    assert instances_needed(deployments) == {"ml.g5.12xlarge": 4 + 4 + 4, "ml.g5.2xlarge": 4 + 4}


def test_sufficient_quota_and_the_configured_commit_staged_pass(aws: Aws) -> None:
    findings = aws.staged(SHARDS, _record(LATENCY))
    assert all(f.ok for f in findings), [f.render() for f in findings]
    assert {f.check for f in findings} == {"image", "quota", "weights", "commit"}


def test_insufficient_quota_fails_and_says_what_to_request(aws: Aws) -> None:
    (quota,) = [f for f in aws.staged(SHARDS, _record(LATENCY), quota=0.0) if f.check == "quota"]
    assert not quota.ok
    assert "ml.g5.12xlarge for endpoint usage = 0, needed 8" in quota.message
    assert "--service-code sagemaker --quota-code L-ABCDEF12 --desired-value 8" in quota.action


def test_missing_weights_fail_with_the_staging_inputs(aws: Aws) -> None:
    (weights,) = [f for f in aws.staged([], None) if f.check == "weights"]
    assert not weights.ok
    assert f"HF_MODEL_ID={LATENCY.hf_model_id}, WEIGHTS_PREFIX={LATENCY.weights_prefix}" in weights.action


def test_weights_staged_from_another_commit_are_refused(aws: Aws) -> None:
    (commit,) = [f for f in aws.staged(SHARDS, {**_record(LATENCY), "revision": "f" * 40}) if f.check == "commit"]
    assert not commit.ok
    assert f"staged commit {'f' * 40}, configured hf_revision {LATENCY.hf_revision}" in commit.message


def test_weights_without_a_staging_record_are_refused(aws: Aws) -> None:
    (commit,) = [f for f in aws.staged(SHARDS, None) if f.check == "commit"]
    assert not commit.ok and "no staging record" in commit.message


def test_without_the_foundation_stack_it_says_to_deploy_it(aws: Aws) -> None:
    aws.quota("ml.g5.12xlarge", 8.0)
    aws.stubs["cfn"].add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {FOUNDATION_STACK} does not exist"
    )
    (weights,) = [f for f in aws.run([LATENCY]) if f.check == "weights"]
    assert not weights.ok and f"npx cdk deploy {FOUNDATION_STACK}" in weights.action


class _NoCredentials:
    region_name = REGION

    def get_credentials(self) -> None:
        return None

    def client(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("offline: no AWS call may be made")


def test_offline_it_explains_what_it_would_check_and_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "scenarios=latency"], session=_NoCredentials()) == 0
    out = capsys.readouterr().out
    assert "No AWS credentials" in out
    assert "'ml.g5.12xlarge for endpoint usage' must be at least 8" in out
    assert record_key(str(LATENCY.weights_prefix)) in out


def test_a_bad_setting_stops_it_like_synth(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "latency.instance_type=ml.p4d.12xlarge"], session=_NoCredentials()) == 2
    assert "ml.p4d.12xlarge" in capsys.readouterr().err
    assert main(["-c", "model"], session=_NoCredentials()) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


# --- the VPC's zones against the interface endpoint services (issue 16, item 10) -----------------------------

SERVICES = [interface_endpoint_service(REGION, name) for name in DEFAULT_INTERFACE_ENDPOINTS]
ZONES = [f"{REGION}{z}" for z in "abcdef"]


def test_the_checked_services_are_the_ones_the_foundation_creates(app_assembly: AppAssembly) -> None:
    template = app_assembly.template_json(FOUNDATION_STACK)
    endpoints = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::EC2::VPCEndpoint"]
    names = [Resolver({FOUNDATION_STACK: template}, FOUNDATION_STACK).resolve(e["ServiceName"]) for e in endpoints]
    interface = [n for e, n in zip(endpoints, names, strict=True) if e["VpcEndpointType"] == "Interface"]
    assert sorted(interface) == sorted(SERVICES)


def test_moto_every_service_in_the_predicted_zones_passes() -> None:
    """moto's EC2 (default VPC with a default subnet per zone, every endpoint service in every zone)."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        (finding,) = check_zones(ec2, REGION, vpc_id=None, pinned=(), az_count=3)
    assert finding.ok, finding.render()
    assert "us-east-1a, us-east-1b, us-east-1c (the first 3 of Fn::GetAZs, predicted" in finding.message


def test_moto_a_deployed_vpc_is_checked_in_its_own_subnets_zones() -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        for i, zone in enumerate(("us-east-1d", "us-east-1f")):
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=zone)
        assert vpc_zones(ec2, vpc_id=vpc, pinned=(), az_count=3).names == ("us-east-1d", "us-east-1f")
        (finding,) = check_zones(ec2, REGION, vpc_id=vpc, pinned=(), az_count=3)
    assert finding.ok and f"the subnets of the deployed {vpc}" in finding.message


def test_moto_more_zones_than_the_region_has_fail_before_any_endpoint_check() -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="eu-west-3")  # three zones
        (finding,) = check_zones(ec2, "eu-west-3", vpc_id=None, pinned=(), az_count=4)
    assert not finding.ok and "gives 3 zones in eu-west-3, az_count is 4" in finding.message


def _service_detail(service: str, zones: list[str]) -> dict[str, Any]:
    """A ServiceDetails entry as the EC2 API reference documents it (ServiceDetail); botocore checks the shape."""
    return {
        "ServiceName": service,
        "ServiceId": "vpce-svc-0123456789abcdef0",
        "ServiceType": [{"ServiceType": "Interface"}],
        "AvailabilityZones": zones,
        "Owner": "amazon",
        "BaseEndpointDnsNames": [f"{service.split('.', 3)[3]}.{REGION}.vpce.amazonaws.com"],
        "PrivateDnsName": f"{service.split('.', 3)[3]}.{REGION}.amazonaws.com",
        "VpcEndpointPolicySupported": True,
        "AcceptanceRequired": False,
        "ManagesVpcEndpoints": False,
        "Tags": [],
    }


@pytest.fixture
def ec2() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.Session(region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t").client("ec2")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _offer(stub: Stubber, missing: Mapping[str, list[str]]) -> None:
    """Every service in every zone, except where ``missing`` says (service -> zones it lacks)."""
    for service in SERVICES:
        where = [z for z in ZONES if z not in missing.get(service, [])]
        stub.add_response(
            "describe_vpc_endpoint_services",
            {"ServiceDetails": [_service_detail(service, where)], "ServiceNames": [service]},
            {"ServiceNames": [service]},
        )


def _zones(stub: Stubber) -> None:
    zones = [
        {
            "ZoneName": z,
            "ZoneId": f"use1-az{i}",
            "State": "available",
            "RegionName": REGION,
            "ZoneType": "availability-zone",
        }
        for i, z in enumerate(ZONES, start=1)
    ]
    filters = [{"Name": "zone-type", "Values": ["availability-zone"]}, {"Name": "state", "Values": ["available"]}]
    stub.add_response("describe_availability_zones", {"AvailabilityZones": zones}, {"Filters": filters})


def test_a_service_missing_in_a_zone_of_the_vpc_is_named_with_the_zone_and_what_is_allowed(
    ec2: tuple[Any, Stubber],
) -> None:
    client, stub = ec2
    runtime = interface_endpoint_service(REGION, "sagemaker.runtime")
    _zones(stub)
    _offer(stub, {runtime: ["us-east-1e"]})
    (finding,) = check_zones(client, REGION, vpc_id=None, pinned=("us-east-1a", "us-east-1b", "us-east-1e"), az_count=3)
    assert not finding.ok
    assert f"{runtime} is not offered in us-east-1e (availability_zones: us-east-1a, us-east-1b, us-east-1e)" in (
        finding.message
    )
    assert "it is offered in us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f" in finding.message
    assert "-c availability_zones=us-east-1a,us-east-1b,us-east-1c" in finding.action


def test_a_service_the_region_does_not_offer_fails(ec2: tuple[Any, Stubber]) -> None:
    client, stub = ec2
    kms = interface_endpoint_service(REGION, "kms")
    for service in SERVICES:
        if service == kms:
            message = f"The Vpc Endpoint Service '{kms}' does not exist"
            stub.add_client_error("describe_vpc_endpoint_services", "InvalidServiceName", message)
        else:
            stub.add_response(
                "describe_vpc_endpoint_services",
                {"ServiceDetails": [_service_detail(service, ZONES)]},
                {"ServiceNames": [service]},
            )
    findings = check_interface_endpoints(client, REGION, Zones(tuple(ZONES[:3]), "test"))
    assert [(f.ok, f.message) for f in findings] == [(False, f"{kms} is not offered in {REGION}")]


def test_run_checks_reads_the_deployed_vpc_from_the_foundation_outputs(aws: Aws, ec2: tuple[Any, Stubber]) -> None:
    client, stub = ec2
    aws.quota("ml.g5.12xlarge", 8.0)
    stack = {
        "StackName": FOUNDATION_STACK,
        "CreationTime": datetime(2026, 12, 1, tzinfo=UTC),
        "StackStatus": "CREATE_COMPLETE",
        "Outputs": [
            {"OutputKey": BUCKET_OUTPUT, "OutputValue": BUCKET},
            {"OutputKey": "VpcId", "OutputValue": "vpc-1"},
        ],
    }
    aws.stubs["cfn"].add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": FOUNDATION_STACK})
    subnets = [{"SubnetId": f"subnet-{z}", "AvailabilityZone": z, "VpcId": "vpc-1"} for z in ZONES[3:]]
    stub.add_response("describe_subnets", {"Subnets": subnets}, {"Filters": [{"Name": "vpc-id", "Values": ["vpc-1"]}]})
    _offer(stub, {})
    aws.weights(LATENCY, SHARDS, _record(LATENCY))
    findings = run_checks(
        [LATENCY], REGION, quotas=aws.quotas, s3=aws.s3, cloudformation=aws.cloudformation, ec2=client
    )
    (zones,) = [f for f in findings if f.check == "zones"]
    assert zones.ok and "us-east-1d, us-east-1e, us-east-1f (the subnets of the deployed vpc-1)" in zones.message


def test_offline_it_says_the_zone_check_needs_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["-c", "scenarios=latency", "-c", "availability_zones=us-east-1b,us-east-1c"], session=_NoCredentials())
        == 0
    )
    out = capsys.readouterr().out
    assert "is offered in each zone of the VPC (us-east-1b, us-east-1c)" in out and "sagemaker.runtime" in out
