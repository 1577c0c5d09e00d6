"""The scenario stacks as synthesized by app.py: every (scenario x model) pair, from one synth per model size.

What is asserted is what would break a deployment or widen access: the TGI environment, weights under network
isolation, what SageMaker refuses on NVMe instances, blue/green with rollback alarms, autoscaling, exact IAM
resources, alarm thresholds in the units CloudWatch uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

import constructs
from catalog.network_options import DEFAULT_AZ_COUNT
from llama_constructs.endpoint import container_image, inference_endpoint, tgi_endpoint, tgi_image
from llama_constructs.endpoint.autoscaling import SCALABLE_DIMENSION
from llama_constructs.endpoint.execution_role import nag_name
from llama_constructs.endpoint.inference_endpoint import (
    EXECUTION_MARGIN_S,
    TERMINATION_WAIT_S,
    InferenceEndpointProps,
    execution_timeout_s,
)
from llama_constructs.endpoint.monitoring import alarm_names
from settings import STACK_NAMES, DeploymentConfig
from settings.sagemaker_requests import VARIANT_NAME
from stacks.endpoint_stack import LlamaEndpointStack, SharedResources
from tests.fixtures_endpoint import MODELS, SCENARIOS, deployment, only, resources, synth_model

ROOT = Path(__file__).resolve().parents[1]
COMBOS = [(s, m) for m in MODELS for s in SCENARIOS]
IDS = [f"{s}-{m}" for s, m in COMBOS]


def template_of(scenario: str, model: str) -> dict[str, Any]:
    return synth_model(model).templates[STACK_NAMES[scenario]]


def model_props(t: Mapping[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = only(t, "AWS::SageMaker::Model")["Properties"]
    return props


def variant(t: Mapping[str, Any]) -> dict[str, Any]:
    (v,) = only(t, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    return dict(v)


def statements(t: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    policy = only(t, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]
    return {s["Sid"]: s for s in policy["Statement"]}


def flat(value: Any) -> str:
    """A resource ARN with its intrinsics, as one comparable string."""
    return json.dumps(value, sort_keys=True)


# What each stack must hand TGI, written out rather than derived from our code. Instance and quantization per
# (scenario, model) are the README's table; SM_NUM_GPUS is the instance's GPU count from the AWS instance pages
# (g5.2xlarge 1 x A10G, g5.12xlarge 4, p4d.24xlarge 8 x A100), for tensor parallelism over all of them. TGI 3.3.6
# reads MAX_INPUT_TOKENS (MAX_INPUT_LENGTH before 2.0); the token limits are the documented defaults.
DEFAULT_TGI_ENV = {
    "HF_MODEL_ID": "/opt/ml/model",  # weights from S3, never a Hub id
    "MAX_INPUT_TOKENS": "2048",
    "MAX_TOTAL_TOKENS": "4096",
    "MAX_BATCH_PREFILL_TOKENS": "4096",
    "MAX_CONCURRENT_REQUESTS": "128",
}
GPTQ = {"HF_MODEL_QUANTIZE": "gptq"}
EXPECTED_ENV = {
    ("cost", "7b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "1", **GPTQ},  # GPTQ on ml.g5.2xlarge
    ("cost", "13b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "1", **GPTQ},  # GPTQ on ml.g5.2xlarge
    ("cost", "70b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "4", **GPTQ},  # GPTQ on ml.g5.12xlarge
    ("latency", "7b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "4"},  # fp16 on ml.g5.12xlarge
    ("latency", "13b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "4"},  # fp16 on ml.g5.12xlarge
    ("latency", "70b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "8"},  # fp16 on ml.p4d.24xlarge
    ("throughput", "7b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "4"},  # fp16 on ml.g5.12xlarge
    ("throughput", "13b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "8"},  # fp16 on ml.p4d.24xlarge
    ("throughput", "70b"): {**DEFAULT_TGI_ENV, "SM_NUM_GPUS": "8"},  # fp16 on ml.p4d.24xlarge
}


@pytest.mark.parametrize(("scenario", "model"), COMBOS, ids=IDS)
class TestEveryScenarioAndModel:
    def test_environment_is_exactly_what_tgi_needs(self, scenario: str, model: str) -> None:
        env = model_props(template_of(scenario, model))["PrimaryContainer"]["Environment"]
        assert env == EXPECTED_ENV[scenario, model]
        assert not {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} & set(env), "no Hub token at run time"

    def test_weights_from_s3_prefix_under_network_isolation(self, scenario: str, model: str) -> None:
        cfg = deployment(scenario, model)
        props = model_props(template_of(scenario, model))
        assert props["EnableNetworkIsolation"] is True
        source = props["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]
        assert source["S3DataType"] == "S3Prefix"
        assert source["CompressionType"] == "None"
        assert source["S3Uri"]["Fn::Join"][1][-1] == f"/{cfg.weights_prefix}"
        assert "ModelDataUrl" not in props["PrimaryContainer"]
        vpc = props["VpcConfig"]
        assert len(vpc["Subnets"]) == DEFAULT_AZ_COUNT and len(vpc["SecurityGroupIds"]) == 1
        assert "EndpointSecurityGroup" in flat(vpc["SecurityGroupIds"])

    def test_endpoint_config_respects_nvme_and_timeouts(self, scenario: str, model: str) -> None:
        cfg = deployment(scenario, model)
        t = template_of(scenario, model)
        assert cfg.instance.has_local_nvme
        v = variant(t)
        assert "VolumeSizeInGB" not in v
        assert "InferenceAmiVersion" not in v, "TGI's images run on SageMaker's default host"
        assert "KmsKeyId" not in only(t, "AWS::SageMaker::EndpointConfig")["Properties"]
        assert v["InstanceType"] == cfg.instance_type
        assert v["InitialInstanceCount"] == cfg.min_instances
        assert v["ContainerStartupHealthCheckTimeoutInSeconds"] == cfg.startup_health_check_timeout_s
        assert v["ModelDataDownloadTimeoutInSeconds"] == cfg.model_data_download_timeout_s
        assert v["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
        assert v["VariantName"] == "AllTraffic"

    def test_blue_green_rolls_back_on_this_endpoints_alarms(self, scenario: str, model: str) -> None:
        cfg = deployment(scenario, model)
        t = template_of(scenario, model)
        endpoint = only(t, "AWS::SageMaker::Endpoint")
        props = endpoint["Properties"]
        assert props["EndpointName"] == cfg.endpoint_name
        policy = props["DeploymentConfig"]["BlueGreenUpdatePolicy"]
        assert policy["TrafficRoutingConfiguration"] == {
            "Type": "ALL_AT_ONCE",
            "WaitIntervalInSeconds": cfg.deployment_wait_s,
        }
        assert policy["TerminationWaitInSeconds"] == TERMINATION_WAIT_S
        assert policy["MaximumExecutionTimeoutInSeconds"] == execution_timeout_s(cfg)
        rollback = [a["AlarmName"] for a in props["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]
        names = alarm_names(str(cfg.endpoint_name))
        assert rollback == list(names.rollback)
        alarms = {v["Properties"]["AlarmName"]: k for k, v in resources(t, "AWS::CloudWatch::Alarm").items()}
        assert set(rollback) <= set(alarms)
        assert {alarms[n] for n in rollback} <= set(endpoint["DependsOn"])

    def test_an_update_keeps_the_variant_name_and_its_scaled_out_count(self, scenario: str, model: str) -> None:
        # Blue/green needs the same variant name in the new config; RetainAllVariantProperties makes SageMaker
        # start the new fleet at the variant's current DesiredInstanceCount, not InitialInstanceCount.
        props = only(template_of(scenario, model), "AWS::SageMaker::Endpoint")["Properties"]
        assert props["RetainAllVariantProperties"] is True
        assert "ExcludeRetainedVariantProperties" not in props, "no property may fall back to the config's"
        assert variant(template_of(scenario, model))["VariantName"] == VARIANT_NAME

    def test_autoscaling_on_concurrent_requests(self, scenario: str, model: str) -> None:
        cfg = deployment(scenario, model)
        t = template_of(scenario, model)
        (target_id, target), *_ = resources(t, "AWS::ApplicationAutoScaling::ScalableTarget").items()
        assert target["Properties"]["ResourceId"] == f"endpoint/{cfg.endpoint_name}/variant/AllTraffic"
        assert target["Properties"]["ScalableDimension"] == SCALABLE_DIMENSION
        assert target["Properties"]["ServiceNamespace"] == "sagemaker"
        assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
            cfg.min_instances,
            cfg.max_instances,
        )
        assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in flat(target["Properties"]["RoleARN"])
        (endpoint_id,) = resources(t, "AWS::SageMaker::Endpoint")
        assert endpoint_id in target["DependsOn"]
        policy = only(t, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
        assert policy["ScalingTargetId"] == {"Ref": target_id}
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["PredefinedMetricSpecification"] == {
            "PredefinedMetricType": "SageMakerVariantConcurrentRequestsPerModelHighResolution"
        }
        assert tracking["TargetValue"] == cfg.autoscaling_target
        assert tracking["ScaleInCooldown"] == cfg.scale_in_cooldown_s
        assert tracking["ScaleOutCooldown"] == cfg.scale_out_cooldown_s
        assert len(resources(t, "AWS::IAM::Role")) == 1, "only the execution role: no empty autoscaling role"

    def test_execution_role_statements_name_exact_resources(self, scenario: str, model: str) -> None:
        cfg = deployment(scenario, model)
        t = template_of(scenario, model)
        st = statements(t)
        prefix = str(cfg.weights_prefix)
        assert st["ReadWeights"]["Action"] == "s3:GetObject"
        assert flat(st["ReadWeights"]["Resource"]).endswith(json.dumps(f"/{prefix}*") + "]]}")
        assert st["ListWeights"]["Action"] == "s3:ListBucket"
        assert st["ListWeights"]["Condition"] == {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}}
        bucket = flat(st["ListWeights"]["Resource"])
        assert "WeightsBucket" in bucket and "Fn::Join" not in bucket, "the bucket itself, not a key"
        assert st["DecryptWeights"]["Action"] == "kms:Decrypt"
        assert "EncryptionKey" in flat(st["DecryptWeights"]["Resource"])
        assert sorted(st["PullImage"]["Action"]) == [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]
        assert flat(st["PullImage"]["Resource"]).endswith(json.dumps(f":repository/{cfg.image.repository}") + "]]}")
        assert (st["EcrLogin"]["Action"], st["EcrLogin"]["Resource"]) == ("ecr:GetAuthorizationToken", "*")
        logs = flat(st["WriteLogs"]["Resource"])
        assert logs.endswith(json.dumps(f":log-group:/aws/sagemaker/Endpoints/{cfg.endpoint_name}*") + "]]}")
        assert st["PutMetrics"]["Resource"] == "*"
        assert st["PutMetrics"]["Condition"] == {
            "StringEquals": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints", "AWS/SageMaker"]}
        }
        for sid in ("CreateEniInVpc", "ManageEniInVpc"):
            assert "ec2:Vpc" in st[sid]["Condition"]["ArnEquals"]
        assert all(a.startswith("ec2:Describe") for a in st["DescribeVpc"]["Action"])
        wildcard_resource = [sid for sid, s in st.items() if s["Resource"] == "*"]
        assert sorted(wildcard_resource) == ["DescribeVpc", "EcrLogin", "PutMetrics"]

    def test_no_broad_permissions(self, scenario: str, model: str) -> None:
        t = template_of(scenario, model)
        text = json.dumps(t)
        assert "s3:*" not in text and '"*:*"' not in text and "iam:PassRole" not in text
        assert "FullAccess" not in text
        for s in statements(t).values():
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert not any(a.endswith("*") for a in actions), s["Sid"]
        role = only(t, "AWS::IAM::Role")["Properties"]
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        assert all("Ref" in arn for arn in role["ManagedPolicyArns"]), "only the stack's own policy"

    def test_alarms_thresholds_and_units(self, scenario: str, model: str) -> None:
        cfg = deployment(scenario, model)
        names = alarm_names(str(cfg.endpoint_name))
        alarms = {
            a["Properties"]["AlarmName"]: a["Properties"]
            for a in resources(template_of(scenario, model), "AWS::CloudWatch::Alarm").values()
        }
        assert set(alarms) == {names.error_rate, names.model_latency, names.gpu_memory}
        rate = alarms[names.error_rate]
        assert rate["Threshold"] == cfg.alarm_5xx_rate_pct
        metric_names = {m["Id"]: m.get("MetricStat", {}).get("Metric", {}).get("MetricName") for m in rate["Metrics"]}
        assert metric_names["errors"] == "Invocation5XXErrors" and metric_names["invocations"] == "Invocations"
        (expression,) = [m["Expression"] for m in rate["Metrics"] if "Expression" in m]
        assert "100 * FILL(errors, 0) / invocations" in expression
        latency = alarms[names.model_latency]
        assert latency["Threshold"] == cfg.alarm_model_latency_p90_ms * 1000  # microseconds
        (stat,) = [m["MetricStat"] for m in latency["Metrics"]]
        assert (stat["Metric"]["MetricName"], stat["Stat"]) == ("ModelLatency", "p90")
        assert {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]} == {
            "EndpointName": cfg.endpoint_name,
            "VariantName": "AllTraffic",
        }
        gpu = alarms[names.gpu_memory]
        assert gpu["Threshold"] == cfg.alarm_gpu_memory_pct
        (gpu_expression,) = [m["Expression"] for m in gpu["Metrics"] if "Expression" in m]
        assert gpu_expression == f"gpumem / {cfg.instance.gpu_count}"
        (raw,) = [m for m in gpu["Metrics"] if "MetricStat" in m]
        assert raw["MetricStat"]["Metric"]["Namespace"] == "/aws/sagemaker/Endpoints"
        for props in alarms.values():
            assert props["TreatMissingData"] == "notBreaching"
            assert props["AlarmActions"] == props["OKActions"] and len(props["AlarmActions"]) == 1


class TestSharedPieces:
    def test_topic_is_kms_encrypted_and_tls_only(self) -> None:
        t = template_of("cost", "7b")
        topic = only(t, "AWS::SNS::Topic")["Properties"]
        assert "EncryptionKey" in flat(topic["KmsMasterKeyId"])
        policy = only(t, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy
        )
        (allow,) = [s for s in policy if s["Effect"] == "Allow"]
        assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        assert "aws:SourceAccount" in allow["Condition"]["StringEquals"]

    def test_log_group_is_the_endpoints_and_encrypted(self) -> None:
        t = template_of("latency", "7b")
        group = only(t, "AWS::Logs::LogGroup")["Properties"]
        assert group["LogGroupName"] == f"/aws/sagemaker/Endpoints/{deployment('latency', '7b').endpoint_name}"
        assert "EncryptionKey" in flat(group["KmsKeyId"]) and group["RetentionInDays"] > 0

    def test_image_is_region_agnostic_with_a_region_rule(self) -> None:
        t = template_of("throughput", "7b")
        image = model_props(t)["PrimaryContainer"]["Image"]["Fn::Join"][1]
        assert image[0]["Fn::FindInMap"][1] == {"Ref": "AWS::Region"}
        assert {"Ref": "AWS::URLSuffix"} in image
        cfg = deployment("throughput", "7b")
        assert image[-1] == f"/{cfg.image.repository}:{cfg.image.tag}"
        ((_, mapping),) = t["Mappings"].items()
        assert {r: v["account"] for r, v in mapping.items()} == cfg.image.registries
        (rule,) = [r for name, r in t["Rules"].items() if name.startswith("ImageRegionHasImage")]
        assert rule["Assertions"][0]["Assert"]["Fn::Contains"][0] == sorted(cfg.image.registries)

    def test_dashboard_shows_the_endpoint_metrics(self) -> None:
        body = flat(only(template_of("cost", "7b"), "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
        for name in ("ModelLatency", "OverheadLatency", "Invocation4XXErrors", "ConcurrentRequestsPerModel"):
            assert name in body
        assert "GPUMemoryUtilization" in body and "microseconds" in body

    def test_endpoint_stack_outputs_the_name(self) -> None:
        t = template_of("latency", "70b")
        assert t["Outputs"]["EndpointName"]["Value"] == deployment("latency", "70b").endpoint_name


def stand_in_foundation(app: cdk.App, construct_id: str, env: cdk.Environment | None) -> SharedResources:
    base = cdk.Stack(app, construct_id, env=env)
    vpc = ec2.Vpc(
        base,
        "Vpc",
        availability_zones=["az-a", "az-b"],  # no lookup for a stack with a region
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="i", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
    )
    key = kms.Key(base, "Key", enable_key_rotation=True)
    return SharedResources(
        key=key,
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        endpoint_security_group=ec2.SecurityGroup(base, "Sg", vpc=vpc),
        weights_bucket=s3.Bucket(base, "Weights", encryption_key=key),
    )


@pytest.fixture(scope="module")
def custom() -> dict[str, Template]:
    """Endpoint stacks for settings the scenario defaults never use, on stand-in foundations: one synth."""
    app = cdk.App()
    configs = {
        "batch": DeploymentConfig(scenario="throughput", model="13b", max_batch_total_tokens=16384),
        "oldtgi": DeploymentConfig(
            scenario="latency", tgi_version="1.0.3", max_input_tokens=1024, max_total_tokens=2048
        ),
        "regional": DeploymentConfig(scenario="cost", region="eu-west-1", min_instances=2, max_instances=3),
    }
    agnostic = stand_in_foundation(app, "Base", None)
    regional = stand_in_foundation(app, "RegionalBase", cdk.Environment(region="eu-west-1"))
    stacks = {
        name: LlamaEndpointStack(
            app,
            name,
            deployment=cfg,
            shared=regional if cfg.region else agnostic,
            env=cdk.Environment(region=cfg.region) if cfg.region else None,
        )
        for name, cfg in configs.items()
    }
    return {name: Template.from_stack(stack) for name, stack in stacks.items()}


class TestNonDefaultSettings:
    def test_max_batch_total_tokens_only_when_set(self, custom: dict[str, Template]) -> None:
        custom["batch"].has_resource_properties(
            "AWS::SageMaker::Model",
            {"PrimaryContainer": {"Environment": {"MAX_BATCH_TOTAL_TOKENS": "16384", "SM_NUM_GPUS": "8"}}},
        )

    def test_tgi_before_2_uses_max_input_length(self, custom: dict[str, Template]) -> None:
        env = next(iter(custom["oldtgi"].find_resources("AWS::SageMaker::Model").values()))["Properties"][
            "PrimaryContainer"
        ]["Environment"]
        assert env["MAX_INPUT_LENGTH"] == "1024" and "MAX_INPUT_TOKENS" not in env

    def test_concrete_region_uses_the_literal_image_and_arn(self, custom: dict[str, Template]) -> None:
        cfg = DeploymentConfig(scenario="cost", region="eu-west-1")
        t = custom["regional"].to_json()
        assert model_props(t)["PrimaryContainer"]["Image"] == cfg.image.uri("eu-west-1")
        assert statements(t)["PullImage"]["Resource"] == cfg.image.repository_arn("eu-west-1")
        assert "Mappings" not in t
        assert not [name for name in t.get("Rules", {}) if name.startswith("Image")]

    def test_instance_counts_follow_the_config(self, custom: dict[str, Template]) -> None:
        custom["regional"].has_resource_properties(
            "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 2, "MaxCapacity": 3}
        )
        custom["regional"].has_resource_properties(
            "AWS::SageMaker::EndpointConfig", {"ProductionVariants": [{"InitialInstanceCount": 2}]}
        )


def test_execution_timeout_covers_the_update_and_stays_in_range() -> None:
    small = DeploymentConfig(scenario="cost", deployment_wait_s=0)
    big = DeploymentConfig(
        scenario="latency",
        model="70b",
        startup_health_check_timeout_s=3600,
        model_data_download_timeout_s=3600,
        deployment_wait_s=3600,
    )
    assert execution_timeout_s(small) >= 600
    assert execution_timeout_s(small) >= small.startup_health_check_timeout_s + small.model_data_download_timeout_s  # type: ignore[operator]
    assert execution_timeout_s(big) == 3 * 3600 + TERMINATION_WAIT_S + EXECUTION_MARGIN_S


def test_endpoint_needs_a_rollback_alarm() -> None:
    stack = cdk.Stack()
    key = kms.Key(stack, "K")
    vpc = ec2.Vpc(stack, "V", nat_gateways=0)
    with pytest.raises(ValueError, match="rollback alarm"):
        InferenceEndpointProps(
            deployment=DeploymentConfig(scenario="cost"),
            weights_bucket=s3.Bucket(stack, "B"),
            key=key,
            image_uri="x",
            role=None,  # type: ignore[arg-type]
            vpc=vpc,
            subnets=ec2.SubnetSelection(),
            security_group=ec2.SecurityGroup(stack, "S", vpc=vpc),
            rollback_alarm_names=(),
        )


@pytest.mark.parametrize(
    ("resolved", "expected"),
    [
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["B1", "Arn"]}, "/p/*"]]}, "<B1.Arn>/p/*"),
        ({"Fn::Join": [":", ["arn", {"Ref": "AWS::Partition"}]]}, "arn:<AWS::Partition>"),
        ({"Fn::Join": ["", [{"Fn::ImportValue": "F:Out"}, "/p/*"]]}, "F:Out/p/*"),
        (
            {"Fn::Join": ["", [{"Fn::GetStackOutput": {"StackName": "F", "OutputName": "O"}}, "/*"]]},
            '{"Fn::GetStackOutput":{"StackName":"F","OutputName":"O"}}/*',
        ),
    ],
)
def test_nag_names_match_cdk_nag_rendering(
    resolved: dict[str, Any], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = cdk.Stack()
    monkeypatch.setattr(stack, "resolve", lambda _value: resolved)
    assert nag_name(stack, "ignored") == expected


def test_config_error_exits_non_zero_with_the_message() -> None:
    """As ``cdk synth -c model=13b -c instance_type=ml.p4d.12xlarge`` runs it: the CLI passes context by env."""
    context = json.dumps({"model": "13b", "instance_type": "ml.p4d.12xlarge"})
    env = {**os.environ, "CDK_CONTEXT_JSON": context, "CDK_OUTDIR": tempfile.mkdtemp()}
    run = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 2
    assert "instance_type='ml.p4d.12xlarge'" in run.stderr and "ml.p4d.24xlarge" in run.stderr
    assert "Traceback" not in run.stderr


def test_constructs_package_is_the_library_and_project_modules_load() -> None:
    assert constructs.Construct.__module__ == "constructs"
    library_dir = Path(constructs.__file__).resolve().parent
    assert "site-packages" in str(library_dir)
    assert Path(inference_endpoint.__file__).resolve().parent == ROOT / "constructs" / "llama_constructs" / "endpoint"


def test_the_tgi_names_of_the_endpoint_constructs_still_import() -> None:
    """The benchmark state machine and older code import the constructs by the names they had for TGI alone."""
    assert tgi_endpoint.TgiEndpoint is inference_endpoint.InferenceEndpoint
    assert tgi_endpoint.TgiEndpointProps is inference_endpoint.InferenceEndpointProps
    assert tgi_endpoint.execution_timeout_s is inference_endpoint.execution_timeout_s
    assert tgi_image.TgiImageLocation is container_image.ImageLocation
