"""One error type for every bad input, so each message names the field, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One problem with one field of an input."""

    field: str
    value: object
    allowed: str

    def __str__(self) -> str:
        return f"{self.field}={self.value!r}: {self.allowed}"


class ConfigError(ValueError):
    """Raised before anything is synthesized or deployed; carries every issue found, not just the first."""

    def __init__(self, issues: Iterable[Issue], *, context: str = "") -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        if not self.issues:
            raise ValueError("ConfigError needs at least one issue")
        head = f"invalid {context}" if context else "invalid configuration"
        lines = [f"{head} ({len(self.issues)} problem{'s' if len(self.issues) > 1 else ''}):"]
        lines += [f"  - {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(issue.field for issue in self.issues)


def unknown(field: str, value: object, choices: Iterable[str]) -> ConfigError:
    """The common case: a name that is not in a table."""
    return ConfigError([Issue(field, value, f"must be one of {', '.join(sorted(choices))}")])


def collect(lookup: Callable[..., Any], value: object, field: str, issues: list[Issue]) -> Any:
    """``lookup(value, field=field)``, or None with its issues added, so validation goes on to report them all."""
    try:
        return lookup(value, field=field)
    except ConfigError as err:
        issues.extend(err.issues)
        return None
