"""The serving engines a SageMaker endpoint can run, each as a typed, validated container contract.

Two engines, below both the stacks and the benchmark (pure Python, no CDK or SDK import):

``tgi``
    Hugging Face Text Generation Inference (``huggingface-llm`` images), in maintenance mode. Its environment is
    the one ``settings.DeploymentConfig.container_environment`` has always built (a test holds the two equal).

``vllm``
    The Hugging Face vLLM image (``huggingface-vllm``). Its SageMaker entrypoint
    (aws/deep-learning-containers ``huggingface/vllm/build_artifacts/sagemaker_entrypoint.sh``) turns every
    ``SM_VLLM_<NAME>=<value>`` environment variable into the flag ``--<name> <value>`` (name lower-cased,
    ``_`` -> ``-``; an empty value gives a bare flag) after a fixed ``--port 8080``, and runs
    ``python3 -m vllm.entrypoints.openai.api_server``, the server of ``vllm serve`` (vLLM's own
    ``examples/online_serving/sagemaker-entrypoint.sh`` does the same). The AWS documentation of the same
    contract: https://aws.github.io/deep-learning-containers/vllm/configuration/ ("Each variable is converted to
    the corresponding vLLM flag (e.g., SM_VLLM_MAX_MODEL_LEN=4096 -> --max-model-len 4096)") and
    https://aws.github.io/deep-learning-containers/vllm/deployment/sagemaker/ (model from ``SM_VLLM_MODEL``,
    requests carry ``model`` and ``messages``). What vLLM then serves on ``/invocations`` is an OpenAI chat
    completion (``vllm/entrypoints/sagemaker/api_router.py``: the body is validated as a ``ChatCompletionRequest``
    first, then a ``CompletionRequest``), which the benchmark's SageMaker client speaks with
    ``payload="openai-chat"``.

The typed inputs (:class:`ServingLimits`) are named after the existing deployment settings; how each maps onto
each engine is in :func:`engine_environment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from catalog import images
from catalog.errors import ConfigError, Issue, unknown
from catalog.fit import VLLM_DEFAULT_GPU_MEMORY_UTILIZATION, MemoryPlan
from catalog.images import ContainerImage, ImageFamily
from catalog.instances import InstanceSpec
from catalog.models import ModelSpec, Quantization
from catalog.tgi_images import max_input_env_name

MODEL_DIR = "/opt/ml/model"  # where SageMaker puts the weights staged in S3 (ModelDataSource)
# The name vLLM serves the model under (--served-model-name) and the `model` every OpenAI request must carry;
# vLLM answers any other name with 404 "The model `NAME` does not exist." (OpenAIServingModels.check_model).
# One fixed name, so that a client needs no deployment detail to address the endpoint. TGI ignores `model`.
SERVED_MODEL_NAME = "llama-2"
SAGEMAKER_PORT = 8080  # fixed by the vLLM entrypoint (--port 8080) and required by SageMaker; never set

# What the benchmark's SageMaker client sends to /invocations (benchmark.clients.sagemaker ``payload``).
PAYLOAD_TGI = "tgi"  # TGI's /generate body; TGI's sagemaker route also takes the Messages API
PAYLOAD_OPENAI_CHAT = "openai-chat"  # an OpenAI chat completion: vLLM, and TGI's Messages API


@dataclass(frozen=True)
class QuantizationSupport:
    """How one engine serves one catalog quantization, and what the GPU must be for it."""

    quantization: str  # catalog name ("fp16", "gptq")
    engine_value: str | None  # TGI's HF_MODEL_QUANTIZE / vLLM's --quantization; None: not quantized
    min_compute_capability: tuple[int, int] | None  # None: no rule recorded
    source: str


@dataclass(frozen=True)
class Engine:
    name: str
    display_name: str
    image_family: ImageFamily
    payloads: tuple[str, ...]  # what the SageMaker client can send to its /invocations, the first by default
    min_compute_capability: tuple[int, int] | None  # the engine's own floor; None: no rule recorded
    quantizations: MappingProxyType[str, QuantizationSupport]
    sources: tuple[str, ...]
    # What the endpoint's dashboard reads from the container's log lines (substrings, one per milestone or error
    # kind; empty: the dashboard reads SageMaker's metrics only, as TGI's always has).
    log_lines: tuple[str, ...] = ()

    @property
    def default_version(self) -> str:
        return self.image_family.default_version

    @property
    def version_field(self) -> str:
        return self.image_family.version_field

    @property
    def default_payload(self) -> str:
        return self.payloads[0]

    def resolve_version(self, version: str | None = None, *, field: str | None = None) -> str:
        return images.resolve_version(self.name, version or self.default_version, field=field)

    def image(self, version: str | None = None, *, field: str | None = None) -> ContainerImage:
        return images.get_image(self.name, version, field=field)

    def support_issues(
        self,
        quantization: Quantization,
        instance: InstanceSpec,
        version: str | None = None,
        *,
        field: str = "instance_type",
    ) -> list[Issue]:
        """Why this engine's image cannot serve ``quantization`` on ``instance`` (empty when it can), and why."""
        support = self.quantizations.get(quantization.name)
        if support is None:
            return [
                Issue("quantization", quantization.name, f"{self.display_name} serves {', '.join(self.quantizations)}")
            ]
        if (
            self.name == "tgi"
            and version is not None
            and not images.at_least("tgi", version, quantization.min_tgi_version)
        ):
            allowed = f"{quantization.display_name} needs TGI {quantization.min_tgi_version} or later"
            return [Issue(self.version_field, version, allowed)]
        image = self.image(version)
        have = instance.gpu.compute_capability
        needs = [
            (self.min_compute_capability, f"{self.display_name} itself"),
            (support.min_compute_capability, f"{self.display_name}'s {quantization.display_name} kernels"),
        ]
        cuda = image.cuda_version
        if cuda is not None and cuda >= (13, 0):
            needs.append((CUDA_13_MIN_COMPUTE_CAPABILITY, f"the {image.tag} image (CUDA {cuda[0]}.{cuda[1]})"))
        for floor, who in needs:
            if floor is not None and have < floor:
                allowed = (
                    f"{instance.gpu.name} has compute capability {have[0]}.{have[1]}; {who} needs "
                    f"{floor[0]}.{floor[1]} or higher ({self.display_name} {image.version})"
                )
                return [Issue(field, instance.name, allowed)]
        return []

    def memory_plan(
        self,
        model: ModelSpec,
        quantization: Quantization,
        instance: InstanceSpec,
        max_total_tokens: int,
        *,
        gpu_memory_utilization: float | None = None,
    ) -> MemoryPlan:
        """The fit check under this engine's memory rule (:mod:`catalog.fit`)."""
        return MemoryPlan(model, quantization, instance, max_total_tokens, self.name, gpu_memory_utilization)


