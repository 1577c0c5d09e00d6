"""Session fixtures: the whole CDK app is built and synthesized ONCE per test session.

``app_assembly`` synthesizes ``app.build_app`` (the real entry point, compliance packs included) into a
session temp dir. A nag finding does not abort the session: CDK writes every template and the manifest
before it runs the validation plugins, so the templates stay testable and ``test_compliance`` reports the
findings (``AppAssembly.validation_error`` and ``validation-report.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.iam.account import Account

if TYPE_CHECKING:  # imported lazily: tests that never synthesize (most of tests/benchmark) skip loading CDK
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

PIPELINE_STAGE_FILE = "stages.example.yaml"  # the promotion pipeline the tests build once per session
TEST_CONTEXT: dict[str, Any] = {}  # the app's defaults: what `cdk synth` with no -c options deploys
# Every scenario on vLLM, one model size each; the benchmark stack, which no engine changes, left out.
VLLM_CONTEXT: dict[str, Any] = {"config": "config.vllm.example.yaml", "benchmark": "off"}
# The default app with a benchmark matrix that mixes engines: what scripts/synth builds in cdk.out/engines.
ENGINES_CONTEXT: dict[str, Any] = {"benchmark": "matrices=engines;schedule_matrix=engines"}
STACK_ARTIFACT = "aws:cloudformation:stack"
NESTED_ASSEMBLY = "cdk:cloud-assembly"


@dataclass(frozen=True)
class StackArtifact:
    name: str  # the CloudFormation stack name (stage stacks: "<Stage>-<Id>")
    template_file: Path
    metadata_file: Path | None


@dataclass
class AppAssembly:
    app: cdk.App
    directory: Path
    validation_error: Exception | None  # the ValidationFailed raised by synth, if any
    stacks: dict[str, StackArtifact] = field(default_factory=dict)

    def template_json(self, stack_name: str) -> dict[str, Any]:
        return json.loads(self.stacks[stack_name].template_file.read_text())  # type: ignore[no-any-return]

    def validation_report(self) -> dict[str, Any]:
        return json.loads((self.directory / "validation-report.json").read_text())  # type: ignore[no-any-return]


def _collect(directory: Path) -> Iterator[StackArtifact]:
    manifest = json.loads((directory / "manifest.json").read_text())
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        props = artifact.get("properties", {})
        if artifact["type"] == STACK_ARTIFACT:
            metadata = artifact.get("additionalMetadataFile")
            yield StackArtifact(
                name=props.get("stackName", artifact_id),
                template_file=directory / props["templateFile"],
                metadata_file=directory / metadata if metadata else None,
            )
        elif artifact["type"] == NESTED_ASSEMBLY:
            yield from _collect(directory / props["directoryName"])


# Test files that share a session-scoped synth. Under xdist with ``--dist loadgroup`` (scripts/test) each group
# runs on one worker, so every app is synthesized once per run instead of once per worker.
SYNTH_GROUPS = {
    "test_compliance.py": "whole-app",
    "test_foundation.py": "whole-app",
    "test_pipeline.py": "whole-app",
    "test_asset_publishing.py": "whole-app",
    "test_endpoint_constructs.py": "model-apps",
    "test_vllm_endpoints.py": "vllm-app",
    "test_engine_images.py": "engines-app",
    "test_benchmark_engines.py": "engines-app",
    "test_benchmark_stack.py": "benchmark-stack",
    "test_state_machine_local.py": "benchmark-stack",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = SYNTH_GROUPS.get(item.path.name)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cdk.out")


def synthesize(context: dict[str, Any], directory: Path) -> AppAssembly:
    """Build and synthesize the app; a nag finding keeps the templates (test_compliance reports it)."""
    from app import build_app  # noqa: PLC0415 (CDK loads only when a test synthesizes)

    app = build_app(context, outdir=str(directory))
    error: Exception | None = None
    try:
        app.synth()
    except RuntimeError as err:  # jsii surfaces CDK's ValidationFailed as RuntimeError
        if "ValidationFailed" not in str(err) and "Validation failed" not in str(err):
            raise
        error = err
    assembly = AppAssembly(app=app, directory=directory, validation_error=error)
    assembly.stacks = {s.name: s for s in _collect(directory)}
    return assembly


@pytest.fixture(scope="session")
def app_assembly(synth_dir: Path) -> AppAssembly:
    return synthesize(dict(TEST_CONTEXT), synth_dir)


class LazyTemplates(Mapping[str, "Template"]):
    """Stack name -> ``Template``, each built on first access (a Template costs a jsii round trip)."""

    def __init__(self, assembly: AppAssembly) -> None:
        self._assembly = assembly
        self._cache: dict[str, Template] = {}

    def __getitem__(self, name: str) -> Template:
        from aws_cdk.assertions import Template  # noqa: PLC0415

        if name not in self._cache:
            self._cache[name] = Template.from_json(self._assembly.template_json(name))
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._assembly.stacks)

    def __len__(self) -> int:
        return len(self._assembly.stacks)


@pytest.fixture(scope="session")
def templates(app_assembly: AppAssembly) -> Mapping[str, Template]:
    return LazyTemplates(app_assembly)


@pytest.fixture(scope="session")
def vllm_assembly(tmp_path_factory: pytest.TempPathFactory) -> AppAssembly:
    """The scenario stacks of config.vllm.example.yaml, served by vLLM (the foundation too)."""
    return synthesize(dict(VLLM_CONTEXT), tmp_path_factory.mktemp("cdk.out.vllm"))


@pytest.fixture(scope="session")
def vllm_twin_assembly(tmp_path_factory: pytest.TempPathFactory) -> AppAssembly:
    """The same file with ``-c engine=tgi``: what the vLLM app must equal wherever the engine plays no part."""
    return synthesize({**VLLM_CONTEXT, "engine": "tgi"}, tmp_path_factory.mktemp("cdk.out.vllm-twin"))


@pytest.fixture(scope="session")
def engines_assembly(tmp_path_factory: pytest.TempPathFactory) -> AppAssembly:
    """The default app whose benchmark stack carries benchmark/matrices/engines.yaml (TGI and vLLM entries)."""
    return synthesize(dict(ENGINES_CONTEXT), tmp_path_factory.mktemp("cdk.out.engines"))


@pytest.fixture(scope="session")
def pipeline_assembly(tmp_path_factory: pytest.TempPathFactory) -> AppAssembly:
    """The promotion pipeline and its stages, shared by the pipeline and the IAM tests."""
    return synthesize({"stages": PIPELINE_STAGE_FILE}, tmp_path_factory.mktemp("cdk.out.pipeline"))


@pytest.fixture(scope="session")
def account(app_assembly: AppAssembly) -> Account:
    """The default app's roles and resource policies, resolved for a fake account (tests/iam)."""
    return Account({name: app_assembly.template_json(name) for name in app_assembly.stacks})
