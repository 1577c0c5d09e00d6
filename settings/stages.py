"""Promotion stages in one file: where the pipeline runs, where it reads the code, and each stage in order.

``-c stages=stages.example.yaml`` (see that file). Every stage names its account, region, the scenario stacks it
deploys and its own deployment settings, which go through ``DeploymentConfig`` with the stage's region, so a
stage file is refused before synth on the same terms as any other config: unknown keys, malformed or missing
accounts, duplicate stages, unknown scenarios, a region without a TGI image, a model that does not fit.

A stage's deployments come from this file only (built-in defaults < file ``defaults`` < stage ``defaults`` <
stage ``<scenario>``): ``-c model=...`` and ``-c config=...`` shape the stand-alone stacks, never a stage, so
what the pipeline deploys is exactly what is committed. A production stage (named ``prod``/``production`` or
marked ``production: true``) must require a manual approval.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.coercion import FILE_SECTIONS, coerce_section
from catalog.deployment import DeploymentConfig
from catalog.errors import ConfigError, Issue
from catalog.network_options import DEFAULT_AZ_COUNT, parse_az_count
from catalog.regions import REGION
from catalog.scenarios import SCENARIOS
from settings.benchmark_options import BenchmarkOptions
from settings.files import read_data_file
from settings.options import AppOptions, Settings

ACCOUNT = re.compile(r"^\d{12}$")
STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,19}$")  # a construct id, a stack-name prefix and part of role names
PIPELINE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,29}$")  # role names add a stage name: 64 chars in all
BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,100}$")
CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[\w-]+$"
)
CONNECTION_REPO = re.compile(r"^[\w.-]+/[\w./-]+$")  # owner/repo (GitHub, GitLab, Bitbucket)
CODECOMMIT_REPO = re.compile(r"^[\w.-]{1,100}$")
PRODUCTION_NAMES = frozenset({"prod", "production"})
PROVIDERS = ("connection", "codecommit")

TOP_KEYS = frozenset({"pipeline", "defaults", "stages"})
PIPELINE_KEYS = frozenset({"account", "region", "name", "source"})
SOURCE_KEYS = frozenset({"provider", "repository", "branch", "connection_arn"})
STAGE_KEYS = frozenset(
    {
        "name",
        "account",
        "region",
        "requires_approval",
        "production",
        "scenarios",
        "deployments",
        "benchmark_schedule",
        "az_count",
    }
)
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class SourceConfig:
    """Where the pipeline reads the code. ``connection``: a CodeConnections (CodeStar) connection to GitHub,
    GitLab or Bitbucket (the default: CodeCommit is closed to new AWS customers since 2024); ``codecommit``:
    a CodeCommit repository in the pipeline account."""

    provider: str
    repository: str
    branch: str
    connection_arn: str | None = None


@dataclass(frozen=True)
class PipelineConfig:
    account: str
    region: str
    name: str
    source: SourceConfig


@dataclass(frozen=True)
class StageConfig:
    """One deployment target. ``deployments`` is keyed by scenario, in the order the file lists them."""

    name: str
    account: str
    region: str
    requires_approval: bool
    production: bool
    scenarios: tuple[str, ...]
    deployments: Mapping[str, DeploymentConfig]
    benchmark_schedule: bool
    az_count: int = DEFAULT_AZ_COUNT

    @property
    def settings(self) -> Settings:
        """What ``add_llama_stacks`` takes; the ``benchmark`` option carries the schedule switch."""
        options = AppOptions(
            scenarios=self.scenarios,
            benchmark=BenchmarkOptions(enabled=self.benchmark_schedule),
            az_count=self.az_count,
        )
        return Settings(deployments=self.deployments, options=options)


@dataclass(frozen=True)
class StagesConfig:
    pipeline: PipelineConfig
    stages: tuple[StageConfig, ...]  # promotion order
    file: str  # the path as given (-c stages=...), reused by the pipeline's own synth so it self-mutates alike

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def load_stages(path: str | Path, *, base_dir: Path | None = None) -> StagesConfig:
    """Read and validate a stage file (YAML or JSON); relative paths are taken from ``base_dir``."""
    data = read_data_file(path, field="stages", kind="stage file", base_dir=base_dir)
    return parse_stages(data, file=str(path))


def parse_stages(data: Any, *, file: str = "<stages>") -> StagesConfig:
    """Validate a parsed stage file; every problem is reported at once."""
    issues: list[Issue] = []
    if not isinstance(data, Mapping):
        raise ConfigError([Issue("stages", file, "must hold a mapping with pipeline, defaults and stages")])
    issues += _unknown_keys("", data, TOP_KEYS)
    pipeline = _pipeline(data.get("pipeline"), issues)
    defaults = _section("defaults", data.get("defaults"), issues)
    stages = _stages(data.get("stages"), defaults, issues)
    if issues or pipeline is None:
        raise ConfigError(issues or [Issue("pipeline", None, "is required")], context=f"stage file {file}")
    return StagesConfig(pipeline=pipeline, stages=stages, file=file)


# --- pieces ----------------------------------------------------------------------------------------------


def _unknown_keys(where: str, data: Mapping[str, Any], known: frozenset[str]) -> list[Issue]:
    return [
        Issue(f"{where}{key}", data[key], f"unknown key; allowed: {', '.join(sorted(known))}")
        for key in data
        if key not in known
    ]


def _account(where: str, value: Any, issues: list[Issue]) -> str:
    if value is None:
        issues.append(Issue(where, None, "is required: a 12-digit AWS account id"))
    elif isinstance(value, int) and not isinstance(value, bool):
        issues.append(Issue(where, value, "must be a quoted 12-digit string: YAML reads unquoted digits as a number"))
    elif not isinstance(value, str) or not ACCOUNT.match(value):
        issues.append(Issue(where, value, "must be a 12-digit AWS account id"))
    else:
        return value
    return ""


def _region(where: str, value: Any, issues: list[Issue]) -> str:
    if not isinstance(value, str) or not REGION.match(value):
        issues.append(Issue(where, value, "is required: an AWS region name such as us-east-1"))
        return ""
    return value


def _bool(where: str, value: Any, default: bool, issues: list[Issue]) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.lower()]
    issues.append(Issue(where, value, "must be true or false"))
    return default


def _section(where: str, value: Any, issues: list[Issue]) -> dict[str, Any]:
    """A mapping of DeploymentConfig fields, coerced like the config file's sections."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        issues.append(Issue(where, value, "must be a mapping of deployment settings"))
        return {}
    if "region" in value:
        issues.append(Issue(f"{where}.region", value["region"], "must not be set here: a stage's region decides it"))
        value = {k: v for k, v in value.items() if k != "region"}
    try:
        return coerce_section(value, where)
    except ConfigError as err:
        issues.extend(err.issues)
        return {}


