"""The validated description of one Llama 2 endpoint: everything a stack or a benchmark run needs.

Validation runs when the object is built, before any construct exists, and reports every problem
at once with the field, the value and what is allowed (``catalog.errors.ConfigError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.deployment_checks import MAX_INSTANCES_CAP, Resolved, check, resolve, serving_limits
from catalog.engines import DEFAULT_ENGINE, ServingLimits, engine_environment, get_engine
from catalog.errors import ConfigError
from catalog.fit import MemoryPlan
from catalog.hosts import inference_ami
from catalog.images import ContainerImage
from catalog.scenarios import get_profile
from catalog.tgi_images import DEFAULT_VERSION
from catalog.views import CatalogViews, EngineViews

# Loading weights into GPU memory and warming up the engine takes longer for bigger models; these are the
# timeouts used when the config does not set them (seconds, within SageMaker's 60..3600). The same for both
# engines: each answers SageMaker's GET /ping on port 8080 only once its weights are loaded and its warm-up is
# done (TGI's router after the shards' warm-up, huggingface/text-generation-inference router/src/server.rs; vLLM's
# /ping, vllm/entrypoints/sagemaker/api_router.py, is served once the engine, its profiling run, torch.compile
# and CUDA graph capture included, is up), so the start-up clock covers the same steps.
_STARTUP_TIMEOUT_S = {"7b": 900, "13b": 1200, "70b": 2400}
_DOWNLOAD_TIMEOUT_S = {"7b": 900, "13b": 1200, "70b": 2400}


@dataclass(frozen=True, kw_only=True)
class DeploymentConfig(CatalogViews, EngineViews):
    """One endpoint. Fields left ``None`` are derived from the scenario profile and the catalog."""

    scenario: str
    model: str = "7b"
    quantization: str | None = None
    instance_type: str | None = None
    region: str | None = None  # None: environment-agnostic synth
    engine: str = DEFAULT_ENGINE  # "tgi" | "vllm" (catalog.engines)
    tgi_version: str = DEFAULT_VERSION  # engine tgi's image version
    vllm_version: str | None = None  # engine vllm's image version (its default when unset); refused for tgi
    gpu_memory_utilization: float | None = None  # vLLM only: the share of each GPU it reserves (None: vLLM's 0.9)
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
        engine = get_engine(self.engine)
        derived: dict[str, Any] = {
            **names.canonical(),
            "engine": engine.name,
            "vllm_version": engine.resolve_version(self.vllm_version) if engine.name == "vllm" else None,
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

    # Resolved views (valid after __post_init__); the catalog entries come from CatalogViews, the engine's
    # (engine_spec, engine_version) from EngineViews.
    @property
    def image(self) -> ContainerImage:
        return self.engine_spec.image(self.engine_version)

    @property
    def inference_ami_version(self) -> str | None:
        """The SageMaker host AMI the image needs (``catalog.hosts``); None: SageMaker's default host."""
        return inference_ami(self.image)

    @property
    def serving_limits(self) -> ServingLimits:
        """What the container is told, in the deployment's own terms (``catalog.engines``)."""
        return serving_limits(
            self,
            model=self.model_spec,
            quant=self.quantization_spec,
            instance=self.instance,
            version=self.engine_version,
        )

    @property
    def memory_plan(self) -> MemoryPlan:
        """The fit check under the engine's memory rule."""
        return self.engine_spec.memory_plan(
            self.model_spec,
            self.quantization_spec,
            self.instance,
            self.max_total_tokens,
            gpu_memory_utilization=self.gpu_memory_utilization,
        )

    def container_environment(self) -> dict[str, str]:
        """The engine's settings as its container reads them (``catalog.engines.engine_environment``, the one
        builder); the weights come from S3 at ``/opt/ml/model``, so no Hub id or token."""
        return engine_environment(self.engine, self.serving_limits)


__all__ = [
    "MAX_INSTANCES_CAP",
    "DeploymentConfig",
    "Resolved",
    "resolve",
]  # MAX_INSTANCES_CAP: benchmark/sizing/plan.py reads it here
