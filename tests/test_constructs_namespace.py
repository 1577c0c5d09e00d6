"""`import constructs` is the CDK library everywhere; the project's constructs are the package `llama_constructs`.

constructs/ is a src folder (no ``__init__.py``) holding that one package, found relative to the checkout, never
through the venv: a second checkout sharing the venv imports its own files (constructs/README.md).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import constructs

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "constructs"
PACKAGE = SRC / "llama_constructs"
COMPONENTS = ("common", "foundation", "endpoint", "benchmark", "pipeline")
# What a checkout needs to import its stacks, its settings and the benchmark.
CHECKOUT_PARTS = ("app.py", "cdk.json", "stacks", "settings", "constructs", "benchmark", "catalog")


def _library_dir() -> Path:
    return Path(constructs.__file__).resolve().parent


def test_construct_class_comes_from_the_library() -> None:
    assert (_library_dir() / "_jsii").is_dir()
    assert constructs.Construct.__module__ == "constructs"
    # The library's own pkgutil.extend_path appends the constructs/ folder of any sys.path entry (the checkout's
    # root is one); nothing else may be merged (no constructs.pkg), and nothing is importable through it.
    paths = [Path(p).resolve() for p in constructs.__path__]
    assert paths[0] == _library_dir()
    assert set(paths[1:]) <= {SRC}


def test_nothing_of_the_project_is_importable_as_part_of_the_library() -> None:
    assert sorted(p.name for p in SRC.iterdir() if p.name != "__pycache__") == ["README.md", "llama_constructs"]
    with pytest.raises(ImportError, match=r"import llama_constructs, not constructs\.llama_constructs"):
        importlib.import_module("constructs.llama_constructs")


def test_constructs_folder_is_a_src_folder_of_one_package_grouped_by_component() -> None:
    assert not (SRC / "__init__.py").exists(), "an __init__.py here would shadow the library"
    assert not list(SRC.glob("*.py")), "modules belong in a component of llama_constructs"
    assert (PACKAGE / "__init__.py").is_file()
    found = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert found == sorted(COMPONENTS)
    for component in COMPONENTS:
        assert (PACKAGE / component / "__init__.py").is_file()
        assert list((PACKAGE / component).glob("[!_]*.py")), component


def _origins(checkout: Path, *, cwd: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Where a fresh interpreter of this venv imports each part from, with ``checkout`` added after the library."""
    code = (
        "import json, sys, constructs; "  # the library first, as any CDK program does
        f"sys.path.insert(0, {str(checkout)!r}); "
        "import stacks, settings, benchmark, catalog, llama_constructs, llama_constructs.endpoint.tgi_image as m; "
        "names = ('constructs', 'stacks', 'settings', 'benchmark', 'catalog', 'llama_constructs'); "
        "print(json.dumps({n: sys.modules[n].__file__ for n in names} | {'tgi_image': m.__file__}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return dict(json.loads(run.stdout))


@pytest.mark.slow
def test_a_second_checkout_sharing_the_venv_imports_its_own_files(tmp_path: Path) -> None:
    second = tmp_path / "second"
    second.mkdir()
    for part in CHECKOUT_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, second / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, second / part)
    # The other checkout's constructs/ already on sys.path (PYTHONPATH) must not win either.
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for checkout, cwd, environment in ((ROOT, ROOT, None), (second, second, env), (second, Path("/"), None)):
        origins = _origins(checkout, cwd=cwd, env=environment)
        library = Path(origins.pop("constructs")).resolve()
        assert library.parent == _library_dir()
        for name, file in origins.items():
            assert Path(file).resolve().is_relative_to(checkout), f"{name} of {checkout} came from {file}"
    assert Path(origins["tgi_image"]) == second / "constructs" / "llama_constructs" / "endpoint" / "tgi_image.py"


def _recorded_by_installers() -> set[Path]:
    """Every file an installed distribution lists in its RECORD: what pip (and a build backend) wrote."""
    recorded: set[Path] = set()
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            recorded.add(Path(str(dist.locate_file(file))).resolve())
    return recorded


def test_setup_writes_nothing_of_its_own_into_the_venv() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    assert not re.search(r'>>?\s*"?\$site', setup), "scripts/setup must not write into site-packages"
    site = Path(sysconfig.get_paths()["purelib"])
    assert not (site / "constructs.pkg").exists()
    recorded = _recorded_by_installers()
    for path in sorted(site.iterdir()):
        if not path.is_file() or path.suffix not in (".pth", ".pkg", ".py"):
            continue
        if str(ROOT) in path.read_text(errors="replace"):
            assert path.resolve() in recorded, f"{path} names this checkout and no installer recorded it"
