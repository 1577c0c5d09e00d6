"""Read deployment settings from cdk context (``-c key=value``) and an optional YAML/JSON config file.

Precedence, lowest first: scenario profile and built-in defaults < config file ``defaults`` <
config file ``<scenario>`` section < cdk context ``key`` (every scenario) < cdk context
``<scenario>.key`` (that scenario only, e.g. ``-c latency.instance_type=ml.p4d.24xlarge``).

Context values arrive as strings from the CLI, so each is coerced to the field's type here, with an
error naming the key when that fails. Keys we do not know are refused so that a typo
(``-c modle=13b``) cannot silently deploy the default.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.coercion import DEPLOYMENT_KEYS, FILE_SECTIONS, coerce_section
from catalog.deployment import DeploymentConfig
from catalog.errors import ConfigError, Issue
from catalog.network_options import parse_availability_zones, parse_az_count
from catalog.scenarios import SCENARIOS
from settings.benchmark_options import parse_benchmark_option
from settings.files import read_data_file
from settings.options import AppOptions, Settings
from settings.stages import load_stages

# App-level options (not per deployment), parsed into ``AppOptions``. Extend here and in ``_app_options``.
APP_OPTION_KEYS: frozenset[str] = frozenset(
    {"config", "scenarios", "stages", "benchmark", "az_count", "availability_zones"}
)


def _is_cdk_internal(key: str) -> bool:
    """CDK's own context keys (feature flags, CLI metadata) carry '@' or ':'."""
    return "@" in key or ":" in key


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Parse and check a config file: sections ``defaults`` and one per scenario."""
    file = Path(path)
    data = read_data_file(file, field="config", kind="file")
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError([Issue("config", str(path), "must hold a mapping of sections")])
    issues = [
        Issue(f"{name} ({file.name})", "...", f"unknown section; allowed: {', '.join(sorted(FILE_SECTIONS))}")
        for name in data
        if name not in FILE_SECTIONS
    ]
    issues += [
        Issue(f"{name} ({file.name})", value, "must be a mapping of settings")
        for name, value in data.items()
        if name in FILE_SECTIONS and not isinstance(value, dict)
    ]
    if issues:
        raise ConfigError(issues, context="config file")
    return {name: coerce_section(section or {}, f"{file.name}:{name}") for name, section in data.items()}


@dataclass(frozen=True)
class ContextValues:
    """cdk context split into what applies to every scenario, to one scenario, and to the app."""

    everywhere: dict[str, Any]
    per_scenario: dict[str, dict[str, Any]]
    options: dict[str, Any]


def split_context(context: Mapping[str, Any]) -> ContextValues:
    """Separate deployment overrides from app options; refuse unknown keys."""
    everywhere: dict[str, Any] = {}
    scoped: dict[str, dict[str, Any]] = {}
    options: dict[str, Any] = {}
    issues: list[Issue] = []
    for key, value in context.items():
        if _is_cdk_internal(key):
            continue
        scenario, _, name = key.rpartition(".")
        if key in APP_OPTION_KEYS:
            options[key] = value
        elif key in DEPLOYMENT_KEYS:
            everywhere[key] = value
        elif scenario in SCENARIOS and name in DEPLOYMENT_KEYS:
            scoped.setdefault(scenario, {})[name] = value
        else:
            allowed = sorted(DEPLOYMENT_KEYS | APP_OPTION_KEYS)
            issues.append(
                Issue(
                    f"-c {key}",
                    value,
                    f"unknown context key; known: {', '.join(allowed)}, each also as <scenario>.<key> "
                    f"for one of {', '.join(SCENARIOS)}",
                )
            )
    if issues:
        raise ConfigError(issues, context="cdk context")
    return ContextValues(
        everywhere=coerce_section(everywhere, "cdk context"),
        per_scenario={s: coerce_section(v, f"cdk context {s}.*") for s, v in scoped.items()},
        options=options,
    )


def selected_scenarios(options: Mapping[str, Any]) -> tuple[str, ...]:
    """``-c scenarios=latency,cost`` builds only those stacks (all by default)."""
    raw = options.get("scenarios")
    if raw in (None, "", "all"):
        return tuple(SCENARIOS)
    names = [s.strip() for s in (raw if isinstance(raw, list) else str(raw).split(",")) if s.strip()]
    bad = [n for n in names if n not in SCENARIOS]
    if bad or not names:
        raise ConfigError([Issue("scenarios", raw, f"must be a comma-separated subset of {', '.join(SCENARIOS)}")])
    return tuple(names)


def _app_options(options: Mapping[str, Any], *, base_dir: Path | None) -> AppOptions:
    """Parse every app option once, reporting all their problems together."""
    issues: list[Issue] = []
    parsed: dict[str, Any] = {}
    parsers: dict[str, Any] = {
        "scenarios": selected_scenarios,
        "benchmark": parse_benchmark_option,
        "az_count": parse_az_count,
        "availability_zones": parse_availability_zones,
        "stages": lambda raw: load_stages(str(raw), base_dir=base_dir) if raw else None,
    }
    for key, parse in parsers.items():
        try:
            parsed[key] = parse(options) if key == "scenarios" else parse(options.get(key))
        except ConfigError as err:
            issues.extend(err.issues)
    zones = parsed.get("availability_zones", ())
    if zones and options.get("az_count") not in (None, "") and parsed.get("az_count") != len(zones):
        issues.append(Issue("az_count", options["az_count"], f"must be {len(zones)}, the number of availability_zones"))
    if zones:
        parsed["az_count"] = len(zones)
    if issues:
        raise ConfigError(issues, context="settings")
    return AppOptions(**parsed)


def load_settings(context: Mapping[str, Any], *, base_dir: Path | None = None) -> Settings:
    """Everything app.py needs, resolved and validated for every scenario before any stack is built."""
    ctx = split_context(context)
    file_sections: dict[str, dict[str, Any]] = {}
    if ctx.options.get("config"):
        path = Path(str(ctx.options["config"]))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        file_sections = read_config_file(path)
    deployments: dict[str, DeploymentConfig] = {}
    issues: list[Issue] = []
    try:
        options = _app_options(ctx.options, base_dir=base_dir)
    except ConfigError as err:
        issues.extend(err.issues)
        options = AppOptions()
    for scenario in options.scenarios:
        values = {
            **file_sections.get("defaults", {}),
            **file_sections.get(scenario, {}),
            **ctx.everywhere,
            **ctx.per_scenario.get(scenario, {}),
        }
        try:
            deployments[scenario] = DeploymentConfig(scenario=scenario, **values)
        except ConfigError as err:
            issues.extend(Issue(f"{scenario}.{i.field}", i.value, i.allowed) for i in err.issues)
    zone_region = options.availability_zones[0][:-1] if options.availability_zones else None
    issues += [
        Issue(f"{scenario}.region", d.region, f"must be {zone_region}, the region of availability_zones")
        for scenario, d in deployments.items()
        if zone_region and d.region and d.region != zone_region
    ]
    if issues:
        raise ConfigError(issues, context="settings")
    return Settings(deployments=types.MappingProxyType(deployments), options=options)


__all__ = [
    "APP_OPTION_KEYS",
    "ContextValues",
    "load_settings",
    "read_config_file",
    "selected_scenarios",
    "split_context",
]
