"""The validated description of one Llama 2 endpoint: everything a stack or a benchmark run needs.

Validation runs when the object is built, before any construct exists, and reports every problem
at once with the field, the value and what is allowed (``catalog.errors.ConfigError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog import get_image
from catalog.deployment_checks import MAX_INSTANCES_CAP, Resolved, check, resolve
from catalog.errors import ConfigError
from catalog.scenarios import get_profile
from catalog.tgi_images import DEFAULT_VERSION, TgiImage, max_input_env_name
from catalog.views import CatalogViews

# Loading weights into GPU memory and warming up TGI takes longer for bigger models; these are the
# timeouts used when the config does not set them (seconds, within SageMaker's 60..3600).
_STARTUP_TIMEOUT_S = {"7b": 900, "13b": 1200, "70b": 2400}
_DOWNLOAD_TIMEOUT_S = {"7b": 900, "13b": 1200, "70b": 2400}


@dataclass(frozen=True, kw_only=True)
class DeploymentConfig(CatalogViews):
    """One endpoint. Fields left ``None`` are derived from the scenario profile and the catalog."""

    scenario: str
    model: str = "7b"
    quantization: str | None = None
    instance_type: str | None = None
    region: str | None = None  # None: environment-agnostic synth
    tgi_version: str = DEFAULT_VERSION
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
        issues, names = check(self)
        if issues:
            raise ConfigError(issues, context=f"{self.scenario} deployment")
        # Fill the derived fields once, so every reader sees the same resolved values.
        model = names.model
        assert model is not None  # check() found no issue, so every name resolved
        profile = get_profile(self.scenario, model.size)
        derived: dict[str, Any] = {
            **names.canonical(),
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

    # Resolved views (valid after __post_init__); the catalog entries come from CatalogViews.
    @property
    def image(self) -> TgiImage:
        return get_image(self.tgi_version)

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


__all__ = [
    "MAX_INSTANCES_CAP",
    "DeploymentConfig",
    "Resolved",
    "resolve",
]  # MAX_INSTANCES_CAP: benchmark/sizing/plan.py reads it here
