"""Builds the real app (foundation + three scenario stacks, with the cdk-nag packs) once per model size.

``synth_model`` is cached, so each model's app is synthesized once per test session, whichever module asks:
a synth that raises (a config error or an unacknowledged cdk-nag finding) fails every test that uses it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_cdk.assertions import Template

from app import build_app
from settings import STACK_NAMES, DeploymentConfig

MODELS = ("7b", "13b", "70b")
SCENARIOS = tuple(STACK_NAMES)


@dataclass(frozen=True)
class Synthesized:
    templates: dict[str, dict[str, Any]]  # stack name -> template JSON
    outdir: str

    def template(self, scenario: str) -> Template:
        return Template.from_json(self.templates[STACK_NAMES[scenario]])


@cache
def synth_model(model: str, **context: str) -> Synthesized:
    outdir = tempfile.mkdtemp(prefix=f"llama-{model}-")
    atexit.register(shutil.rmtree, outdir, ignore_errors=True)
    assembly = build_app({"model": model, **context}, outdir=outdir).synth()
    return Synthesized({s.stack_name: s.template for s in assembly.stacks}, outdir)


def resources(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: Mapping[str, Any], kind: str) -> dict[str, Any]:
    (found,) = resources(template, kind).values()
    return found


def deployment(scenario: str, model: str) -> DeploymentConfig:
    return DeploymentConfig(scenario=scenario, model=model)
