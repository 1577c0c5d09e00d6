"""DeploymentConfig at the edges: each limit accepts its last valid value and refuses the first invalid one.

The limits are SageMaker's and TGI's (timeouts 60..3600 s, the model's 4096-token context, TGI's token
ordering) and the documented defaults in README's configuration table; the expected values are written out
here, not read from the code under test. Pure Python, no synth: fast enough for the mutation run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from catalog.errors import ConfigError
from settings import DeploymentConfig


def make(**kw: Any) -> DeploymentConfig:
    return DeploymentConfig(**{"scenario": "latency", **kw})


def refused(**kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        make(**kw)
    return caught.value


# (field, last accepted values, first refused values, other settings that keep the rest valid)
EDGES: list[tuple[str, list[Any], list[Any], dict[str, Any]]] = [
    ("max_input_tokens", [1, 2999], [0, 3000, 3001], {"max_total_tokens": 3000}),  # 1 <= input < total
    ("max_total_tokens", [2049, 4096], [4097], {}),  # input (2048) < total <= the 4096-token context
    ("max_batch_prefill_tokens", [2048], [2047], {}),  # prefill >= input (2048)
    ("max_batch_total_tokens", [4096], [4095], {}),  # >= total (4096) and prefill (4096)
    ("max_batch_total_tokens", [8000], [7999], {"max_batch_prefill_tokens": 8000}),  # >= the larger of the two
    ("max_concurrent_requests", [1, 4096], [0, 4097], {}),
    ("startup_health_check_timeout_s", [60, 3600], [59, 3601], {}),
    ("model_data_download_timeout_s", [60, 3600], [59, 3601], {}),
    ("min_instances", [1], [0, -1], {}),
    ("max_instances", [3, 20], [2, 21], {"min_instances": 3}),
    ("autoscaling_target", [0.5], [0.0, -1.0], {}),
    ("scale_in_cooldown_s", [0, 3600], [-1, 3601], {}),
    ("scale_out_cooldown_s", [0, 3600], [-1, 3601], {}),
    ("deployment_wait_s", [0, 3600], [-1, 3601], {}),
    ("alarm_5xx_rate_pct", [0.01, 100.0], [0.0, -5.0, 100.01], {}),
    ("alarm_gpu_memory_pct", [0.01, 100.0], [0.0, -5.0, 100.01], {}),
    ("alarm_model_latency_p90_ms", [0.5], [0.0, -1.0], {}),
    ("endpoint_name", ["a", "a-b", "a--b", "A" * 63], ["-a", "a-", "a" * 64, "a_b", ""], {}),
    ("weights_prefix", ["models/x/", "models/llama-2-7b-fp16/v2/"], ["models/x", "/models/x/", "x/", "models/"], {}),
    ("hf_model_id", ["meta-llama/Llama-2-7b-chat-hf", "a.b/c_d-1"], ["Llama-2-7b", "a/b/c", "a b/c"], {}),
    ("region", ["us-east-1", "eu-west-1", "us-gov-west-1"], ["US-EAST-1", "us-east", "useast1"], {}),
]
IDS = [f"{e[0]}-{i}" for i, e in enumerate(EDGES)]


@pytest.mark.parametrize(("field", "good", "bad", "others"), EDGES, ids=IDS)
def test_each_limit_either_side(field: str, good: list[Any], bad: list[Any], others: dict[str, Any]) -> None:
    for value in good:
        make(**others, **{field: value})
    for value in bad:
        err = refused(**others, **{field: value})
        assert [(i.field, i.value) for i in err.issues] == [(field, value)], str(err)
        assert "invalid latency deployment (1 problem):" in str(err)


def test_fit_error_shows_the_arithmetic_for_the_configured_sequence() -> None:
    # 13B fp16 on one A10G: 13.02e9 x 2 B = 26.04 GB of weights; KV cache 2 x 40 layers x 40 heads x 128 x 2 B
    # = 819,200 B per token, x 4096 = 3.36 GB (x 2048 = 1.68 GB); usable 24 GB x 0.92 = 22.08 GB.
    head = "too small: Llama 2 13B fp16 needs 26.0 GB of weights (26.0 GB per GPU over 1 x NVIDIA A10G) plus"
    tail = "but each GPU has 22.1 GB usable"
    for settings, kv in (({}, "3.4 GB KV cache for one 4096-token"), ({"max_total_tokens": 2500}, "2.0 GB KV")):
        err = refused(model="13b", quantization="fp16", instance_type="ml.g5.2xlarge", **settings)
        (issue,) = err.issues
        assert (issue.field, issue.value) == ("instance_type", "ml.g5.2xlarge")
        assert issue.allowed.startswith(f"{head} {kv}") and issue.allowed.endswith(tail), issue.allowed
    # 2500 tokens x 819,200 B = 2.05 GB: the check uses the configured sequence length, not a token or two.


def test_grouped_query_attention_needs_tgi_0_9_3() -> None:
    gqa = "Llama 2 70B (grouped-query attention) needs TGI >= 0.9.3"
    issues = refused(model="70b", tgi_version="0.8.2").issues
    assert any(i.field == "tgi_version" and i.allowed == gqa for i in issues)
    assert not any("grouped-query" in i.allowed for i in refused(model="7b", tgi_version="0.8.2").issues)
    make(model="70b", tgi_version="0.9.3")


def test_settings_are_keyword_only_and_cannot_change_after_validation() -> None:
    with pytest.raises(TypeError):
        DeploymentConfig("latency")  # type: ignore[call-arg]
    cfg = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_instances = 50  # type: ignore[misc]


def test_several_problems_are_reported_together() -> None:
    err = refused(max_concurrent_requests=0, deployment_wait_s=-1, endpoint_name="x_y", region="nowhere")
    assert set(err.fields) == {"max_concurrent_requests", "deployment_wait_s", "endpoint_name", "region"}
    assert "(4 problems):" in str(err)


# README: the scenario table, autoscaling target per scenario, max instances 4 on g5 / 2 on p4d, the timeouts.
# (scenario, model, instance, quantization, autoscaling target, max instances, both timeouts)
DEFAULTS = [
    ("cost", "7b", "ml.g5.2xlarge", "gptq", 5.0, 4, 900),
    ("cost", "70b", "ml.g5.12xlarge", "gptq", 5.0, 4, 2400),
    ("latency", "13b", "ml.g5.12xlarge", "fp16", 1.0, 4, 1200),
    ("latency", "70b", "ml.p4d.24xlarge", "fp16", 1.0, 2, 2400),
    ("throughput", "13b", "ml.p4d.24xlarge", "fp16", 20.0, 2, 1200),
]


@pytest.mark.parametrize("row", DEFAULTS, ids=[f"{r[0]}-{r[1]}" for r in DEFAULTS])
def test_defaults_resolve_from_the_scenario_tables(row: tuple[str, str, str, str, float, int, int]) -> None:
    scenario, model, instance, quant, target, max_instances, timeout_s = row
    cfg = DeploymentConfig(scenario=scenario, model=model)
    assert (cfg.instance_type, cfg.quantization, cfg.autoscaling_target) == (instance, quant, target)
    assert (cfg.min_instances, cfg.max_instances) == (1, max_instances)
    assert cfg.startup_health_check_timeout_s == cfg.model_data_download_timeout_s == timeout_s
    assert cfg.endpoint_name == f"llama2-{model}-{quant}-{scenario}"
    assert cfg.weights_prefix == f"models/llama-2-{model}-{quant}/"
    assert cfg.tgi_version == "3.3.6"


def test_hub_ids_and_aliases_resolve() -> None:
    cfg = DeploymentConfig(scenario="cost", model="13", quantization="4bit", instance_type="g5.2xlarge")
    assert (cfg.model, cfg.quantization, cfg.instance_type) == ("13b", "gptq", "ml.g5.2xlarge")
    assert cfg.hf_model_id == "TheBloke/Llama-2-13B-chat-GPTQ"
    assert make(quantization="none").hf_model_id == "meta-llama/Llama-2-7b-chat-hf"
    assert make(tgi_version="3.3").tgi_version == "3.3.6"
    assert make(tgi_version="3.3").image.version == "3.3.6"


def test_explicit_values_win_over_derived_ones() -> None:
    cfg = make(
        min_instances=6,
        startup_health_check_timeout_s=100,
        model_data_download_timeout_s=200,
        autoscaling_target=2.5,
        endpoint_name="mine",
        weights_prefix="models/mine/",
        hf_model_id="me/my-llama",
    )
    assert cfg.max_instances == 6  # at least min_instances when max_instances is not given
    assert (cfg.startup_health_check_timeout_s, cfg.model_data_download_timeout_s) == (100, 200)
    assert (cfg.autoscaling_target, cfg.endpoint_name) == (2.5, "mine")
    assert (cfg.weights_prefix, cfg.hf_model_id) == ("models/mine/", "me/my-llama")
    assert make(min_instances=2, max_instances=3).max_instances == 3


# 13B GPTQ on ml.g5.12xlarge with every limit a different number.
EVERY_VALUE_DIFFERENT: dict[str, Any] = {
    "model": "13b",
    "quantization": "gptq",
    "instance_type": "ml.g5.12xlarge",
    "max_input_tokens": 1500,
    "max_total_tokens": 3500,
    "max_batch_prefill_tokens": 3000,
    "max_concurrent_requests": 77,
}


def test_container_environment_carries_each_setting_under_its_own_name() -> None:
    """Every value different, so a setting wired to the wrong variable shows (TGI launcher's variable names)."""
    cfg = make(**EVERY_VALUE_DIFFERENT, max_batch_total_tokens=9000)
    assert cfg.container_environment() == {
        "HF_MODEL_ID": "/opt/ml/model",
        "SM_NUM_GPUS": "4",  # ml.g5.12xlarge: 4 x A10G
        "MAX_INPUT_TOKENS": "1500",
        "MAX_TOTAL_TOKENS": "3500",
        "MAX_BATCH_PREFILL_TOKENS": "3000",
        "MAX_BATCH_TOTAL_TOKENS": "9000",
        "MAX_CONCURRENT_REQUESTS": "77",
        "HF_MODEL_QUANTIZE": "gptq",
    }
    old = make(tgi_version="1.4.5", max_input_tokens=1024, max_total_tokens=2048).container_environment()
    assert old["MAX_INPUT_LENGTH"] == "1024" and "MAX_INPUT_TOKENS" not in old  # renamed in TGI 2.0
    assert "HF_MODEL_QUANTIZE" not in old and "MAX_BATCH_TOTAL_TOKENS" not in old


def test_memory_plan_uses_the_configured_sequence_and_instance() -> None:
    plan = make(model="70b", instance_type="ml.g5.48xlarge", max_input_tokens=1000, max_total_tokens=3000).memory_plan
    assert (plan.model.size, plan.quantization.name, plan.instance.name) == ("70b", "fp16", "ml.g5.48xlarge")
    assert plan.max_total_tokens == 3000
    assert make().memory_plan.max_total_tokens == 4096
    assert make().instance_type == "ml.g5.12xlarge"


# --- the engine -------------------------------------------------------------------------------------------------


def test_the_engine_defaults_to_tgi_and_vllm_settings_stay_unset() -> None:
    cfg = make()
    assert (cfg.engine, cfg.vllm_version, cfg.gpu_memory_utilization) == ("tgi", None, None)
    assert (cfg.engine_version, cfg.image.repository) == ("3.3.6", "huggingface-pytorch-tgi-inference")
    assert cfg.inference_ami_version is None  # SageMaker's default host, as TGI has always been deployed


def test_vllm_resolves_its_own_version_and_image() -> None:
    cfg = make(engine=" vLLM ")
    assert (cfg.engine, cfg.vllm_version, cfg.engine_version) == ("vllm", "0.29.0", "0.29.0")
    assert cfg.tgi_version == "3.3.6"  # still resolved, read by TGI only
    assert (cfg.image.repository, cfg.image.version) == ("huggingface-vllm", "0.29.0")
    assert make(engine="vllm", vllm_version="0.17").image.tag.startswith("0.17.0-")
    assert cfg.inference_ami_version == "al2023-ami-sagemaker-inference-gpu-4-1"


def test_the_vllm_environment_carries_each_setting_under_its_own_name() -> None:
    """Every value different, so a setting wired to the wrong flag shows (vLLM's `vllm serve` flags)."""
    cfg = make(**EVERY_VALUE_DIFFERENT, engine="vllm", gpu_memory_utilization=0.85)
    assert cfg.container_environment() == {
        "SM_VLLM_MODEL": "/opt/ml/model",
        "SM_VLLM_SERVED_MODEL_NAME": "llama-2",
        "SM_VLLM_TENSOR_PARALLEL_SIZE": "4",  # ml.g5.12xlarge: 4 x A10G
        "SM_VLLM_MAX_MODEL_LEN": "3500",
        "SM_VLLM_MAX_NUM_SEQS": "77",
        "SM_VLLM_MAX_NUM_BATCHED_TOKENS": "3000",
        "SM_VLLM_GPU_MEMORY_UTILIZATION": "0.85",
        "SM_VLLM_DTYPE": "float16",
        "SM_VLLM_HOST": "0.0.0.0",
        "SM_VLLM_QUANTIZATION": "gptq",
    }


def test_the_fit_check_is_the_engines_memory_rule() -> None:
    """7B fp16 on one A10G: TGI's rule leaves 22.1 GB of 24; vLLM's 0.9 x 24 GB - 2 GiB, or 0.7 x 24 GB - 2 GiB =
    14.65 GB at gpu_memory_utilization 0.7, which 13.48 GB of weights and 2.15 GB of KV cache (257 blocks) overflow."""
    tgi = make(scenario="cost", quantization="fp16")
    assert (tgi.memory_plan.engine, tgi.memory_plan.usable_bytes_per_gpu) == ("tgi", 24e9 * 0.92)
    vllm = make(scenario="cost", quantization="fp16", engine="vllm")
    assert (vllm.memory_plan.engine, vllm.memory_plan.usable_bytes_per_gpu) == ("vllm", 24e9 * 0.9 - (2 << 30))
    make(scenario="cost", quantization="fp16", engine="vllm", gpu_memory_utilization=0.75)  # 15.85 GB: fits
    (issue,) = refused(scenario="cost", quantization="fp16", engine="vllm", gpu_memory_utilization=0.7).issues
    assert (issue.field, issue.value) == ("instance_type", "ml.g5.2xlarge")
    assert "gpu_memory_utilization 0.7 x 24.0 GB" in issue.allowed


def test_tgi_only_rules_do_not_bind_vllm_and_vllms_own_do() -> None:
    # TGI must admit a whole prompt in one prefill; vLLM prefills in chunks, but needs a step for every sequence.
    assert refused(max_batch_prefill_tokens=1024).fields == ("max_batch_prefill_tokens",)
    assert make(engine="vllm", max_batch_prefill_tokens=1024).max_batch_prefill_tokens == 1024
    issues = refused(engine="vllm", max_batch_prefill_tokens=100).issues
    assert [(i.field, "max_num_seqs" in i.allowed) for i in issues] == [("max_batch_prefill_tokens", True)]
