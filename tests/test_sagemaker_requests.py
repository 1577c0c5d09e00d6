"""The one request builder (settings.sagemaker_requests) against SageMaker's own API model and the synthesized stacks.

Independent truths: botocore's SageMaker service model (every name the builder uses must be a member of the
API shape it sits in, or SageMaker refuses the request the benchmark state machine sends) and the templates the
real app synthesizes (a property whose derived CDK name were wrong would be dropped from the template without
an error, so every key the builder sets must arrive there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import botocore.session
import pytest
from aws_cdk import aws_sagemaker as sagemaker
from botocore.model import StringShape

from settings import STACK_NAMES, DeploymentConfig
from settings.sagemaker_requests import (
    VARIANT_NAME,
    cfn_properties,
    endpoint_config_request,
    model_request,
    snake_name,
)
from tests.fixtures_endpoint import MODELS, SCENARIOS, only, synth_model

_SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


def _model(deployment: DeploymentConfig) -> dict[str, Any]:
    return model_request(
        deployment,
        role_arn="arn:aws:iam::123456789012:role/r",
        image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:tag",
        bucket_name="weights",
        subnet_ids=["subnet-1", "subnet-2"],
        security_group_ids=["sg-1"],
    )


_DATA_MAPS = ("Environment",)  # maps whose keys are data (environment variable names), not API members


def _unknown_members(value: Any, shape: Any, where: str) -> list[str]:
    """Names in ``value`` that are not members of the botocore ``shape`` (recursively)."""
    if shape.type_name == "structure":
        out = [f"{where}.{k}" for k in value if k not in shape.members]
        for key, item in value.items():
            if key in shape.members and key not in _DATA_MAPS:
                out += _unknown_members(item, shape.members[key], f"{where}.{key}")
        return out
    if shape.type_name == "list":
        return [bad for item in value for bad in _unknown_members(item, shape.member, f"{where}[]")]
    return []


def _key_paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, Mapping):
        if len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
            return set()  # a CloudFormation intrinsic stands for a value
        paths = set()
        for key, item in value.items():
            paths.add(f"{prefix}.{key}")
            if key not in _DATA_MAPS:
                paths |= _key_paths(item, f"{prefix}.{key}")
        return paths
    if isinstance(value, list):
        return {p for item in value for p in _key_paths(item, f"{prefix}[]")}
    return set()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_requests_use_only_sagemaker_api_names(scenario: str, model: str) -> None:
    deployment = DeploymentConfig(scenario=scenario, model=model)
    create_model = _SAGEMAKER.operation_model("CreateModel").input_shape
    create_config = _SAGEMAKER.operation_model("CreateEndpointConfig").input_shape
    assert _unknown_members(_model(deployment), create_model, "CreateModel") == []
    config = endpoint_config_request(deployment, model_name="m", kms_key_arn="arn:aws:kms:us-east-1:1:key/k")
    assert _unknown_members(config, create_config, "CreateEndpointConfig") == []


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_request_key_reaches_the_template(scenario: str, model: str) -> None:
    template = synth_model(model).templates[STACK_NAMES[scenario]]
    deployment = DeploymentConfig(scenario=scenario, model=model)
    cfn_model = only(template, "AWS::SageMaker::Model")["Properties"]
    cfn_config = only(template, "AWS::SageMaker::EndpointConfig")["Properties"]
    assert _key_paths(cfn_model) == _key_paths(_model(deployment))
    assert _key_paths(cfn_config) == _key_paths(endpoint_config_request(deployment, model_name="m"))
    (variant,) = cfn_config["ProductionVariants"]
    assert variant["VariantName"] == VARIANT_NAME
    assert cfn_model["PrimaryContainer"]["Environment"] == deployment.container_environment()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_vllm_requests_use_only_sagemaker_api_names_and_values(scenario: str) -> None:
    deployment = DeploymentConfig(scenario=scenario, engine="vllm")
    create_model = _SAGEMAKER.operation_model("CreateModel").input_shape
    create_config = _SAGEMAKER.operation_model("CreateEndpointConfig").input_shape
    assert _unknown_members(_model(deployment), create_model, "CreateModel") == []
    config = endpoint_config_request(deployment, model_name="m")
    assert _unknown_members(config, create_config, "CreateEndpointConfig") == []
    (variant,) = config["ProductionVariants"]
    amis = _SAGEMAKER.shape_for("ProductionVariantInferenceAmiVersion")
    assert isinstance(amis, StringShape) and variant["InferenceAmiVersion"] in amis.enum
    tgi = endpoint_config_request(DeploymentConfig(scenario=scenario), model_name="m")
    assert "InferenceAmiVersion" not in tgi["ProductionVariants"][0], "TGI keeps SageMaker's default host"


def test_kms_key_only_where_sagemaker_accepts_it() -> None:
    # Every in-scope instance has local NVMe, where SageMaker rejects KmsKeyId (and DeploymentConfig refuses it).
    deployment = DeploymentConfig(scenario="latency")
    assert deployment.instance.has_local_nvme
    assert "KmsKeyId" not in endpoint_config_request(deployment, model_name="m", kms_key_arn="arn:k")


@pytest.mark.parametrize(
    ("api_name", "python_name"),
    [
        # CDK's Python names of these CloudFormation properties (aws_sagemaker.CfnEndpointConfig / CfnModel).
        ("VolumeSizeInGB", "volume_size_in_gb"),
        ("S3Uri", "s3_uri"),
        ("ContainerStartupHealthCheckTimeoutInSeconds", "container_startup_health_check_timeout_in_seconds"),
        ("KmsKeyId", "kms_key_id"),
    ],
)
def test_snake_name_matches_cdk(api_name: str, python_name: str) -> None:
    fields = {
        **sagemaker.CfnEndpointConfig.ProductionVariantProperty.__init__.__annotations__,
        **sagemaker.CfnModel.S3DataSourceProperty.__init__.__annotations__,
        **sagemaker.CfnEndpointConfigProps.__init__.__annotations__,
    }
    assert snake_name(api_name) == python_name
    assert python_name in fields


def test_cfn_properties_keeps_environment_keys() -> None:
    props = cfn_properties({"PrimaryContainer": {"Environment": {"MAX_TOTAL_TOKENS": "1"}, "Image": "i"}})
    assert props == {"primary_container": {"environment": {"MAX_TOTAL_TOKENS": "1"}, "image": "i"}}
