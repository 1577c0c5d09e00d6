"""Lambda bundles are staged locally (no Docker): right content, reused when unchanged, stale ones pruned."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import aws_cdk as cdk
import botocore.session
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from botocore.model import StringShape

from llama_constructs.common.python_function import STALE_AFTER_S, PythonFunctionProps, local_runtime, stage_bundle


@pytest.fixture(scope="module")
def props() -> PythonFunctionProps:
    stack = cdk.Stack(cdk.App(), "BundleTest")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[])
    return PythonFunctionProps(
        name="janitor",
        description="test",
        distribution=True,
        third_party=("jinja2",),
        key=kms.Key(stack, "Key"),
        vpc=vpc,
        subnets=ec2.SubnetSelection(),
        security_group=ec2.SecurityGroup(stack, "Sg", vpc=vpc),
    )


def test_bundle_holds_handler_packages_and_no_build_debris(props: PythonFunctionProps, tmp_path: Path) -> None:
    out = stage_bundle(props, build_root=tmp_path)
    assert (out / "handler.py").is_file()
    assert (out / "benchmark" / "aws" / "janitor.py").is_file()
    assert (out / "catalog" / "data" / "tgi_images.json").is_file()
    assert (out / "jinja2" / "__init__.py").is_file()
    assert not list(out.rglob("__pycache__"))
    assert not list(out.rglob("*.so"))
    assert not (out / "boto3").exists()  # the Lambda runtime provides it


def test_bundle_holds_the_benchmark_distribution_and_nothing_of_the_cdk_app(
    props: PythonFunctionProps, tmp_path: Path
) -> None:
    out = stage_bundle(props, build_root=tmp_path)
    assert (out / "benchmark" / "matrices" / "2023.yaml").is_file()
    assert (out / "benchmark" / "report" / "templates" / "report.html.j2").is_file()
    assert not (out / "benchmark" / "README.md").exists()  # not in the wheel either
    for app_side in ("settings", "stacks", "llama_constructs", "constructs", "app.py"):
        assert not (out / app_side).exists(), app_side


def test_same_sources_reuse_the_bundle_and_stale_ones_are_pruned(props: PythonFunctionProps, tmp_path: Path) -> None:
    old = tmp_path / "janitor-0000000000000000"
    recent = tmp_path / "janitor-1111111111111111"
    other = tmp_path / "loadtest-0000000000000000"
    for folder in (old, recent, other):
        folder.mkdir()
    long_ago = time.time() - STALE_AFTER_S - 60
    for folder in (old, other):
        os.utime(folder, (long_ago, long_ago))
    first = stage_bundle(props, build_root=tmp_path)
    assert stage_bundle(props, build_root=tmp_path) == first
    assert not old.exists(), "a stale bundle of the same function is removed"
    assert recent.exists(), "a recent one may be in use by a parallel synth"
    assert other.exists(), "other functions' bundles are left alone"


# The Python versions the README says synth is tested on; each must map to a runtime Lambda accepts.
README_TESTED_PYTHONS = ((3, 11), (3, 12), (3, 13))


@pytest.mark.parametrize("version", README_TESTED_PYTHONS, ids=lambda v: f"{v[0]}.{v[1]}")
def test_every_tested_python_maps_to_a_runtime_lambda_accepts(version: tuple[int, int]) -> None:
    # botocore's Lambda service model lists the runtime identifiers CreateFunction accepts.
    shape = botocore.session.get_session().get_service_model("lambda").shape_for("Runtime")
    assert isinstance(shape, StringShape)
    accepted = shape.enum
    runtime = local_runtime(version)
    assert runtime.name == f"python{version[0]}.{version[1]}"
    assert runtime.name in accepted


def test_the_running_interpreter_has_a_runtime_and_an_unknown_one_is_refused_with_the_choices() -> None:
    assert local_runtime().name == f"python{sys.version_info.major}.{sys.version_info.minor}"
    with pytest.raises(RuntimeError, match=r"Python 3\.10 has no Lambda runtime.*3\.11, 3\.12, 3\.13"):
        local_runtime((3, 10))


def test_the_readme_names_the_tested_pythons() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    tested = ", ".join(f"{major}.{minor}" for major, minor in README_TESTED_PYTHONS)
    assert f"Tested on Python {tested}" in readme
