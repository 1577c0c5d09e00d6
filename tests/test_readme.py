"""The README is the user's manual: its commands must be the ones CI runs and every knob must be in it."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from settings import DeploymentConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_deployment_setting_is_documented_with_its_default() -> None:
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", README, flags=re.MULTILINE))
    settings = {f.name for f in fields(DeploymentConfig)} - {"scenario"}
    assert settings - documented == set(), "settings missing from the README's table"
    assert documented - settings == set(), "README documents settings that do not exist"


def test_ci_runs_the_readme_test_command() -> None:
    assert "scripts/test" in README and "scripts/synth" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec scripts/test\b", ci, flags=re.MULTILINE)


def test_linked_documents_exist() -> None:
    for link in re.findall(r"\]\(([^)#]+\.(?:md|yaml))\)", README):
        assert (ROOT / link).is_file(), link


# The Markdown pages a reader moves between: README is the front door, the rest is linked from it.
PAGES = sorted([ROOT / "README.md", ROOT / "benchmark" / "README.md", ROOT / "constructs" / "README.md"])
PAGES += sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {github_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert broken == [], f"{page.relative_to(ROOT)}: {broken}"
