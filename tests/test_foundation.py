"""The shared foundation: key, isolated network, weights bucket and the weights staging build.

Template assertions run on the foundation stack of the whole app, synthesized once per session (conftest).
A second, small foundation with an explicit environment and non-default props checks the variants.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template

from catalog.errors import ConfigError
from catalog.network_options import DEFAULT_AZ_COUNT, DEFAULT_INTERFACE_ENDPOINTS
from catalog.scenarios import SCENARIOS
from llama_constructs.common.encryption import EncryptionProps
from llama_constructs.foundation.network import NetworkProps
from llama_constructs.foundation.weights_bucket import WeightsBucket, WeightsBucketProps, check_weights_prefix
from llama_constructs.foundation.weights_staging import DEFAULT_TOKEN_SECRET_NAME, WeightsStagingProps, buildspec
from settings import DeploymentConfig
from stacks.foundation_stack import FoundationProps, LlamaFoundationStack
from tests.iam.account import Account
from tests.iam.calls import Call, _s3_object
from tests.iam.components import weights_bucket
from tests.iam.evaluator import Principal

FOUNDATION = "LlamaFoundationStack"
HTTPS = 443


@pytest.fixture(scope="module")
def template(templates: Mapping[str, Template]) -> Template:
    names = [n for n in templates if n == FOUNDATION or n.endswith(f"-{FOUNDATION}")]
    assert names, f"no foundation stack among {sorted(templates)}"
    return templates[names[0]]


@pytest.fixture(scope="module")
def resources(template: Template) -> dict[str, dict[str, Any]]:
    return template.to_json()["Resources"]  # type: ignore[no-any-return]


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _one(resources: dict[str, dict[str, Any]], kind: str, id_contains: str = "") -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in _of_type(resources, kind).items() if id_contains in k]
    assert len(found) == 1, f"expected one {kind} with {id_contains!r} in its id, got {[k for k, _ in found]}"
    return found[0]


def _key_id(resources: dict[str, dict[str, Any]]) -> str:
    return _one(resources, "AWS::KMS::Key")[0]


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return policy["PolicyDocument"]["Statement"]  # type: ignore[no-any-return]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- key ---------------------------------------------------------------------------------------------


def test_key_rotates_and_is_retained(template: Template, resources: dict[str, dict[str, Any]]) -> None:
    template.has_resource(
        "AWS::KMS::Key",
        {"Properties": {"EnableKeyRotation": True}, "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"},
    )
    alias = _one(resources, "AWS::KMS::Alias")[1]
    assert alias["Properties"]["TargetKeyId"] == {"Fn::GetAtt": [_key_id(resources), "Arn"]}
    assert alias["Properties"]["AliasName"].startswith("alias/")


def test_key_policy_lets_logs_use_it_only_for_this_accounts_log_groups(resources: dict[str, dict[str, Any]]) -> None:
    key = _one(resources, "AWS::KMS::Key")[1]
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    logs = [s for s in statements if "logs." in json.dumps(s.get("Principal", {}))]
    assert len(logs) == 1
    principal = json.dumps(logs[0]["Principal"])
    assert "AWS::Region" in principal and "AWS::URLSuffix" in principal
    condition = json.dumps(logs[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert ":log-group:*" in condition and "AWS::AccountId" in condition and "AWS::Region" in condition
    alarms = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(alarms) == 1
    assert sorted(alarms[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert alarms[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ":alarm:*" in json.dumps(alarms[0]["Condition"]["ArnLike"]["aws:SourceArn"])  # this account's alarms
    # No service gets the key unconditionally.
    for statement in statements:
        if "Service" in statement.get("Principal", {}):
            assert statement.get("Condition"), statement


# --- network -----------------------------------------------------------------------------------------


def test_no_internet_path(template: Template) -> None:
    for kind in (
        "AWS::EC2::NatGateway",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::EIP",
        "AWS::EC2::EgressOnlyInternetGateway",
        "AWS::EC2::Route",
    ):
        template.resource_count_is(kind, 0)


def test_only_isolated_subnets_across_the_default_zone_count(resources: dict[str, dict[str, Any]]) -> None:
    subnets = _of_type(resources, "AWS::EC2::Subnet")
    assert len(subnets) == DEFAULT_AZ_COUNT == 3
    zones = []
    for subnet in subnets.values():
        props = subnet["Properties"]
        assert props["MapPublicIpOnLaunch"] is False
        tags = {t["Key"]: t["Value"] for t in props["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"
        zones.append(props["AvailabilityZone"])
    assert zones == [{"Fn::Select": [i, {"Fn::GetAZs": ""}]} for i in range(DEFAULT_AZ_COUNT)]


def test_interface_endpoints_are_the_configured_list_with_private_dns(resources: dict[str, dict[str, Any]]) -> None:
    endpoints = _of_type(resources, "AWS::EC2::VPCEndpoint").values()
    interface = [e["Properties"] for e in endpoints if e["Properties"].get("VpcEndpointType") == "Interface"]
    services = sorted(json.dumps(p["ServiceName"]).split('".')[-1].rstrip('"]}') for p in interface)
    assert services == sorted(DEFAULT_INTERFACE_ENDPOINTS)
    sg_id = _one(resources, "AWS::EC2::SecurityGroup", "InterfaceEndpointSecurityGroup")[0]
    for props in interface:
        assert props["PrivateDnsEnabled"] is True
        assert props["SecurityGroupIds"] == [{"Fn::GetAtt": [sg_id, "GroupId"]}]
    gateway = [e["Properties"] for e in endpoints if e["Properties"].get("VpcEndpointType") == "Gateway"]
    assert len(gateway) == 1 and ".s3" in json.dumps(gateway[0]["ServiceName"])
    assert len(gateway[0]["RouteTableIds"]) == DEFAULT_AZ_COUNT  # one route table per isolated subnet


def test_workload_groups_accept_no_ingress_and_send_only_https(resources: dict[str, dict[str, Any]]) -> None:
    standalone_ingress = _of_type(resources, "AWS::EC2::SecurityGroupIngress").values()
    for name in ("EndpointSecurityGroup", "LambdaSecurityGroup"):
        logical_id, group = _one(resources, "AWS::EC2::SecurityGroup", f"Network{name}")
        assert "SecurityGroupIngress" not in group["Properties"]
        assert not [
            r for r in standalone_ingress if r["Properties"]["GroupId"] == {"Fn::GetAtt": [logical_id, "GroupId"]}
        ]
        egress = group["Properties"]["SecurityGroupEgress"]
        assert egress and all((r["IpProtocol"], r["FromPort"], r["ToPort"]) == ("tcp", HTTPS, HTTPS) for r in egress)


def test_interface_endpoint_group_accepts_https_from_the_vpc_only(resources: dict[str, dict[str, Any]]) -> None:
    group = _one(resources, "AWS::EC2::SecurityGroup", "InterfaceEndpointSecurityGroup")[1]["Properties"]
    vpc_cidr = _one(resources, "AWS::EC2::VPC")[1]["Properties"]["CidrBlock"]
    assert group["SecurityGroupIngress"] == [
        {
            "CidrIp": vpc_cidr,
            "Description": "HTTPS from inside the VPC",
            "FromPort": HTTPS,
            "IpProtocol": "tcp",
            "ToPort": HTTPS,
        }
    ]
    # CDK's placeholder for "no egress" (an impossible ICMP rule), not an open rule.
    assert [r["CidrIp"] for r in group["SecurityGroupEgress"]] == ["255.255.255.255/32"]


def test_nothing_is_open_to_the_internet(resources: dict[str, dict[str, Any]]) -> None:
    for group in _of_type(resources, "AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") not in ("0.0.0.0/0",) and rule.get("CidrIpv6") != "::/0"


def test_flow_logs_capture_all_traffic_into_an_encrypted_retained_group(
    template: Template, resources: dict[str, dict[str, Any]]
) -> None:
    flow_log = _one(resources, "AWS::EC2::FlowLog")[1]["Properties"]
    assert flow_log["TrafficType"] == "ALL"
    assert flow_log["LogDestinationType"] == "cloud-watch-logs"
    group_id = flow_log["LogGroupName"]["Ref"]
    group = resources[group_id]
    assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [_key_id(resources), "Arn"]}
    assert group["Properties"]["RetentionInDays"] == 365
    assert group["DeletionPolicy"] == "Retain"
    role_id = flow_log["DeliverLogsPermissionArn"]["Fn::GetAtt"][0]
    trust = resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


# --- weights bucket ----------------------------------------------------------------------------------


def _bucket(resources: dict[str, dict[str, Any]], part: str) -> tuple[str, dict[str, Any]]:
    return _one(resources, "AWS::S3::Bucket", part)


def _bucket_policy(resources: dict[str, dict[str, Any]], bucket_id: str) -> list[dict[str, Any]]:
    policies = [
        p
        for p in _of_type(resources, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1
    return _statements(policies[0]["Properties"])


def _denies_plain_http(statements: list[dict[str, Any]]) -> bool:
    return any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )


def test_weights_bucket_is_encrypted_with_the_key_and_locked_down(resources: dict[str, dict[str, Any]]) -> None:
    _, bucket = _bucket(resources, "WeightsBucket")
    props = bucket["Properties"]
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [_key_id(resources), "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    log_bucket_id = _bucket(resources, "AccessLogs")[0]
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_bucket_id}
    lifecycle = props["LifecycleConfiguration"]["Rules"]
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 30 for r in lifecycle)
    # A multipart upload of a multi-GB weight file that dies leaves billed parts: they go after a week.
    assert any(r.get("AbortIncompleteMultipartUpload") == {"DaysAfterInitiation": 7} for r in lifecycle)
    assert bucket["DeletionPolicy"] == "Retain"


def test_weights_access_logs_are_kept_a_year(resources: dict[str, dict[str, Any]]) -> None:
    _, logs_bucket = _bucket(resources, "AccessLogs")
    rules = logs_bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [r.get("ExpirationInDays") for r in rules if r.get("ExpirationInDays")] == [365]


def test_weights_bucket_props_are_keyword_only_frozen_and_validated() -> None:
    key = kms.Key(cdk.Stack(cdk.App(), "Props"), "Key")
    assert WeightsBucketProps(key=key, noncurrent_version_days=1, access_log_days=1).access_log_days == 1
    for days in (0, -1):
        with pytest.raises(ValueError, match="noncurrent_version_days must be at least 1"):
            WeightsBucketProps(key=key, noncurrent_version_days=days)
        with pytest.raises(ValueError, match="access_log_days must be at least 1"):
            WeightsBucketProps(key=key, access_log_days=days)
    with pytest.raises(TypeError):
        WeightsBucketProps(key)  # type: ignore[call-arg]
    props = WeightsBucketProps(key=key)
    with pytest.raises(TypeError):
        WeightsBucket(cdk.Stack(cdk.App(), "Positional"), "Weights", props)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        props.access_log_days = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("request_context", "allowed"),
    [
        ({}, True),  # aws s3 sync: no encryption headers, the bucket's default key applies
        ({"s3:x-amz-server-side-encryption": "aws:kms"}, False),  # no key id: S3 would use aws/s3
        ({"s3:x-amz-server-side-encryption": "AES256"}, False),
        (
            {"s3:x-amz-server-side-encryption": "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id": "OTHER"},
            False,
        ),
        ({"aws:SecureTransport": False}, False),
        ({"s3:TlsVersion": 1.0}, False),
    ],
)
def test_weights_bucket_policy_evaluated_for_the_staging_upload(
    account: Account, request_context: dict[str, Any], allowed: bool
) -> None:
    """The synthesized bucket, role and key policies evaluated together (tests/iam), not inspected."""
    role = account.role("LlamaFoundationStack", "StagingRole")
    bucket = weights_bucket(account)
    context = {
        k: ("arn:aws:kms:us-east-1:111122223333:key/other" if v == "OTHER" else v) for k, v in request_context.items()
    }
    upload = Call("upload", role, "s3:PutObject", _s3_object(bucket, "models/llama-2-7b-fp16/config.json"), context)
    assert upload.evaluate(account).allowed is allowed
    # Nothing in the bucket policy allows anyone: a principal with no IAM grant is refused the same upload.
    nobody = Principal("arn:aws:iam::111122223333:role/no-grants", "111122223333")
    assert not Call("upload", nobody, "s3:PutObject", upload.resources).evaluate(account).allowed


def test_access_log_bucket_uses_sse_s3_and_accepts_only_this_accounts_deliveries(
    resources: dict[str, dict[str, Any]],
) -> None:
    bucket_id, bucket = _bucket(resources, "AccessLogs")
    props = bucket["Properties"]
    encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert encryption == {"SSEAlgorithm": "AES256"}  # the only default encryption S3 log delivery supports
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert "LoggingConfiguration" not in props
    assert bucket["DeletionPolicy"] == "Retain"
    statements = _bucket_policy(resources, bucket_id)
    assert _denies_plain_http(statements)
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert allows and all(s["Principal"] == {"Service": "logging.s3.amazonaws.com"} for s in allows)
    assert all(s["Action"] == "s3:PutObject" and "aws:SourceAccount" in json.dumps(s["Condition"]) for s in allows)


def test_model_data_uri_and_prefix_arn_point_into_the_bucket(explicit: LlamaFoundationStack) -> None:
    uri = explicit.resolve(explicit.weights.model_data_uri("models/llama-2-7b-gptq/"))
    bucket_id = explicit.get_logical_id(explicit.weights.bucket.node.default_child)  # type: ignore[arg-type]
    assert uri == {"Fn::Join": ["", ["s3://", {"Ref": bucket_id}, "/models/llama-2-7b-gptq/"]]}
    arn = explicit.resolve(explicit.weights.arn_for_prefix("models/llama-2-7b-gptq/"))
    assert arn == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/models/llama-2-7b-gptq/*"]]}
    with pytest.raises(ConfigError, match="weights_prefix"):
        explicit.weights.model_data_uri("results/x/")


@pytest.mark.parametrize("prefix", ["models/", "models/x", "/models/x/", "results/x/", "models/../x/", "models//x/"])
def test_weights_prefix_outside_models_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError):
        check_weights_prefix(prefix)


def test_every_scenario_default_prefix_is_stageable() -> None:
    """The prefixes DeploymentConfig derives must be ones the staging build is allowed to write."""
    for scenario, by_model in SCENARIOS.items():
        for model in by_model:
            prefix = str(DeploymentConfig(scenario=scenario, model=model).weights_prefix)
            assert check_weights_prefix(prefix) == prefix


# --- weights staging ---------------------------------------------------------------------------------


def _project(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return _one(resources, "AWS::CodeBuild::Project")[1]["Properties"]  # type: ignore[no-any-return]


def test_staging_project_is_encrypted_logged_and_outside_the_vpc(resources: dict[str, dict[str, Any]]) -> None:
    project = _project(resources)
    assert "VpcConfig" not in project  # the isolated VPC has no route to the Hub
    assert project["EncryptionKey"] == {"Fn::GetAtt": [_key_id(resources), "Arn"]}
    assert project["Environment"]["PrivilegedMode"] is False
    group_id = project["LogsConfig"]["CloudWatchLogs"]["GroupName"]["Ref"]
    assert resources[group_id]["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [_key_id(resources), "Arn"]}
    assert resources[group_id]["Properties"]["RetentionInDays"] == 365


def test_buildspec_reads_the_token_by_secret_name_and_syncs_uncompressed(resources: dict[str, dict[str, Any]]) -> None:
    spec = json.loads(_project(resources)["Source"]["BuildSpec"])
    assert spec["env"]["secrets-manager"] == {"HF_TOKEN": DEFAULT_TOKEN_SECRET_NAME}
    assert "HF_TOKEN" not in spec["env"]["variables"]
    commands = " ".join(c for phase in spec["phases"].values() for c in phase.get("commands", []))
    assert 'hf download "$HF_MODEL_ID"' in commands
    assert 'aws s3 sync "/codebuild/output/weights" "s3://$WEIGHTS_BUCKET/$WEIGHTS_PREFIX"' in commands
    assert "tar " not in commands and "gzip" not in commands
    env_names = {v["Name"] for v in _project(resources)["Environment"]["EnvironmentVariables"]}
    assert env_names == {"WEIGHTS_BUCKET"}


@pytest.mark.parametrize(
    ("prefix", "ok"),
    [
        ("models/llama-2-7b-gptq/", True),
        ("models/a/b/", True),
        ("models/", False),
        ("results/x/", False),
        ("models/x", False),
        ("models/x/; rm -rf /", False),
    ],
)
def test_buildspec_refuses_prefixes_outside_models(prefix: str, ok: bool) -> None:
    check = buildspec(token_secret_name="x")["phases"]["pre_build"]["commands"][1]
    result = subprocess.run(["bash", "-c", check], env={"WEIGHTS_PREFIX": prefix}, capture_output=True, check=False)
    assert (result.returncode == 0) is ok


def _staging_policy(resources: dict[str, dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    project = _project(resources)
    role_id = project["ServiceRole"]["Fn::GetAtt"][0]
    inline = [
        p for p in _of_type(resources, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert not inline, "the staging role must carry no inline policy"
    managed = [
        p
        for p in _of_type(resources, "AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert len(managed) == 1
    return role_id, _statements(managed[0]["Properties"])


def test_staging_iam_is_scoped_to_the_secret_the_models_prefix_and_the_key(
    resources: dict[str, dict[str, Any]],
) -> None:
    role_id, statements = _staging_policy(resources)
    bucket_id = _bucket(resources, "WeightsBucket")[0]
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {"WriteOwnLogs", "ReadHubToken", "ListModelsPrefix", "WriteModelsPrefix", "UseKey"}

    secret_arn = json.dumps(by_sid["ReadHubToken"]["Resource"])
    assert re.search(r':secret:llama2/hf-token-\?\?\?\?\?\?"', secret_arn), secret_arn
    assert by_sid["ReadHubToken"]["Action"] == "secretsmanager:GetSecretValue"

    assert by_sid["WriteModelsPrefix"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/models/*"]]
    }
    assert "s3:GetObject" not in by_sid["WriteModelsPrefix"]["Action"]
    assert by_sid["ListModelsPrefix"]["Resource"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert by_sid["ListModelsPrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["models/*"]}}
    assert by_sid["UseKey"]["Resource"] == {"Fn::GetAtt": [_key_id(resources), "Arn"]}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "*" not in _as_list(statement["Resource"])
        assert not [a for a in _as_list(statement["Action"]) if "*" in a]
    trust = resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_no_token_or_secret_value_anywhere_in_the_template(template: Template) -> None:
    text = json.dumps(template.to_json())
    assert not re.search(r"hf_[A-Za-z0-9]{20,}", text)  # the shape of a Hub access token
    assert "AWS::SecretsManager::Secret" not in text  # the secret is created outside the template, by name
    assert "SecretString" not in text
    assert "{{resolve:secretsmanager" not in text
    for match in re.finditer(r'"Name": "([A-Z_]*(TOKEN|SECRET|PASSWORD)[A-Z_]*)"', text):
        pytest.fail(f"environment variable {match.group(1)} would expose a credential")


def test_outputs_name_what_operators_need(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    assert {"WeightsBucketName", "KeyArn", "StagingProjectName", "HubTokenSecretName"} <= set(outputs)


# --- props and variants -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explicit() -> LlamaFoundationStack:
    """A foundation with an explicit environment, fewer endpoints, a known S3 prefix list and SG-only access."""
    app = cdk.App()
    return LlamaFoundationStack(
        app,
        "Explicit",
        env=cdk.Environment(account="123456789012", region="eu-west-1"),
        props=FoundationProps(
            interface_endpoints=("sagemaker.runtime", "logs"),
            s3_prefix_list_id="pl-6da54004",
            token_secret_name="team/hub-token",
            log_retention=logs.RetentionDays.THREE_MONTHS,
            extra_network={"endpoint_client_security_groups": ()},
        ),
    )


@pytest.fixture(scope="module")
def explicit_resources(explicit: LlamaFoundationStack) -> dict[str, dict[str, Any]]:
    return Template.from_stack(explicit).to_json()["Resources"]  # type: ignore[no-any-return]


def test_explicit_environment_needs_no_az_lookup(explicit: LlamaFoundationStack, explicit_resources: Any) -> None:
    zones = [s["Properties"]["AvailabilityZone"] for s in _of_type(explicit_resources, "AWS::EC2::Subnet").values()]
    assert zones == [{"Fn::Select": [i, {"Fn::GetAZs": ""}]} for i in range(2)]
    assembly = cdk.Stage.of(explicit).synth()  # type: ignore[union-attr]
    manifest = json.loads((Path(assembly.directory) / "manifest.json").read_text())
    assert not manifest.get("missing"), "synth must not need a context lookup (no AWS credentials at synth)"


def test_explicit_zones_are_used_verbatim() -> None:
    stack = LlamaFoundationStack(
        cdk.App(), "Zones", props=FoundationProps(availability_zones=("eu-west-1a", "eu-west-1c"))
    )
    assert [s.availability_zone for s in stack.network.vpc.isolated_subnets] == ["eu-west-1a", "eu-west-1c"]


def test_variant_props_reach_the_template(explicit_resources: dict[str, dict[str, Any]]) -> None:
    endpoints = [e["Properties"] for e in _of_type(explicit_resources, "AWS::EC2::VPCEndpoint").values()]
    assert len([e for e in endpoints if e.get("VpcEndpointType") == "Interface"]) == 2
    endpoint_group_id, endpoint_group = _one(explicit_resources, "AWS::EC2::SecurityGroup", "NetworkEndpointSecurity")
    inline = endpoint_group["Properties"]["SecurityGroupEgress"]
    assert [r["CidrIp"] for r in inline] == ["10.42.0.0/16"]  # no 0.0.0.0/0 once the S3 prefix list is known
    standalone = [
        r["Properties"]
        for r in _of_type(explicit_resources, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [endpoint_group_id, "GroupId"]}
    ]
    assert [(r["DestinationPrefixListId"], r["FromPort"], r["ToPort"]) for r in standalone] == [
        ("pl-6da54004", HTTPS, HTTPS)
    ]
    # SG-only access: the interface endpoint group admits the two workload groups, not the VPC CIDR.
    ingress = [r["Properties"] for r in _of_type(explicit_resources, "AWS::EC2::SecurityGroupIngress").values()]
    sources = {r["SourceSecurityGroupId"]["Fn::GetAtt"][0] for r in ingress}
    assert endpoint_group_id in sources and len(sources) == 2
    assert all((r["FromPort"], r["ToPort"]) == (HTTPS, HTTPS) for r in ingress)
    interface_group = _one(explicit_resources, "AWS::EC2::SecurityGroup", "InterfaceEndpointSecurityGroup")[1]
    assert "SecurityGroupIngress" not in interface_group["Properties"]
    spec = json.loads(_project(explicit_resources)["Source"]["BuildSpec"])
    assert spec["env"]["secrets-manager"] == {"HF_TOKEN": "team/hub-token"}
    retention = [
        g["Properties"]["RetentionInDays"] for g in _of_type(explicit_resources, "AWS::Logs::LogGroup").values()
    ]
    assert retention == [90, 90]


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: NetworkProps(key=None, cidr="10.0.0.0/8"), "/16 to /24"),  # type: ignore[arg-type]
        (lambda: NetworkProps(key=None, cidr="nonsense"), "not an IPv4"),  # type: ignore[arg-type]
        (lambda: NetworkProps(key=None, cidr="10.0.0.0/24", max_azs=3, subnet_cidr_mask=25), "no room"),  # type: ignore[arg-type]
        (lambda: NetworkProps(key=None, interface_endpoints=("s3",)), "gateway"),  # type: ignore[arg-type]
        (lambda: NetworkProps(key=None, interface_endpoints=("sts", "sts")), "duplicates"),  # type: ignore[arg-type]
        (lambda: NetworkProps(key=None, s3_prefix_list_id="s3"), "prefix list"),  # type: ignore[arg-type]
        (lambda: EncryptionProps(alias="alias/aws/s3"), "reserved"),
        (lambda: EncryptionProps(alias="llama"), "alias/"),
        (lambda: EncryptionProps(pending_window_days=3), "7..30"),
        (lambda: WeightsStagingProps(key=None, bucket=None, token_secret_name="arn:aws:secretsmanager:x"), "name"),  # type: ignore[arg-type]
        (lambda: WeightsStagingProps(key=None, bucket=None, compute="huge"), "compute"),  # type: ignore[arg-type]
        (lambda: FoundationProps(max_azs=3, availability_zones=("a", "b")), "zones"),
    ],
)
def test_bad_props_are_refused_before_synth(factory: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        factory()
