"""`import constructs` is the library everywhere, while the project's constructs/ modules still load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import constructs

ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = ROOT / "constructs"


def _library_dir() -> Path:
    return Path(constructs.__file__).resolve().parent


def test_construct_class_comes_from_the_library() -> None:
    assert _library_dir() != PROJECT_DIR
    assert (_library_dir() / "_jsii").is_dir()
    assert constructs.Construct.__module__ == "constructs"


def test_project_folder_is_merged_not_shadowing() -> None:
    assert not (PROJECT_DIR / "__init__.py").exists(), "an __init__.py here would shadow the library"
    paths = [Path(p).resolve() for p in constructs.__path__]
    assert paths[0] == _library_dir()
    assert PROJECT_DIR in paths


def test_no_project_module_reuses_a_library_name() -> None:
    library = {p.stem for p in _library_dir().iterdir()}
    project = {p.stem for p in PROJECT_DIR.glob("*.py")}
    assert project, "expected the project's construct modules"
    assert not project & library


def test_fresh_interpreter_sees_both() -> None:
    modules = sorted(p.stem for p in PROJECT_DIR.glob("*.py"))
    code = (
        "import importlib, constructs, aws_cdk; "
        f"mods = [importlib.import_module('constructs.' + m) for m in {modules!r}]; "
        "assert all(m.__file__.startswith(%r) for m in mods); "
        "print(constructs.Construct.__module__)" % str(PROJECT_DIR)
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "constructs"


def test_library_imported_first_then_stacks_merges_the_folder() -> None:
    """The order the issue found broken: the library first, the project root on sys.path only later."""
    code = (
        "import os, sys, constructs; "
        # Forget any folder merged at import (the venv's constructs.pkg), as if the project were unknown then.
        "constructs.__path__[:] = [p for p in constructs.__path__ if os.path.isdir(os.path.join(p, '_jsii'))]; "
        f"sys.path.insert(0, {str(ROOT)!r}); "
        "import stacks, constructs.tgi_image as m; print(m.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(PROJECT_DIR / "tgi_image.py")


def test_setup_makes_direct_imports_work_in_any_order() -> None:
    """scripts/setup writes constructs.pkg into the venv, which pkgutil.extend_path reads at library import."""
    code = (
        "import sys, constructs; "
        f"sys.path.insert(0, {str(ROOT)!r}); "
        "import constructs.tgi_image as m; print(m.__file__); print(constructs.Construct.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True)
    module_file, construct_module = out.stdout.split()
    assert Path(module_file).name == "tgi_image.py"
    assert Path(module_file).parent != _library_dir()
    assert construct_module == "constructs"
