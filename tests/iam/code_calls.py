"""Find the AWS API calls a Lambda handler can make, from its code: no list to keep in step by hand.

Walks the handler and every project module it imports (at any depth, including imports inside functions),
collects the boto3 services it creates clients for (``client("s3")``), and reports every attribute named like
one of those services' operations (``put_object``, a ``get_paginator("list_objects_v2")`` argument, or a bound
method passed along such as ``client.delete_endpoint``). Operation names come from botocore's service models.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("benchmark", "catalog", "settings")


@dataclass(frozen=True, order=True)
class CodeCall:
    service: str  # boto3 client name, e.g. "sagemaker-runtime"
    operation: str  # API operation, e.g. "InvokeEndpointWithResponseStream"
    module: str  # path relative to the project root
    line: int


@cache
def _operations(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


def _module_path(name: str) -> Path | None:
    if name.split(".", maxsplit=1)[0] not in PROJECT_PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules imported by name
    return names


def closure(entry: Path) -> dict[Path, ast.Module]:
    """The entry file and every project module it can import, parsed."""
    seen: dict[Path, ast.Module] = {}
    todo = [entry.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = ast.parse(path.read_text(), filename=str(path))
        for name in _imports(seen[path]):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c also runs a/__init__ and a/b/__init__
                found = _module_path(".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def _services(modules: dict[Path, ast.Module]) -> set[str]:
    """Service names passed as the first argument of any ``.client(...)`` / ``client(...)`` call."""
    services: set[str] = set()
    for tree in modules.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name == "client" and isinstance(node.args[0].value, str):
                    services.add(node.args[0].value)
    return services


def aws_calls(entry: Path) -> set[CodeCall]:
    modules = closure(entry)
    services = _services(modules)
    found: set[CodeCall] = set()
    for path, tree in modules.items():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            names: list[tuple[str, int]] = []
            if isinstance(node, ast.Attribute):
                names.append((node.attr, node.lineno))
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get_paginator"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.append((str(node.args[0].value), node.lineno))
            for name, line in names:
                for service in services:
                    operation = _operations(service).get(name)
                    if operation is not None:
                        found.add(CodeCall(service, operation, rel, line))
    return found
