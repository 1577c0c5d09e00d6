"""The catalog: one source of truth, importable without CDK, agreeing with the SDK and with AWS_FACTS."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import botocore.session
import pytest

from benchmark.configuration import BenchmarkConfiguration
from catalog import (
    INSTANCES,
    MemoryPlan,
    bandwidth_bound_ms_per_token,
    get_image,
    get_instance,
    get_model,
    get_price,
    get_quantization,
    resolve_version,
)
from catalog.errors import ConfigError
from catalog.regions import region_issue
from catalog.tgi_images import SDK_JSON_MEMBER, VENDORED_PATH, max_input_env_name, vendor_table
from settings import DeploymentConfig

ROOT = Path(__file__).resolve().parents[1]


def test_catalog_imports_without_cdk_or_sdk() -> None:
    code = (
        "import sys, catalog, settings; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aws_cdk', 'jsii', 'sagemaker', 'constructs')); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_vendored_table_agrees_with_sdk_json() -> None:
    try:
        dist = distribution("sagemaker-core")
    except PackageNotFoundError:  # pragma: no cover - scripts/setup installs it
        pytest.fail("sagemaker-core is not installed; run scripts/setup (requirements-nodeps.txt)")
    sdk = json.loads(Path(str(dist.locate_file(SDK_JSON_MEMBER))).read_text())
    expected = vendor_table(sdk, source=f"sagemaker-core {dist.version} {SDK_JSON_MEMBER}")
    assert json.loads(VENDORED_PATH.read_text()) == expected


@pytest.mark.parametrize(
    ("version", "tag"),
    [  # from AWS_FACTS.md
        ("1.0.3", "2.0.1-tgi1.0.3-gpu-py39-cu118-ubuntu20.04"),
        ("2.0.0", "2.1.1-tgi2.0.0-gpu-py310-cu121-ubuntu22.04"),
        ("3.3.6", "2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04"),
    ],
)
def test_image_tags_match_published(version: str, tag: str) -> None:
    image = get_image(version)
    assert image.tag == tag
    registry = "763104351884.dkr.ecr.us-east-1.amazonaws.com"
    assert image.uri("us-east-1") == f"{registry}/huggingface-pytorch-tgi-inference:{tag}"


def test_image_accounts_and_domains_differ_by_region() -> None:
    image = get_image("3.3")
    assert image.version == "3.3.6"
    assert image.uri("cn-north-1").startswith("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/")
    assert image.account("af-south-1") != "763104351884"
    assert image.repository_arn("us-gov-west-1").startswith("arn:aws-us-gov:ecr:us-gov-west-1:")
    with pytest.raises(ConfigError, match=r"region='us-iso-east-1': has no TGI 3\.3\.6 image"):
        image.uri("us-iso-east-1")


def test_max_input_env_name_follows_tgi_rename() -> None:
    assert max_input_env_name("1.4.5") == "MAX_INPUT_LENGTH"
    assert max_input_env_name("2.0.0") == "MAX_INPUT_TOKENS"


def test_unknown_names_list_what_is_allowed() -> None:
    with pytest.raises(ConfigError) as err:
        get_instance("ml.p4d.12xlarge")
    assert err.value.fields == ("instance_type",)
    assert "ml.p4d.24xlarge" in str(err.value)
    with pytest.raises(ConfigError, match=r"tgi_version='9\.9\.9'"):
        resolve_version("9.9.9")
    with pytest.raises(ConfigError, match="model='8b'"):
        get_model("8b")
    with pytest.raises(ConfigError, match="quantization='awq'"):
        get_quantization("awq")


def test_seed_instance_spelling_is_accepted() -> None:
    assert get_instance("g5.2xlarge").name == "ml.g5.2xlarge"


def test_every_in_scope_instance_has_local_nvme() -> None:
    # SageMaker rejects VolumeSizeInGB and endpoint-config KmsKeyId on all of them (AWS_FACTS).
    assert all(spec.has_local_nvme for spec in INSTANCES.values())


@pytest.mark.parametrize(
    ("model", "quant", "instance", "fits"),
    [  # AWS_FACTS: model fit
        ("7b", "fp16", "ml.g5.2xlarge", True),
        ("13b", "fp16", "ml.g5.2xlarge", False),
        ("13b", "gptq", "ml.g5.2xlarge", True),
        ("70b", "fp16", "ml.g5.12xlarge", False),
        ("70b", "fp16", "ml.g5.48xlarge", True),
        ("70b", "fp16", "ml.p4d.24xlarge", True),
        ("70b", "gptq", "ml.g5.12xlarge", True),
        ("70b", "gptq", "ml.g5.2xlarge", False),
    ],
)
def test_memory_fit(model: str, quant: str, instance: str, fits: bool) -> None:
    plan = MemoryPlan(get_model(model), get_quantization(quant), get_instance(instance), 4096)
    assert plan.fits is fits


def test_fp16_weight_sizes_match_aws_facts() -> None:
    sizes = {m: get_quantization("fp16").weight_bytes(get_model(m)) / 1e9 for m in ("7b", "13b", "70b")}
    assert sizes["7b"] == pytest.approx(13.5, abs=0.1)
    assert sizes["13b"] == pytest.approx(26.0, abs=0.1)
    assert sizes["70b"] == pytest.approx(138.0, abs=0.1)


def test_bandwidth_bound() -> None:
    # 7B fp16 on one A10G: 13.48 GB / 600 GB/s = 22.47 ms; 70B fp16 over 8 A100: 137.96/8 GB / 1555 GB/s.
    seven = bandwidth_bound_ms_per_token(get_model("7b"), get_quantization("fp16"), get_instance("ml.g5.2xlarge"))
    assert seven == pytest.approx(6.74e9 * 2 / 600e9 * 1000)
    seventy = bandwidth_bound_ms_per_token(get_model("70b"), get_quantization("fp16"), get_instance("ml.p4d.24xlarge"))
    assert seventy == pytest.approx(68.98e9 * 2 / 8 / 1555e9 * 1000)


def test_prices_carry_date_and_source_and_can_be_overridden() -> None:
    price = get_price("ml.p4d.24xlarge", "us-west-2")
    assert price.usd_per_hour == 37.688
    assert price.as_of and price.source
    assert get_price("ml.g5.2xlarge", "us-east-1", override_usd_per_hour=1.0).source == "user override"
    with pytest.raises(ConfigError, match="region='eu-west-1': no catalog price"):
        get_price("ml.g5.2xlarge", "eu-west-1")
    with pytest.raises(ConfigError, match="price_usd_per_hour=0"):
        get_price("ml.g5.2xlarge", override_usd_per_hour=0)


def test_region_rule_accepts_every_region_botocore_knows_and_both_configurations_share_it() -> None:
    session = botocore.session.get_session()
    known = {r for p in ("aws", "aws-cn", "aws-us-gov") for r in session.get_available_regions("sagemaker", p)}
    assert len(known) > 25
    assert [r for r in known if region_issue(r) is not None] == []
    for bad in ("us-east", "US-EAST-1", "useast1", "us-east-1a"):
        issue = region_issue(bad)
        assert issue is not None and issue.field == "region"
        with pytest.raises(ConfigError) as deployment_error:
            DeploymentConfig(scenario="latency", region=bad)
        with pytest.raises(ConfigError) as benchmark_error:
            BenchmarkConfiguration(model="7b", instance_type="ml.g5.2xlarge", region=bad)
        assert issue in deployment_error.value.issues
        assert issue in benchmark_error.value.issues
