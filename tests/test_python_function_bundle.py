"""Lambda bundles are staged locally (no Docker): right content, reused when unchanged, stale ones pruned."""

from __future__ import annotations

import os
import time
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms

from constructs.python_function import STALE_AFTER_S, PythonFunctionProps, stage_bundle


@pytest.fixture(scope="module")
def props() -> PythonFunctionProps:
    stack = cdk.Stack(cdk.App(), "BundleTest")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[])
    return PythonFunctionProps(
        name="janitor",
        description="test",
        project_packages=("benchmark", "catalog"),
        third_party=("jinja2",),
        key=kms.Key(stack, "Key"),
        vpc=vpc,
        subnets=ec2.SubnetSelection(),
        security_group=ec2.SecurityGroup(stack, "Sg", vpc=vpc),
    )


def test_bundle_holds_handler_packages_and_no_build_debris(props: PythonFunctionProps, tmp_path: Path) -> None:
    out = stage_bundle(props, build_root=tmp_path)
    assert (out / "handler.py").is_file()
    assert (out / "benchmark" / "janitor.py").is_file()
    assert (out / "catalog" / "data" / "tgi_images.json").is_file()
    assert (out / "jinja2" / "__init__.py").is_file()
    assert not list(out.rglob("__pycache__"))
    assert not list(out.rglob("*.so"))
    assert not (out / "boto3").exists()  # the Lambda runtime provides it


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
