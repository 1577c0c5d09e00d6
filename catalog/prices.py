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


# --- what the stacks cost besides instance hours (all-in monthly cost) ----------------------------------------


@dataclass(frozen=True)
class ServicePrice:
    """One AWS unit price other than instance hours: ``usd`` per ``unit``, read on ``as_of`` from ``source``."""

    name: str
    region: str
    usd: float
    unit: str
    as_of: str
    source: str


HOURS_PER_MONTH = 730.0  # AWS's pricing pages and calculator bill a month as 730 hours

_PRIVATELINK = "https://aws.amazon.com/privatelink/pricing/ (interface endpoints, us-east-1)"
_KMS = "https://aws.amazon.com/kms/pricing/ (key storage; rotation adds $1/month per rotated version)"
_KMS_REQUESTS = "https://aws.amazon.com/kms/pricing/ (key usage: symmetric requests; 20,000/month free, account-wide)"
_CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/ (paid tier, us-east-1)"
_VENDED = "https://aws.amazon.com/cloudwatch/pricing/ (Logs, vended logs: VPC flow logs delivered to CloudWatch Logs)"
_S3 = "https://aws.amazon.com/s3/pricing/ (S3 Standard, first 50 TB, us-east-1)"
_SFN = "https://aws.amazon.com/step-functions/pricing/ (standard workflows, us-east-1)"
_LAMBDA = "https://aws.amazon.com/lambda/pricing/ (x86, us-east-1)"
_SECRETS = "https://aws.amazon.com/secrets-manager/pricing/"

_SERVICE_PRICES: tuple[ServicePrice, ...] = (
    ServicePrice("vpc_interface_endpoint_hour", "us-east-1", 0.01, "endpoint per AZ per hour", "2026-12", _PRIVATELINK),
    ServicePrice("vpc_interface_endpoint_gb", "us-east-1", 0.01, "GB processed (first 1 PB)", "2026-12", _PRIVATELINK),
    ServicePrice("kms_key_month", "us-east-1", 1.0, "customer-managed key per month", "2026-12", _KMS),
    ServicePrice("kms_rotation_month", "us-east-1", 1.0, "rotated key version per month (first two)", "2026-12", _KMS),
    ServicePrice("kms_requests_10k", "us-east-1", 0.03, "10,000 symmetric key requests", "2026-12", _KMS_REQUESTS),
    ServicePrice(
        "cloudwatch_alarm_metric_month",
        "us-east-1",
        0.10,
        "standard-resolution alarm metric per month",
        "2026-12",
        _CLOUDWATCH,
    ),
    ServicePrice(
        "cloudwatch_high_res_alarm_month", "us-east-1", 0.30, "high-resolution alarm per month", "2026-12", _CLOUDWATCH
    ),
    ServicePrice("cloudwatch_dashboard_month", "us-east-1", 3.0, "dashboard per month", "2026-12", _CLOUDWATCH),
    ServicePrice(
        "cloudwatch_custom_metric_month",
        "us-east-1",
        0.30,
        "custom metric per month (first 10,000)",
        "2026-12",
        _CLOUDWATCH,
    ),
    ServicePrice(
        "cloudwatch_logs_ingest_gb", "us-east-1", 0.50, "GB of logs ingested (standard class)", "2026-12", _CLOUDWATCH
    ),
    ServicePrice(
        "cloudwatch_logs_storage_gb_month", "us-east-1", 0.03, "GB-month of logs stored", "2026-12", _CLOUDWATCH
    ),
    ServicePrice(
        "cloudwatch_vended_logs_gb", "us-east-1", 0.50, "GB of vended logs delivered (first 10 TB)", "2026-12", _VENDED
    ),
    ServicePrice("s3_standard_gb_month", "us-east-1", 0.023, "GB-month stored", "2026-12", _S3),
    ServicePrice("stepfunctions_transition", "us-east-1", 0.000025, "state transition (standard)", "2026-12", _SFN),
    ServicePrice("lambda_gb_second", "us-east-1", 0.0000166667, "GB-second", "2026-12", _LAMBDA),
    ServicePrice("lambda_request", "us-east-1", 0.0000002, "request", "2026-12", _LAMBDA),
    ServicePrice("secretsmanager_secret_month", "us-east-1", 0.40, "secret per month", "2026-12", _SECRETS),
)

SERVICE_PRICES: MappingProxyType[tuple[str, str], ServicePrice] = MappingProxyType(
    {(p.name, p.region): p for p in _SERVICE_PRICES}
)


def get_service_price(name: str, region: str = DEFAULT_REGION) -> ServicePrice:
    """A dated unit price; a region without one is refused with the regions the catalog has."""
    price = SERVICE_PRICES.get((name, region))
    if price is None:
        known = sorted({r for (n, r) in SERVICE_PRICES if n == name})
        if not known:
            names = sorted({n for (n, _) in SERVICE_PRICES})
            raise ConfigError([Issue("service_price", name, f"must be one of {', '.join(names)}")])
        raise ConfigError(
            [Issue("region", region, f"no catalog price for {name} there (catalog has {', '.join(known)})")]
        )
    return price
