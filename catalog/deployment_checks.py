"""The rules a ``DeploymentConfig`` must meet, one named check per concern, all problems reported at once.

Each check reads the raw (unresolved) fields and the catalog entries they name, and returns its issues; a check
that needs an entry that could not be looked up is skipped, since the lookup already reported the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catalog.engines import Engine, ServingLimits, engine_issues, get_engine
from catalog.errors import ConfigError, Issue, collect
from catalog.hosts import host_issues
from catalog.instances import InstanceSpec, get_instance
from catalog.models import HUB_COMMIT_PATTERN, HUB_REPO_ID_PATTERN, ModelSpec, Quantization, get_model, get_quantization
from catalog.regions import region_issue
from catalog.scenarios import SCENARIOS, Profile, get_profile
from catalog.tgi_images import at_least, resolve_version

if TYPE_CHECKING:
    from catalog.deployment import DeploymentConfig

TIMEOUT_RANGE = (60, 3600)  # SageMaker's limits for both endpoint-config timeouts
MAX_INSTANCES_CAP = 20
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PREFIX = re.compile(r"^models/[A-Za-z0-9!_.*'()/-]+/$")  # the staging job may write only under models/


@dataclass(frozen=True)
class Resolved:
    """The catalog entries a deployment's names stand for, each looked up once; None where a name is unknown."""

    model: ModelSpec | None = None
    quantization: Quantization | None = None
    instance: InstanceSpec | None = None
    tgi_version: str | None = None

    def canonical(self) -> dict[str, str]:
        """The canonical names found: ``ml.g5.2xlarge`` for ``g5.2xlarge``, ``fp16`` for None, ``3.3.6`` for 3.3."""
        names = {
            "model": self.model.size if self.model else None,
            "quantization": self.quantization.name if self.quantization else None,
            "instance_type": self.instance.name if self.instance else None,
            "tgi_version": self.tgi_version,
        }
        return {field: name for field, name in names.items() if name is not None}


def resolve(
    *,
    model: object,
    quantization: object,
    instance_type: object,
    tgi_version: object,
    issues: list[Issue],
    profile: Callable[[ModelSpec], Profile] | None = None,
) -> Resolved:
    """A deployment's names resolved in the catalog, every problem added to ``issues``: the one resolution of a
    ``DeploymentConfig`` and of a benchmark's configuration.

    ``profile``: the scenario profile that supplies quantization and instance where they are not given (without
    a known model there is none, and nothing else is looked up). An empty instance type is none (a benchmark of
    a URL). The quantization must have weights for the model.
    """
    found_model = collect(get_model, model, "model", issues)
    defaults = None
    if profile is not None:
        if found_model is None:
            return Resolved()
        defaults = profile(found_model)
    quant_name = quantization or (defaults.quantization if defaults else None)
    instance_name = instance_type or (defaults.instance_type if defaults else None)
    quant = collect(get_quantization, quant_name, "quantization", issues)
    instance = collect(get_instance, instance_name, "instance_type", issues) if instance_name else None
    version = collect(resolve_version, tgi_version, "tgi_version", issues)
    if found_model is not None and quant is not None:
        unavailable = found_model.availability_issue(quant.name, given=quantization)
        issues += [unavailable] if unavailable else []
    return Resolved(found_model, quant, instance, version)


