"""Every Python requirement is pinned to the version this environment runs, so CI installs what was tested.

The truth is the installed distributions' own metadata (``importlib.metadata``), not our files.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ("requirements.txt", "requirements-dev.txt", "requirements-nodeps.txt")
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(\[[^\]]+\])?==(?P<version>[A-Za-z0-9.+!-]+)$")


def _requirements() -> list[tuple[str, str]]:
    lines = []
    for name in FILES:
        for raw in (ROOT / name).read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-r "):
                lines.append((name, line))
    return lines


@pytest.mark.parametrize(("file", "line"), _requirements(), ids=str)
def test_each_requirement_is_pinned_to_the_installed_version(file: str, line: str) -> None:
    match = _LINE.match(line)
    assert match, f"{file}: {line!r} must be pinned as name==version"
    installed = importlib.metadata.version(match["name"])
    assert installed == match["version"], f"{file} pins {line}, this environment has {installed}"
