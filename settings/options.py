"""What the app is asked to build, beside the deployments: parsed once, typed, passed down to the stacks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from catalog.deployment import DeploymentConfig
from catalog.network_options import DEFAULT_AZ_COUNT
from catalog.scenarios import SCENARIOS
from settings.benchmark_options import BenchmarkOptions

if TYPE_CHECKING:
    from settings.stages import StagesConfig


@dataclass(frozen=True, kw_only=True)
class AppOptions:
    """The app-level cdk context keys, validated (``-c config=...`` is read into the deployments instead)."""

    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    stages: StagesConfig | None = None  # -c stages=<file>: also the promotion pipeline
    benchmark: BenchmarkOptions = field(default_factory=BenchmarkOptions)
    az_count: int = DEFAULT_AZ_COUNT
    availability_zones: tuple[str, ...] = ()  # -c availability_zones=...: pinned zones (az_count is their number)


@dataclass(frozen=True)
class Settings:
    deployments: Mapping[str, DeploymentConfig]  # scenario -> deployment, only the selected scenarios
    options: AppOptions = field(default_factory=AppOptions)
