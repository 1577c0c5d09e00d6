"""The files of the benchmark distribution (the root pyproject.toml), each at the path its wheel holds it at.

The benchmark's Lambda bundles ship exactly these, so a function runs what ``pip install .`` installs. Read from
pyproject.toml's ``[tool.setuptools]`` tables with the rules setuptools applies to them, without building a wheel
(the app is synthesized several times per test session): the packages are the folders with an ``__init__.py``,
reached from ``where`` through packages only, whose dotted name matches an ``include`` pattern and no ``exclude``
one; each package contributes its own ``*.py`` files and the files its ``package-data`` globs match.
tests/test_wheel.py compares the result with a wheel pip builds.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from typing import Any

# The [tool.setuptools] keys this reader implements; any other key may change the wheel, so it is refused.
_KNOWN_KEYS = {"include-package-data", "packages", "package-data"}


def _setuptools_config(root: Path) -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    unknown = set(config) - _KNOWN_KEYS
    find = config["packages"]["find"]
    if unknown or config.get("include-package-data", True) or find.get("namespaces", True):
        raise ValueError(
            f"pyproject.toml [tool.setuptools]: {sorted(unknown) or 'include-package-data or namespaces'} is not "
            "what distribution.py reads (it needs packages.find with namespaces = false, include-package-data = "
            "false, package-data); extend it before bundling"
        )
    return config


def _packages(root: Path, find: dict[str, Any]) -> dict[str, Path]:
    """Dotted package name -> its folder, as setuptools' find_packages(where, include, exclude) finds them."""
    include, exclude = find.get("include", ["*"]), find.get("exclude", [])
    found: dict[str, Path] = {}
    for where in find.get("where", ["."]):
        base = root / where
        pending = [d for d in sorted(base.iterdir()) if d.is_dir()]
        while pending:
            folder = pending.pop(0)
            if "." in folder.name or not (folder / "__init__.py").is_file():
                continue  # not a package, and nothing below it is one either
            name = ".".join(folder.relative_to(base).parts)
            if any(fnmatch.fnmatchcase(name, p) for p in include) and not any(
                fnmatch.fnmatchcase(name, p) for p in exclude
            ):
                found[name] = folder
            pending += [d for d in sorted(folder.iterdir()) if d.is_dir()]
    return found


def distribution_files(root: Path) -> list[tuple[Path, Path]]:
    """(source file, path inside the wheel) for every file of the distribution's packages, sorted by wheel path."""
    config = _setuptools_config(root)
    package_data: dict[str, list[str]] = config.get("package-data", {})
    files: dict[Path, Path] = {}
    for name, folder in _packages(root, config["packages"]["find"]).items():
        target = Path(*name.split("."))
        for module in folder.glob("*.py"):
            files[target / module.name] = module
        for pattern in package_data.get(name, []):
            for data in folder.glob(pattern):
                if data.is_file():
                    files[target / data.relative_to(folder)] = data
    return [(files[t], t) for t in sorted(files)]
