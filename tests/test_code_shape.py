"""No function outside tests is longer than 100 lines (the project's guide), read from the source with ``ast``.

The functions still over the limit are listed by name; the list may only shrink: a new long function fails, and
so does a listed one that was split (remove it here).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 100
SKIPPED_DIRS = {".venv", "node_modules", "build", "tests", ".git", "__pycache__"}
# Functions still over the limit; empty since issue 11 split BenchmarkStack.__init__. Keep it empty.
STILL_LONG: set[str] = set()


def _source_files() -> list[Path]:
    """The project's own Python files: walked top-down so that .venv, node_modules and build output are never
    entered (a plain rglob spends seconds inside the venv)."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(("cdk.out", ".")))
        found += [Path(folder) / f for f in sorted(files) if f.endswith(".py")]
    return found


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """(qualified name, length in lines) of every function, methods named Class.method."""
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            found += _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((f"{prefix}{node.name}", (node.end_lineno or node.lineno) - node.lineno + 1))
            found += _functions(node, f"{prefix}{node.name}.")
        else:
            found += _functions(node, prefix)
    return found


def long_functions(root: Path = ROOT) -> dict[str, int]:
    out: dict[str, int] = {}
    for path in _source_files():
        rel = path.relative_to(root).as_posix()
        for name, length in _functions(ast.parse(path.read_text(), filename=rel)):
            if length > MAX_LINES:
                out[f"{rel}:{name}"] = length
    return out


def test_the_scan_measures_methods_and_nested_functions() -> None:
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_LINES))
    tree = ast.parse(f"class C:\n    def f(self):\n{body}\n\ndef g():\n    def h():\n        pass\n")
    assert dict(_functions(tree)) == {"C.f": MAX_LINES + 1, "g": 3, "g.h": 2}


def test_no_new_function_is_longer_than_100_lines() -> None:
    found = long_functions()
    assert set(found) - STILL_LONG == set(), found


def test_the_list_of_long_functions_only_shrinks() -> None:
    assert STILL_LONG - set(long_functions()) == set(), "split already: remove from STILL_LONG"