# CUDA 13.0 dropped Maxwell, Pascal and Volta (compute capability below 7.5): CUDA Toolkit 13.0 release notes,
# "Deprecated or Dropped Features" (https://docs.nvidia.com/cuda/archive/13.0.0/cuda-toolkit-release-notes/).
CUDA_13_MIN_COMPUTE_CAPABILITY = (7, 5)

VLLM_DOCS = "https://docs.vllm.ai/en/v0.14.0/getting_started/installation/gpu/"
# What vLLM writes while it starts and when it fails, as the endpoint's dashboard searches its log group for them:
# vllm/v1/core/kv_cache_utils.py logs the KV cache that gpu_memory_utilization left ("GPU KV cache size: %s
# tokens", then "Maximum concurrency for %s tokens per request: %.2fx"), vllm/entrypoints/openai/api_server.py
# "Starting vLLM API server %d on %s" once the engine is up (SageMaker's /ping answers from then on), and
# vllm/logger.py starts every line with its level name ("%(levelname)s %(asctime)s [%(fileinfo)s:%(lineno)d]"),
# so a failure is an "ERROR" line, or a Python "Traceback" where the process dies.
VLLM_LOG_LINES = (
    "GPU KV cache size",
    "Maximum concurrency for",
    "Starting vLLM API server",
    "ERROR",
    "Traceback",
)
ENGINES: MappingProxyType[str, Engine] = MappingProxyType(
    {
        "tgi": Engine(
            name="tgi",
            display_name="TGI",
            image_family=images.IMAGE_FAMILIES["tgi"],
            payloads=(PAYLOAD_TGI, PAYLOAD_OPENAI_CHAT),
            min_compute_capability=None,
            quantizations=MappingProxyType(
                {
                    "fp16": QuantizationSupport("fp16", None, None, "the 2023 benchmark tables"),
                    "gptq": QuantizationSupport("gptq", "gptq", None, "HF_MODEL_QUANTIZE=gptq, the 2023 tables"),
                }
            ),
            sources=(
                "https://huggingface.co/docs/text-generation-inference/reference/launcher",
                "huggingface/text-generation-inference router/src/sagemaker.rs (/invocations: generate, chat)",
            ),
        ),
        "vllm": Engine(
            name="vllm",
            display_name="vLLM",
            image_family=images.IMAGE_FAMILIES["vllm"],
            payloads=(PAYLOAD_OPENAI_CHAT,),
            # "GPU: compute capability 7.0 or higher" (vLLM's GPU installation requirements).
            min_compute_capability=(7, 0),
            quantizations=MappingProxyType(
                {
                    "fp16": QuantizationSupport("fp16", None, None, VLLM_DOCS),
                    # GPTQConfig.get_min_capability() is 60 (vllm/model_executor/layers/quantization/gptq.py); its
                    # kernels take fp16 activations only (get_supported_act_dtypes), hence --dtype float16.
                    # --quantization gptq pins those kernels; left unset, vLLM reads the checkpoint's
                    # quantization_config and upgrades to gptq_marlin where the GPU has compute capability 8.0
                    # (gptq_marlin.py), as A10G and A100 do.
                    "gptq": QuantizationSupport(
                        "gptq", "gptq", (6, 0), "vllm/model_executor/layers/quantization/gptq.py GPTQConfig"
                    ),
                }
            ),
            sources=(
                "aws/deep-learning-containers huggingface/vllm/build_artifacts/sagemaker_entrypoint.sh",
                "https://aws.github.io/deep-learning-containers/vllm/configuration/",
                "https://aws.github.io/deep-learning-containers/vllm/deployment/sagemaker/",
                "vllm-project/vllm examples/online_serving/sagemaker-entrypoint.sh",
                "vllm-project/vllm vllm/entrypoints/sagemaker/api_router.py (/invocations)",
                VLLM_DOCS,
            ),
            log_lines=VLLM_LOG_LINES,
        ),
    }
)
ENGINE_NAMES = tuple(ENGINES)
DEFAULT_ENGINE = "tgi"


