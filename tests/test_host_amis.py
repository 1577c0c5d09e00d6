"""The host AMI each container image needs (catalog.hosts), held to SageMaker's own list of AMIs.

The oracle is the SageMaker API model botocore ships: the enum of ``ProductionVariantInferenceAmiVersion`` and the
documentation of ``ProductionVariant.InferenceAmiVersion``, which gives each AMI's NVIDIA driver and CUDA version.
"""

from __future__ import annotations

import re
from dataclasses import replace

import botocore.session
import pytest
from botocore.model import StringShape, StructureShape

from catalog import images
from catalog.hosts import DEFAULT_HOST_CUDA, GPU_AMIS, host_issues, inference_ami

_SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
_VARIANT = _SAGEMAKER.shape_for("ProductionVariant")
assert isinstance(_VARIANT, StructureShape)
_DOC = _VARIANT.members["InferenceAmiVersion"].documentation


def ami_names() -> list[str]:
    """Every value SageMaker accepts as ``InferenceAmiVersion``."""
    shape = _SAGEMAKER.shape_for("ProductionVariantInferenceAmiVersion")
    assert isinstance(shape, StringShape)
    return list(shape.enum)


def documented(name: str) -> tuple[int, tuple[int, int]]:
    """(driver major version, CUDA version) of one AMI, as the API documentation lists them."""
    (entry,) = re.findall(rf"<dt>{re.escape(name)}</dt>\s*<dd>(.*?)</dd>", _DOC, flags=re.S)
    driver = re.search(r"NVIDIA driver version: (\d+)", entry)
    cuda = re.search(r"CUDA (?:driver )?version: (\d+)\.(\d+)", entry)
    assert driver and cuda, entry
    return int(driver.group(1)), (int(cuda.group(1)), int(cuda.group(2)))


def test_every_gpu_ami_of_sagemaker_is_in_the_table_with_its_driver_and_cuda() -> None:
    assert {name for name in ami_names() if "-gpu-" in name} == set(GPU_AMIS)
    for name, ami in GPU_AMIS.items():
        assert documented(name) == (ami.nvidia_driver, ami.cuda), name


@pytest.mark.parametrize("engine", ["tgi", "vllm"])
def test_every_image_gets_a_host_whose_cuda_is_at_least_its_own(engine: str) -> None:
    for version in images.known_versions(engine):
        image = images.get_image(engine, version)
        cuda = image.cuda_version
        assert cuda is not None, image.tag
        ami = inference_ami(image)
        if engine == "tgi":
            # Every TGI image runs on SageMaker's default host, as these stacks have always deployed them.
            assert ami is None and cuda <= DEFAULT_HOST_CUDA, image.tag
            continue
        # "the default SageMaker host AMI has incompatible NVIDIA drivers for CUDA 12.9 images" (AWS vLLM docs)
        assert cuda > DEFAULT_HOST_CUDA and ami == "al2023-ami-sagemaker-inference-gpu-4-1", image.tag
        assert documented(ami)[1] >= cuda
        assert host_issues(image, field="vllm_version", value=version) == []


def test_the_first_ami_new_enough_is_chosen_and_a_newer_cuda_is_refused() -> None:
    base = images.get_image("vllm", "0.29.0")
    between = replace(base, tag=base.tag.replace("-cu130-", "-cu125-"))
    assert inference_ami(between) == "al2023-ami-sagemaker-inference-gpu-4-1"  # 12.4 < 12.5 <= 13.0
    newer = replace(base, tag=base.tag.replace("-cu130-", "-cu131-"))
    with pytest.raises(ValueError, match=r"CUDA 13\.1"):
        inference_ami(newer)
    (issue,) = host_issues(newer, field="vllm_version", value="0.29")
    assert (issue.field, issue.value) == ("vllm_version", "0.29")
    assert "CUDA 13.1, newer than every SageMaker inference AMI" in issue.allowed
    assert "al2023-ami-sagemaker-inference-gpu-4-1" in issue.allowed
