"""The capacity plan: per configuration, instances at peak and on average, $/month all-in, and the cheapest.

Per instance a configuration serves ``rps_per_instance`` (requests/s completed at its measured capacity). The
plan keeps a safety margin ``m`` free: usable = rps_per_instance x (1 - m), instances = ceil(rate / usable), and
the autoscaling target is the capacity in concurrent requests x (1 - m) (for an open-loop capacity, the
concurrency it implies by Little's law: rate x mean end-to-end time). ``min_instances`` is the fleet the
lowest hour needs (with no daily profile: the average's fleet); ``max_instances`` the peak's. A month is 730 h.

Cost is a range, because autoscaling moves the fleet between ``min_instances`` and ``max_instances``: the minimum
fleet all month to the maximum fleet all month, each plus the same fixed lines (``allin_cost``). With a daily
profile the expected cost sits between them (each hour's fleet); without one the estimate is the average's fleet
all month. ``total_usd_month`` (what "cheapest" compares) is that expected figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from benchmark.analysis.cost import price_for
from benchmark.sizing.allin_cost import CostLine, StackInventory, Usage, monthly_lines
from benchmark.sizing.capacity import Capacity
from catalog.deployment import MAX_INSTANCES_CAP
from catalog.errors import ConfigError, Issue
from catalog.prices import HOURS_PER_MONTH

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Traffic:
    """Requests/s at peak and on average; optionally 24 hourly rates (then peak and average come from them)."""

    peak_rps: float
    average_rps: float
    daily_profile: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        issues: list[Issue] = []
        for name in ("peak_rps", "average_rps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                issues.append(Issue(name, value, "must be a positive number of requests/s"))
        if not issues and self.average_rps > self.peak_rps:
            issues.append(Issue("average_rps", self.average_rps, f"must be at most peak_rps ({self.peak_rps:g})"))
        profile = self.daily_profile
        if profile is not None:
            if len(profile) != HOURS_PER_DAY:
                issues.append(Issue("daily_profile", len(profile), "must hold 24 hourly request rates"))
            bad = [v for v in profile if not (math.isfinite(v) and v >= 0)]
            if bad:
                issues.append(Issue("daily_profile", bad[0], "every hourly rate must be a number >= 0"))
        if issues:
            raise ConfigError(issues, context="traffic")

    @classmethod
    def from_profile(cls, profile: Sequence[float]) -> Traffic:
        values = tuple(float(v) for v in profile)
        if len(values) != HOURS_PER_DAY or not any(v > 0 for v in values):
            raise ConfigError([Issue("daily_profile", list(values), "must hold 24 hourly rates, not all zero")])
        return cls(max(values), sum(values) / len(values), values)

    @property
    def requests_per_month(self) -> float:
        return self.average_rps * 3600.0 * HOURS_PER_MONTH


@dataclass(frozen=True)
class SizingOptions:
    margin: float = 0.2  # share of measured capacity kept free
    instance_quota: Mapping[str, int] = field(default_factory=dict)  # your Service Quotas, per instance type
    inventory: StackInventory = field(default_factory=StackInventory)
    usage: Usage = field(default_factory=Usage)
    cost_region: str | None = None  # region of the all-in prices (default: each configuration's own)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and 0.0 <= self.margin < 1.0):
            raise ConfigError([Issue("margin", self.margin, "must be within [0, 1): the share of capacity kept free")])


@dataclass(frozen=True)
class ConfigurationPlan:
    capacity: Capacity
    usable_rps: float | None = None
    autoscaling_target: float | None = None
    instances_peak: int | None = None
    instances_average: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    headroom_at_peak: float | None = None  # share of the peak fleet's capacity left free at peak
    usd_per_hour: float | None = None  # one instance, on demand
    price_as_of: str = ""
    instance_usd_month: float | None = None  # expected: the daily profile's hourly fleets, else the average's fleet
    from_profile: bool = False  # instance_usd_month comes from a daily profile
    min_fleet_usd_month: float | None = None  # min_instances all month: the lower bound
    max_fleet_usd_month: float | None = None  # max_instances all month: the upper bound
    other_lines: tuple[CostLine, ...] = ()
    problems: tuple[str, ...] = ()  # why it cannot meet the SLO or cannot be deployed

    @property
    def key(self) -> str:
        return self.capacity.configuration.key

    @property
    def fixed_usd_month(self) -> float:
        return sum(line.usd_per_month for line in self.other_lines)

    @property
    def total_usd_month(self) -> float | None:
        """Expected all-in: instance_usd_month plus the fixed lines."""
        return None if self.instance_usd_month is None else self.instance_usd_month + self.fixed_usd_month

    @property
    def all_in_range_usd_month(self) -> tuple[float, float] | None:
        """(minimum fleet all month, maximum fleet all month), each with the fixed lines."""
        if self.min_fleet_usd_month is None or self.max_fleet_usd_month is None:
            return None
        return self.min_fleet_usd_month + self.fixed_usd_month, self.max_fleet_usd_month + self.fixed_usd_month

    @property
    def feasible(self) -> bool:
        return not self.problems and self.total_usd_month is not None


@dataclass(frozen=True)
class SizingPlan:
    traffic: Traffic
    options: SizingOptions
    configurations: tuple[ConfigurationPlan, ...]

    @property
    def cheapest(self) -> ConfigurationPlan | None:
        feasible = [p for p in self.configurations if p.feasible]
        return min(feasible, key=lambda p: (p.total_usd_month, p.key)) if feasible else None


def describe_all_in(plan: ConfigurationPlan, *, cents: bool = False) -> str:
    """ "$A to $B/month all-in (min to max instances all month, other $F)", and the expected cost with a profile."""
    bounds = plan.all_in_range_usd_month
    if bounds is None or plan.total_usd_month is None:
        return "no all-in cost"

    def usd(value: float) -> str:
        return f"${value:,.2f}" if cents else f"${value:,.0f}"

    text = (
        f"{usd(bounds[0])} to {usd(bounds[1])}/month all-in ({plan.min_instances} to {plan.max_instances} instances "
        f"all month, other {usd(plan.fixed_usd_month)})"
    )
    return text + (f"; expected {usd(plan.total_usd_month)} with the daily profile" if plan.from_profile else "")


def _instances(rate: float, usable: float) -> int:
    return max(1, math.ceil(round(rate / usable, 9)))


def _concurrency_target(capacity: Capacity, margin: float) -> float | None:
    assert capacity.capacity is not None
    if capacity.load_kind == "concurrency":
        return round(capacity.capacity * (1.0 - margin), 2)
    e2e = [v.level.result.metrics.e2e_ms.mean for v in capacity.at_capacity]
    known = [x for x in e2e if x]
    if not known:
        return None
    return round(capacity.capacity * (sum(known) / len(known)) / 1000.0 * (1.0 - margin), 2)


def plan_configuration(capacity: Capacity, traffic: Traffic, options: SizingOptions) -> ConfigurationPlan:
    configuration = capacity.configuration
    if capacity.capacity is None:
        return ConfigurationPlan(capacity, problems=(f"cannot meet the SLO at any measured load: {capacity.reason}",))
    rps = capacity.rps_per_instance
    if rps is None or rps <= 0:
        return ConfigurationPlan(capacity, problems=("no request rate at its capacity level (needs requests/min)",))
    usable = rps * (1.0 - options.margin)
    peak, average = _instances(traffic.peak_rps, usable), _instances(traffic.average_rps, usable)
    if traffic.daily_profile is not None:
        hourly = [_instances(rate, usable) if rate > 0 else 1 for rate in traffic.daily_profile]
        floor, instance_hours = min(hourly), sum(hourly) * HOURS_PER_MONTH / HOURS_PER_DAY
    else:
        floor, instance_hours = average, average * HOURS_PER_MONTH
    problems: list[str] = []
    try:
        price = price_for(configuration.instance_type, configuration.region)
    except ConfigError as err:
        return ConfigurationPlan(capacity, problems=(f"no price: {err.issues[0]}",))
    quota = options.instance_quota.get(configuration.instance_type)
    if peak > MAX_INSTANCES_CAP:
        problems.append(f"needs {peak} instances at peak; the stacks allow at most {MAX_INSTANCES_CAP} per endpoint")
    if quota is not None and peak > quota:
        problems.append(f"needs {peak} instances at peak; your quota for {configuration.instance_type} is {quota}")
    target = _concurrency_target(capacity, options.margin)
    if target is None or target <= 0:
        problems.append("no autoscaling target: capacity x (1 - margin) is below one request")
    try:
        other = monthly_lines(
            configuration,
            requests_per_month=traffic.requests_per_month,
            inventory=options.inventory,
            usage=options.usage,
            region=options.cost_region,
        )
    except ConfigError as err:
        problems.append(f"no all-in price: {err.issues[0]} (choose a cost region the catalog prices)")
        other = []
    return ConfigurationPlan(
        capacity=capacity,
        usable_rps=usable,
        autoscaling_target=target,
        instances_peak=peak,
        instances_average=average,
        min_instances=floor,
        max_instances=max(peak, floor),
        headroom_at_peak=1.0 - traffic.peak_rps / (peak * rps),
        usd_per_hour=price.usd_per_hour,
        price_as_of=price.as_of,
        instance_usd_month=instance_hours * price.usd_per_hour,
        from_profile=traffic.daily_profile is not None,
        min_fleet_usd_month=floor * HOURS_PER_MONTH * price.usd_per_hour,
        max_fleet_usd_month=max(peak, floor) * HOURS_PER_MONTH * price.usd_per_hour,
        other_lines=tuple(other),
        problems=tuple(problems),
    )


def make_plan(capacities: Sequence[Capacity], traffic: Traffic, options: SizingOptions | None = None) -> SizingPlan:
    opts = options or SizingOptions()
    plans = tuple(plan_configuration(capacity, traffic, opts) for capacity in capacities)
    return SizingPlan(traffic, opts, plans)
