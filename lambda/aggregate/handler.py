"""Aggregate Lambda: report to S3, headline metrics to CloudWatch, a summary for SNS.

The logic is in benchmark.aws_aggregate, tested with real boto3 clients against moto."""

from __future__ import annotations

import os
from typing import Any

import boto3

from benchmark.aws_aggregate import aggregate_run


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return aggregate_run(
        event,
        bucket=os.environ["RESULTS_BUCKET"],
        results_prefix=os.environ.get("RESULTS_PREFIX", "runs/"),
        namespace=os.environ.get("METRICS_NAMESPACE", "LlamaBenchmark"),
        s3=boto3.client("s3"),
        cloudwatch=boto3.client("cloudwatch"),
    )