def _pipeline(value: Any, issues: list[Issue]) -> PipelineConfig | None:
    if not isinstance(value, Mapping):
        issues.append(Issue("pipeline", value, "is required: a mapping with account, region and source"))
        return None
    issues += _unknown_keys("pipeline.", value, PIPELINE_KEYS)
    account = _account("pipeline.account", value.get("account"), issues)
    region = _region("pipeline.region", value.get("region"), issues)
    name = value.get("name", "Llama2Promotion")
    if not isinstance(name, str) or not PIPELINE_NAME.match(name):
        issues.append(Issue("pipeline.name", name, "must be 1-30 letters, digits or hyphens, starting with a letter"))
    source = _source(value.get("source"), issues)
    if source is None:
        return None
    return PipelineConfig(account=account, region=region, name=str(name), source=source)


def _source(value: Any, issues: list[Issue]) -> SourceConfig | None:
    if not isinstance(value, Mapping):
        issues.append(Issue("pipeline.source", value, "is required: a mapping with repository and branch"))
        return None
    issues += _unknown_keys("pipeline.source.", value, SOURCE_KEYS)
    provider = value.get("provider", "connection")
    repository = value.get("repository")
    branch = value.get("branch", "main")
    arn = value.get("connection_arn")
    if provider not in PROVIDERS:
        issues.append(Issue("pipeline.source.provider", provider, f"must be one of {', '.join(PROVIDERS)}"))
    elif provider == "connection":
        if not isinstance(arn, str) or not CONNECTION_ARN.match(arn):
            issues.append(
                Issue(
                    "pipeline.source.connection_arn",
                    arn,
                    "is required for provider connection: arn:aws:codeconnections:<region>:<account>:connection/<id>",
                )
            )
        if not isinstance(repository, str) or not CONNECTION_REPO.match(repository):
            issues.append(Issue("pipeline.source.repository", repository, "must be owner/repository"))
    else:
        if arn is not None:
            issues.append(Issue("pipeline.source.connection_arn", arn, "must be unset for provider codecommit"))
        if not isinstance(repository, str) or not CODECOMMIT_REPO.match(repository):
            issues.append(Issue("pipeline.source.repository", repository, "must be a CodeCommit repository name"))
    if not isinstance(branch, str) or not BRANCH.match(branch):
        issues.append(Issue("pipeline.source.branch", branch, "must be a branch name"))
    return SourceConfig(provider=str(provider), repository=str(repository), branch=str(branch), connection_arn=arn)


