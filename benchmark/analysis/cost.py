"""What one million generated tokens cost on one instance at the tested concurrency.

minutes = 1e6 / tokens_per_s / 60 and $ = 1e6 / tokens_per_s / 3600 x $/h: the 2023 benchmark's
definition (one instance, output tokens only). The price's date and source travel with the result,
because prices change and a cost figure without them cannot be checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from catalog import Price, get_instance, get_price
from catalog.errors import ConfigError, Issue

TOKENS = 1_000_000


@dataclass(frozen=True)
class CostEstimate:
    instance_type: str
    region: str
    usd_per_hour: float
    price_as_of: str = ""
    price_source: str = ""
    tokens_per_s: float | None = None
    minutes_per_1m_tokens: float | None = None  # None when nothing was generated
    usd_per_1m_tokens: float | None = None


def minutes_per_million(tokens_per_s: float) -> float:
    return TOKENS / tokens_per_s / 60.0


def usd_per_million(tokens_per_s: float, usd_per_hour: float) -> float:
    return TOKENS / tokens_per_s / 3600.0 * usd_per_hour


def estimate(tokens_per_s: float | None, price: Price) -> CostEstimate:
    """Cost of 1M output tokens at this throughput; no figures (None) when throughput is zero or unknown."""
    return CostEstimate(
        instance_type=price.instance_type,
        region=price.region,
        usd_per_hour=price.usd_per_hour,
        price_as_of=price.as_of,
        price_source=price.source,
        tokens_per_s=tokens_per_s,
        minutes_per_1m_tokens=minutes_per_million(tokens_per_s) if tokens_per_s and tokens_per_s > 0 else None,
        usd_per_1m_tokens=usd_per_million(tokens_per_s, price.usd_per_hour)
        if tokens_per_s and tokens_per_s > 0
        else None,
    )


def price_for(instance_type: str, region: str, overrides: Mapping[str, float] | None = None) -> Price:
    """Catalog price, unless the user overrides this instance (keyed by canonical or short instance name)."""
    name = get_instance(instance_type).name
    for key, usd in (overrides or {}).items():
        if get_instance(key, field="price_override").name == name:
            return get_price(name, region, override_usd_per_hour=usd)
    return get_price(name, region)


def import_price(
    instance_type: str,
    region: str,
    overrides: Mapping[str, float] | None,
    fail: Callable[[str, object, str], Exception],
    *,
    file_usd_per_hour: float | None = None,
    file_source: str = "",
) -> Price:
    """Price of an imported row: the user's override, else the file's own price, else the catalog's.

    ``fail(field, value, allowed)`` builds the error, so it can name the file and line being imported.
    """
    name = get_instance(instance_type).name
    overridden = any(get_instance(key, field="price_override").name == name for key in overrides or {})
    if file_usd_per_hour is not None and not overridden:
        return Price(name, region, file_usd_per_hour, "from file", file_source)
    try:
        return price_for(name, region, overrides)
    except ConfigError as err:
        issue = err.issues[0]
        raise fail(issue.field, issue.value, f"{issue.allowed}: --price-override {name}=USD_PER_HOUR") from None


def parse_price_overrides(items: list[str]) -> dict[str, float]:
    """``instance=usd`` strings from the command line, validated: unknown instance or bad price is refused."""
    overrides: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError([Issue("price_override", item, "must look like instance=usd, e.g. ml.g5.2xlarge=1.515")])
        try:
            usd = float(value)
        except ValueError:
            raise ConfigError([Issue("price_override", item, "the price must be a number of USD per hour")]) from None
        if not (math.isfinite(usd) and usd > 0):
            raise ConfigError([Issue("price_override", item, "the price must be a positive number of USD per hour")])
        overrides[get_instance(name.strip(), field="price_override").name] = usd
    return overrides
