"""The catalog: one source of truth, importable without CDK, agreeing with the SDK and with AWS_FACTS."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import botocore.session
import pytest

from benchmark.analysis.configuration import BenchmarkConfiguration
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
from catalog.instances import InstanceSpec
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
    assert bool(plan.issues()) is not fits


# Architecture from each model's config.json on the Hugging Face Hub (num_hidden_layers, hidden_size,
# num_attention_heads, num_key_value_heads) and the parameter counts the Hub reports.
PUBLISHED = {
    "7b": {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 32, "parameters": 6_738_415_616},
    "13b": {"layers": 40, "hidden": 5120, "heads": 40, "kv_heads": 40, "parameters": 13_015_864_320},
    "70b": {"layers": 80, "hidden": 8192, "heads": 64, "kv_heads": 8, "parameters": 68_976_648_192},
}


@pytest.mark.parametrize("size", PUBLISHED)
def test_model_specs_match_published_configs(size: str) -> None:
    spec, published = get_model(size), PUBLISHED[size]
    assert (spec.layers, spec.hidden_size, spec.attention_heads, spec.kv_heads) == (
        published["layers"],
        published["hidden"],
        published["heads"],
        published["kv_heads"],
    )
    assert spec.head_dim == 128  # hidden / heads for all three sizes
    assert spec.parameters == pytest.approx(published["parameters"], rel=1e-3)


# KV cache per token = 2 (K and V) x layers x KV heads x head dim (128) x 2 bytes (fp16):
#   7B: 2 x 32 x 32 x 128 x 2 = 524,288 B; 13B: 2 x 40 x 40 x 128 x 2 = 819,200 B;
#   70B (grouped-query, 8 KV heads): 2 x 80 x 8 x 128 x 2 = 327,680 B.
@pytest.mark.parametrize(("size", "kv_bytes"), [("7b", 524_288), ("13b", 819_200), ("70b", 327_680)])
def test_kv_cache_bytes_per_token(size: str, kv_bytes: int) -> None:
    assert get_model(size).kv_cache_bytes_per_token == kv_bytes


# The last max_total_tokens whose KV cache for one sequence still fits beside the weights, per GPU:
# usable = GPU memory x 0.92 (A10G: 24 GB -> 22.08 GB; A100 40GB: 36.8 GB), weights and KV split over the GPUs.
# Weights: fp16 2 B/parameter; GPTQ (4 + 20/128) / 8 = 0.51953125 B/parameter. Parameters as in the catalog.
EDGES = [
    # 7B fp16, 1 x A10G: (22.08e9 - 6.74e9 x 2) / 524,288 = 8.6e9 / 524,288 = 16,403.3
    ("7b", "fp16", "ml.g5.2xlarge", 16_403),
    # 13B GPTQ, 1 x A10G: weights 13.02e9 x 0.51953125 = 6,764,296,875 B;
    # (22.08e9 - 6,764,296,875) / 819,200 = 18,695.9
    ("13b", "gptq", "ml.g5.2xlarge", 18_695),
    # 70B GPTQ, 4 x A10G: weights 68.98e9 x 0.51953125 / 4 = 8,959,324,218.75 B per GPU; KV 327,680 / 4 = 81,920 B
    # per GPU per token; (22.08e9 - 8,959,324,218.75) / 81,920 = 160,164.5
    ("70b", "gptq", "ml.g5.12xlarge", 160_164),
    # 70B fp16, 8 x A100 40GB: weights 68.98e9 x 2 / 8 = 17.245e9 B per GPU; KV 327,680 / 8 = 40,960 B per GPU per
    # token; (36.8e9 - 17.245e9) / 40,960 = 477,416.99
    ("70b", "fp16", "ml.p4d.24xlarge", 477_416),
]


@pytest.mark.parametrize(("model", "quant", "instance", "last_fitting"), EDGES, ids=[f"{e[0]}-{e[1]}" for e in EDGES])
def test_memory_fit_either_side_of_the_limit(model: str, quant: str, instance: str, last_fitting: int) -> None:
    def plan(tokens: int) -> MemoryPlan:
        return MemoryPlan(get_model(model), get_quantization(quant), get_instance(instance), tokens)

    assert plan(last_fitting).fits
    assert not plan(last_fitting + 1).fits
    assert plan(last_fitting).issues() == []
    (issue,) = plan(last_fitting + 1).issues()
    assert (issue.field, issue.value) == ("instance_type", instance)
    assert issue.allowed.startswith("too small: ")


def test_memory_plan_arithmetic() -> None:
    # 70B fp16 over 4 x A10G with a 4096-token sequence: weights 68.98e9 x 2 = 137.96e9 B, 34.49e9 per GPU;
    # KV 4096 x 327,680 = 1,342,177,280 B, 335,544,320 per GPU; usable 24e9 x 0.92 = 22.08e9 per GPU.
    plan = MemoryPlan(get_model("70b"), get_quantization("fp16"), get_instance("ml.g5.12xlarge"), 4096)
    assert plan.weight_bytes == pytest.approx(137.96e9)
    assert plan.weight_bytes_per_gpu == pytest.approx(34.49e9)
    assert plan.kv_bytes_per_gpu_one_sequence == pytest.approx(335_544_320)
    assert plan.usable_bytes_per_gpu == pytest.approx(22.08e9)
    assert plan.required_bytes_per_gpu == pytest.approx(34.49e9 + 335_544_320)
    with pytest.raises(FrozenInstanceError):
        plan.max_total_tokens = 1  # type: ignore[misc]
    (issue,) = plan.issues(field="stages.dev.cost.instance_type")
    assert issue.field == "stages.dev.cost.instance_type"
    assert issue.value == "ml.g5.12xlarge"
    assert issue.allowed == (
        "too small: Llama 2 70B fp16 needs 138.0 GB of weights (34.5 GB per GPU over 4 x NVIDIA A10G) "
        "plus 0.3 GB KV cache for one 4096-token sequence, but each GPU has 22.1 GB usable"
    )


def _with_gpus(count: int) -> InstanceSpec:
    """A made-up instance with ``count`` A10Gs: no in-scope instance breaks the sharding rule."""
    return replace(get_instance("ml.g5.48xlarge"), name=f"test.{count}gpu", gpu_count=count)


@pytest.mark.parametrize(
    ("model", "gpus", "shards"),
    [
        ("7b", 1, True),
        ("7b", 8, True),  # 32 heads / 8
        ("7b", 3, False),  # 32 heads do not split over 3 GPUs (TGI: num_heads must be divisible by num_shards)
        ("70b", 8, True),  # 64 heads and 8 KV heads / 8
        ("70b", 16, False),  # 64 heads split over 16, its 8 KV heads do not
        ("13b", 8, True),  # 40 heads / 8
        ("13b", 16, False),  # 40 heads do not split over 16
    ],
)
def test_sharding_needs_heads_divisible_by_gpus(model: str, gpus: int, shards: bool) -> None:
    plan = MemoryPlan(get_model(model), get_quantization("gptq"), _with_gpus(gpus), 4096)
    assert plan.shards_evenly is shards
    messages = [i.allowed for i in plan.issues(field="instance")]
    expected = f"{gpus} GPUs do not divide {get_model(model).display_name}'s attention heads"
    assert (expected in messages) is not shards
    assert all(i.field == "instance" and i.value == f"test.{gpus}gpu" for i in plan.issues(field="instance"))


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
