"""The identity of one benchmarked deployment, validated through the catalog.

A result is only worth comparing or resuming if we know exactly what produced it, so every name is
resolved to its canonical catalog form (``g5.2xlarge`` -> ``ml.g5.2xlarge``, ``None`` -> ``fp16``,
``3.3`` -> ``3.3.6``) and the whole identity is folded into a stable :attr:`BenchmarkConfiguration.key`. The
names resolve as a ``DeploymentConfig``'s do (``catalog.deployment.resolve``: the same lookups, the same
availability rule), without a scenario to fill what is not given.

The serving engine is part of the identity: ``engine`` (``tgi`` or ``vllm``, :mod:`catalog.engines`) and its image
version, ``tgi_version`` or ``vllm_version`` as in a ``DeploymentConfig``. A record written before engines existed
has neither field and reads as TGI, so its key (``.../tgi-3.3.6/...``) is unchanged; a vLLM key says
``vllm-<version>`` where a TGI key says ``tgi-<version>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from benchmark.serialize import Codec, JsonShape
from catalog import DEFAULT_REGION
from catalog.deployment import resolve
from catalog.engines import DEFAULT_ENGINE, Engine, get_engine
from catalog.errors import ConfigError, Issue, collect
from catalog.fit import MemoryPlan
from catalog.regions import region_issue
from catalog.tgi_images import DEFAULT_VERSION as DEFAULT_TGI_VERSION
from catalog.views import CatalogViews, EngineViews

# The 2023 benchmark ran with MAX_TOTAL_TOKENS 2048; used for the memory-fit check when settings do not say.
DEFAULT_MAX_TOTAL_TOKENS = 2048
_LABEL = re.compile(r"^[A-Za-z0-9._-]{0,64}$")
_SETTING_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
# What the key says where no instance type was given (a URL measured as it is): no price, no bandwidth bound.
NO_INSTANCE = "no-instance"


def _settings_from_json(data: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(data, Mapping):
        raise ConfigError([Issue("settings", data, "must be a mapping of name to value")])
    return tuple((str(k), str(v)) for k, v in data.items())


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfiguration(CatalogViews, EngineViews):
    """Model size, quantization, instance, engine and its version, region, plus an optional label and settings.

    ``settings`` holds extra container settings that change performance (e.g. ``MAX_BATCH_TOTAL_TOKENS``);
    they are part of the key, so two runs that differ only there are never confused. ``instance_type`` may
    be ``""`` where nobody said what serves the target (``run --url`` alone): such a result has no cost and
    no bandwidth bound, and its key says ``no-instance``.
    """

    model: str
    instance_type: str
    quantization: str = "fp16"
    tgi_version: str | None = DEFAULT_TGI_VERSION  # engine tgi's image version; None (unread) for any other engine
    region: str = DEFAULT_REGION
    label: str = ""
    settings: tuple[tuple[str, str], ...] = field(default=())
    engine: str = DEFAULT_ENGINE  # "tgi" | "vllm"; absent from a record written before engines: TGI
    vllm_version: str | None = None  # engine vllm's image version (its default when unset); refused for tgi
    # JSON (a results record, the CLI's --config): settings as an object of name to value; unknown keys refused.
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(
        codecs={"settings": Codec(encode=dict, decode=_settings_from_json)}, strict=True
    )

    def __post_init__(self) -> None:
        issues: list[Issue] = []
        engine = collect(get_engine, self.engine, "engine", issues)
        tgi = engine is None or engine.name == "tgi"
        tgi_version = self.tgi_version if tgi else DEFAULT_TGI_VERSION  # a vLLM row's is not read
        names = resolve(  # the resolution of catalog.deployment; an empty instance type stays empty (no instance)
            model=self.model,
            quantization=self.quantization,
            instance_type=self.instance_type,
            tgi_version=tgi_version or DEFAULT_TGI_VERSION,
            issues=issues,
        )
        vllm_version = self._engine_version(engine, issues)
        malformed = region_issue(self.region)
        issues += [malformed] if malformed else []
        if not _LABEL.match(str(self.label)):
            issues.append(Issue("label", self.label, "must be at most 64 letters, digits, '.', '_' or '-'"))
        settings = tuple(sorted((str(k), str(v)) for k, v in self.settings))
        for name, _ in settings:
            if not _SETTING_NAME.match(name):
                issues.append(Issue("settings", name, "names must be letters, digits or '_' (e.g. MAX_TOTAL_TOKENS)"))
        if len({name for name, _ in settings}) != len(settings):
            issues.append(Issue("settings", dict(settings), "each setting may appear only once"))
        if issues:
            raise ConfigError(issues, context="benchmark configuration")
        if engine is not None and engine.name != "tgi" and names.quantization and names.instance:
            issues += engine.support_issues(names.quantization, names.instance, vllm_version)
        if issues:
            raise ConfigError(issues, context="benchmark configuration")
        canonical: dict[str, str | None] = {**names.canonical()}
        canonical["engine"] = engine.name if engine else self.engine
        canonical["vllm_version"] = vllm_version
        if not tgi:
            canonical["tgi_version"] = None
        for name, value in canonical.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "settings", settings)

    def _engine_version(self, engine: Engine | None, issues: list[Issue]) -> str | None:
        """The vLLM version resolved (None for TGI). ``vllm_version`` is refused for TGI; ``tgi_version`` is not read
        for vLLM (it becomes None), as a ``DeploymentConfig`` on vLLM leaves its ``tgi_version`` unread: a matrix
        whose defaults name a TGI version may hold vLLM entries."""
        if engine is None:
            return None
        if engine.name == "tgi":
            if self.vllm_version is not None:
                issues.append(Issue("vllm_version", self.vllm_version, "is a vLLM setting; leave it unset for TGI"))
            return None
        version: str | None = collect(engine.resolve_version, self.vllm_version, engine.version_field, issues)
        return version

    @property
    def key(self) -> str:
        """Stable identity for resume and de-duplication: changes only if the deployment changes."""
        instance = self.instance_type or NO_INSTANCE
        parts = [self.model, self.quantization, instance, f"{self.engine}-{self.engine_version}", self.region]
        if self.label:
            parts.append(self.label)
        if self.settings:
            parts.append(",".join(f"{k}={v}" for k, v in self.settings))
        return "/".join(parts)

    @property
    def has_instance(self) -> bool:
        """False where no instance type was given: nothing to price, no bandwidth bound, no memory check."""
        return self.instance_type != ""

    @property
    def engine_label(self) -> str:
        """``TGI 3.3.6``, ``vLLM 0.29.0``: the engine as reports name it."""
        return f"{self.engine_spec.display_name} {self.engine_version}"

    @property
    def display_name(self) -> str:
        instance = self.instance_type or NO_INSTANCE
        text = f"{self.model_spec.display_name} {self.quantization_spec.display_name} {instance} on {self.engine_label}"
        return f"{text} [{self.label}]" if self.label else text

    @property
    def memory_plan(self) -> MemoryPlan:
        """The fit check under the engine's memory rule (TGI's: the catalog's default)."""
        return self.engine_spec.memory_plan(
            self.model_spec, self.quantization_spec, self.instance, self.max_total_tokens
        )

    @property
    def max_total_tokens(self) -> int:
        value = dict(self.settings).get("MAX_TOTAL_TOKENS")
        return int(value) if value and value.isdigit() else DEFAULT_MAX_TOTAL_TOKENS

    def check_deployable(self) -> None:
        """Refuse a configuration whose weights cannot fit or shard: no point starting an endpoint for it."""
        if not self.has_instance:
            return
        issues = self.memory_plan.issues()
        if issues:
            raise ConfigError(issues, context=f"benchmark configuration {self.key}")


__all__ = [
    "DEFAULT_MAX_TOTAL_TOKENS",
    "DEFAULT_TGI_VERSION",
    "NO_INSTANCE",
    "BenchmarkConfiguration",
]  # the CLI reads the default here
