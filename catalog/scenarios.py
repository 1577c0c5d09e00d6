"""Scenario profiles: which instance and quantization each scenario uses for each model size.

Taken from the three recommendation tables of the 2023 Llama 2 on SageMaker benchmark
(``shared/reference/published_llama2_sagemaker_results.csv``), with its error fixed: the 13B
throughput row names ``ml.p4d.12xlarge``, which does not exist; the text says ``ml.p4d.24xlarge``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from catalog.errors import unknown


@dataclass(frozen=True)
class Profile:
    instance_type: str
    quantization: str
    # The concurrency the published row was measured at; it becomes the autoscaling target per instance.
    concurrency: int
    max_instances: int


SCENARIOS: MappingProxyType[str, MappingProxyType[str, Profile]] = MappingProxyType(
    {
        "cost": MappingProxyType(
            {
                "7b": Profile("ml.g5.2xlarge", "gptq", 5, 4),
                "13b": Profile("ml.g5.2xlarge", "gptq", 5, 4),
                "70b": Profile("ml.g5.12xlarge", "gptq", 5, 4),
            }
        ),
        "latency": MappingProxyType(
            {
                "7b": Profile("ml.g5.12xlarge", "fp16", 1, 4),
                "13b": Profile("ml.g5.12xlarge", "fp16", 1, 4),
                "70b": Profile("ml.p4d.24xlarge", "fp16", 1, 2),
            }
        ),
        "throughput": MappingProxyType(
            {
                "7b": Profile("ml.g5.12xlarge", "fp16", 20, 4),
                "13b": Profile("ml.p4d.24xlarge", "fp16", 20, 2),
                "70b": Profile("ml.p4d.24xlarge", "fp16", 20, 2),
            }
        ),
    }
)

STACK_NAMES: MappingProxyType[str, str] = MappingProxyType(
    {"cost": "LlamaCostStack", "latency": "LlamaLatencyStack", "throughput": "LlamaThroughputStack"}
)


def get_profile(scenario: str, model: str) -> Profile:
    if scenario not in SCENARIOS:
        raise unknown("scenario", scenario, SCENARIOS)
    by_model = SCENARIOS[scenario]
    if model not in by_model:
        raise unknown("model", model, by_model)
    return by_model[model]
