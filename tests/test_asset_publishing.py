"""The promotion pipeline's Assets stage, run locally: the cdk-assets that package.json pins (and the pipeline
installs, ``stacks/pipeline_stack.py``) reads every asset manifest of the pipeline's cloud assembly and publishes
its file assets to S3.

The oracles are cdk-assets itself and S3 (moto's server on 127.0.0.1, reached through the AWS SDK's
``AWS_ENDPOINT_URL_S3`` and ``AWS_ENDPOINT_URL_STS``, which cdk-assets' SDK v3 honours): the tests never decide
what the tool can read, they ask it. The assembly is the session's (``pipeline_assembly`` in conftest.py, the
same ``build_app`` that ``cdk synth -c stages=stages.example.yaml`` runs), copied before publishing because
cdk-assets writes its zip cache beside the manifests.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import NESTED_ASSEMBLY, AppAssembly

ROOT = Path(__file__).resolve().parent.parent
CDK_ASSETS = ROOT / "node_modules" / ".bin" / "cdk-assets"
# cdk-assets ships as one esbuild bundle; the cloud assembly schema it was built with is a module inside it.
BUNDLE = ROOT / "node_modules" / "cdk-assets" / "bin" / "cdk-assets.js"
_SCHEMA_MODULE = re.compile(
    r'"\.\./@aws-cdk/cloud-assembly-schema/schema/version\.json"\(\w+, \w+\) \{\s*\w+\.exports = \{(?P<body>.*?)\};',
    re.DOTALL,
)
ASSET_MANIFEST = "cdk:asset-manifest"
REGION = "us-east-1"  # the publishing account's region, for manifests of environment-agnostic stacks
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto accepts any


def _require_tools() -> None:
    if not CDK_ASSETS.exists() or shutil.which("node") is None:
        pytest.fail("cdk-assets or node is not installed: run scripts/setup (and source scripts/env.sh)")


def cdk_assets(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    _require_tools()
    return subprocess.run([str(CDK_ASSETS), *args], capture_output=True, text=True, check=False, env=env, timeout=120)


def pinned_version(name: str) -> str:
    return str(json.loads((ROOT / "package.json").read_text())["devDependencies"][name])


def asset_manifests(directory: Path) -> list[Path]:
    """Every asset manifest the assembly's manifest names, nested stage assemblies included: what the CLI and
    the pipeline's publishing steps read."""
    found: list[Path] = []
    for artifact in json.loads((directory / "manifest.json").read_text())["artifacts"].values():
        props = artifact.get("properties", {})
        if artifact["type"] == ASSET_MANIFEST:
            found.append(directory / props["file"])
        elif artifact["type"] == NESTED_ASSEMBLY:
            found += asset_manifests(directory / props["directoryName"])
    return sorted(found)


@pytest.fixture(scope="module")
def manifests(pipeline_assembly: AppAssembly) -> list[Path]:
    found = asset_manifests(pipeline_assembly.directory)
    # Every stage's stacks carry one (the stages' assemblies are nested), and no manifest file is left out.
    for stage in ("dev", "staging", "prod"):
        assert any(m.parent.name == f"assembly-LlamaPipelineStack-{stage}" for m in found), stage
    assert found == sorted(pipeline_assembly.directory.rglob("*.assets.json"))
    return found


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def bundled_schema_revision() -> int:
    """The cloud assembly schema revision bundled in the installed cdk-assets: the newest it reads."""
    _require_tools()
    match = _SCHEMA_MODULE.search(BUNDLE.read_text())
    assert match, (
        f"no bundled @aws-cdk/cloud-assembly-schema version.json in {BUNDLE}: has cdk-assets changed its build?"
    )
    revision = re.search(r"\brevision: (\d+)", match["body"])
    assert revision, match["body"]
    return int(revision[1])


# --- reading: the tool's version check ------------------------------------------------------------------------


def test_the_pinned_cdk_assets_reads_every_asset_manifest(manifests: list[Path]) -> None:
    """``cdk-assets ls`` loads each manifest as the Assets stage does (schema version check included) and lists
    every asset in it."""
    for manifest in manifests:
        out = cdk_assets("ls", "--path", str(manifest))
        assert out.returncode == 0, f"{manifest.name}: {out.stderr}"
        content = json.loads(manifest.read_text())
        expected = set(content.get("files", {})) | set(content.get("dockerImages", {}))
        listed = {line.split()[0] for line in out.stdout.splitlines() if line and not line[0].isspace()}
        assert listed == expected, manifest.name


