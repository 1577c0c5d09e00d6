"""Read deployment settings from cdk context (``-c key=value``) and an optional YAML/JSON config file.

Precedence, lowest first: scenario profile and built-in defaults < config file ``defaults`` <
config file ``<scenario>`` section < cdk context ``key`` (every scenario) < cdk context
``<scenario>.key`` (that scenario only, e.g. ``-c latency.instance_type=ml.p4d.24xlarge``).

Context values arrive as strings from the CLI, so each is coerced to the field's type here, with an
error naming the key when that fails. Keys we do not know are refused so that a typo
(``-c modle=13b``) cannot silently deploy the default.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from catalog.errors import ConfigError, Issue
from settings.deployment import DeploymentConfig
from settings.network_options import parse_az_count
from settings.scenarios import SCENARIOS

DEPLOYMENT_KEYS: frozenset[str] = frozenset(f.name for f in fields(DeploymentConfig)) - {"scenario"}
# App-level options read from context by app.py (not per deployment). Extend here when adding one.
APP_OPTION_KEYS: frozenset[str] = frozenset({"config", "scenarios", "stages", "benchmark", "pipeline", "az_count"})
FILE_SECTIONS: frozenset[str] = frozenset({"defaults", *SCENARIOS})


def _is_cdk_internal(key: str) -> bool:
    """CDK's own context keys (feature flags, CLI metadata) carry '@' or ':'."""
    return "@" in key or ":" in key


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(DeploymentConfig)
    return {name: hints[name] for name in DEPLOYMENT_KEYS}


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    """Turn a CLI string (or YAML scalar) into the field's type."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        annotation = next(a for a in args if a is not type(None))
    where = f"{key} ({source})"
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError([Issue(where, value, "must be true or false")])
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError([Issue(where, value, "must be a whole number")])
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError([Issue(where, value, "must be a whole number")]) from None
        if not number.is_integer():
            raise ConfigError([Issue(where, value, "must be a whole number")])
        return int(number)
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError([Issue(where, value, "must be a number")]) from None
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise ConfigError([Issue(where, value, "must be a single value")])
        return str(value)
    raise TypeError(f"no coercion for {annotation!r}")  # a new field type needs a rule above


def _coerce_section(section: Mapping[str, Any], source: str) -> dict[str, Any]:
    types_ = _field_types()
    issues: list[Issue] = []
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key not in types_:
            issues.append(Issue(f"{key} ({source})", value, f"unknown setting; known: {', '.join(sorted(types_))}"))
            continue
        try:
            out[key] = _coerce(key, value, types_[key], source)
        except ConfigError as err:
            issues.extend(err.issues)
    if issues:
        raise ConfigError(issues, context="settings")
    return out


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Parse and check a config file: sections ``defaults`` and one per scenario."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError([Issue("config", str(path), "must name an existing YAML or JSON file")])
    text = file.read_text()
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(
            [Issue("config", str(path), f"is not valid {file.suffix.lstrip('.') or 'YAML'}: {err}")]
        ) from None
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
    return {name: _coerce_section(section or {}, f"{file.name}:{name}") for name, section in data.items()}


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
        everywhere=_coerce_section(everywhere, "cdk context"),
        per_scenario={s: _coerce_section(v, f"cdk context {s}.*") for s, v in scoped.items()},
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


@dataclass(frozen=True)
class Settings:
    deployments: Mapping[str, DeploymentConfig]
    options: Mapping[str, Any]


def load_settings(context: Mapping[str, Any], *, base_dir: Path | None = None) -> Settings:
    """Everything app.py needs, resolved and validated for every scenario before any stack is built."""
    ctx = split_context(context)
    options = ctx.options
    file_sections: dict[str, dict[str, Any]] = {}
    if options.get("config"):
        path = Path(str(options["config"]))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        file_sections = read_config_file(path)
    deployments: dict[str, DeploymentConfig] = {}
    issues: list[Issue] = []
    for scenario in selected_scenarios(options):
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
    try:
        parse_az_count(options.get("az_count"))  # checked with everything else, before any construct
    except ConfigError as err:
        issues.extend(err.issues)
    if issues:
        raise ConfigError(issues, context="settings")
    return Settings(deployments=types.MappingProxyType(deployments), options=types.MappingProxyType(options))
