"""The load of one level, defined once: :class:`LoadSpec`.

Every way a level is asked for builds one: the command line (``run``, ``size sweep``: their options and defaults
come from here, see :func:`benchmark.target.add_load_arguments`), a matrix's ``load`` section
(:mod:`benchmark.matrix`), the state machine's per-level payload and the load-test Lambda that reads it
(:class:`benchmark.aws.contract.LevelEvent`). The level runner (:mod:`benchmark.measure.runner`) runs it and each
result records it (``load``). No network import: the CDK app builds the state machine's payload from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from benchmark.serialize import JsonShape
from catalog.errors import ConfigError, Issue

DEFAULT_TIMEOUT_S = 120.0  # per request: the clients' deadline, the load generator's, the Lambda's
BUILTIN_DATASET = "built-in"  # the deterministic prompt set (benchmark.measure.prompts.builtin_prompts)
ARRIVALS = ("poisson", "constant")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """One level: how many users (or requests/s), for how long, asking for what, and when to give up."""

    concurrency: int = 1  # closed loop: virtual users; open loop: most requests in flight
    request_rate: float | None = None  # requests/s: open loop when set
    duration_s: float | None = 90.0  # the measurement window; None: max_requests bounds the level
    max_requests: int | None = None  # measured requests, after the warm-up
    warmup_requests: int = 0  # sent first, recorded as warm-up, not measured
    max_new_tokens: int = 50
    streaming: bool = True  # token by token (TTFT and inter-token times); False: whole answers, as in 2023
    timeout_s: float = DEFAULT_TIMEOUT_S  # per request
    dataset: str = BUILTIN_DATASET  # or a JSONL file of prompts
    fail_fast_requests: int = 10  # abort when this many first finished requests all failed; 0: never
    max_error_rate: float | None = None  # abort when the error rate passes this share; None: no limit
    ramp_up_s: float = 0.0  # closed loop: first requests spread evenly over this many seconds
    arrival: str = "poisson"  # open loop only
    seed: int = 0  # open loop: the arrival schedule's
    # JSON (results' ``load``, the state machine's payload): every field; an unknown key is refused.
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)

    def __post_init__(self) -> None:
        issues = self.issues()
        if issues:
            raise ConfigError(issues, context="load specification")

    def issues(self) -> list[Issue]:
        issues: list[Issue] = []
        if not _is_int(self.concurrency) or self.concurrency < 1:
            issues.append(Issue("concurrency", self.concurrency, "must be an integer >= 1"))
        if self.request_rate is not None and not self.request_rate > 0:
            issues.append(Issue("request_rate", self.request_rate, "must be > 0 requests/s or unset (closed loop)"))
        if self.duration_s is not None and not self.duration_s > 0:
            issues.append(Issue("duration_s", self.duration_s, "must be > 0 or unset"))
        if self.max_requests is not None and (not _is_int(self.max_requests) or self.max_requests < 1):
            issues.append(Issue("max_requests", self.max_requests, "must be >= 1 or unset"))
        if self.duration_s is None and self.max_requests is None:
            issues.append(Issue("duration_s", None, "duration_s or max_requests must bound the run"))
        if not _is_int(self.warmup_requests) or self.warmup_requests < 0:
            issues.append(Issue("warmup_requests", self.warmup_requests, "must be >= 0"))
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            issues.append(Issue("max_new_tokens", self.max_new_tokens, "must be an integer >= 1"))
        if not isinstance(self.streaming, bool):
            issues.append(Issue("streaming", self.streaming, "must be true or false"))
        if not self.timeout_s > 0:
            issues.append(Issue("timeout_s", self.timeout_s, "must be > 0"))
        if not isinstance(self.dataset, str) or not self.dataset:
            issues.append(Issue("dataset", self.dataset, f"must be {BUILTIN_DATASET!r} or a JSONL file"))
        if not _is_int(self.fail_fast_requests) or self.fail_fast_requests < 0:
            issues.append(Issue("fail_fast_requests", self.fail_fast_requests, "must be an integer >= 0 (0: off)"))
        if self.max_error_rate is not None and not 0.0 <= self.max_error_rate < 1.0:
            issues.append(Issue("max_error_rate", self.max_error_rate, "must be within [0, 1) or unset"))
        if not self.ramp_up_s >= 0:
            issues.append(Issue("ramp_up_s", self.ramp_up_s, "must be >= 0 seconds"))
        if self.arrival not in ARRIVALS:
            issues.append(Issue("arrival", self.arrival, f"must be one of {', '.join(ARRIVALS)}"))
        if not _is_int(self.seed):
            issues.append(Issue("seed", self.seed, "must be an integer"))
        return issues

    @property
    def open_loop(self) -> bool:
        return self.request_rate is not None


DEFAULT_LOAD = LoadSpec()  # the defaults every command line option and matrix key starts from


LEVELS_ALLOWED = "must be a list of distinct positive integers, e.g. [1, 5, 10, 20]"


def check_levels(values: object, field: str, *, given: object = None, allowed: str = LEVELS_ALLOWED) -> tuple[int, ...]:
    """Concurrency levels (a matrix's, the command line's): distinct positive integers, at least one."""
    if (
        not isinstance(values, list | tuple)
        or not values
        or not all(_is_int(v) and v >= 1 for v in values)
        or len(set(values)) != len(values)
    ):
        raise ConfigError([Issue(field, values if given is None else given, allowed)])
    return tuple(values)
