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