def get_engine(name: str, *, field: str = "engine") -> Engine:
    key = str(name).strip().lower()
    if key not in ENGINES:
        raise unknown(field, name, ENGINES)
    return ENGINES[key]


@dataclass(frozen=True, kw_only=True)
class ServingLimits:
    """What one endpoint's container is told, in the deployment's own terms (``DeploymentConfig`` field names).

    ``version`` is the engine's image version (or alias); ``None`` takes the engine's default.
    """

    model: ModelSpec
    quantization: Quantization
    instance: InstanceSpec
    version: str | None = None
    max_input_tokens: int = 2048
    max_total_tokens: int = 4096
    max_batch_prefill_tokens: int = 4096
    max_concurrent_requests: int = 128
    max_batch_total_tokens: int | None = None  # TGI only: left to TGI's warm-up unless set
    gpu_memory_utilization: float | None = None  # vLLM only: None takes vLLM's default, 0.9
    served_model_name: str = SERVED_MODEL_NAME  # vLLM only


_POSITIVE = ("max_input_tokens", "max_total_tokens", "max_batch_prefill_tokens", "max_concurrent_requests")
_TGI_ONLY = ("max_batch_total_tokens",)
_VLLM_ONLY = ("gpu_memory_utilization",)


def engine_issues(engine: str, limits: ServingLimits) -> list[Issue]:
    """Every reason ``engine`` cannot serve ``limits`` (empty when it can): fields, image, GPU and memory."""
    try:
        spec = get_engine(engine)
    except ConfigError as err:
        return list(err.issues)
    found: list[Issue] = []
    for name in _POSITIVE:
        value = getattr(limits, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            found.append(Issue(name, value, "must be a whole number of 1 or more"))
    if found:
        return found
    try:
        version = spec.resolve_version(limits.version)
    except ConfigError as err:
        return list(err.issues)
    for name in _VLLM_ONLY if spec.name == "tgi" else _TGI_ONLY:
        value = getattr(limits, name)
        if value is not None:
            other = "vLLM" if spec.name == "tgi" else "TGI"
            found.append(Issue(name, value, f"is a {other} setting; leave it unset for {spec.display_name}"))
    if limits.max_input_tokens >= limits.max_total_tokens:
        allowed = f"must be less than max_total_tokens ({limits.max_total_tokens}): the answer needs room"
        found.append(Issue("max_input_tokens", limits.max_input_tokens, allowed))
    if spec.name == "vllm":
        found += _vllm_issues(limits)
    found += spec.support_issues(limits.quantization, limits.instance, version)
    if not found:
        plan = spec.memory_plan(
            limits.model,
            limits.quantization,
            limits.instance,
            limits.max_total_tokens,
            gpu_memory_utilization=limits.gpu_memory_utilization,
        )
        found += plan.issues()
    return found


def _vllm_issues(limits: ServingLimits) -> list[Issue]:
    found = []
    utilization = limits.gpu_memory_utilization
    if utilization is not None and not (isinstance(utilization, (int, float)) and 0 < utilization <= 1):
        found.append(Issue("gpu_memory_utilization", utilization, "must be a fraction in (0, 1]"))
    # vllm/config/scheduler.py: "max_num_batched_tokens (...) must be greater than or equal to max_num_seqs (...)".
    if limits.max_batch_prefill_tokens < limits.max_concurrent_requests:
        allowed = (
            f"must be at least max_concurrent_requests ({limits.max_concurrent_requests}): vLLM refuses "
            "max_num_batched_tokens below max_num_seqs"
        )
        found.append(Issue("max_batch_prefill_tokens", limits.max_batch_prefill_tokens, allowed))
    # vllm/config/model.py _get_and_verify_max_len: a max_model_len above the model's own is refused.
    if limits.max_total_tokens > limits.model.context_length:
        allowed = (
            f"must be at most {limits.model.context_length}, {limits.model.display_name}'s max_position_embeddings:"
            " vLLM refuses a larger max_model_len"
        )
        found.append(Issue("max_total_tokens", limits.max_total_tokens, allowed))
    name = limits.served_model_name
    if not name or not name.strip() or any(c.isspace() for c in name):
        found.append(Issue("served_model_name", name, "must be a non-empty name without spaces"))
    return found


def engine_environment(engine: str, limits: ServingLimits) -> dict[str, str]:
    """The container environment of one deployment on ``engine``; ConfigError (every issue) when it cannot serve.

    TGI (the launcher's environment variables): ``HF_MODEL_ID`` the weights' folder, ``SM_NUM_GPUS`` the GPUs,
    ``MAX_INPUT_TOKENS`` (``MAX_INPUT_LENGTH`` before 2.0), ``MAX_TOTAL_TOKENS``, ``MAX_BATCH_PREFILL_TOKENS``,
    ``MAX_CONCURRENT_REQUESTS``, ``HF_MODEL_QUANTIZE`` when quantized, ``MAX_BATCH_TOTAL_TOKENS`` when set.

    vLLM (``SM_VLLM_*`` -> ``vllm serve`` flags, see the module docstring):

    ======================================  ============================================================
    ``SM_VLLM_MODEL``                       ``/opt/ml/model``, the weights SageMaker staged from S3
    ``SM_VLLM_SERVED_MODEL_NAME``           ``served_model_name``: the ``model`` requests must carry
    ``SM_VLLM_TENSOR_PARALLEL_SIZE``        the instance's GPUs (TGI: ``SM_NUM_GPUS``)
    ``SM_VLLM_MAX_MODEL_LEN``               ``max_total_tokens``: prompt + answer (TGI: ``MAX_TOTAL_TOKENS``)
    ``SM_VLLM_MAX_NUM_SEQS``                ``max_concurrent_requests``; vLLM queues what is beyond it where
                                            TGI refuses it with 429
    ``SM_VLLM_MAX_NUM_BATCHED_TOKENS``      ``max_batch_prefill_tokens``: tokens per scheduler step, the
                                            prefill chunk (TGI: ``MAX_BATCH_PREFILL_TOKENS``)
    ``SM_VLLM_GPU_MEMORY_UTILIZATION``      ``gpu_memory_utilization`` (default 0.9): the share of each GPU
                                            vLLM reserves, the KV cache filling what the rest leaves
    ``SM_VLLM_DTYPE``                       ``float16``: Llama 2's dtype, and the only one GPTQ kernels take
    ``SM_VLLM_QUANTIZATION``                ``gptq`` for GPTQ weights; absent for fp16
    ``SM_VLLM_HOST``                        ``0.0.0.0``: every interface, where SageMaker reaches the server
    ======================================  ============================================================

    Never set: ``SM_VLLM_PORT`` (the entrypoint's own ``--port 8080`` is what SageMaker calls; a second
    ``--port`` would win), boolean flags (the entrypoint would pass ``true`` as a value), and anything for
    ``max_input_tokens``: vLLM has no separate prompt cap, a prompt and its ``max_tokens`` must fit in
    ``max_model_len``. ``max_batch_total_tokens`` has no vLLM counterpart (vLLM sizes its KV cache from
    ``gpu_memory_utilization``) and is refused.
    """
    issues = engine_issues(engine, limits)
    if issues:
        raise ConfigError(issues, context=f"{engine} container")
    spec = get_engine(engine)
    version = spec.resolve_version(limits.version)
    support = spec.quantizations[limits.quantization.name]
    gpus = str(limits.instance.gpu_count)
    if spec.name == "tgi":
        env = {
            "HF_MODEL_ID": MODEL_DIR,
            "SM_NUM_GPUS": gpus,
            max_input_env_name(version): str(limits.max_input_tokens),
            "MAX_TOTAL_TOKENS": str(limits.max_total_tokens),
            "MAX_BATCH_PREFILL_TOKENS": str(limits.max_batch_prefill_tokens),
            "MAX_CONCURRENT_REQUESTS": str(limits.max_concurrent_requests),
        }
        if support.engine_value:
            env["HF_MODEL_QUANTIZE"] = support.engine_value
        if limits.max_batch_total_tokens is not None:
            env["MAX_BATCH_TOTAL_TOKENS"] = str(limits.max_batch_total_tokens)
        return env
    utilization = limits.gpu_memory_utilization
    utilization = VLLM_DEFAULT_GPU_MEMORY_UTILIZATION if utilization is None else utilization
    env = {
        "SM_VLLM_MODEL": MODEL_DIR,
        "SM_VLLM_SERVED_MODEL_NAME": limits.served_model_name,
        "SM_VLLM_TENSOR_PARALLEL_SIZE": gpus,
        "SM_VLLM_MAX_MODEL_LEN": str(limits.max_total_tokens),
        "SM_VLLM_MAX_NUM_SEQS": str(limits.max_concurrent_requests),
        "SM_VLLM_MAX_NUM_BATCHED_TOKENS": str(limits.max_batch_prefill_tokens),
        "SM_VLLM_GPU_MEMORY_UTILIZATION": f"{utilization:g}",
        "SM_VLLM_DTYPE": "float16",
        "SM_VLLM_HOST": "0.0.0.0",
    }
    if support.engine_value:
        env["SM_VLLM_QUANTIZATION"] = support.engine_value
    return env