def _stages(value: Any, defaults: Mapping[str, Any], issues: list[Issue]) -> tuple[StageConfig, ...]:
    if not isinstance(value, list) or not value:
        issues.append(Issue("stages", value, "is required: a non-empty list of stages, in promotion order"))
        return ()
    out: list[StageConfig] = []
    seen_names: dict[str, int] = {}
    seen_targets: dict[tuple[str, str], str] = {}
    for index, raw in enumerate(value):
        stage = _stage(index, raw, defaults, issues)
        if stage is None:
            continue
        key = stage.name.lower()
        if key in seen_names:
            issues.append(Issue(f"stages[{index}].name", stage.name, f"duplicates stages[{seen_names[key]}]"))
        seen_names.setdefault(key, index)
        target = (stage.account, stage.region)
        if target in seen_targets:
            issues.append(
                Issue(
                    f"stages.{stage.name}.account",
                    f"{stage.account}/{stage.region}",
                    f"is also stage {seen_targets[target]}'s: stages need their own account or region "
                    "(endpoint and role names are per account and region)",
                )
            )
        seen_targets.setdefault(target, stage.name)
        out.append(stage)
    return tuple(out)


def _stage(index: int, raw: Any, defaults: Mapping[str, Any], issues: list[Issue]) -> StageConfig | None:
    if not isinstance(raw, Mapping):
        issues.append(Issue(f"stages[{index}]", raw, "must be a mapping with name, account, region and scenarios"))
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not STAGE_NAME.match(name):
        issues.append(Issue(f"stages[{index}].name", name, "must be 1-20 letters or digits, starting with a letter"))
        name = f"stages[{index}]"
    where = f"stages.{name}" if not name.startswith("stages[") else name
    start = len(issues)
    issues += _unknown_keys(f"{where}.", raw, STAGE_KEYS)
    account = _account(f"{where}.account", raw.get("account"), issues)
    region = _region(f"{where}.region", raw.get("region"), issues)
    approval = _bool(f"{where}.requires_approval", raw.get("requires_approval"), False, issues)
    production = _bool(f"{where}.production", raw.get("production"), False, issues)
    schedule = _bool(f"{where}.benchmark_schedule", raw.get("benchmark_schedule"), False, issues)
    try:
        az_count = parse_az_count(raw.get("az_count"))
    except ConfigError as err:
        issues.extend(Issue(f"{where}.{i.field}", i.value, i.allowed) for i in err.issues)
        az_count = DEFAULT_AZ_COUNT
    if (production or name.lower() in PRODUCTION_NAMES) and not approval:
        issues.append(
            Issue(f"{where}.requires_approval", approval, "must be true for a production stage: a human approves prod")
        )
    scenarios = _scenarios(f"{where}.scenarios", raw.get("scenarios"), issues)
    sections = raw.get("deployments") or {}
    if not isinstance(sections, Mapping):
        issues.append(Issue(f"{where}.deployments", sections, "must be a mapping of sections (defaults, <scenario>)"))
        sections = {}
    for section in sections:
        if section not in FILE_SECTIONS:
            allowed = ", ".join(sorted(FILE_SECTIONS))
            issues.append(Issue(f"{where}.deployments.{section}", "...", f"unknown section; allowed: {allowed}"))
        elif section != "defaults" and section not in scenarios:
            issues.append(
                Issue(
                    f"{where}.deployments.{section}", "...", f"is not deployed here; scenarios: {', '.join(scenarios)}"
                )
            )
    stage_defaults = _section(f"{where}.deployments.defaults", sections.get("defaults"), issues)
    deployments: dict[str, DeploymentConfig] = {}
    for scenario in scenarios:
        before = len(issues)
        values = {
            **defaults,
            **stage_defaults,
            **_section(f"{where}.deployments.{scenario}", sections.get(scenario), issues),
        }
        if len(issues) > before:
            continue  # a setting that could not be read; validating the rest would report a partial picture
        try:
            # A malformed region is reported above; validate the rest environment-agnostic rather than twice.
            deployments[scenario] = DeploymentConfig(scenario=scenario, region=region or None, **values)
        except ConfigError as err:
            issues.extend(Issue(f"{where}.{scenario}.{i.field}", i.value, i.allowed) for i in err.issues)
    if len(issues) > start:
        return None
    return StageConfig(
        name=name,
        account=account,
        region=region,
        requires_approval=approval,
        production=production or name.lower() in PRODUCTION_NAMES,
        scenarios=scenarios,
        deployments=types.MappingProxyType(deployments),
        benchmark_schedule=schedule,
        az_count=az_count,
    )


def _scenarios(where: str, value: Any, issues: list[Issue]) -> tuple[str, ...]:
    allowed = ", ".join(SCENARIOS)
    if not isinstance(value, list) or not value:
        issues.append(Issue(where, value, f"is required: a non-empty list of {allowed}"))
        return ()
    bad = [v for v in value if v not in SCENARIOS]
    if bad:
        issues.append(Issue(where, bad, f"must be a subset of {allowed}"))
    dupes = sorted({v for v in value if value.count(v) > 1})
    if dupes:
        issues.append(Issue(where, dupes, "lists a scenario twice"))
    return tuple(v for v in dict.fromkeys(value) if v in SCENARIOS)