def check(cfg: DeploymentConfig) -> tuple[list[Issue], Resolved]:
    """Every problem of a deployment, and what its names resolved to."""
    if cfg.scenario not in SCENARIOS:
        return [Issue("scenario", cfg.scenario, f"must be one of {', '.join(SCENARIOS)}")], Resolved()
    issues: list[Issue] = []
    names = resolve(
        model=cfg.model,
        quantization=cfg.quantization,
        instance_type=cfg.instance_type,
        tgi_version=cfg.tgi_version,
        issues=issues,
        profile=lambda model: get_profile(cfg.scenario, model.size),
    )
    model, quant, instance, tgi_version = names.model, names.quantization, names.instance, names.tgi_version
    if model is None:
        return issues, names
    engine = collect(get_engine, cfg.engine, "engine", issues)
    version = _engine_version(cfg, engine, tgi_version, issues)
    tgi = engine is not None and engine.name == "tgi"
    if tgi:
        issues += _versions(cfg, model, quant, tgi_version)
    issues += _other_engines_settings(cfg, engine)
    issues += _token_limits(cfg, model, tgi=tgi)
    issues += _sagemaker_limits(cfg)
    issues += _scaling(cfg)
    if instance is not None:
        issues += _instance_storage(cfg, instance)
        if quant is not None and engine is not None:
            issues += _memory(cfg, engine, model, quant, instance)
    issues += _region(cfg, engine, version)
    issues += _names(cfg)
    issues += _alarms(cfg)
    if engine is not None and version is not None and quant is not None and instance is not None:
        limits = serving_limits(cfg, model=model, quant=quant, instance=instance, version=version)
        issues += _engine_serves(cfg, engine, limits, issues)
    return issues, names


def _engine_version(
    cfg: DeploymentConfig, engine: Engine | None, tgi_version: str | None, issues: list[Issue]
) -> str | None:
    """The image version of the deployment's engine, resolved (None when it cannot be, with its issue added)."""
    if engine is None or engine.name == "tgi":
        return tgi_version
    field = engine.version_field
    resolved: str | None = collect(engine.resolve_version, getattr(cfg, field), field, issues)
    return resolved


def _other_engines_settings(cfg: DeploymentConfig, engine: Engine | None) -> list[Issue]:
    """A setting only another engine reads would be silently ignored: refuse it instead."""
    if engine is None or engine.name != "tgi":
        return []  # vLLM's refusal of the TGI-only max_batch_total_tokens comes with its other rules (engine_issues)
    return [
        Issue(name, getattr(cfg, name), "is a vLLM setting; leave it unset for engine 'tgi' (or set engine: vllm)")
        for name in ("vllm_version", "gpu_memory_utilization")
        if getattr(cfg, name) is not None
    ]


def _versions(cfg: DeploymentConfig, model: ModelSpec, quant: Quantization | None, version: str | None) -> list[Issue]:
    """The TGI version can serve the quantization and the model's attention (weights exist: ``resolve``)."""
    issues: list[Issue] = []
    if quant is not None and version is not None and not at_least(version, quant.min_tgi_version):
        issues.append(Issue("tgi_version", cfg.tgi_version, f"{quant.name} needs TGI >= {quant.min_tgi_version}"))
    if model.kv_heads != model.attention_heads and version is not None and not at_least(version, "0.9.3"):
        issues.append(
            Issue("tgi_version", cfg.tgi_version, f"{model.display_name} (grouped-query attention) needs TGI >= 0.9.3")
        )
    return issues


def _token_limits(cfg: DeploymentConfig, model: ModelSpec, *, tgi: bool) -> list[Issue]:
    """The token limits against each other and the model's context; the prefill and batch rules are TGI's (vLLM
    prefills a long prompt in chunks, and its own rules come from ``engine_issues``)."""
    issues: list[Issue] = []
    if cfg.max_input_tokens < 1:
        issues.append(Issue("max_input_tokens", cfg.max_input_tokens, "must be at least 1"))
    if cfg.max_input_tokens >= cfg.max_total_tokens:
        issues.append(
            Issue("max_input_tokens", cfg.max_input_tokens, f"must be below max_total_tokens ({cfg.max_total_tokens})")
        )
    if cfg.max_total_tokens > model.context_length:
        issues.append(
            Issue(
                "max_total_tokens",
                cfg.max_total_tokens,
                f"must be at most {model.display_name}'s context of {model.context_length}",
            )
        )
    if tgi and cfg.max_batch_prefill_tokens < cfg.max_input_tokens:
        issues.append(
            Issue(
                "max_batch_prefill_tokens",
                cfg.max_batch_prefill_tokens,
                f"must be at least max_input_tokens ({cfg.max_input_tokens}), "
                "or no prompt of that length can be admitted",
            )
        )
    if (
        tgi
        and cfg.max_batch_total_tokens is not None
        and cfg.max_batch_total_tokens < max(cfg.max_total_tokens, cfg.max_batch_prefill_tokens)
    ):
        issues.append(
            Issue(
                "max_batch_total_tokens",
                cfg.max_batch_total_tokens,
                "must be at least max_total_tokens and max_batch_prefill_tokens (or left unset for TGI to size)",
            )
        )
    if not 1 <= cfg.max_concurrent_requests <= 4096:
        issues.append(Issue("max_concurrent_requests", cfg.max_concurrent_requests, "must be between 1 and 4096"))
    return issues


