"""Which SageMaker inference AMI (the host's NVIDIA driver) a container image needs.

An endpoint's instances run SageMaker's default host image unless the production variant names an
``InferenceAmiVersion``. Every TGI image of ``data/tgi_images.json`` is built on CUDA 11.8 to 12.4 and runs on the
default host, as these stacks have always deployed them without one. The vLLM images are built on CUDA 12.9 and 13.0,
and the AWS vLLM container documentation says: "GPU deployments require ``inference_ami_version`` — the default
SageMaker host AMI has incompatible NVIDIA drivers for CUDA 12.9 images" (aws/deep-learning-containers
``docs/vllm/deployment/sagemaker.md``, "Notes"; the Hugging Face vLLM image is built on that container).

The AMIs, with the driver and the CUDA version each carries, are SageMaker's own list: the documentation of
``ProductionVariant.InferenceAmiVersion`` in the SageMaker API model (botocore ``data/sagemaker/2017-07-24/
service-2.json``; a test holds this table to it, and to its enum). An image gets the first GPU AMI whose CUDA
version is at least the image's; an image newer than every AMI is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from catalog.errors import Issue
from catalog.images import ContainerImage

# The newest CUDA of an image known to run on SageMaker's default host: TGI 2.3.1 to 3.3.6 (cu124).
DEFAULT_HOST_CUDA = (12, 4)


@dataclass(frozen=True)
class InferenceAmi:
    name: str
    nvidia_driver: int  # the driver's major version
    cuda: tuple[int, int]  # the newest CUDA version the driver supports


GPU_AMIS: MappingProxyType[str, InferenceAmi] = MappingProxyType(
    {
        ami.name: ami
        for ami in (
            InferenceAmi("al2-ami-sagemaker-inference-gpu-2", 535, (12, 2)),
            InferenceAmi("al2-ami-sagemaker-inference-gpu-2-1", 535, (12, 2)),
            InferenceAmi("al2-ami-sagemaker-inference-gpu-3-1", 550, (12, 4)),
            InferenceAmi("al2023-ami-sagemaker-inference-gpu-4-1", 580, (13, 0)),
        )
    }
)


def inference_ami(image: ContainerImage) -> str | None:
    """The ``InferenceAmiVersion`` ``image`` needs; None for SageMaker's default host (ValueError: none fits)."""
    cuda = image.cuda_version
    if cuda is None or cuda <= DEFAULT_HOST_CUDA:
        return None
    for ami in sorted(GPU_AMIS.values(), key=lambda a: (a.cuda, a.nvidia_driver)):
        if ami.cuda >= cuda:
            return ami.name
    raise ValueError(f"no SageMaker inference AMI supports CUDA {cuda[0]}.{cuda[1]}")


def host_issues(image: ContainerImage, *, field: str, value: object) -> list[Issue]:
    """Why no SageMaker host can run ``image`` (empty when one can)."""
    try:
        inference_ami(image)
    except ValueError:
        cuda = image.cuda_version or (0, 0)
        newest = max(GPU_AMIS.values(), key=lambda a: a.cuda)
        allowed = (
            f"the {image.tag} image is built on CUDA {cuda[0]}.{cuda[1]}, newer than every SageMaker inference AMI "
            f"(the newest, {newest.name}, has NVIDIA driver {newest.nvidia_driver}, CUDA "
            f"{newest.cuda[0]}.{newest.cuda[1]})"
        )
        return [Issue(field, value, allowed)]
    return []
