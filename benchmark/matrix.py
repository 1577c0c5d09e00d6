"""A benchmark matrix: which configurations to deploy and which concurrency levels to run on each.

Every configuration is validated by building the same ``catalog.deployment.DeploymentConfig`` the endpoint stacks
use, so a matrix cannot ask for a combination the stacks would refuse (13B fp16 on one A10G, the
non-existent ml.p4d.12xlarge, ...). ``on_infeasible: refuse`` (the default) stops with every problem
listed; ``skip`` drops those entries and carries the reasons to the report.

A configuration either names its ``instance_type`` and ``quantization`` or a ``scenario`` whose profile
supplies them ("benchmark what LlamaCostStack would deploy for 13B"). Validation borrows a scenario only
for those two defaults: the benchmark deploys one instance with no autoscaling, so the profile's
autoscaling fields do not apply, and no stack is created for a benchmark configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from benchmark.aws.contract import NAME_PREFIX
from benchmark.measure.load import LoadSpec, check_levels
from benchmark.serialize import from_data
from catalog.coercion import DEPLOYMENT_KEYS
from catalog.deployment import DeploymentConfig
from catalog.engines import DEFAULT_ENGINE
from catalog.errors import ConfigError, Issue
from catalog.scenarios import SCENARIOS

MATRICES_DIR = Path(__file__).with_name("matrices")
# Profile consulted only when a configuration names its instance and quantization (then it supplies nothing).
VALIDATION_SCENARIO = "cost"
ON_INFEASIBLE = ("refuse", "skip")
CONFIG_ID = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
# SageMaker names are at most 63 characters: <prefix>-<8-char run id>-<configuration id>.
RUN_ID_LENGTH = 8
SAGEMAKER_NAME_MAX = 63

_TOP_KEYS = {
    "name",
    "description",
    "defaults",
    "load",
    "max_parallel_endpoints",
    "on_infeasible",
    "plan",
    "configurations",
}
# A matrix's load section: its concurrency levels, and any LoadSpec field every level shares, but those of an
# open loop (the state machine runs closed-loop levels) and the dataset (the load-test Lambda has the built-in set).
_NOT_IN_A_MATRIX = frozenset({"concurrency", "request_rate", "arrival", "seed", "dataset"})
_LOAD_KEYS = {"concurrency"} | {f.name for f in fields(LoadSpec)} - _NOT_IN_A_MATRIX
_PLAN_KEYS = {"deploy_minutes", "teardown_minutes", "level_overhead_s", "region"}
_ENTRY_EXTRA_KEYS = {"id", "scenario"}


@dataclass(frozen=True)
class PlanSettings:
    """What a deployment and a teardown cost in endpoint time (for the dry-run plan)."""

    deploy_minutes: float = 20.0
    teardown_minutes: float = 2.0
    level_overhead_s: float = 0.0  # warm-up and metric collection per level, on top of duration_s
    region: str = "us-east-1"


@dataclass(frozen=True)
class Configuration:
    """One endpoint of the matrix: an id for names and reports, and its validated deployment."""

    id: str
    deployment: DeploymentConfig

    def describe(self) -> str:
        """``Llama 2 7B gptq on ml.g5.2xlarge (TGI 3.3.6)``, ``(vLLM 0.29.0)``: the engine and its image version."""
        d = self.deployment
        engine = f"{d.engine_spec.display_name} {d.engine_version}"
        return f"Llama 2 {d.model.upper()} {d.quantization} on {d.instance_type} ({engine})"

    @property
    def engine(self) -> str:
        return self.deployment.engine


@dataclass(frozen=True)
class Skipped:
    """An infeasible entry left out under ``on_infeasible: skip``, with the validation's reasons."""

    id: str
    entry: dict[str, Any]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Matrix:
    name: str
    configurations: tuple[Configuration, ...]
    levels: tuple[int, ...]  # the concurrency levels run on each configuration's endpoint
    load: LoadSpec  # what every level shares; a level is this load at one of the levels' concurrency
    plan: PlanSettings = field(default_factory=PlanSettings)
    max_parallel_endpoints: int = 1
    on_infeasible: str = "refuse"
    skipped: tuple[Skipped, ...] = ()
    description: str = ""

    @property
    def runs(self) -> int:
        """(configuration, concurrency) pairs: what the 2023 method deployed an endpoint for each of."""
        return len(self.configurations) * len(self.levels)

    @property
    def level_specs(self) -> tuple[LoadSpec, ...]:
        """Each level's load, in the order the levels run."""
        return tuple(replace(self.load, concurrency=level) for level in self.levels)

    @property
    def level_duration_s(self) -> float:
        """How long each level measures (a matrix's levels are bounded by time: the plan prices them by it)."""
        return self.load.duration_s or 0.0


