"""From plan to stack: a config file that ``cdk synth/deploy -c config=FILE`` accepts unchanged.

The file sets one scenario section (``cost`` by default) to the plan's configuration: model, quantization,
instance type, serving engine and its image version as measured (``engine: vllm`` with ``vllm_version``, or
``engine: tgi`` with ``tgi_version``), ``min_instances``/``max_instances`` from the traffic and
``autoscaling_target`` from the measured capacity less the safety margin. Before the file is written its section
goes through the same coercion and ``DeploymentConfig`` checks that synth applies to a config file section (both
in ``catalog``, below the CDK app's loader), so a plan that cannot be deployed fails here, naming the field, not
at ``cdk deploy``. tests/test_sizing_config_check.py holds this to the app's own loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmark.sizing.plan import ConfigurationPlan, SizingPlan, describe_all_in
from benchmark.sizing.slo import Slo
from catalog.coercion import coerce_section
from catalog.deployment import DeploymentConfig
from catalog.errors import ConfigError, Issue
from catalog.scenarios import SCENARIOS, STACK_NAMES


def deployment_values(plan: ConfigurationPlan) -> dict[str, Any]:
    if not plan.feasible:
        raise ConfigError([Issue("plan", plan.key, "cannot be deployed: " + "; ".join(plan.problems))])
    configuration = plan.capacity.configuration
    engine = configuration.engine_spec
    return {
        "model": configuration.model,
        "quantization": configuration.quantization,
        "instance_type": configuration.instance_type,
        # The engine measured and its image version, under the field a DeploymentConfig reads it from
        # (tgi_version or vllm_version); engine: tgi is written too, so the file says what it deploys.
        "engine": engine.name,
        engine.version_field: configuration.engine_version,
        "min_instances": plan.min_instances,
        "max_instances": plan.max_instances,
        "autoscaling_target": plan.autoscaling_target,
    }


def _header(sizing: SizingPlan, plan: ConfigurationPlan, slo: Slo, scenario: str) -> str:
    capacity = plan.capacity
    traffic = sizing.traffic
    lines = [
        "Written by `python -m benchmark size plan`: the cheapest configuration that met the SLO at this traffic.",
        f"SLO: {slo}",
        f"Traffic: peak {traffic.peak_rps:g} requests/s, average {traffic.average_rps:.3g} requests/s"
        + (" (24-hour profile)" if traffic.daily_profile else ""),
        f"Engine: {capacity.configuration.engine_label}, as measured",
        f"Measured capacity per instance: {capacity.capacity:g} ({capacity.load_kind}), {capacity.precision}",
        f"Safety margin: {sizing.options.margin:.0%} -> autoscaling_target {plan.autoscaling_target:g}",
        f"Cost: {describe_all_in(plan)}",
        f"Deploy: npx cdk deploy {STACK_NAMES[scenario]} -c config=<this file>",
    ]
    return "".join(f"# {line}\n" for line in lines)


def render_config(sizing: SizingPlan, plan: ConfigurationPlan, slo: Slo, *, scenario: str = "cost") -> str:
    if scenario not in SCENARIOS:
        raise ConfigError([Issue("scenario", scenario, f"must be one of {', '.join(SCENARIOS)}")])
    body = yaml.safe_dump({scenario: deployment_values(plan)}, sort_keys=False)
    return _header(sizing, plan, slo, scenario) + body


def check_deployable(text: str, scenario: str) -> None:
    """Check the file's section as ``cdk synth -c config=FILE -c scenarios=<scenario>`` does."""
    section = yaml.safe_load(text)[scenario]
    try:
        DeploymentConfig(scenario=scenario, **coerce_section(section, f"sizing.yaml:{scenario}"))
    except ConfigError as err:
        issues = [Issue(f"config.{scenario}.{i.field}", i.value, i.allowed) for i in err.issues]
        raise ConfigError(issues, context="sized deployment (synth would refuse it)") from None


def write_config(
    sizing: SizingPlan, plan: ConfigurationPlan, slo: Slo, path: str | Path, *, scenario: str = "cost"
) -> Path:
    text = render_config(sizing, plan, slo, scenario=scenario)
    check_deployable(text, scenario)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
