"""Load-test Lambda: one concurrency level on a benchmark endpoint (logic in benchmark.aws.levels).

``BENCHMARK_RUNTIME_ENDPOINT_URL`` points the SageMaker runtime client at a local stand-in; only the
tests set it (the stack never does), so deployed functions always talk to SageMaker.
"""

from __future__ import annotations

import os
from typing import Any

import boto3

from benchmark.aws.contract import LoadTestEnvironment, read_environment
from benchmark.aws.levels import run_level


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    env = read_environment(LoadTestEnvironment, os.environ)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return run_level(
        event,
        bucket=env.results_bucket,
        results_prefix=env.results_prefix,
        region=region,
        s3=boto3.client("s3", region_name=region),
        cloudwatch=boto3.client("cloudwatch", region_name=region),
        endpoint_url=os.environ.get("BENCHMARK_RUNTIME_ENDPOINT_URL") or None,
        settle_s=float(os.environ.get("UTILIZATION_SETTLE_S", "150")),
    )