def default_id(entry: dict[str, Any], defaults: dict[str, Any] | None = None) -> str:
    """``7b-gptq-g5-2xlarge``: short, unique per model/quantization/instance/engine, valid in SageMaker names.

    An engine other than TGI (the entry's own, else the matrix defaults') ends the id (``7b-gptq-g5-2xlarge-vllm``),
    so one matrix can hold both engines on one instance; a TGI entry's id is what it was before engines existed.
    """
    parts = [str(entry.get("model", "7b")), str(entry.get("quantization") or entry.get("scenario", ""))]
    instance = str(entry.get("instance_type") or "").removeprefix("ml.").replace(".", "-")
    engine = str(entry.get("engine") or (defaults or {}).get("engine") or DEFAULT_ENGINE).strip().lower()
    return "-".join(p for p in [*parts, instance, "" if engine == DEFAULT_ENGINE else engine] if p).lower()


def _check_keys(where: str, data: dict[str, Any], allowed: set[str] | frozenset[str], issues: list[Issue]) -> None:
    for key, value in data.items():
        if key not in allowed:
            issues.append(Issue(f"{where}.{key}", value, f"unknown key; allowed: {', '.join(sorted(allowed))}"))


def _load(load_raw: dict[str, Any], issues: list[Issue]) -> tuple[tuple[int, ...], LoadSpec]:
    """The load section: its levels, and the LoadSpec every level shares (each problem named ``load.<key>``)."""
    levels: tuple[int, ...] = (1,)
    try:
        levels = check_levels(load_raw.get("concurrency"), "load.concurrency")
    except ConfigError as err:
        issues.extend(err.issues)
    load = LoadSpec()
    try:
        load = from_data(LoadSpec, {k: v for k, v in load_raw.items() if k in _LOAD_KEYS - {"concurrency"}})
    except ConfigError as err:
        issues.extend(Issue(f"load.{i.field}", i.value, i.allowed) for i in err.issues)
    if load.duration_s is None:
        issues.append(Issue("load.duration_s", None, "must be a number of seconds (the plan prices levels by it)"))
    return levels, load


def _build_deployment(entry: dict[str, Any], defaults: dict[str, Any]) -> DeploymentConfig:
    values = {**defaults, **{k: v for k, v in entry.items() if k not in _ENTRY_EXTRA_KEYS}}
    scenario = entry.get("scenario")
    if scenario is None:
        missing = [k for k in ("instance_type", "quantization") if values.get(k) is None]
        if missing:
            raise ConfigError(
                [Issue(k, None, "must be given (or name a scenario whose profile supplies it)") for k in missing]
            )
        scenario = VALIDATION_SCENARIO
    elif scenario not in SCENARIOS:
        raise ConfigError([Issue("scenario", scenario, f"must be one of {', '.join(SCENARIOS)}")])
    return DeploymentConfig(scenario=str(scenario), **values)


