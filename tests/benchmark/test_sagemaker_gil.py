"""The SageMaker client reads each stream on a thread: it must not leave token stamps waiting on the GIL."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import boto3
import pytest

from benchmark.clients.sagemaker import GIL_SWITCH_INTERVAL_S, SageMakerClient


@pytest.fixture
def default_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default
    yield
    sys.setswitchinterval(before)


def test_client_shortens_the_gil_switch_interval(default_interval: None) -> None:
    boto = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    SageMakerClient("llmbench-x", streaming=True, concurrency=4, boto_client=boto)
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
    assert GIL_SWITCH_INTERVAL_S <= 0.001  # well under the 5 ms default that inflated TTFT at 256 streams


def test_client_never_lengthens_a_shorter_interval(default_interval: None) -> None:
    sys.setswitchinterval(0.0001)
    boto = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    SageMakerClient("llmbench-x", boto_client=boto)
    assert sys.getswitchinterval() == pytest.approx(0.0001)
