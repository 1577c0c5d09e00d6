"""The engines below the stacks and the benchmark: their container contracts, GPU floors and memory rules.

Oracles this project did not write: the vLLM DLC's documented ``SM_VLLM_*`` contract and the TGI environment
``settings.DeploymentConfig`` has always built; the memory edges are computed by hand in the comments.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from catalog import ServingLimits, engine_environment, engine_issues, get_engine, get_instance, get_model
from catalog import get_quantization as quant
from catalog.engines import MODEL_DIR, SERVED_MODEL_NAME
from catalog.errors import ConfigError
from catalog.fit import VLLM_NON_KV_OVERHEAD_BYTES, MemoryPlan
from catalog.instances import GpuSpec, InstanceSpec
from settings import DeploymentConfig

# --- the container contract --------------------------------------------------------------------------------------

# The SageMaker entrypoint of the Hugging Face vLLM image (aws/deep-learning-containers
# huggingface/vllm/build_artifacts/sagemaker_entrypoint.sh) passes each SM_VLLM_<NAME>=<value> to
# `vllm.entrypoints.openai.api_server` as `--<name> <value>` (lower case, "_" -> "-"), after its own `--port 8080`;
# https://aws.github.io/deep-learning-containers/vllm/configuration/ documents the same rule. The flags are
# `vllm serve`'s (https://docs.vllm.ai/en/latest/configuration/serve_args/). Expected values, field by field, for
# Llama 2 70B GPTQ on a g5.12xlarge (4 x A10G) with the deployment defaults:
CONTRACT = {
    "SM_VLLM_MODEL": ("--model", "/opt/ml/model"),  # the S3 weights SageMaker mounts; the HF entrypoint needs it set
    "SM_VLLM_SERVED_MODEL_NAME": ("--served-model-name", SERVED_MODEL_NAME),  # the `model` requests carry
    "SM_VLLM_TENSOR_PARALLEL_SIZE": ("--tensor-parallel-size", "4"),  # number of GPUs
    "SM_VLLM_MAX_MODEL_LEN": ("--max-model-len", "4096"),
    "SM_VLLM_MAX_NUM_SEQS": ("--max-num-seqs", "128"),
    "SM_VLLM_MAX_NUM_BATCHED_TOKENS": ("--max-num-batched-tokens", "4096"),
    "SM_VLLM_GPU_MEMORY_UTILIZATION": ("--gpu-memory-utilization", "0.9"),  # vLLM's default, written out
    "SM_VLLM_DTYPE": ("--dtype", "float16"),
    "SM_VLLM_QUANTIZATION": ("--quantization", "gptq"),  # "awq, gptq, fp8, ..." in the DLC's table
    "SM_VLLM_HOST": ("--host", "0.0.0.0"),  # where SageMaker calls it
}


def limits(**changes: Any) -> ServingLimits:
    base = ServingLimits(model=get_model("70b"), quantization=quant("gptq"), instance=get_instance("ml.g5.12xlarge"))
    return replace(base, **changes)


def test_the_vllm_environment_is_the_documented_contract_field_by_field() -> None:
    env = engine_environment("vllm", limits())
    assert set(env) == set(CONTRACT)
    for name, (flag, value) in CONTRACT.items():
        assert "--" + name.removeprefix("SM_VLLM_").lower().replace("_", "-") == flag
        assert env[name] == value, name
    # A value is never empty (the entrypoint would pass a bare flag) and the port is the entrypoint's own.
    assert all(env.values())
    assert not any(name.endswith("_PORT") for name in env)


def test_the_vllm_environment_follows_the_deployment() -> None:
    env = engine_environment(
        "vllm",
        limits(
            model=get_model("7b"),
            quantization=quant("fp16"),
            instance=get_instance("ml.g5.2xlarge"),
            max_total_tokens=2048,
            max_input_tokens=1024,
            max_concurrent_requests=32,
            max_batch_prefill_tokens=8192,
            gpu_memory_utilization=0.85,
            served_model_name="bench",
            version="0.17",
        ),
    )
    assert "SM_VLLM_QUANTIZATION" not in env  # fp16 weights are not quantized
    assert (env["SM_VLLM_TENSOR_PARALLEL_SIZE"], env["SM_VLLM_MAX_MODEL_LEN"]) == ("1", "2048")
    assert (env["SM_VLLM_MAX_NUM_SEQS"], env["SM_VLLM_MAX_NUM_BATCHED_TOKENS"]) == ("32", "8192")
    assert (env["SM_VLLM_GPU_MEMORY_UTILIZATION"], env["SM_VLLM_SERVED_MODEL_NAME"]) == ("0.85", "bench")
    assert env["SM_VLLM_MODEL"] == MODEL_DIR


@pytest.mark.parametrize(
    "fields",
    [
        {"scenario": "latency"},
        {"scenario": "throughput", "model": "70b"},
        {"scenario": "latency", "model": "13b", "quantization": "gptq", "tgi_version": "1.4.5"},
        {"scenario": "latency", "max_batch_total_tokens": 16000, "max_input_tokens": 1024},
    ],
)
def test_the_tgi_environment_is_the_one_deployments_have_always_had(fields: dict[str, Any]) -> None:
    cfg = DeploymentConfig(**fields)
    served = ServingLimits(
        model=cfg.model_spec,
        quantization=cfg.quantization_spec,
        instance=cfg.instance,
        version=cfg.tgi_version,
        max_input_tokens=cfg.max_input_tokens,
        max_total_tokens=cfg.max_total_tokens,
        max_batch_prefill_tokens=cfg.max_batch_prefill_tokens,
        max_concurrent_requests=cfg.max_concurrent_requests,
        max_batch_total_tokens=cfg.max_batch_total_tokens,
    )
    assert engine_environment("tgi", served) == cfg.container_environment()


@pytest.mark.parametrize(
    ("engine", "changes", "field", "value", "allowed"),
    [
        ("tgi", {"gpu_memory_utilization": 0.8}, "gpu_memory_utilization", 0.8, "is a vLLM setting"),
        ("vllm", {"max_batch_total_tokens": 9000}, "max_batch_total_tokens", 9000, "is a TGI setting"),
        ("vllm", {"gpu_memory_utilization": 1.2}, "gpu_memory_utilization", 1.2, "must be a fraction in (0, 1]"),
        ("vllm", {"max_batch_prefill_tokens": 100}, "max_batch_prefill_tokens", 100, "at least max_concurrent_req"),
        ("vllm", {"max_total_tokens": 8192}, "max_total_tokens", 8192, "at most 4096"),
        ("vllm", {"served_model_name": "my model"}, "served_model_name", "my model", "without spaces"),
        ("vllm", {"max_concurrent_requests": 0}, "max_concurrent_requests", 0, "whole number of 1 or more"),
        ("vllm", {"version": "0.30"}, "vllm_version", "0.30", "must be one of 0.14.0"),
        ("tgi", {"version": "9.9"}, "tgi_version", "9.9", "must be one of"),
        ("vllm", {"max_input_tokens": 4096}, "max_input_tokens", 4096, "less than max_total_tokens"),
        ("vllm", {"instance": get_instance("ml.g5.2xlarge")}, "instance_type", "ml.g5.2xlarge", "too small: "),
    ],
)
def test_what_an_engine_cannot_serve_names_field_value_and_rule(
    engine: str, changes: dict[str, Any], field: str, value: object, allowed: str
) -> None:
    with pytest.raises(ConfigError) as err:
        engine_environment(engine, limits(**changes))
    assert any(i.field == field and i.value == value and allowed in i.allowed for i in err.value.issues), err.value


# --- what each image can serve ----------------------------------------------------------------------------------


def gpu_instance(capability: tuple[int, int]) -> InstanceSpec:
    """A made-up one-GPU instance (every in-scope GPU is Ampere): 80 GB, so memory never decides."""
    gpu = GpuSpec(f"test GPU sm_{capability[0]}{capability[1]}", 80e9, 900e9, capability)
    return InstanceSpec(f"test.sm{capability[0]}{capability[1]}", gpu, 1, 8, 64, 100)


@pytest.mark.parametrize(
    ("capability", "version", "quantization", "refusal"),
    [
        ((8, 6), "0.29.0", "gptq", None),  # A10G
        ((8, 0), "0.29.0", "fp16", None),  # A100
        ((7, 5), "0.29.0", "gptq", None),  # T4: the lowest CUDA 13 still builds for
        ((7, 0), "0.29.0", "fp16", "the 0.29.0-transformers5.15.0-gpu-py312-cu130-ubuntu24.04-v1.0 image (CUDA 13.0)"),
        ((7, 0), "0.17.0", "fp16", None),  # V100 on the CUDA 12.9 image: vLLM's own floor is 7.0
        ((6, 0), "0.17.0", "gptq", "vLLM itself needs 7.0 or higher (vLLM 0.17.0)"),  # P100: GPTQ's 6.0 is not enough
    ],
)
def test_vllm_refuses_a_gpu_its_image_cannot_run_on_and_says_why(
    capability: tuple[int, int], version: str, quantization: str, refusal: str | None
) -> None:
    instance = gpu_instance(capability)
    issues = get_engine("vllm").support_issues(quant(quantization), instance, version)
    if refusal is None:
        assert issues == []
        return
    (issue,) = issues
    assert (issue.field, issue.value) == ("instance_type", instance.name)
    assert issue.allowed.startswith(f"test GPU sm_{capability[0]}{capability[1]} has compute capability ")
    assert refusal in issue.allowed


@pytest.mark.parametrize("engine", ["tgi", "vllm"])
@pytest.mark.parametrize("quantization", ["fp16", "gptq"])
def test_every_in_scope_gpu_runs_both_engines(engine: str, quantization: str) -> None:
    for name in ("ml.g5.2xlarge", "ml.p4d.24xlarge"):
        assert get_engine(engine).support_issues(quant(quantization), get_instance(name)) == []


# --- vLLM's memory rule -----------------------------------------------------------------------------------------

GIB = 1 << 30
# vLLM: usable per GPU = gpu_memory_utilization (0.9) x GPU memory - 2 GiB (2,147,483,648 B) for activations, CUDA
# graphs and memory outside PyTorch; one max_model_len sequence takes ceil(len / 16) blocks of 16 tokens plus the null
# block. A10G: 0.9 x 24e9 - 2,147,483,648 = 19,452,516,352 B; A100 40GB: 0.9 x 40e9 - 2,147,483,648 = 33,852,516,352 B.
VLLM_EDGES = [
    # 7B fp16, 1 x A10G: weights 13.48e9, free 5,972,516,352; a block 16 x 524,288 = 8,388,608 B; 711 blocks fit
    # (5,964,300,288), 712 do not; 711 - 1 null = 710 blocks = 11,360 tokens.
    ("7b", "fp16", "ml.g5.2xlarge", 0.9, 11_360),
    # 7B fp16 at gpu_memory_utilization 0.8: 0.8 x 24e9 - 2,147,483,648 - 13.48e9 = 3,572,516,352 free; 425 blocks
    # (3,565,158,400) fit, 426 do not; 424 x 16 = 6,784 tokens.
    ("7b", "fp16", "ml.g5.2xlarge", 0.8, 6_784),
    # 13B GPTQ, 1 x A10G: weights 6,764,296,875, free 12,688,219,477; a block 16 x 819,200 = 13,107,200 B; 968 blocks
    # (12,687,769,600) fit; 967 x 16 = 15,472 tokens.
    ("13b", "gptq", "ml.g5.2xlarge", 0.9, 15_472),
    # 70B GPTQ, 4 x A10G: weights 8,959,324,218.75 per GPU, free 10,493,192,133.25; 2 KV heads per GPU: 81,920 B per
    # token, 1,310,720 B a block; 8,005 blocks (10,492,313,600) fit; 8,004 x 16 = 128,064 tokens.
    ("70b", "gptq", "ml.g5.12xlarge", 0.9, 128_064),
    # 70B fp16, 8 x A100 40GB: weights 17.245e9 per GPU, free 16,607,516,352; 1 KV head per GPU: 40,960 B per token,
    # 655,360 B a block; 25,341 blocks (16,607,477,760) fit; 25,340 x 16 = 405,440 tokens.
    ("70b", "fp16", "ml.p4d.24xlarge", 0.9, 405_440),
]


@pytest.mark.parametrize(
    ("model", "quantization", "instance", "utilization", "last_fitting"),
    VLLM_EDGES,
    ids=[f"{e[0]}-{e[1]}-{e[3]}" for e in VLLM_EDGES],
)
def test_vllm_memory_fit_either_side_of_the_limit(
    model: str, quantization: str, instance: str, utilization: float, last_fitting: int
) -> None:
    def plan(tokens: int) -> MemoryPlan:
        engine = get_engine("vllm")
        return engine.memory_plan(
            get_model(model), quant(quantization), get_instance(instance), tokens, gpu_memory_utilization=utilization
        )

    assert plan(last_fitting).fits and plan(last_fitting).issues() == []
    assert plan(last_fitting).max_tokens_that_fit == last_fitting
    assert not plan(last_fitting + 1).fits
    (issue,) = plan(last_fitting + 1).issues()
    assert (issue.field, issue.value) == ("instance_type", instance)
    assert "vLLM refuses to start when max_model_len is larger than the maximum number of tokens" in issue.allowed


def test_vllm_memory_plan_arithmetic_and_explanation() -> None:
    plan = MemoryPlan(get_model("7b"), quant("fp16"), get_instance("ml.g5.2xlarge"), 11_361, "vllm")
    assert VLLM_NON_KV_OVERHEAD_BYTES == 2 * GIB
    assert plan.usable_bytes_per_gpu == 19_452_516_352
    assert plan.kv_blocks_one_sequence == 711 + 1  # ceil(11,361 / 16) = 711, plus the null block
    assert plan.kv_bytes_per_gpu_one_sequence == 712 * 8_388_608
    assert plan.required_bytes_per_gpu == 13.48e9 + 712 * 8_388_608
    (issue,) = plan.issues()
    assert issue.allowed == (
        "too small: Llama 2 7B fp16 needs 13.5 GB of weights (13.5 GB per GPU over 1 x NVIDIA A10G) plus 6.0 GB KV "
        "cache for one 11361-token sequence (712 blocks of 16 tokens, one held back), but vLLM leaves each GPU 19.5 GB "
        "for them (gpu_memory_utilization 0.9 x 24.0 GB, less 2.1 GB for activations, CUDA graphs and memory outside "
        "PyTorch): vLLM refuses to start when max_model_len is larger than the maximum number of tokens that can be "
        "stored in KV cache"
    )


def test_the_tgi_rule_is_unchanged_by_the_engine_field() -> None:
    args = (get_model("13b"), quant("gptq"), get_instance("ml.g5.2xlarge"), 18_695)
    assert MemoryPlan(*args) == MemoryPlan(*args, "tgi")
    assert MemoryPlan(*args).usable_bytes_per_gpu == 24e9 * 0.92
    assert MemoryPlan(*args).max_tokens_that_fit == 18_695
    assert MemoryPlan(*args, "vllm").usable_bytes_per_gpu != MemoryPlan(*args).usable_bytes_per_gpu


def test_vllm_replicates_kv_heads_where_tgi_cannot_shard() -> None:
    sixteen = replace(get_instance("ml.g5.48xlarge"), name="test.16gpu", gpu_count=16)
    tgi = MemoryPlan(get_model("70b"), quant("gptq"), sixteen, 4096)
    vllm = MemoryPlan(get_model("70b"), quant("gptq"), sixteen, 4096, "vllm")
    assert not tgi.shards_evenly  # 8 KV heads do not split over 16 GPUs
    assert vllm.shards_evenly  # vLLM keeps one KV head per GPU, each held twice (16 % 8 == 0)
    assert vllm.kv_bytes_per_token_per_gpu == 2 * 80 * 1 * 128 * 2
    twelve = replace(sixteen, name="test.12gpu", gpu_count=12)
    assert not MemoryPlan(get_model("70b"), quant("gptq"), twelve, 4096, "vllm").shards_evenly  # 64 heads / 12


@pytest.mark.parametrize(
    ("engine", "extra", "field", "allowed"),
    [
        ("sglang", {}, "engine", "must be one of tgi, vllm"),
        ("tgi", {"gpu_memory_utilization": 0.9}, "gpu_memory_utilization", "is a vLLM setting"),
        ("vllm", {"gpu_memory_utilization": 0.0}, "gpu_memory_utilization", "must be a fraction in (0, 1]"),
        ("vllm", {"overhead_bytes_per_gpu": -1}, "overhead_bytes_per_gpu", "must be 0 or more bytes"),
    ],
)
def test_memory_plan_refuses_bad_engine_settings(engine: str, extra: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        MemoryPlan(get_model("7b"), quant("fp16"), get_instance("ml.g5.2xlarge"), 4096, engine, **extra)
    (issue,) = err.value.issues
    assert issue.field == field and allowed in issue.allowed


def test_engine_issues_is_empty_for_every_deployable_default() -> None:
    for engine in ("tgi", "vllm"):
        for model, quantization, instance in [("7b", "fp16", "ml.g5.2xlarge"), ("70b", "fp16", "ml.p4d.24xlarge")]:
            served = limits(model=get_model(model), quantization=quant(quantization), instance=get_instance(instance))
            assert engine_issues(engine, served) == [], (engine, model)
