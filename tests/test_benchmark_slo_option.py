"""``-c benchmark=slo=...``: scheduled runs compare capacity under that SLO run over run (benchmark/sizing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog.errors import ConfigError
from settings.benchmark_options import parse_benchmark_option
from tests.conftest import AppAssembly, synthesize

SLO = "ttft_ms.p90<=1500,ms_per_token.p90<=60"


def _strings(value: Any) -> str:
    """The literal text of a DefinitionString (an Fn::Join of literals and references)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_strings(v) for v in value)
    if isinstance(value, dict):
        return "".join(_strings(v) for v in value.values())
    return ""


def _definition(assembly: AppAssembly) -> str:
    template = assembly.template_json("LlamaBenchmarkStack")
    (machine,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    return _strings(machine["Properties"]["DefinitionString"])


def test_the_slo_reaches_the_aggregate_step(tmp_path: Path, app_assembly: AppAssembly) -> None:
    with_slo = _definition(synthesize({"benchmark": f"slo={SLO}", "scenarios": "cost"}, tmp_path))
    assert f'"slo":"{SLO}"' in with_slo
    assert '"slo"' not in _definition(app_assembly)  # unset: the aggregate step compares latency only


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("", "benchmark.slo"),
        ("ttft_ms.p120<=5", "benchmark.slo.ttft_ms.percentile"),
        ("tokens.p90<=5", "benchmark.slo.metric"),
    ],
)
def test_a_bad_slo_is_refused_naming_the_field(value: str, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_benchmark_option(f"slo={value}")
    assert [issue.field for issue in raised.value.issues] == [field]