def parse_matrix(data: Any, *, source: str = "matrix", prefix: str = NAME_PREFIX) -> Matrix:
    """Validate a matrix mapping; raises ``ConfigError`` listing every problem found."""
    if not isinstance(data, dict):
        raise ConfigError([Issue(source, data, "must be a mapping")])
    issues: list[Issue] = []
    _check_keys(source, data, _TOP_KEYS, issues)
    defaults = data.get("defaults") or {}
    load_raw = data.get("load") or {}
    plan_raw = data.get("plan") or {}
    _check_keys(f"{source}.defaults", defaults, DEPLOYMENT_KEYS - {"endpoint_name"}, issues)
    _check_keys(f"{source}.load", load_raw, _LOAD_KEYS, issues)
    _check_keys(f"{source}.plan", plan_raw, _PLAN_KEYS, issues)

    levels, load = _load(load_raw, issues)
    on_infeasible = data.get("on_infeasible", "refuse")
    if on_infeasible not in ON_INFEASIBLE:
        issues.append(Issue("on_infeasible", on_infeasible, f"must be one of {', '.join(ON_INFEASIBLE)}"))
    parallel = data.get("max_parallel_endpoints", 1)
    if not isinstance(parallel, int) or isinstance(parallel, bool) or not 1 <= parallel <= 40:
        issues.append(Issue("max_parallel_endpoints", parallel, "must be an integer from 1 to 40 (instance quotas)"))
    try:
        plan = PlanSettings(**{k: v for k, v in plan_raw.items() if k in _PLAN_KEYS})
    except TypeError as err:  # unknown keys, already reported above
        raise ConfigError(issues or [Issue(source, "...", str(err))], context=source) from None
    if plan.deploy_minutes < 0 or plan.teardown_minutes < 0 or plan.level_overhead_s < 0:
        issues.append(Issue("plan", plan_raw, "deploy_minutes, teardown_minutes and level_overhead_s must be >= 0"))

    entries = data.get("configurations")
    if not isinstance(entries, list) or not entries:
        issues.append(Issue("configurations", entries, "must be a non-empty list"))
        entries = []
    configurations: list[Configuration] = []
    skipped: list[Skipped] = []
    infeasible: list[Issue] = []
    seen: set[str] = set()
    max_id = SAGEMAKER_NAME_MAX - len(prefix) - RUN_ID_LENGTH - 2
    for index, entry in enumerate(entries):
        where = f"configurations[{index}]"
        if not isinstance(entry, dict):
            issues.append(Issue(where, entry, "must be a mapping of DeploymentConfig fields"))
            continue
        _check_keys(where, entry, (DEPLOYMENT_KEYS - {"endpoint_name"}) | _ENTRY_EXTRA_KEYS, issues)
        config_id = str(entry.get("id") or default_id(entry, defaults))
        if not CONFIG_ID.match(config_id) or len(config_id) > max_id:
            issues.append(
                Issue(
                    f"{where}.id",
                    config_id,
                    f"must be lowercase letters, digits and single hyphens, at most {max_id} characters",
                )
            )
        if config_id in seen:
            issues.append(Issue(f"{where}.id", config_id, "is used twice; give one of them an explicit id"))
        seen.add(config_id)
        try:
            deployment = _build_deployment(entry, defaults)
        except ConfigError as err:
            reasons = tuple(str(i) for i in err.issues)
            infeasible.extend(Issue(f"{where} ({config_id}).{i.field}", i.value, i.allowed) for i in err.issues)
            skipped.append(Skipped(config_id, dict(entry), reasons))
            continue
        except TypeError as err:  # unknown DeploymentConfig field, already reported by _check_keys
            issues.append(Issue(where, entry, str(err)))
            continue
        configurations.append(Configuration(config_id, deployment))

    if infeasible and on_infeasible == "refuse":
        issues.extend(infeasible)
    if not configurations and not issues:
        issues.append(Issue("configurations", len(entries), "no feasible configuration left"))
    if issues:
        raise ConfigError(issues, context=f"benchmark matrix {source}")
    return Matrix(
        name=str(data.get("name") or source),
        description=str(data.get("description") or ""),
        configurations=tuple(configurations),
        levels=levels,
        load=load,
        plan=plan,
        max_parallel_endpoints=parallel,
        on_infeasible=on_infeasible,
        skipped=tuple(skipped) if on_infeasible == "skip" else (),
    )


def resolve_path(name_or_path: str | Path) -> Path:
    """A path, or the name of a shipped matrix (``2023`` -> ``benchmark/matrices/2023.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = MATRICES_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in MATRICES_DIR.glob("*.yaml")))
    raise ConfigError([Issue("matrix", str(name_or_path), f"must be a YAML file or one of: {known}")])


def load_matrix(name_or_path: str | Path, *, prefix: str = NAME_PREFIX) -> Matrix:
    path = resolve_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError([Issue("matrix", str(path), f"is not valid YAML: {err}")]) from None
    return parse_matrix(data, source=path.stem, prefix=prefix)
