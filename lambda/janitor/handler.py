"""Scheduled janitor: parse nothing, sweep, return what was deleted (logic in benchmark.janitor)."""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import boto3

from benchmark.janitor import sweep


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    report = sweep(
        boto3.client("sagemaker"),
        now=datetime.now(UTC),
        default_ttl_hours=float(os.environ.get("DEFAULT_TTL_HOURS", "6")),
        name_prefix=os.environ.get("NAME_PREFIX", ""),
    )
    return asdict(report)
