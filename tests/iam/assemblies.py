"""Every synthesized assembly the permission tests read: the default app (7B), the 13B and 70B apps and the
promotion pipeline with its stages, each split into one ``Account`` per environment (a stage's own account and
region; the fake ones of ``tests.iam.intrinsics`` for the environment-agnostic app)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_endpoint import synth_model
from tests.iam.account import Account
from tests.iam.intrinsics import ACCOUNT, REGION

ASSEMBLIES = ("7b", "13b", "70b", "pipeline")
STACK_ARTIFACT = "aws:cloudformation:stack"
NESTED_ASSEMBLY = "cdk:cloud-assembly"


def stacks_of(directory: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(environment, stack name, template) for every stack of a cloud assembly, nested stage assemblies included."""
    manifest = json.loads((directory / "manifest.json").read_text())
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        props = artifact.get("properties", {})
        if artifact["type"] == STACK_ARTIFACT:
            template = json.loads((directory / props["templateFile"]).read_text())
            yield artifact["environment"], props.get("stackName", artifact_id), template
        elif artifact["type"] == NESTED_ASSEMBLY:
            yield from stacks_of(directory / props["directoryName"])


def accounts_of(directory: Path) -> list[Account]:
    """One ``Account`` per environment of the assembly."""
    by_env: dict[str, dict[str, dict[str, Any]]] = {}
    for env, name, template in stacks_of(directory):
        by_env.setdefault(env, {})[name] = template
    out = []
    for env, templates in sorted(by_env.items()):
        account, region = env.removeprefix("aws://").split("/")
        agnostic = account == "unknown-account"
        out.append(Account(templates, account=ACCOUNT if agnostic else account, region=REGION if agnostic else region))
    return out


def assembly_directory(request: pytest.FixtureRequest, name: str) -> Path:
    """The cloud assembly ``name`` (one of ASSEMBLIES), synthesized once per session."""
    if name == "pipeline":
        return Path(request.getfixturevalue("pipeline_assembly").directory)
    if name == "7b":  # the default app is 7B
        return Path(request.getfixturevalue("app_assembly").directory)
    return Path(synth_model(name).outdir)
