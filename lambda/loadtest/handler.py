"""Load-test Lambda: one concurrency level on a benchmark endpoint, one shard of a fanned-out level, or the merge
of a fanned-out level's shards (logic in benchmark.aws.levels and benchmark.aws.shards).

``BENCHMARK_RUNTIME_ENDPOINT_URL`` points the SageMaker runtime client at a local stand-in; only the
tests set it (the stack never does), so deployed functions always talk to SageMaker. Lambda sets
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``: the function's vCPUs follow from it, and so its worker processes and the
CPUs its client-bound verdict measures against (Lambda shows small functions 2 vCPUs and no cgroup quota, but
grants CPU time in proportion to memory).
"""

from __future__ import annotations

import os
from typing import Any

import boto3

from benchmark.aws.contract import LoadTestEnvironment, LoadTestSizing, read_environment
from benchmark.aws.shards import handle


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    env = read_environment(LoadTestEnvironment, os.environ)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    sizing = LoadTestSizing(memory_mb=int(memory)) if memory else None
    return handle(
        event,
        bucket=env.results_bucket,
        results_prefix=env.results_prefix,
        region=region,
        s3=boto3.client("s3", region_name=region),
        cloudwatch=boto3.client("cloudwatch", region_name=region),
        endpoint_url=os.environ.get("BENCHMARK_RUNTIME_ENDPOINT_URL") or None,
        settle_s=float(os.environ.get("UTILIZATION_SETTLE_S", "150")),
        workers=sizing.workers if sizing else 0,
        cpu_cap=sizing.vcpus if sizing else None,
    )
