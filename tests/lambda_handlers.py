"""Load a Lambda handler module from ``lambda/<name>/handler.py`` (each is a top-level module named ``handler``)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambda"


@cache
def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_handler", LAMBDA_DIR / name / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
