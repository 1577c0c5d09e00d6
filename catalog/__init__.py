"""The single source of truth for models, quantizations, instances, prices, engines and their images.

Also what is validated against them and needed on both sides of the project: the scenario profiles
(``scenarios``), one endpoint's ``DeploymentConfig`` and its checks (``deployment``, ``deployment_checks``),
how configuration values become its field types (``coercion``) and the ``az_count`` option (``network_options``).
Pure Python with no CDK or SDK import and nothing of ``benchmark``: the stacks, the settings, the benchmark and
the Lambda functions all read it.
"""

from catalog.engines import ENGINES, Engine, ServingLimits, engine_environment, engine_issues, get_engine
from catalog.errors import ConfigError, Issue
from catalog.fit import MemoryPlan, bandwidth_bound_ms_per_token
from catalog.instances import INSTANCES, GpuSpec, InstanceSpec, get_instance
from catalog.models import MODELS, QUANTIZATIONS, ModelSpec, Quantization, get_model, get_quantization
from catalog.prices import DEFAULT_REGION, PRICES, Price, get_price
from catalog.tgi_images import TgiImage, get_image, known_versions, resolve_version

__all__ = [
    "DEFAULT_REGION",
    "ENGINES",
    "INSTANCES",
    "MODELS",
    "PRICES",
    "QUANTIZATIONS",
    "ConfigError",
    "Engine",
    "GpuSpec",
    "InstanceSpec",
    "Issue",
    "MemoryPlan",
    "ModelSpec",
    "Price",
    "Quantization",
    "ServingLimits",
    "TgiImage",
    "bandwidth_bound_ms_per_token",
    "engine_environment",
    "engine_issues",
    "get_engine",
    "get_image",
    "get_instance",
    "get_model",
    "get_price",
    "get_quantization",
    "known_versions",
    "resolve_version",
]
