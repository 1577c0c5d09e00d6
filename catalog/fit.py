"""Does a model fit an instance, and how fast could it possibly decode there?

Both come from the same arithmetic: TGI shards the weights over every GPU of the instance (tensor
parallel), and each decode step must read every byte of its shard once.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.errors import Issue
from catalog.instances import InstanceSpec
from catalog.models import GB, ModelSpec, Quantization

# Share of nominal GPU memory TGI can use after the CUDA context and allocator reserve (measured ~1.9 GB on A10G).
USABLE_MEMORY_FRACTION = 0.92


@dataclass(frozen=True)
class MemoryPlan:
    model: ModelSpec
    quantization: Quantization
    instance: InstanceSpec
    max_total_tokens: int

    @property
    def weight_bytes(self) -> float:
        return self.quantization.weight_bytes(self.model)

    @property
    def weight_bytes_per_gpu(self) -> float:
        return self.weight_bytes / self.instance.gpu_count

    @property
    def kv_bytes_per_gpu_one_sequence(self) -> float:
        """KV cache for a single request at max_total_tokens: the least TGI needs beside the weights."""
        return self.model.kv_cache_bytes_per_token * self.max_total_tokens / self.instance.gpu_count

    @property
    def usable_bytes_per_gpu(self) -> float:
        return self.instance.gpu.memory_bytes * USABLE_MEMORY_FRACTION

    @property
    def required_bytes_per_gpu(self) -> float:
        return self.weight_bytes_per_gpu + self.kv_bytes_per_gpu_one_sequence

    @property
    def fits(self) -> bool:
        return self.required_bytes_per_gpu <= self.usable_bytes_per_gpu

    @property
    def shards_evenly(self) -> bool:
        """TGI splits attention heads (and KV heads) across GPUs; they must divide evenly."""
        n = self.instance.gpu_count
        return self.model.attention_heads % n == 0 and self.model.kv_heads % n == 0

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
        return (
            f"{self.model.display_name} {self.quantization.name} needs {self.weight_bytes / GB:.1f} GB of weights "
            f"({self.weight_bytes_per_gpu / GB:.1f} GB per GPU over "
            f"{self.instance.gpu_count} x {self.instance.gpu.name}) "
            f"plus {self.kv_bytes_per_gpu_one_sequence / GB:.1f} GB KV cache for one {self.max_total_tokens}-token "
            f"sequence, but each GPU has {self.usable_bytes_per_gpu / GB:.1f} GB usable"
        )


def bandwidth_bound_ms_per_token(model: ModelSpec, quantization: Quantization, instance: InstanceSpec) -> float:
    """Lower bound on decode time per token: bytes of weights each GPU holds / that GPU's memory bandwidth."""
    per_gpu = quantization.weight_bytes(model) / instance.gpu_count
    return per_gpu / instance.gpu.bandwidth_bytes_per_s * 1000.0
