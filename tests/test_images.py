"""Each engine's container images, vendored from the SageMaker SDK: the SDK's tables and its own tag function
(``sagemaker/core/image_uris.py``) and the tags Hugging Face publishes are the oracles.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import ConfigError
from catalog.images import IMAGE_FAMILIES, ImageFamily, get_image, render_table, resolve_version, vendor_table

SDK = distribution("sagemaker-core")
FAMILIES = [pytest.param(family, id=name) for name, family in IMAGE_FAMILIES.items()]
ISOLATED = ("us-iso", "eu-isoe", "eusc-")


def sdk_table(family: ImageFamily) -> dict[str, Any]:
    table: dict[str, Any] = json.loads(Path(str(SDK.locate_file(family.sdk_json_member))).read_text())
    return table


def sdk_function(name: str) -> Callable[..., Any]:
    """A function of the SDK's ``image_uris`` module, compiled from its installed source (the module itself imports
    dependencies installed without); the SDK's code, not ours, assembles the expected tags."""
    path = Path(str(SDK.locate_file("sagemaker/core/image_uris.py")))
    tree = ast.parse(path.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    function: Callable[..., Any] = namespace[name]
    return function


@pytest.mark.parametrize("family", FAMILIES)
def test_each_vendored_table_is_the_sdk_table_as_refresh_writes_it(family: ImageFamily) -> None:
    expected = vendor_table(sdk_table(family), source=f"sagemaker-core {SDK.version} {family.sdk_json_member}")
    assert family.vendored_path.read_text() == render_table(expected)  # what `refresh_images.py --check` compares


@pytest.mark.parametrize("family", FAMILIES)
def test_each_vendored_tag_is_the_one_the_sdk_assembles(family: ImageFamily) -> None:
    format_tag = sdk_function("_format_tag")
    inference = sdk_table(family)["inference"]
    vendored = json.loads(family.vendored_path.read_text())
    assert set(vendored["versions"]) == set(inference["versions"]) and vendored["versions"]
    assert inference["processors"] == ["gpu"]
    for version, entry in inference["versions"].items():
        (py_version,) = entry["py_versions"]
        processor = "gpu" if entry.get("processor_in_tag", True) else None
        tag = format_tag(entry["tag_prefix"], processor, py_version, entry["container_version"]["gpu"])
        image = get_image(family.engine, version)
        assert (image.repository, image.tag) == (entry["repository"], tag), version
        kept = {r: a for r, a in entry["registries"].items() if not r.startswith(ISOLATED)}
        assert image.registries == kept


def test_the_vllm_image_is_hugging_faces_curated_one() -> None:
    # huggingface/hub-docs docs/sagemaker/source/dlcs/available.md lists this URI for vLLM 0.21.0.
    assert get_image("vllm", "0.21").uri("us-west-2") == (
        "763104351884.dkr.ecr.us-west-2.amazonaws.com/huggingface-vllm:0.21.0-transformers5.8.1-gpu-py312-cu130-ubuntu22.04"
    )
    default = get_image("vllm")
    assert default.version == IMAGE_FAMILIES["vllm"].default_version == "0.29.0"
    assert default.tag == "0.29.0-transformers5.15.0-gpu-py312-cu130-ubuntu24.04-v1.0"
    assert default.cuda_version == (13, 0)
    assert get_image("vllm", "0.17.0").cuda_version == (12, 9)
    assert get_image("tgi", "3.3.6").cuda_version == (12, 4)


def test_the_vllm_image_follows_the_same_region_rule() -> None:
    image = get_image("vllm")
    assert image.uri("cn-north-1").startswith("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/huggingface-vllm:")
    assert image.account("af-south-1") == "626614931356"
    assert image.repository_arn("us-gov-west-1") == (
        "arn:aws-us-gov:ecr:us-gov-west-1:442386744353:repository/huggingface-vllm"
    )
    with pytest.raises(ConfigError, match=r"region='us-iso-east-1': has no vLLM 0\.29\.0 image; regions with one: "):
        image.uri("us-iso-east-1")


def test_vllm_versions_resolve_and_unknown_ones_name_the_field() -> None:
    assert resolve_version("vllm", "0.22") == "0.22.1"
    with pytest.raises(ConfigError) as err:
        resolve_version("vllm", "0.30")
    ((issue),) = err.value.issues
    assert (issue.field, issue.value) == ("vllm_version", "0.30")
    assert "0.14.0" in issue.allowed and "0.29.0" in issue.allowed
    with pytest.raises(ConfigError, match=r"engine='sglang': must be one of tgi, vllm"):
        get_image("sglang")
