"""Does a model fit an instance, and how fast could it possibly decode there?

Both come from the same arithmetic: the engine shards the weights over every GPU of the instance (tensor
parallel), and each decode step must read every byte of its shard once.

Each engine has its own memory rule (:class:`MemoryPlan`, ``engine``):

``tgi``
    The usable share of each GPU is :data:`USABLE_MEMORY_FRACTION` of its memory; the weights' shard and the
    KV cache of one ``max_total_tokens`` sequence must fit in it.

``vllm``
    vLLM reserves ``gpu_memory_utilization`` of each GPU's memory for itself, profiles a forward pass, and hands
    what the weights, the activation peak, memory outside PyTorch (CUDA context, NCCL) and the CUDA graphs leave
    of that reservation to the KV cache (``vllm/v1/worker/gpu_worker.py`` ``determine_available_memory``:
    ``available_kv_cache_memory_bytes = requested_memory - non_kv_cache_memory - cudagraph_memory_estimate``,
    with ``requested_memory`` = total GPU memory x ``gpu_memory_utilization``, ``vllm/utils/mem_utils.py``).
    It then refuses to start unless that KV cache holds one whole ``max_model_len`` sequence
    (``vllm/v1/core/kv_cache_utils.py`` ``check_enough_kv_cache_memory``: "To serve at least one request with
    the models's max seq len (...), (... GiB KV cache is needed, which is larger than the available KV cache
    memory"; before the V1 engine, ``vllm/worker/worker.py`` ``raise_if_cache_size_invalid``: "The model's max
    seq len (...) is larger than the maximum number of tokens that can be stored in KV cache (...)"). The KV
    cache is allocated in blocks of :data:`VLLM_BLOCK_SIZE` tokens, and the block pool holds one block back for
    good (the null block, which the newest check subtracts first). So here:

    - usable per GPU = ``gpu_memory_utilization`` x GPU memory - :data:`VLLM_NON_KV_OVERHEAD_BYTES`;
    - required per GPU = weights' shard + (ceil(``max_total_tokens`` / 16) + 1) blocks of KV cache.

    The overhead is an allowance, not a measurement: vLLM's own start-up log puts it at 0.3 to 2.5 GiB per GPU
    (activation peak 0.2 to 1.4 GiB, memory outside PyTorch 0.05 GiB on one GPU and up to 2.1 GiB with several
    workers), and the CUDA graphs add a few hundred MiB. 2 GiB also covers the gap between the nominal memory
    used here and the total CUDA reports (a 24 GB A10 reports 22.07 GiB, 1.3 % less), which vLLM multiplies.
    Calibrate it from the log of a real start (``overhead_bytes_per_gpu``) where the margin matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from catalog.errors import ConfigError, Issue
from catalog.instances import InstanceSpec
from catalog.models import GB, ModelSpec, Quantization

GIB = 1 << 30
# Share of nominal GPU memory TGI can use after the CUDA context and allocator reserve (measured ~1.9 GB on A10G).
USABLE_MEMORY_FRACTION = 0.92
MEMORY_RULES = ("tgi", "vllm")
# vLLM's defaults: CacheConfig.gpu_memory_utilization 0.9 and block_size 16 on CUDA (vllm/config/cache.py).
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
VLLM_BLOCK_SIZE = 16
VLLM_NULL_BLOCKS = 1  # BlockPool's null block, never handed to a request
VLLM_NON_KV_OVERHEAD_BYTES = 2 * GIB  # activation peak + non-torch memory + CUDA graphs, per GPU (see above)


@dataclass(frozen=True)
class MemoryPlan:
    model: ModelSpec
    quantization: Quantization
    instance: InstanceSpec
    max_total_tokens: int  # TGI's MAX_TOTAL_TOKENS, vLLM's max_model_len
    engine: str = "tgi"
    gpu_memory_utilization: float | None = None  # vLLM only; None: vLLM's default 0.9
    overhead_bytes_per_gpu: float | None = None  # vLLM only; None: VLLM_NON_KV_OVERHEAD_BYTES

    def __post_init__(self) -> None:
        issues = []
        if self.engine not in MEMORY_RULES:
            issues.append(Issue("engine", self.engine, f"must be one of {', '.join(MEMORY_RULES)}"))
        vllm_only = {"gpu_memory_utilization": self.gpu_memory_utilization}
        vllm_only["overhead_bytes_per_gpu"] = self.overhead_bytes_per_gpu
        for name, value in vllm_only.items():
            if value is not None and self.engine != "vllm":
                issues.append(Issue(name, value, f"is a vLLM setting; engine {self.engine!r} takes none"))
        utilization = self.gpu_memory_utilization
        if utilization is not None and not 0 < utilization <= 1:
            issues.append(Issue("gpu_memory_utilization", utilization, "must be a fraction in (0, 1]"))
        if self.overhead_bytes_per_gpu is not None and self.overhead_bytes_per_gpu < 0:
            issues.append(Issue("overhead_bytes_per_gpu", self.overhead_bytes_per_gpu, "must be 0 or more bytes"))
        if issues:
            raise ConfigError(issues, context="memory plan")

    @property
    def weight_bytes(self) -> float:
        return self.quantization.weight_bytes(self.model)

    @property
    def weight_bytes_per_gpu(self) -> float:
        return self.weight_bytes / self.instance.gpu_count

    @property
    def kv_heads_per_gpu(self) -> float:
        """TGI splits the KV heads; vLLM too, and replicates them where there are fewer than GPUs."""
        n = self.instance.gpu_count
        if self.engine == "vllm":
            return max(1, self.model.kv_heads // n)
        return self.model.kv_heads / n

    @property
    def kv_bytes_per_token_per_gpu(self) -> float:
        return self.model.kv_cache_bytes_per_token * self.kv_heads_per_gpu / self.model.kv_heads

    @property
    def kv_blocks_one_sequence(self) -> int:
        """vLLM: the blocks one ``max_total_tokens`` sequence takes, plus the null block the pool holds back."""
        return math.ceil(self.max_total_tokens / VLLM_BLOCK_SIZE) + VLLM_NULL_BLOCKS

    @property
    def kv_bytes_per_gpu_one_sequence(self) -> float:
        """KV cache for a single request at max_total_tokens: the least the engine needs beside the weights."""
        if self.engine == "vllm":
            return self.kv_blocks_one_sequence * VLLM_BLOCK_SIZE * self.kv_bytes_per_token_per_gpu
        return self.model.kv_cache_bytes_per_token * self.max_total_tokens / self.instance.gpu_count

    @property
    def vllm_gpu_memory_utilization(self) -> float:
        return (
            VLLM_DEFAULT_GPU_MEMORY_UTILIZATION if self.gpu_memory_utilization is None else self.gpu_memory_utilization
        )

    @property
    def vllm_overhead_bytes_per_gpu(self) -> float:
        return VLLM_NON_KV_OVERHEAD_BYTES if self.overhead_bytes_per_gpu is None else self.overhead_bytes_per_gpu

    @property
    def usable_bytes_per_gpu(self) -> float:
        """What the weights and the KV cache may take of each GPU under the engine's rule."""
        if self.engine == "vllm":
            reserved = self.instance.gpu.memory_bytes * self.vllm_gpu_memory_utilization
            return reserved - self.vllm_overhead_bytes_per_gpu
        return self.instance.gpu.memory_bytes * USABLE_MEMORY_FRACTION

    @property
    def required_bytes_per_gpu(self) -> float:
        return self.weight_bytes_per_gpu + self.kv_bytes_per_gpu_one_sequence

    @property
    def fits(self) -> bool:
        return self.required_bytes_per_gpu <= self.usable_bytes_per_gpu

    @property
    def shards_evenly(self) -> bool:
        """Attention heads must divide evenly over the GPUs; KV heads too (vLLM: or the GPUs over the KV heads).

        TGI: num_heads must be divisible by num_shards. vLLM (``ModelConfig.verify_with_parallel_config``): the
        attention heads must divide by the tensor parallel size, and fewer KV heads than GPUs are replicated
        (``get_num_kv_heads``), which needs the GPUs to divide by the KV heads.
        """
        n = self.instance.gpu_count
        heads, kv_heads = self.model.attention_heads, self.model.kv_heads
        if self.engine == "vllm":
            return heads % n == 0 and (kv_heads % n == 0 or n % kv_heads == 0)
        return heads % n == 0 and kv_heads % n == 0

    def issues(self, *, field: str = "instance_type") -> list[Issue]:
        """Why this model cannot be served on this instance (empty when it can)."""
        found = []
        if not self.fits:
            found.append(Issue(field, self.instance.name, f"too small: {self.explain()}"))
        if not self.shards_evenly:
            found.append(
                Issue(
                    field,
                    self.instance.name,
                    f"{self.instance.gpu_count} GPUs do not divide {self.model.display_name}'s attention heads",
                )
            )
        return found

    def explain(self) -> str:
        weights = (
            f"{self.model.display_name} {self.quantization.name} needs {self.weight_bytes / GB:.1f} GB of weights "
            f"({self.weight_bytes_per_gpu / GB:.1f} GB per GPU over "
            f"{self.instance.gpu_count} x {self.instance.gpu.name}) "
            f"plus {self.kv_bytes_per_gpu_one_sequence / GB:.1f} GB KV cache for one {self.max_total_tokens}-token "
            "sequence"
        )
        if self.engine == "vllm":
            return (
                f"{weights} ({self.kv_blocks_one_sequence} blocks of {VLLM_BLOCK_SIZE} tokens, one held back), "
                f"but vLLM leaves each GPU {self.usable_bytes_per_gpu / GB:.1f} GB for them "
                f"(gpu_memory_utilization {self.vllm_gpu_memory_utilization:g} x "
                f"{self.instance.gpu.memory_bytes / GB:.1f} GB, less {self.vllm_overhead_bytes_per_gpu / GB:.1f} GB "
                "for activations, CUDA graphs and memory outside PyTorch): vLLM refuses to start when max_model_len "
                "is larger than the maximum number of tokens that can be stored in KV cache"
            )
        return f"{weights}, but each GPU has {self.usable_bytes_per_gpu / GB:.1f} GB usable"

    @property
    def max_tokens_that_fit(self) -> int:
        """The largest max_total_tokens (vLLM: max_model_len) this plan would still fit with; 0 when none does."""
        free = self.usable_bytes_per_gpu - self.weight_bytes_per_gpu
        per_token = self.kv_bytes_per_token_per_gpu
        if self.engine == "vllm":
            blocks = math.floor(free / (VLLM_BLOCK_SIZE * per_token)) - VLLM_NULL_BLOCKS
            return max(0, blocks * VLLM_BLOCK_SIZE)
        return max(0, math.floor(free / per_token))


def bandwidth_bound_ms_per_token(model: ModelSpec, quantization: Quantization, instance: InstanceSpec) -> float:
    """Lower bound on decode time per token: bytes of weights each GPU holds / that GPU's memory bandwidth."""
    per_gpu = quantization.weight_bytes(model) / instance.gpu_count
    return per_gpu / instance.gpu.bandwidth_bytes_per_s * 1000.0
