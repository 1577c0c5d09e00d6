"""How close a deployment decodes to the memory-bandwidth limit of its GPUs.

Each decode step reads every weight once, so ms/token cannot beat weights per GPU / GPU bandwidth
(tensor parallel over all of the instance's GPUs; ``catalog.fit``). Efficiency = bound / measured
median ms/token: near 1 means the hardware is the limit, well below 1 means software or batching is.
The bound ignores KV-cache reads and communication, so it is a lower bound, not a prediction. A result
measured without an instance type (``run --url`` alone) has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.analysis.configuration import BenchmarkConfiguration
from catalog import bandwidth_bound_ms_per_token
from catalog.models import GB


@dataclass(frozen=True)
class Headroom:
    bound_ms_per_token: float
    weights_gb_per_gpu: float
    gpu: str
    gpu_count: int
    gpu_bandwidth_gb_per_s: float
    measured_ms_per_token_median: float | None = None
    efficiency: float | None = None  # bound / measured median; None without a measurement


def headroom(configuration: BenchmarkConfiguration, measured_ms_per_token_median: float | None) -> Headroom | None:
    """None without an instance type: no GPU, so no bound to compare with."""
    if not configuration.has_instance:
        return None
    model, quant, instance = configuration.model_spec, configuration.quantization_spec, configuration.instance
    bound = bandwidth_bound_ms_per_token(model, quant, instance)
    measured = measured_ms_per_token_median
    return Headroom(
        bound_ms_per_token=bound,
        weights_gb_per_gpu=quant.weight_bytes(model) / instance.gpu_count / GB,
        gpu=instance.gpu.name,
        gpu_count=instance.gpu_count,
        gpu_bandwidth_gb_per_s=instance.gpu.bandwidth_bytes_per_s / GB,
        measured_ms_per_token_median=measured,
        efficiency=bound / measured if measured is not None and measured > 0 else None,
    )
