"""The README is the user's manual: its commands must be the ones CI runs and every knob must be in it."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

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
