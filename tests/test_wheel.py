"""The benchmark is a distribution of its own: `pip install .` gives a working `llama-benchmark`, without CDK.

The slow test builds the wheel from a copy of the distribution's sources, installs it with its dependencies into
a clean venv and runs the command from directories that hold no checkout; it also holds the Lambda bundles'
file list (``llama_constructs.common.distribution``) to what the wheel really contains.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from llama_constructs.common.distribution import distribution_files

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)")
CDK_SIDE = {"aws-cdk-lib", "constructs", "cdk-nag"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        match = PIN.match(raw.split("#", 1)[0].strip())
        if match:
            pins[_normalise(match["name"])] = match["version"]
    return pins


def _requirements() -> list[Requirement]:
    extras = [r for group in PROJECT.get("optional-dependencies", {}).values() for r in group]
    return [Requirement(r) for r in [*PROJECT["dependencies"], *extras]]


def test_the_distribution_is_the_benchmark_with_its_command() -> None:
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    assert PROJECT["scripts"] == {"llama-benchmark": "benchmark.cli:main"}
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["benchmark*", "catalog*"]


@pytest.mark.parametrize("requirement", _requirements(), ids=str)
def test_each_runtime_dependency_admits_the_pinned_version(requirement: Requirement) -> None:
    pins = _pins()
    name = _normalise(requirement.name)
    assert name not in CDK_SIDE
    if name in pins:  # markupsafe comes with jinja2 and is pinned by the lock only
        assert requirement.specifier.contains(pins[name]), f"{requirement} excludes requirements.txt's {pins[name]}"


def _build_wheel(tmp_path: Path) -> Path:
    """pip wheel from a copy of what the distribution needs, so the build writes nothing into the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source)
    for package in ("benchmark", "catalog"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check"]
    subprocess.run([*pip, "--wheel-dir", str(out), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("llama_benchmark-*.whl")
    return wheel


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, f"{command}: exit {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    return run


@pytest.mark.slow
def test_the_wheel_installs_into_a_clean_venv_without_cdk_and_runs_the_demo(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = sorted(n for n in archive.namelist() if ".dist-info/" not in n)
    assert in_wheel == [str(target) for _, target in distribution_files(ROOT)], "the Lambda bundles ship the wheel"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # This venv's pip installs into the clean one; the pins of requirements.txt constrain the dependencies.
    install = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    _run([*install, "--constraint", str(ROOT / "requirements.txt"), str(wheel)], tmp_path, env)

    listing = (
        "import importlib.metadata as m, json; print(json.dumps(sorted(d.metadata['Name'] for d in m.distributions())))"
    )
    installed = {_normalise(n) for n in json.loads(_run([str(python), "-c", listing], tmp_path, env).stdout)}
    assert "llama-benchmark" in installed and "boto3" in installed and "aiohttp" in installed
    assert not installed & CDK_SIDE, installed & CDK_SIDE

    command = str(venv / "bin" / "llama-benchmark")
    assert "usage: llama-benchmark" in _run([command, "--help"], Path("/"), env).stdout
    work = tmp_path / "elsewhere"
    work.mkdir()
    demo = [command, "demo", "--out", "out", "--concurrency", "1,2", "--duration", "0.5", "--max-new-tokens", "8"]
    _run(demo, work, env)
    assert (work / "out" / "results.jsonl").stat().st_size > 0
    assert sorted(p.suffix for p in (work / "out").iterdir() if p.suffix in (".md", ".html")) == [".html", ".md"]
    origin = _run([str(python), "-c", "import benchmark; print(benchmark.__file__)"], work, env).stdout.strip()
    assert Path(origin).is_relative_to(venv), origin
