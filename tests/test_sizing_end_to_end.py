"""Issue 12's loop, offline: emulator sweep -> SLO report -> capacity plan -> config file -> synth, and the
synthesized endpoint stack carries the plan's autoscaling target and instance counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import build_app
from benchmark.cli import main
from benchmark.sizing.capacity import capacity_of
from benchmark.sizing.levels import by_configuration, load_levels
from benchmark.sizing.plan import SizingOptions, Traffic, make_plan
from benchmark.sizing.slo import parse_slo
from tests.conftest import _collect

SLO = "ttft_ms.p90<=1500,ms_per_token.p90<=41,error_rate<=0.01"
LATENCY = '{"prefill_base_ms":5,"prefill_ms_per_token":0,"tpot_base_ms":10,"tpot_slope_ms":2,"tokens":10}'


def _one(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.slow
def test_sweep_plan_config_synth(tmp_path: Path) -> None:
    sweep_file, config, report = tmp_path / "sweep.jsonl", tmp_path / "sized.yaml", tmp_path / "report"
    sweep = ["size", "sweep", "--config", "model=7b,quantization=gptq,instance=ml.g5.2xlarge", "--slo", SLO]
    sweep += ["--emulator-latency", LATENCY, "--max-new-tokens", "10", "--duration", "1", "--start", "2"]
    sweep += ["--limit", "32", "--repeats", "1", "--out", str(sweep_file)]
    assert main(sweep) == 0
    plan = ["size", "plan", str(sweep_file), "--slo", SLO, "--peak-rps", "80", "--average-rps", "30"]
    assert main([*plan, "--out", str(report), "--write-config", str(config)]) == 0
    assert "Sizing for your traffic" in (report / "sizing.md").read_text()
    assert "<svg" in (report / "sizing.html").read_text()

    capacities = [capacity_of(g, parse_slo(SLO)) for g in by_configuration(load_levels([str(sweep_file)])).values()]
    chosen = make_plan(capacities, Traffic(80.0, 30.0), SizingOptions()).cheapest
    assert chosen is not None and chosen.min_instances is not None and chosen.max_instances is not None
    written = yaml.safe_load(config.read_text())["cost"]
    assert (written["min_instances"], written["max_instances"]) == (chosen.min_instances, chosen.max_instances)
    assert written["autoscaling_target"] == chosen.autoscaling_target

    out = tmp_path / "cdk.out"
    build_app({"config": str(config), "scenarios": "cost", "benchmark": "off"}, outdir=str(out)).synth()
    stack = next(s for s in _collect(out) if s.name == "LlamaCostStack")
    template = json.loads(stack.template_file.read_text())
    target = _one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (chosen.min_instances, chosen.max_instances)
    policy = _one(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == chosen.autoscaling_target
    variant = _one(template, "AWS::SageMaker::EndpointConfig")["ProductionVariants"][0]
    assert variant["InitialInstanceCount"] == chosen.min_instances
    assert variant["InstanceType"] == "ml.g5.2xlarge"


def test_plan_with_no_deployable_configuration_writes_no_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "k6.csv"
    csv.write_text(
        "model,quantization,instance,concurrency,ms_per_token_median,tokens_per_s\n7b,gptq,g5.2xlarge,1,90,10\n"
    )
    args = ["size", "plan", str(csv), "--slo", "ms_per_token.median<=50", "--peak-rps", "5"]
    assert main([*args, "--write-config", str(tmp_path / "x.yaml")]) == 1
    assert not (tmp_path / "x.yaml").exists()
    assert "cannot meet the SLO at any measured load" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "", "--peak-rps", "5"], "slo=''"),
        (["--slo", "ms_per_token.p101<=50", "--peak-rps", "5"], "slo.ms_per_token.percentile=101.0"),
        (["--slo", "tokens.p90<=50", "--peak-rps", "5"], "slo.metric='tokens'"),
        (["--slo", "ms_per_token.p90<=50", "--peak-rps", "-8"], "peak_rps=-8.0"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    csv = tmp_path / "k6.csv"
    csv.write_text(
        "model,quantization,instance,concurrency,ms_per_token_median,tokens_per_s\n7b,gptq,g5.2xlarge,1,9,10\n"
    )
    assert main(["size", "plan", str(csv), *args]) == 2
    assert message in capsys.readouterr().err
