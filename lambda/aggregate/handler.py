"""Aggregate Lambda: report to S3, headline metrics to CloudWatch, a summary for SNS.

The logic is in benchmark.aws.aggregate, tested with real boto3 clients against moto."""

from __future__ import annotations

import os
from typing import Any

import boto3

from benchmark.aws.aggregate import aggregate_run
from benchmark.aws.contract import AggregateEnvironment, read_environment


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    env = read_environment(AggregateEnvironment, os.environ)
    return aggregate_run(
        event,
        bucket=env.results_bucket,
        results_prefix=env.results_prefix,
        namespace=env.metrics_namespace,
        s3=boto3.client("s3"),
        cloudwatch=boto3.client("cloudwatch"),
    )
