"""Janitor: tear down an execution that ended without its own teardown, or sweep on the schedule.

The logic is in benchmark.aws.janitor. An incomplete teardown raises, so that Lambda retries the event; what is
still busy after the retries is left to the sweep.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import boto3

from benchmark.aws.contract import JanitorEnvironment, read_environment
from benchmark.aws.janitor import ended_execution, require_complete, scheduled_sweep, teardown_execution


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    env = read_environment(JanitorEnvironment, os.environ)
    client = boto3.client("sagemaker")
    ended = ended_execution(event)
    if ended is None:
        report = scheduled_sweep(
            client,
            boto3.client("stepfunctions"),
            now=datetime.now(UTC),
            default_ttl_hours=env.default_ttl_hours,
            name_prefix=env.name_prefix,
            state_machine_arn=env.state_machine_arn,
        )
    else:
        report = teardown_execution(client, execution_arn=ended.execution_arn, name_prefix=env.name_prefix)
        require_complete(report, execution_arn=ended.execution_arn)
    return asdict(report)
