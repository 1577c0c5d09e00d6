"""Catalog entries behind a configuration's resolved names, for every type that holds those names.

``DeploymentConfig`` (what the stacks deploy) and ``BenchmarkConfiguration`` (what a result was measured on)
both name a model, quantization and instance; the lookups and the memory plan follow from those names the
same way for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalog.engines import Engine, get_engine
from catalog.fit import MemoryPlan
from catalog.instances import InstanceSpec, get_instance
from catalog.models import ModelSpec, Quantization, get_model, get_quantization


class CatalogViews:
    """Mixin for a frozen dataclass whose ``model``, ``quantization`` and ``instance_type`` are resolved names."""

    model: str
    quantization: str | None
    instance_type: str | None

    if TYPE_CHECKING:

        @property
        def max_total_tokens(self) -> int: ...

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
    def memory_plan(self) -> MemoryPlan:
        return MemoryPlan(self.model_spec, self.quantization_spec, self.instance, self.max_total_tokens)


class EngineViews:
    """Mixin for a frozen dataclass naming its serving ``engine`` and each engine's image version field
    (``tgi_version``, ``vllm_version``): ``DeploymentConfig`` and ``BenchmarkConfiguration``."""

    engine: str

    @property
    def engine_spec(self) -> Engine:
        return get_engine(self.engine)

    @property
    def engine_version(self) -> str:
        """The image version of the engine: ``tgi_version`` or ``vllm_version``, whichever the engine reads."""
        return str(getattr(self, self.engine_spec.version_field))