def test_the_app_writes_a_schema_version_the_pinned_cdk_assets_reads(
    pipeline_assembly: AppAssembly, manifests: list[Path], tmp_path: Path
) -> None:
    """A bump of aws-cdk-lib (which writes the schema) or of cdk-assets (which reads it) that breaks the
    pipeline's Assets stage fails here, with the reason."""
    supported = bundled_schema_revision()
    # The number read from the bundle is the one the tool enforces: one major version above it is refused.
    probe = tmp_path / "probe.assets.json"
    probe.write_text(json.dumps({**json.loads(manifests[0].read_text()), "version": f"{supported + 1}.0.0"}))
    refused = cdk_assets("ls", "--path", str(probe))
    assert refused.returncode != 0
    assert f"Maximum schema version supported is {supported}.x.x" in refused.stderr, refused.stderr

    written = {m.name: json.loads(m.read_text())["version"] for m in manifests}
    written["manifest.json"] = json.loads((pipeline_assembly.directory / "manifest.json").read_text())["version"]
    too_new = {name: v for name, v in written.items() if _major(v) > supported}
    assert not too_new, (
        f"aws-cdk-lib writes cloud assembly schema {sorted(set(too_new.values()))}, but cdk-assets "
        f"{pinned_version('cdk-assets')} (package.json; the pipeline's Assets stage installs it) reads at most "
        f"{supported}.x.x: pin a cdk-assets release that reads it, or keep aws-cdk-lib at a release that writes "
        f"{supported} (docs/promotion.md, 'Asset publishing'). Too new: {sorted(too_new)}"
    )


# --- publishing: the tool against S3 ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class FileDestination:
    manifest: Path
    source: Path
    packaging: str
    bucket: str
    key: str
    region: str


def file_destinations(manifest: Path, *, account: str, region: str) -> Iterator[FileDestination]:
    """Where the manifest says each file asset goes, placeholders filled as cdk-assets fills them (the
    caller's account from STS, its region)."""

    def fill(value: str) -> str:
        return value.replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)

    for asset in json.loads(manifest.read_text()).get("files", {}).values():
        for destination in asset["destinations"].values():
            yield FileDestination(
                manifest=manifest,
                source=manifest.parent / asset["source"]["path"],
                packaging=asset["source"].get("packaging", "file"),
                bucket=fill(destination["bucketName"]),
                key=fill(destination["objectKey"]),
                region=fill(destination.get("region", region)),
            )


def publishing_environment(endpoint: str, home: Path) -> dict[str, str]:
    """The machine's environment without any AWS setting of its own: fake credentials, loopback endpoints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **env,
        **FAKE_CREDENTIALS,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ENDPOINT_URL_STS": endpoint,  # the manifests' assumeRoleArn and ${AWS::AccountId}
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def aws_client(service: str, endpoint: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def test_publishing_puts_every_file_asset_where_its_manifest_says(
    pipeline_assembly: AppAssembly, aws_endpoint: str, tmp_path: Path
) -> None:
    copy = tmp_path / "assembly"
    shutil.copytree(pipeline_assembly.directory, copy)
    account = aws_client("sts", aws_endpoint).get_caller_identity()["Account"]
    s3 = aws_client("s3", aws_endpoint)
    destinations = [d for m in asset_manifests(copy) for d in file_destinations(m, account=account, region=REGION)]
    assert any(d.packaging == "zip" for d in destinations)  # the benchmark's Lambda code, not only templates
    for bucket, region in sorted({(d.bucket, d.region) for d in destinations}):  # what cdk bootstrap would create
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)

    env = publishing_environment(aws_endpoint, tmp_path)
    for manifest in asset_manifests(copy):
        out = cdk_assets("publish", "--path", str(manifest), env=env)
        assert out.returncode == 0, f"{manifest.name}: {out.stdout}\n{out.stderr}"

    stored = {(b["Name"], o["Key"]) for b in s3.list_buckets()["Buckets"] for o in _objects(s3, b["Name"])}
    assert stored == {(d.bucket, d.key) for d in destinations}
    for d in destinations:
        body = s3.get_object(Bucket=d.bucket, Key=d.key)["Body"].read()
        if d.packaging == "zip":
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                names = sorted(n for n in archive.namelist() if not n.endswith("/"))
            assert names == _files(d.source), d.key
        else:
            assert body == d.source.read_bytes(), d.key


def _objects(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])]