def _sagemaker_limits(cfg: DeploymentConfig) -> list[Issue]:
    """SageMaker's own limits on the endpoint config's timeouts and the instance count."""
    issues: list[Issue] = []
    low, high = TIMEOUT_RANGE
    for name in ("startup_health_check_timeout_s", "model_data_download_timeout_s"):
        value = getattr(cfg, name)
        if value is not None and not low <= value <= high:
            issues.append(Issue(name, value, f"must be between {low} and {high} seconds (SageMaker's limit)"))
    if cfg.min_instances < 1:
        issues.append(
            Issue("min_instances", cfg.min_instances, "must be at least 1 (real-time endpoints cannot scale to zero)")
        )
    if cfg.max_instances is not None:
        if cfg.max_instances < cfg.min_instances:
            issues.append(
                Issue("max_instances", cfg.max_instances, f"must be at least min_instances ({cfg.min_instances})")
            )
        if cfg.max_instances > MAX_INSTANCES_CAP:
            issues.append(Issue("max_instances", cfg.max_instances, f"must be at most {MAX_INSTANCES_CAP}"))
    return issues


def _scaling(cfg: DeploymentConfig) -> list[Issue]:
    """Autoscaling target, cooldowns and the blue/green bake time."""
    issues: list[Issue] = []
    if cfg.autoscaling_target is not None and not cfg.autoscaling_target > 0:
        issues.append(
            Issue(
                "autoscaling_target",
                cfg.autoscaling_target,
                "must be a positive number of concurrent requests per instance",
            )
        )
    for name in ("scale_in_cooldown_s", "scale_out_cooldown_s", "deployment_wait_s"):
        value = getattr(cfg, name)
        if not 0 <= value <= 3600:
            issues.append(Issue(name, value, "must be between 0 and 3600 seconds"))
    return issues


def _instance_storage(cfg: DeploymentConfig, instance: InstanceSpec) -> list[Issue]:
    """SageMaker rejects VolumeSizeInGB and KmsKeyId on instances with local (hardware-encrypted) NVMe."""
    if not instance.has_local_nvme:
        return []
    issues: list[Issue] = []
    if cfg.volume_size_gb is not None:
        issues.append(
            Issue(
                "volume_size_gb",
                cfg.volume_size_gb,
                f"must be unset: {instance.name} has local NVMe storage and SageMaker rejects VolumeSizeInGB",
            )
        )
    if cfg.endpoint_config_kms:
        issues.append(
            Issue(
                "endpoint_config_kms",
                cfg.endpoint_config_kms,
                f"must be false: {instance.name} has hardware-encrypted local NVMe and SageMaker rejects KmsKeyId",
            )
        )
    return issues


def _memory(
    cfg: DeploymentConfig, engine: Engine, model: ModelSpec, quant: Quantization, instance: InstanceSpec
) -> list[Issue]:
    """The fit check under the engine's memory rule (``catalog.fit``)."""
    utilization = cfg.gpu_memory_utilization if engine.name == "vllm" else None  # refused above for TGI
    try:
        plan = engine.memory_plan(model, quant, instance, cfg.max_total_tokens, gpu_memory_utilization=utilization)
    except ConfigError as err:  # a utilization outside (0, 1]
        return list(err.issues)
    return plan.issues()


