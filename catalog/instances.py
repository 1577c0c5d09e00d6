"""SageMaker GPU instances in scope: GPUs, their memory and bandwidth, local NVMe.

Sources: AWS instance type pages for G5 and P4d, NVIDIA A10G and A100 data sheets; compute capabilities from
NVIDIA's table of CUDA GPUs (https://developer.nvidia.com/cuda-gpus: A10G 8.6 like the A10, A100 8.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from catalog.errors import unknown
from catalog.models import GB


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_bytes: float
    bandwidth_bytes_per_s: float
    compute_capability: tuple[int, int]  # (major, minor): what kernels and CUDA toolkits can run on it


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    gpu: GpuSpec
    gpu_count: int
    vcpus: int
    memory_gib: int
    local_nvme_gb: int  # 0 when the instance has no instance store

    @property
    def has_local_nvme(self) -> bool:
        """SageMaker rejects VolumeSizeInGB and an endpoint-config KmsKeyId on these instances."""
        return self.local_nvme_gb > 0


A10G = GpuSpec("NVIDIA A10G", 24 * GB, 600 * GB, (8, 6))
A100_40GB = GpuSpec("NVIDIA A100 40GB", 40 * GB, 1555 * GB, (8, 0))

INSTANCES: MappingProxyType[str, InstanceSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            InstanceSpec("ml.g5.2xlarge", A10G, 1, 8, 32, 450),
            InstanceSpec("ml.g5.4xlarge", A10G, 1, 16, 64, 600),
            InstanceSpec("ml.g5.12xlarge", A10G, 4, 48, 192, 3800),
            InstanceSpec("ml.g5.48xlarge", A10G, 8, 192, 768, 7600),
            InstanceSpec("ml.p4d.24xlarge", A100_40GB, 8, 96, 1152, 8000),
        )
    }
)


def get_instance(name: str, *, field: str = "instance_type") -> InstanceSpec:
    key = str(name).strip()
    if not key.startswith("ml.") and f"ml.{key}" in INSTANCES:
        key = f"ml.{key}"  # the seed's tables write "g5.2xlarge"
    if key not in INSTANCES:
        raise unknown(field, name, INSTANCES)
    return INSTANCES[key]
