"""On-demand SageMaker real-time inference prices, versioned with their date and source.

Prices change: every figure carries when and where it was read, and every caller accepts an override.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from catalog.errors import ConfigError, Issue
from catalog.instances import get_instance


@dataclass(frozen=True)
class Price:
    instance_type: str
    region: str
    usd_per_hour: float
    as_of: str
    source: str


_AWS_PAGE = "https://aws.amazon.com/sagemaker/pricing/ (real-time inference, on-demand)"
_SEED = "Hugging Face Llama 2 on SageMaker benchmark (2023), us-west-2, unrounded from its $/1M columns"

_PRICES: tuple[Price, ...] = (
    Price("ml.g5.2xlarge", "us-east-1", 1.515, "2026-11", _AWS_PAGE),
    Price("ml.g5.4xlarge", "us-east-1", 2.03, "2026-11", _AWS_PAGE),
    Price("ml.g5.12xlarge", "us-east-1", 7.09, "2026-11", _AWS_PAGE),
    Price("ml.g5.48xlarge", "us-east-1", 20.36, "2026-11", _AWS_PAGE),
    Price("ml.p4d.24xlarge", "us-east-1", 37.688, "2026-11", _AWS_PAGE),
    Price("ml.g5.2xlarge", "us-west-2", 1.515, "2023-09", _SEED),
    Price("ml.g5.12xlarge", "us-west-2", 7.09, "2023-09", _SEED),
    Price("ml.p4d.24xlarge", "us-west-2", 37.688, "2023-09", _SEED),
)

PRICES: MappingProxyType[tuple[str, str], Price] = MappingProxyType({(p.instance_type, p.region): p for p in _PRICES})

DEFAULT_REGION = "us-east-1"


def get_price(instance_type: str, region: str = DEFAULT_REGION, *, override_usd_per_hour: float | None = None) -> Price:
    """The price to use for an instance; an override wins and is labelled as such."""
    spec = get_instance(instance_type)
    if override_usd_per_hour is not None:
        if not override_usd_per_hour > 0:
            raise ConfigError([Issue("price_usd_per_hour", override_usd_per_hour, "must be a positive number")])
        return Price(spec.name, region, float(override_usd_per_hour), "user override", "user override")
    price = PRICES.get((spec.name, region))
    if price is None:
        known = sorted(r for (i, r) in PRICES if i == spec.name)
        raise ConfigError(
            [
                Issue(
                    "region",
                    region,
                    f"no catalog price for {spec.name} there (catalog has {', '.join(known) or 'none'}); "
                    "pass a price override",
                )
            ]
        )
    return price
