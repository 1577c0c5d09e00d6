"""The import directions README's Layout states, read from the source with ``ast``.

Every import statement counts: module level, inside functions, under ``TYPE_CHECKING``. The graph's nodes are
the project's modules; an import of anything else is a leaf. The rules:

* the benchmark distribution (``benchmark``, ``catalog``) reaches nothing of the CDK app (``settings``,
  ``stacks``, ``llama_constructs``, ``app``) and no CDK library;
* ``catalog`` reaches nothing of ``benchmark``;
* on the CDK side, ``settings`` reaches no construct or stack, and ``llama_constructs`` no stack;
* inside ``llama_constructs``, a component imports ``common`` and itself only, and ``benchmark`` also
  ``endpoint``;
* what the distribution imports at run time (outside ``TYPE_CHECKING``) is the standard library, itself, or a
  dependency pyproject.toml declares (or one a declared dependency requires).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections import deque
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# Top-level packages and modules of the project, and the folder each is found in.
SOURCES = {
    "benchmark": ROOT,
    "catalog": ROOT,
    "settings": ROOT,
    "stacks": ROOT,
    "app": ROOT,
    "llama_constructs": ROOT / "constructs",
}
DISTRIBUTION = ("benchmark", "catalog")
APP_SIDE = {"settings", "stacks", "llama_constructs", "app"}
CDK_LIBRARIES = {"constructs", "aws_cdk", "cdk_nag", "jsii"}
COMPONENT_IMPORTS = {
    "common": {"common"},
    "foundation": {"common", "foundation"},
    "endpoint": {"common", "endpoint"},
    "benchmark": {"common", "endpoint", "benchmark"},
    "pipeline": {"common", "pipeline"},
}


def _module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top, base in SOURCES.items():
        single = base / f"{top}.py"
        paths = [single] if single.is_file() else sorted((base / top).rglob("*.py"))
        for path in paths:
            parts = list(path.relative_to(base).with_suffix("").parts)
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, wherever it stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path.name == "__init__.py")
            found.append((source, node.lineno))
            # `from package import module` imports the module too.
            found += [(f"{source}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"]
    return found


@cache
def graph() -> dict[str, list[tuple[str, str]]]:
    """Project module -> [(imported name, "file:line")], imported names narrowed to project modules if they are."""
    files = _module_files()
    edges: dict[str, list[tuple[str, str]]] = {}
    for module, path in files.items():
        out: list[tuple[str, str]] = []
        for name, line in imports_of(path, module):
            top = name.split(".")[0]
            if top in SOURCES and name not in files:
                continue  # `from pkg.mod import NAME`: NAME is no module; the edge to pkg.mod is recorded
            out.append((name, f"{path.relative_to(ROOT)}:{line}"))
        edges[module] = out
    return edges


def violations(starts: list[str], forbidden: set[str]) -> list[str]:
    """Every forbidden top-level name reachable from ``starts``, with the chain of imports that reaches it."""
    edges = graph()
    found: list[str] = []
    for start in starts:
        seen = {start}
        queue: deque[tuple[str, list[str]]] = deque([(start, [])])
        while queue:
            module, chain = queue.popleft()
            for name, where in edges.get(module, []):
                if name in seen:
                    continue
                seen.add(name)
                step = [*chain, f"{where} imports {name}"]
                if name.split(".")[0] in forbidden:
                    found.append(f"{start}: " + " -> ".join(step))
                elif name in edges:
                    queue.append((name, step))
    return found


def _modules(*tops: str) -> list[str]:
    return sorted(m for m in graph() if m.split(".")[0] in tops)


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    source = "from . import a\nfrom ..b import c\ndef f():\n    import settings.x\n    from stacks import y\n"
    path = tmp_path / "mod.py"
    path.write_text(source, encoding="utf-8")
    names = {name for name, _ in imports_of(path, "top.pkg.mod")}
    assert {"top.pkg", "top.pkg.a", "top.b", "top.b.c", "settings.x", "stacks", "stacks.y"} <= names
    assert _modules("benchmark") and _modules("llama_constructs") and _modules("settings")


def test_the_benchmark_distribution_reaches_nothing_of_the_cdk_app() -> None:
    assert violations(_modules(*DISTRIBUTION), APP_SIDE | CDK_LIBRARIES) == []


def test_the_catalog_reaches_nothing_of_the_benchmark() -> None:
    assert violations(_modules("catalog"), {"benchmark"}) == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [("settings", {"stacks", "llama_constructs", "app"}), ("llama_constructs", {"stacks", "app"})],
)
def test_the_cdk_side_points_down(layer: str, forbidden: set[str]) -> None:
    assert violations(_modules(layer), forbidden) == []


def test_construct_components_import_common_and_what_they_build_on() -> None:
    wrong: list[str] = []
    for module in _modules("llama_constructs"):
        parts = module.split(".")
        if len(parts) < 3:
            continue
        allowed = COMPONENT_IMPORTS[parts[1]]
        for name, where in graph()[module]:
            target = name.split(".")
            if target[0] == "llama_constructs" and len(target) > 1 and target[1] not in allowed:
                wrong.append(f"{where} imports {name}")
    assert wrong == []


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements outside ``if TYPE_CHECKING:`` blocks (those only exist for the type checker)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found += [n for child in node.orelse for n in _runtime_imports(child)]
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        found += _runtime_imports(node)
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_with_their_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    pending = [Requirement(r).name for r in [*project["dependencies"], *extras]]
    found: set[str] = set()
    while pending:
        name = _normalise(pending.pop())
        if name in found:
            continue
        found.add(name)
        for raw in importlib.metadata.requires(name) or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def test_the_distribution_imports_only_what_it_declares() -> None:
    files = _module_files()
    providers = importlib.metadata.packages_distributions()
    allowed = _declared_with_their_requirements()
    undeclared: list[str] = []
    for module in _modules(*DISTRIBUTION):
        path = files[module]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if not top or top in sys.stdlib_module_names or top in DISTRIBUTION:
                    continue
                if not {_normalise(d) for d in providers.get(top, [])} & allowed:
                    undeclared.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert undeclared == [], "declare it in pyproject.toml [project.dependencies]"
