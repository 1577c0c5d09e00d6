"""What a deployment costs per month besides instance hours, from dated catalog prices.

A platform team compares totals: at low traffic the fixed part (VPC interface endpoints in every AZ, keys and
their rotations and requests, alarms, dashboards, logs, the VPC flow log, the weights in S3, the scheduled
benchmark's own endpoints) can rival the instances. The counts come from :class:`StackInventory`, which a test
holds equal to the synthesized templates; the usage figures (log, flow-log and endpoint traffic volume, KMS
requests) are inputs with stated defaults, assumptions and not measurements.

VPC flow log volume (all traffic, to CloudWatch Logs, kept 365 days): one record per flow per ENI per
aggregation interval (600 s, the AWS default the stack keeps). Assumed: ``flow_log_flows_per_eni`` distinct flows
per ENI per interval (default 100, about one new connection every 6 s on each ENI) at ``flow_log_bytes_per_record``
(default 150: the 14 space-separated fields of the default format, about 120 characters, plus the 26 bytes
CloudWatch Logs counts per event), over the interface endpoints' ENIs (one per endpoint per zone) and
``flow_log_other_enis`` more (default 4: endpoint instances and the Lambda functions' VPC ENIs). Delivery is
billed at the vended-logs rate per GB; storage, uncompressed (an upper bound: CloudWatch Logs bills stored data
compressed), for the 12 months of the retention.

KMS: each customer-managed key per month, each rotated key version per month (the pricing page bills the first
two rotations; a key with yearly rotation has 0 in its first year, 1 in its second, 2 from its third:
``kms_rotated_versions``, default 2, the steady state), and requests per 10,000 (the 20,000 free requests a month
are account-wide and not subtracted). Requests: the SNS developer guide's estimate per encrypted topic,
R = B / D x 2 x P (B the month in seconds, D = 300 s data-key reuse, P = 1 publisher, CloudWatch; an upper bound,
as if the alarm published all month), plus ``kms_other_requests`` (default 10,000: CloudWatch Logs, S3 with bucket
keys, Secrets Manager, which cache data keys).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.analysis.configuration import BenchmarkConfiguration
from catalog import get_model, get_quantization
from catalog.errors import ConfigError, Issue
from catalog.models import GB
from catalog.network_options import DEFAULT_AZ_COUNT
from catalog.prices import HOURS_PER_MONTH, get_service_price

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
SNS_DATA_KEY_REUSE_S = 300.0  # SNS developer guide, "Estimating AWS KMS costs": a data key is reused up to 5 minutes


@dataclass(frozen=True)
class StackInventory:
    """Billable things the stacks create: the foundation once, then per endpoint stack (see the test)."""

    interface_endpoints: int = 9  # constructs/llama_constructs/foundation/network.py DEFAULT_INTERFACE_ENDPOINTS
    availability_zones: int = DEFAULT_AZ_COUNT  # the az_count setting: each interface endpoint is billed per AZ
    kms_keys: int = 1  # the foundation's key (rotation on)
    flow_log_aggregation_s: int = 600  # the foundation's flow log: AWS's default MaxAggregationInterval
    flow_log_retention_months: float = 12.0  # its log group keeps 365 days
    encrypted_topics_per_endpoint: int = 1  # the endpoint's alarm topic (foundation key); CloudWatch publishes
    secrets: int = 1  # the Hub token the staging job reads (created by you, read by the stack)
    alarm_metrics_per_endpoint: int = 4  # 5xx rate (2 metrics), model latency p90, GPU memory
    high_res_alarms_per_endpoint: int = 2  # target tracking's high and low alarms on the 10-second metric
    dashboards_per_endpoint: int = 1
    benchmark_kms_keys: int = 1  # the benchmark stack's key (only when the benchmark runs)
    benchmark_topic_publishers: int = 2  # its encrypted topic's: the state machine and the regression alarm
    benchmark_metrics_per_level: int = 7  # benchmark/aws/aggregate.py metric_data, per configuration x level


@dataclass(frozen=True)
class Usage:
    """Traffic-dependent volumes; defaults are stated assumptions, not measurements."""

    kb_per_request: float = 4.0  # prompt + response through the sagemaker.runtime interface endpoint
    log_bytes_per_request: float = 300.0  # TGI's one access line per request in CloudWatch Logs
    log_retention_months: float = 3.0  # the endpoint log group keeps 90 days
    benchmark_runs_per_month: float = 0.0  # scheduled benchmark runs (0: schedule off, the default)
    benchmark_usd_per_run: float = 0.0  # endpoint-hours of one run, from `benchmark plan <matrix>`
    benchmark_levels_per_run: int = 0  # configurations x concurrency levels of the matrix
    flow_log_flows_per_eni: float = 100.0  # distinct flows per ENI per aggregation interval (see the module doc)
    flow_log_bytes_per_record: float = 150.0  # one default-format record as CloudWatch Logs counts it
    flow_log_other_enis: int = 4  # ENIs besides the interface endpoints': endpoint instances, Lambda functions
    kms_rotated_versions: int = 2  # billed rotations per key: 0 in year 1, 1 in year 2, 2 from year 3 (steady)
    kms_other_requests: float = 10_000.0  # per month: CloudWatch Logs, S3 bucket keys, Secrets Manager

    def __post_init__(self) -> None:
        bad = [Issue(n, getattr(self, n), "must be >= 0") for n in self.__dataclass_fields__ if getattr(self, n) < 0]
        if bad:
            raise ConfigError(bad, context="all-in cost usage")


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float
    unit: str
    usd_per_unit: float
    usd_per_month: float
    as_of: str
    source: str


def weights_gb(configuration: BenchmarkConfiguration) -> float:
    model = get_model(configuration.model)
    return get_quantization(configuration.quantization).weight_bytes(model) / GB


def flow_log_gb(inventory: StackInventory, usage: Usage) -> float:
    """GB of VPC flow log records a month, from the stated assumptions (module docstring)."""
    enis = inventory.interface_endpoints * inventory.availability_zones + usage.flow_log_other_enis
    intervals = SECONDS_PER_MONTH / inventory.flow_log_aggregation_s
    return enis * usage.flow_log_flows_per_eni * intervals * usage.flow_log_bytes_per_record / GB


def kms_requests(topics: int, usage: Usage) -> float:
    """KMS requests a month: the SNS guide's R = B / D x 2P per encrypted topic (P = 1), plus the other services'."""
    return topics * SECONDS_PER_MONTH / SNS_DATA_KEY_REUSE_S * 2 + usage.kms_other_requests


def _kms_lines(label: str, keys: int, topics: int, usage: Usage, region: str) -> list[CostLine]:
    return [
        _line(f"{label} customer-managed keys", keys, "kms_key_month", region),
        _line(
            f"{label} key rotation (rotated versions)", keys * usage.kms_rotated_versions, "kms_rotation_month", region
        ),
        _line(f"{label} requests (per 10,000)", kms_requests(topics, usage) / 10_000, "kms_requests_10k", region),
    ]


def _line(item: str, quantity: float, price_name: str, region: str) -> CostLine:
    price = get_service_price(price_name, region)
    return CostLine(item, quantity, price.unit, price.usd, quantity * price.usd, price.as_of, price.source)


def monthly_lines(
    configuration: BenchmarkConfiguration,
    *,
    requests_per_month: float,
    inventory: StackInventory | None = None,
    usage: Usage | None = None,
    region: str | None = None,
) -> list[CostLine]:
    """Every monthly line besides instance hours, for one endpoint stack plus the foundation it shares."""
    inv = inventory or StackInventory()
    use = usage or Usage()
    where = region or configuration.region
    endpoint_hours = inv.interface_endpoints * inv.availability_zones * HOURS_PER_MONTH
    log_gb = requests_per_month * use.log_bytes_per_request / GB
    flow_gb = flow_log_gb(inv, use)
    lines = [
        _line(
            "VPC interface endpoints (per endpoint, per AZ, per hour)",
            endpoint_hours,
            "vpc_interface_endpoint_hour",
            where,
        ),
        _line(
            "VPC interface endpoint data processed",
            requests_per_month * use.kb_per_request / 1e6,
            "vpc_interface_endpoint_gb",
            where,
        ),
        *_kms_lines("KMS", inv.kms_keys, inv.encrypted_topics_per_endpoint, use, where),
        _line("Secrets Manager secret (Hub token)", inv.secrets, "secretsmanager_secret_month", where),
        _line("CloudWatch alarm metrics", inv.alarm_metrics_per_endpoint, "cloudwatch_alarm_metric_month", where),
        _line(
            "CloudWatch high-resolution alarms (autoscaling)",
            inv.high_res_alarms_per_endpoint,
            "cloudwatch_high_res_alarm_month",
            where,
        ),
        _line("CloudWatch dashboards", inv.dashboards_per_endpoint, "cloudwatch_dashboard_month", where),
        _line("CloudWatch Logs ingested", log_gb, "cloudwatch_logs_ingest_gb", where),
        _line("CloudWatch Logs stored", log_gb * use.log_retention_months, "cloudwatch_logs_storage_gb_month", where),
        _line("VPC flow logs delivered to CloudWatch Logs (GB)", flow_gb, "cloudwatch_vended_logs_gb", where),
        _line(
            "VPC flow logs stored (365 days, uncompressed)",
            flow_gb * inv.flow_log_retention_months,
            "cloudwatch_logs_storage_gb_month",
            where,
        ),
        _line("Weights in S3", weights_gb(configuration), "s3_standard_gb_month", where),
    ]
    if use.benchmark_runs_per_month > 0:
        lines += _benchmark_lines(inv, use, where)
    return lines


def _benchmark_lines(inv: StackInventory, use: Usage, region: str) -> list[CostLine]:
    runs = use.benchmark_runs_per_month
    levels = use.benchmark_levels_per_run * runs
    return [
        CostLine(
            "Scheduled benchmark endpoints (`benchmark plan`)",
            runs,
            "run",
            use.benchmark_usd_per_run,
            runs * use.benchmark_usd_per_run,
            "catalog instance prices",
            "benchmark/analysis/plan.py",
        ),
        *_kms_lines("Benchmark KMS", inv.benchmark_kms_keys, inv.benchmark_topic_publishers, use, region),
        _line(
            "Benchmark custom metrics",
            inv.benchmark_metrics_per_level * use.benchmark_levels_per_run,
            "cloudwatch_custom_metric_month",
            region,
        ),
        # About 10 state transitions per level (invoke, retry bookkeeping, Map iteration) and 1 GB x 100 s of Lambda.
        _line(
            "Benchmark Step Functions transitions (about 10 per level)", levels * 10, "stepfunctions_transition", region
        ),
        _line("Benchmark Lambda (about 100 GB-s per level)", levels * 100, "lambda_gb_second", region),
    ]
