"""Turn configuration values (CLI strings, YAML scalars) into ``DeploymentConfig``'s field types.

Shared by every door a setting comes in through (cdk context, the config file, the stage file), so a value
means the same wherever it is written, and an unknown key is refused everywhere.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from catalog.deployment import DeploymentConfig
from catalog.errors import ConfigError, Issue
from catalog.scenarios import SCENARIOS

DEPLOYMENT_KEYS: frozenset[str] = frozenset(f.name for f in fields(DeploymentConfig)) - {"scenario"}
FILE_SECTIONS: frozenset[str] = frozenset({"defaults", *SCENARIOS})


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


def coerce_section(section: Mapping[str, Any], source: str) -> dict[str, Any]:
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
