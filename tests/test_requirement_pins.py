"""Every Python requirement is pinned to the version this environment runs, so CI installs what was tested.

The truth is the installed distributions' own metadata (``importlib.metadata``), not our files.
"""

from __future__ import annotations

import hashlib
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


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, tuple[str, int]]:
    """requirements-dev.lock: normalized name -> (version, number of hashes)."""
    entries: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (ROOT / "requirements-dev.lock").read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        if pinned:
            name = _normalize(pinned[1])
            entries[name] = (pinned[2], 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = entries[name]
            entries[name] = (version, hashes + 1)
    return entries


def test_the_lock_was_generated_from_the_current_requirements() -> None:
    # scripts/requirements-digest: the requirement lines of both files, sorted (comments and -r dropped).
    lines = sorted(line for file, line in _requirements() if file != "requirements-nodeps.txt")
    digest = hashlib.sha256("".join(f"{line}\n" for line in lines).encode()).hexdigest()
    first = (ROOT / "requirements-dev.lock").read_text().splitlines()[0]
    assert f"inputs-sha256: {digest}" in first, "requirements changed since the lock: run scripts/lock"


def test_every_locked_package_has_hashes_and_is_the_installed_version() -> None:
    lock = _lock()
    assert len(lock) > 50, "the lock holds the whole dependency tree, not only the direct requirements"
    for name, (version, hashes) in lock.items():
        assert hashes >= 1, f"{name} has no hash: pip --require-hashes would refuse the file"
        assert importlib.metadata.version(name) == version, name


def test_every_direct_requirement_is_in_the_lock_at_its_pin() -> None:
    lock = _lock()
    for file, line in _requirements():
        if file == "requirements-nodeps.txt":
            continue  # installed --no-deps beside the lock
        match = _LINE.match(line)
        assert match, line
        assert lock[_normalize(match["name"])][0] == match["version"], f"{file}: {line}"
