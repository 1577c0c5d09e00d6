"""The capacity plan and the all-in cost against hand arithmetic, and the inventory against the synthesized stacks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.report import DASH
from benchmark.sizing.allin_cost import StackInventory, Usage, monthly_lines, weights_gb
from benchmark.sizing.capacity import Capacity, capacity_of
from benchmark.sizing.cli import summary
from benchmark.sizing.config_writer import render_config
from benchmark.sizing.plan import SizingOptions, Traffic, describe_all_in, make_plan
from benchmark.sizing.report import write_sizing_report
from benchmark.sizing.slo import parse_slo
from catalog.errors import ConfigError
from catalog.prices import get_service_price
from tests.benchmark.sizing_factories import level
from tests.conftest import AppAssembly

SLO = parse_slo("ms_per_token.p90<=50")
G5_2XL_USD_H = 1.515  # catalog, us-east-1 (AWS_FACTS.md)
G5_12XL_USD_H = 7.09


def capacity_at(load: int, requests_per_s: float, **kwargs: Any) -> Capacity:
    """An instance that meets the SLO up to ``load`` and completes ``requests_per_s`` there."""
    window = 10.0
    ok = round(requests_per_s * window)
    levels = [level(load, [40.0] * ok, window_s=window, **kwargs), level(load + 1, [60.0] * ok, **kwargs)]
    return capacity_of(levels, SLO)


def test_plan_numbers_follow_from_capacity_margin_and_traffic() -> None:
    capacity = capacity_at(10, 10.0)  # 10 requests/s per instance at concurrency 10
    plan = make_plan([capacity], Traffic(peak_rps=30.0, average_rps=10.0), SizingOptions(margin=0.2)).configurations[0]
    # usable 10 x 0.8 = 8 req/s: peak 30 -> ceil(3.75) = 4 instances, average 10 -> ceil(1.25) = 2
    assert (plan.instances_peak, plan.instances_average) == (4, 2)
    assert (plan.min_instances, plan.max_instances) == (2, 4)
    assert plan.autoscaling_target == pytest.approx(8.0)  # 10 concurrent x 0.8
    assert plan.headroom_at_peak == pytest.approx(1 - 30 / 40)
    assert plan.instance_usd_month == pytest.approx(2 * 730 * G5_2XL_USD_H)
    assert plan.min_fleet_usd_month == pytest.approx(2 * 730 * G5_2XL_USD_H)  # $2,211.90
    assert plan.max_fleet_usd_month == pytest.approx(4 * 730 * G5_2XL_USD_H)  # $4,423.80
    assert plan.instance_usd_month is not None
    other = sum(x.usd_per_month for x in plan.other_lines)
    assert plan.total_usd_month == pytest.approx(plan.instance_usd_month + other)
    assert plan.all_in_range_usd_month == pytest.approx((2 * 730 * 1.515 + other, 4 * 730 * 1.515 + other))
    assert not plan.from_profile
    assert plan.feasible


def test_daily_profile_sets_the_floor_and_the_instance_hours() -> None:
    profile = [2.0] * 12 + [16.0] * 12  # usable 8 req/s: 1 instance for 12 h, 2 for 12 h
    plan = make_plan([capacity_at(10, 10.0)], Traffic.from_profile(profile)).configurations[0]
    assert (plan.min_instances, plan.max_instances) == (1, 2)
    assert plan.instance_usd_month == pytest.approx((12 * 1 + 12 * 2) * 730 / 24 * G5_2XL_USD_H)
    assert (plan.min_fleet_usd_month, plan.max_fleet_usd_month) == pytest.approx((1105.95, 2211.9))  # 1 and 2 x 730 h
    assert plan.from_profile


def test_the_summary_and_the_config_header_print_the_range_not_the_minimum_fleet(tmp_path: Path) -> None:
    """Issue 16 item 11: min 2 and max 6 g5.2xlarge; the minimum fleet all month is not the all-in cost."""
    capacity = capacity_at(10, 10.0)  # usable 8 req/s per instance
    sizing = make_plan([capacity], Traffic(peak_rps=48.0, average_rps=16.0))  # 6 at peak, 2 on average
    plan = sizing.configurations[0]
    assert (plan.min_instances, plan.max_instances) == (2, 6)
    other = plan.fixed_usd_month
    low, high = 2 * 730 * 1.515 + other, 6 * 730 * 1.515 + other  # $2,211.90 / $6,635.70 plus the other lines
    expected = f"${low:,.0f} to ${high:,.0f}/month all-in (2 to 6 instances all month, other ${other:,.0f})"
    assert expected in summary(sizing)
    assert f"# Cost: {expected}\n" in render_config(sizing, plan, SLO)
    assert "expected" not in describe_all_in(plan)  # no daily profile: nothing between the bounds is claimed
    hourly = make_plan([capacity], Traffic.from_profile([16.0] * 12 + [48.0] * 12)).configurations[0]
    assert describe_all_in(hourly).endswith(
        f"; expected ${(12 * 2 + 12 * 6) * 730 / 24 * 1.515 + hourly.fixed_usd_month:,.0f} with the daily profile"
    )


def test_cheapest_meeting_the_slo_is_chosen_and_the_others_are_named() -> None:
    small = capacity_at(10, 10.0)  # g5.2xlarge, $1.515/h
    big = capacity_at(40, 40.0, instance="ml.g5.12xlarge", quantization="fp16")  # $7.09/h
    never = capacity_of([level(1, [90.0] * 20, instance="ml.g5.4xlarge")], SLO)
    sizing = make_plan([big, small, never], Traffic(peak_rps=30.0, average_rps=10.0))
    assert sizing.cheapest is not None
    assert sizing.cheapest.capacity.configuration.instance_type == "ml.g5.2xlarge"  # 2 x 1.515 < 1 x 7.09
    failing = next(p for p in sizing.configurations if p.capacity is never)
    assert failing.problems == (
        "cannot meet the SLO at any measured load: fails the SLO already at 1 (ms_per_token.p90 90.0 > 50)",
    )


def test_a_plan_over_the_instance_cap_or_the_quota_is_not_deployable() -> None:
    capacity = capacity_at(10, 1.0)  # 0.8 usable req/s per instance
    over_cap = make_plan([capacity], Traffic(peak_rps=20.0, average_rps=5.0)).configurations[0]
    assert over_cap.instances_peak == 25
    assert not over_cap.feasible
    assert "at most 20 per endpoint" in over_cap.problems[0]
    quota = SizingOptions(instance_quota={"ml.g5.2xlarge": 2})
    over_quota = make_plan([capacity], Traffic(peak_rps=2.0, average_rps=1.0), quota).configurations[0]
    assert over_quota.problems == ("needs 3 instances at peak; your quota for ml.g5.2xlarge is 2",)


def test_all_in_lines_are_the_catalog_prices_times_the_inventory() -> None:
    configuration = BenchmarkConfiguration(model="7b", quantization="fp16", instance_type="ml.g5.12xlarge")
    lines = {x.item: x for x in monthly_lines(configuration, requests_per_month=1e6)}
    endpoints = lines["VPC interface endpoints (per endpoint, per AZ, per hour)"]
    assert endpoints.usd_per_month == pytest.approx(9 * 3 * 730 * 0.01)  # $197.10: PrivateLink $0.01/AZ-hour, 3 AZs
    assert lines["KMS customer-managed keys"].usd_per_month == pytest.approx(1.0)
    assert lines["CloudWatch dashboards"].usd_per_month == pytest.approx(3.0)
    assert lines["VPC interface endpoint data processed"].quantity == pytest.approx(1e6 * 4.0 / 1e6)  # 4 GB
    assert weights_gb(configuration) == pytest.approx(6.74e9 * 2 / 1e9, rel=0.02)  # 7B fp16: 2 bytes/parameter
    assert all(x.as_of and x.source for x in lines.values())


def test_flow_log_and_kms_lines_by_hand() -> None:
    """Flow logs: (9 endpoints x 3 AZs + 4 ENIs) x 100 flows x 4,380 ten-minute intervals x 150 B = 2.0367 GB a
    month, delivered at $0.50/GB and stored 12 months at $0.03/GB-month. KMS: 1 key $1, 2 rotated versions $2,
    requests (2,628,000 s / 300 s x 2 x 1 publisher + 10,000) = 27,520 = 2.752 x $0.03."""
    configuration = BenchmarkConfiguration(model="7b", quantization="gptq", instance_type="ml.g5.2xlarge")
    lines = {x.item: x for x in monthly_lines(configuration, requests_per_month=0.0)}
    delivered = lines["VPC flow logs delivered to CloudWatch Logs (GB)"]
    assert delivered.quantity == pytest.approx(31 * 100 * 4380 * 150 / 1e9)
    assert delivered.usd_per_month == pytest.approx(2.0367 * 0.50, rel=1e-4)
    stored = lines["VPC flow logs stored (365 days, uncompressed)"]
    assert stored.quantity == pytest.approx(12 * 2.0367, rel=1e-4)
    assert stored.usd_per_month == pytest.approx(12 * 2.0367 * 0.03, rel=1e-4)
    assert lines["KMS customer-managed keys"].usd_per_month == pytest.approx(1.0)
    assert lines["KMS key rotation (rotated versions)"].usd_per_month == pytest.approx(2.0)
    requests = lines["KMS requests (per 10,000)"]
    assert requests.quantity == pytest.approx(2.752)
    assert requests.usd_per_month == pytest.approx(2.752 * 0.03)
    # The assumptions are inputs: a first-year key has no rotated version, quieter ENIs log less.
    quiet = Usage(kms_rotated_versions=0, flow_log_flows_per_eni=10.0, flow_log_other_enis=0, kms_other_requests=0.0)
    lines = {x.item: x for x in monthly_lines(configuration, requests_per_month=0.0, usage=quiet)}
    assert lines["KMS key rotation (rotated versions)"].usd_per_month == 0.0
    assert lines["VPC flow logs delivered to CloudWatch Logs (GB)"].quantity == pytest.approx(
        27 * 10 * 4380 * 150 / 1e9
    )
    assert lines["KMS requests (per 10,000)"].quantity == pytest.approx(1.752)
    for name in ("cloudwatch_vended_logs_gb", "kms_requests_10k", "kms_rotation_month"):
        price = get_service_price(name)
        assert price.as_of and price.source.startswith("https://aws.amazon.com/")


def test_benchmark_runs_add_their_endpoint_hours() -> None:
    configuration = BenchmarkConfiguration(model="7b", quantization="gptq", instance_type="ml.g5.2xlarge")
    usage = Usage(benchmark_runs_per_month=4, benchmark_usd_per_run=25.0, benchmark_levels_per_run=60)
    lines = {x.item: x for x in monthly_lines(configuration, requests_per_month=0.0, usage=usage)}
    assert lines["Scheduled benchmark endpoints (`benchmark plan`)"].usd_per_month == pytest.approx(100.0)
    assert lines["Benchmark Step Functions transitions (about 10 per level)"].quantity == 4 * 60 * 10
    assert lines["Benchmark KMS key rotation (rotated versions)"].usd_per_month == pytest.approx(2.0)
    # Its topic has two publishers (the state machine and the regression alarm): 2 x 8,760 + 10,000 requests.
    assert lines["Benchmark KMS requests (per 10,000)"].quantity == pytest.approx(4.504)


def _resources(template: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def _alarm_metrics(alarm: Mapping[str, Any]) -> int:
    """Billed alarm metrics: the metrics an alarm reads (math expressions are free)."""
    props = alarm["Properties"]
    if "Metrics" in props:
        return sum(1 for m in props["Metrics"] if "MetricStat" in m)
    return 1


def test_inventory_matches_the_synthesized_stacks(app_assembly: AppAssembly) -> None:
    inventory = StackInventory()
    foundation = app_assembly.template_json("LlamaFoundationStack")
    interface = [
        e
        for e in _resources(foundation, "AWS::EC2::VPCEndpoint")
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert len(interface) == inventory.interface_endpoints
    assert {len(e["Properties"]["SubnetIds"]) for e in interface} == {inventory.availability_zones}
    keys = _resources(foundation, "AWS::KMS::Key")
    assert len(keys) == inventory.kms_keys and all(k["Properties"]["EnableKeyRotation"] for k in keys)
    (flow_log,) = _resources(foundation, "AWS::EC2::FlowLog")
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert flow_log["Properties"].get("MaxAggregationInterval", 600) == inventory.flow_log_aggregation_s
    groups = {k: r for k, r in foundation["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    (flow_group,) = [g for k, g in groups.items() if {"Ref": k} == flow_log["Properties"]["LogGroupName"]]
    assert flow_group["Properties"]["RetentionInDays"] == 365 == inventory.flow_log_retention_months * 365 / 12
    endpoint = app_assembly.template_json("LlamaCostStack")
    assert len(_resources(endpoint, "AWS::SNS::Topic")) == inventory.encrypted_topics_per_endpoint
    alarms = _resources(endpoint, "AWS::CloudWatch::Alarm")
    assert sum(_alarm_metrics(a) for a in alarms) == inventory.alarm_metrics_per_endpoint
    assert len(_resources(endpoint, "AWS::CloudWatch::Dashboard")) == inventory.dashboards_per_endpoint
    assert len(_resources(endpoint, "AWS::ApplicationAutoScaling::ScalingPolicy")) == 1  # its 2 alarms: AWS's
    benchmark = app_assembly.template_json("LlamaBenchmarkStack")
    assert len(_resources(benchmark, "AWS::KMS::Key")) == inventory.benchmark_kms_keys


def test_month_is_730_hours() -> None:
    assert math.isclose(Traffic(peak_rps=1.0, average_rps=1.0).requests_per_month, 3600 * 730)


def test_report_shows_the_plan_numbers_and_marks_the_choice(tmp_path: Path) -> None:
    sizing = make_plan([capacity_at(10, 10.0)], Traffic(peak_rps=30.0, average_rps=10.0))
    markdown, html = write_sizing_report(sizing, SLO, tmp_path)
    text = markdown.read_text()
    assert "**Cheapest configuration that meets the SLO: 7b gptq ml.g5.2xlarge**: 2 to 4 instances" in text
    assert f"| 7b gptq ml.g5.2xlarge | 4 | 2 | 2 | 4 | 8.00 | 25% | $1.515 | $2,211.90 | $4,423.80 | {DASH} |" in text
    (plan,) = sizing.configurations
    low, high = (f"${v:,.2f}" for v in plan.all_in_range_usd_month or ())
    assert f"| {low} to {high} | ok |" in text
    assert f"2 to 4 instances (autoscaling target 8.0 concurrent requests per instance), {low} to {high}" in text
    page = html.read_text()
    assert page.count("<svg") == 2 and "chosen" in page and "SLO 50" in page
    assert (tmp_path / "sizing-goodput.svg").is_file()


def test_service_prices_are_dated_and_unknown_ones_name_the_field() -> None:
    assert get_service_price("vpc_interface_endpoint_hour").as_of == "2026-12"
    with pytest.raises(ConfigError, match="region='eu-west-9'"):
        get_service_price("kms_key_month", "eu-west-9")
    with pytest.raises(ConfigError, match="service_price='nat_gateway_hour'"):
        get_service_price("nat_gateway_hour")
