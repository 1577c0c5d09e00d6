"""The validated description of one Llama 2 endpoint: everything a stack or a benchmark run needs.

Validation runs when the object is built, before any construct exists, and reports every problem
at once with the field, the value and what is allowed (``catalog.errors.ConfigError``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from catalog import MemoryPlan, get_image, get_instance, get_model, get_quantization
from catalog.errors import ConfigError, Issue
from catalog.instances import InstanceSpec
from catalog.models import HUB_COMMIT_PATTERN, HUB_REPO_ID_PATTERN, ModelSpec, Quantization
from catalog.tgi_images import DEFAULT_VERSION, TgiImage, at_least, max_input_env_name, resolve_version
from settings.scenarios import SCENARIOS, get_profile

TIMEOUT_RANGE = (60, 3600)  # SageMaker's limits for both endpoint-config timeouts
MAX_INSTANCES_CAP = 20
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
PREFIX = re.compile(r"^models/[A-Za-z0-9!_.*'()/-]+/$")  # the staging job may write only under models/

# Loading weights into GPU memory and warming up TGI takes longer for bigger models; these are the
# timeouts used when the config does not set them (seconds, within SageMaker's 60..3600).
_STARTUP_TIMEOUT_S = {"7b": 900, "13b": 1200, "70b": 2400}
_DOWNLOAD_TIMEOUT_S = {"7b": 900, "13b": 1200, "70b": 2400}

DEFAULT_TGI_VERSION = DEFAULT_VERSION


@dataclass(frozen=True, kw_only=True)
class DeploymentConfig:
    """One endpoint. Fields left ``None`` are derived from the scenario profile and the catalog."""

    scenario: str
    model: str = "7b"
    quantization: str | None = None
    instance_type: str | None = None
    region: str | None = None  # None: environment-agnostic synth
    tgi_version: str = DEFAULT_TGI_VERSION
    min_instances: int = 1
    max_instances: int | None = None
    max_input_tokens: int = 2048
    max_total_tokens: int = 4096
    max_batch_prefill_tokens: int = 4096
    max_batch_total_tokens: int | None = None  # left to TGI's warm-up unless set
    max_concurrent_requests: int = 128
    startup_health_check_timeout_s: int | None = None
    model_data_download_timeout_s: int | None = None
    # Off removes the scalable target (deregisters the variant): the first of the two deploys that change the
    # instance type of a deployed endpoint, which SageMaker refuses while the variant is registered.
    autoscaling: bool = True
    autoscaling_target: float | None = None  # concurrent requests per instance
    scale_in_cooldown_s: int = 600
    scale_out_cooldown_s: int = 120
    volume_size_gb: int | None = None  # refused on NVMe instances (all in scope)
    endpoint_config_kms: bool = False  # refused on NVMe instances (all in scope)
    endpoint_name: str | None = None
    weights_prefix: str | None = None
    hf_model_id: str | None = None
    # The Hub commit the weights must have been staged from (recorded beside them by the staging job); from the
    # catalog for its own Hub id. Checked by the preflight (python -m settings.preflight), not by SageMaker.
    hf_revision: str | None = None
    alarm_5xx_rate_pct: float = 1.0
    alarm_model_latency_p90_ms: float = 30000.0
    alarm_gpu_memory_pct: float = 98.0  # TGI pre-allocates KV cache, so ~90 % is the normal steady state
    deployment_wait_s: int = 600  # blue/green: watch the alarms this long before the old fleet goes

    def __post_init__(self) -> None:
        issues = _check(self)
        if issues:
            raise ConfigError(issues, context=f"{self.scenario} deployment")
        # Fill the derived fields once, so every reader sees the same resolved values.
        profile = get_profile(self.scenario, get_model(self.model).size)
        model = get_model(self.model)
        derived: dict[str, Any] = {
            "model": model.size,
            "quantization": get_quantization(self.quantization or profile.quantization).name,
            "instance_type": get_instance(self.instance_type or profile.instance_type).name,
            "tgi_version": resolve_version(self.tgi_version),
            "max_instances": self.max_instances
            if self.max_instances is not None
            else max(profile.max_instances, self.min_instances),
            "startup_health_check_timeout_s": self.startup_health_check_timeout_s or _STARTUP_TIMEOUT_S[model.size],
            "model_data_download_timeout_s": self.model_data_download_timeout_s or _DOWNLOAD_TIMEOUT_S[model.size],
            "autoscaling_target": float(self.autoscaling_target or profile.concurrency),
        }
        quant = derived["quantization"]
        derived["endpoint_name"] = self.endpoint_name or f"llama2-{model.size}-{quant}-{self.scenario}"
        derived["weights_prefix"] = self.weights_prefix or f"models/llama-2-{model.size}-{quant}/"
        derived["hf_model_id"] = self.hf_model_id or model.hub_ids[quant]
        catalog_id = derived["hf_model_id"] == model.hub_ids[quant]
        derived["hf_revision"] = self.hf_revision or (model.hub_revisions.get(quant) if catalog_id else None)
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    # Resolved views (valid after __post_init__).
    @property
    def model_spec(self) -> ModelSpec:
        return get_model(self.model)

    @property
    def quantization_spec(self) -> Quantization:
        return get_quantization(str(self.quantization))

    @property
    def instance(self) -> InstanceSpec:
        return get_instance(str(self.instance_type))

    @property
    def image(self) -> TgiImage:
        return get_image(self.tgi_version)

    @property
    def memory_plan(self) -> MemoryPlan:
        return MemoryPlan(self.model_spec, self.quantization_spec, self.instance, self.max_total_tokens)

    def container_environment(self) -> dict[str, str]:
        """TGI's settings as the container reads them; the weights come from S3, so no Hub id or token."""
        env = {
            "HF_MODEL_ID": "/opt/ml/model",
            "SM_NUM_GPUS": str(self.instance.gpu_count),
            max_input_env_name(self.tgi_version): str(self.max_input_tokens),
            "MAX_TOTAL_TOKENS": str(self.max_total_tokens),
            "MAX_BATCH_PREFILL_TOKENS": str(self.max_batch_prefill_tokens),
            "MAX_CONCURRENT_REQUESTS": str(self.max_concurrent_requests),
        }
        if self.quantization_spec.tgi_quantize:
            env["HF_MODEL_QUANTIZE"] = self.quantization_spec.tgi_quantize
        if self.max_batch_total_tokens is not None:
            env["MAX_BATCH_TOTAL_TOKENS"] = str(self.max_batch_total_tokens)
        return env

    def summary(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check(cfg: DeploymentConfig) -> list[Issue]:
    issues: list[Issue] = []

    def lookup(fn: Any, value: Any, field: str) -> Any:
        try:
            return fn(value, field=field)
        except ConfigError as err:
            issues.extend(err.issues)
            return None

    if cfg.scenario not in SCENARIOS:
        issues.append(Issue("scenario", cfg.scenario, f"must be one of {', '.join(SCENARIOS)}"))
        return issues
    model = lookup(get_model, cfg.model, "model")
    if model is None:
        return issues
    profile = get_profile(cfg.scenario, model.size)
    quant = lookup(get_quantization, cfg.quantization or profile.quantization, "quantization")
    instance = lookup(get_instance, cfg.instance_type or profile.instance_type, "instance_type")
    version = lookup(resolve_version, cfg.tgi_version, "tgi_version")

    if quant is not None and quant.name not in model.hub_ids:
        issues.append(
            Issue("quantization", cfg.quantization, f"{model.display_name} is available as {', '.join(model.hub_ids)}")
        )
    if quant is not None and version is not None and not at_least(version, quant.min_tgi_version):
        issues.append(Issue("tgi_version", cfg.tgi_version, f"{quant.name} needs TGI >= {quant.min_tgi_version}"))
    if model.kv_heads != model.attention_heads and version is not None and not at_least(version, "0.9.3"):
        issues.append(
            Issue("tgi_version", cfg.tgi_version, f"{model.display_name} (grouped-query attention) needs TGI >= 0.9.3")
        )

    # Token limits against each other and the model's context.
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
    if cfg.max_batch_prefill_tokens < cfg.max_input_tokens:
        issues.append(
            Issue(
                "max_batch_prefill_tokens",
                cfg.max_batch_prefill_tokens,
                f"must be at least max_input_tokens ({cfg.max_input_tokens}), "
                "or no prompt of that length can be admitted",
            )
        )
    if cfg.max_batch_total_tokens is not None and cfg.max_batch_total_tokens < max(
        cfg.max_total_tokens, cfg.max_batch_prefill_tokens
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

    # SageMaker's own limits.
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
    if cfg.autoscaling_target is not None and not cfg.autoscaling_target > 0:
        issues.append(
            Issue(
                "autoscaling_target",
                cfg.autoscaling_target,
                "must be a positive number of concurrent requests per instance",
            )
        )
    for name in ("scale_in_cooldown_s", "scale_out_cooldown_s"):
        value = getattr(cfg, name)
        if not 0 <= value <= 3600:
            issues.append(Issue(name, value, "must be between 0 and 3600 seconds"))
    if not 0 <= cfg.deployment_wait_s <= 3600:
        issues.append(Issue("deployment_wait_s", cfg.deployment_wait_s, "must be between 0 and 3600 seconds"))

    if instance is not None:
        if cfg.volume_size_gb is not None and instance.has_local_nvme:
            issues.append(
                Issue(
                    "volume_size_gb",
                    cfg.volume_size_gb,
                    f"must be unset: {instance.name} has local NVMe storage and SageMaker rejects VolumeSizeInGB",
                )
            )
        if cfg.endpoint_config_kms and instance.has_local_nvme:
            issues.append(
                Issue(
                    "endpoint_config_kms",
                    cfg.endpoint_config_kms,
                    f"must be false: {instance.name} has hardware-encrypted local NVMe and SageMaker rejects KmsKeyId",
                )
            )
        if quant is not None:
            issues.extend(MemoryPlan(model, quant, instance, cfg.max_total_tokens).issues())

    if cfg.region is not None:
        if not REGION.match(cfg.region):
            issues.append(Issue("region", cfg.region, "must be an AWS region name such as us-east-1"))
        elif version is not None:
            try:
                get_image(version).account(cfg.region)
            except ConfigError as err:
                issues.extend(err.issues)
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
    if not 0 < cfg.alarm_5xx_rate_pct <= 100:
        issues.append(Issue("alarm_5xx_rate_pct", cfg.alarm_5xx_rate_pct, "must be in (0, 100]"))
    if not 0 < cfg.alarm_gpu_memory_pct <= 100:
        issues.append(Issue("alarm_gpu_memory_pct", cfg.alarm_gpu_memory_pct, "must be in (0, 100]"))
    if not cfg.alarm_model_latency_p90_ms > 0:
        issues.append(Issue("alarm_model_latency_p90_ms", cfg.alarm_model_latency_p90_ms, "must be positive"))
    return issues


__all__ = ["DEFAULT_TGI_VERSION", "DeploymentConfig"]