def _region(cfg: DeploymentConfig, engine: Engine | None, version: str | None) -> list[Issue]:
    """A named region must be well formed and have the engine's image."""
    if cfg.region is None:
        return []
    malformed = region_issue(cfg.region)
    if malformed is not None:
        return [malformed]
    if engine is None or version is None:
        return []
    try:
        engine.image(version).account(cfg.region)
    except ConfigError as err:
        return list(err.issues)
    return []


def serving_limits(
    cfg: DeploymentConfig, *, model: ModelSpec, quant: Quantization, instance: InstanceSpec, version: str
) -> ServingLimits:
    """What the container is told, from the deployment's fields and the catalog entries they resolve to."""
    return ServingLimits(
        model=model,
        quantization=quant,
        instance=instance,
        version=version,
        max_input_tokens=cfg.max_input_tokens,
        max_total_tokens=cfg.max_total_tokens,
        max_batch_prefill_tokens=cfg.max_batch_prefill_tokens,
        max_concurrent_requests=cfg.max_concurrent_requests,
        max_batch_total_tokens=cfg.max_batch_total_tokens,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
    )


def _engine_serves(cfg: DeploymentConfig, engine: Engine, limits: ServingLimits, reported: list[Issue]) -> list[Issue]:
    """What the engine's image cannot serve (``catalog.engines.engine_issues``: its own rules, the GPU its image
    and kernels need, its memory rule) and whether a SageMaker host can run the image; a field already reported
    above is not reported twice."""
    found = engine_issues(engine.name, limits)
    field = engine.version_field
    found += host_issues(engine.image(limits.version), field=field, value=getattr(cfg, field))
    fields = {issue.field for issue in reported}
    return [issue for issue in found if issue.field not in fields]


def _names(cfg: DeploymentConfig) -> list[Issue]:
    """Endpoint name, weights prefix and Hub coordinates."""
    issues: list[Issue] = []
    if cfg.endpoint_name is not None and not ENDPOINT_NAME.match(cfg.endpoint_name):
        issues.append(
            Issue(
                "endpoint_name",
                cfg.endpoint_name,
                "must be 1-63 letters, digits or hyphens, starting and ending alphanumeric",
            )
        )
    if cfg.weights_prefix is not None and (cfg.weights_prefix.startswith("/") or not PREFIX.match(cfg.weights_prefix)):
        issues.append(
            Issue(
                "weights_prefix",
                cfg.weights_prefix,
                "must be an S3 key prefix under models/ ending with '/', e.g. models/llama-2-7b-fp16/",
            )
        )
    if cfg.hf_model_id is not None and not re.match(HUB_REPO_ID_PATTERN, cfg.hf_model_id):
        issues.append(
            Issue("hf_model_id", cfg.hf_model_id, "must be a Hub repository id such as meta-llama/Llama-2-7b-chat-hf")
        )
    if cfg.hf_revision is not None and not re.match(HUB_COMMIT_PATTERN, cfg.hf_revision):
        issues.append(
            Issue("hf_revision", cfg.hf_revision, "must be a full Hub commit id: 40 lowercase hexadecimal digits")
        )
    return issues


def _alarms(cfg: DeploymentConfig) -> list[Issue]:
    issues: list[Issue] = []
    if not 0 < cfg.alarm_5xx_rate_pct <= 100:
        issues.append(Issue("alarm_5xx_rate_pct", cfg.alarm_5xx_rate_pct, "must be in (0, 100]"))
    if not 0 < cfg.alarm_gpu_memory_pct <= 100:
        issues.append(Issue("alarm_gpu_memory_pct", cfg.alarm_gpu_memory_pct, "must be in (0, 100]"))
    if not cfg.alarm_model_latency_p90_ms > 0:
        issues.append(Issue("alarm_model_latency_p90_ms", cfg.alarm_model_latency_p90_ms, "must be positive"))
    return issues
