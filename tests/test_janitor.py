"""The janitor against moto's SageMaker with the real boto3 client: tagged and expired goes, the rest stays."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from benchmark.janitor import TAG_KEY, TTL_TAG_KEY, sweep

ROLE = "arn:aws:iam::123456789012:role/sm"


def _create(client, name: str, tags: list[dict[str, str]]) -> None:
    client.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"}, Tags=tags)
    client.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
        Tags=tags,
    )
    client.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)


@pytest.fixture
def sagemaker(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("sagemaker", region_name="us-east-1")


def test_deletes_only_tagged_expired_resources(sagemaker) -> None:
    bench = [{"Key": TAG_KEY, "Value": "true"}, {"Key": TTL_TAG_KEY, "Value": "2"}]
    _create(sagemaker, "llmbench-old", bench)
    _create(sagemaker, "production-endpoint", [])  # untagged: never touched, even when old
    _create(sagemaker, "llmbench-false", [{"Key": TAG_KEY, "Value": "false"}])
    now = datetime.now(UTC) + timedelta(hours=3)
    report = sweep(sagemaker, now=now, name_prefix="")
    assert report.deleted_endpoints == ["llmbench-old"]
    assert report.deleted_configs == ["llmbench-old"]
    assert report.deleted_models == ["llmbench-old"]
    left = {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]}
    assert left == {"production-endpoint", "llmbench-false"}
    assert {m["ModelName"] for m in sagemaker.list_models()["Models"]} == {"production-endpoint", "llmbench-false"}


def test_keeps_tagged_endpoints_within_their_ttl(sagemaker) -> None:
    _create(sagemaker, "llmbench-young", [{"Key": TAG_KEY, "Value": "true"}, {"Key": TTL_TAG_KEY, "Value": "5"}])
    report = sweep(sagemaker, now=datetime.now(UTC) + timedelta(hours=4))
    assert report.deleted_endpoints == [] and report.kept == ["llmbench-young"]
    report = sweep(sagemaker, now=datetime.now(UTC) + timedelta(hours=6))
    assert report.deleted_endpoints == ["llmbench-young"]


def test_default_ttl_applies_without_ttl_tag(sagemaker) -> None:
    _create(sagemaker, "llmbench-notl", [{"Key": TAG_KEY, "Value": "true"}])
    assert sweep(sagemaker, now=datetime.now(UTC) + timedelta(hours=5), default_ttl_hours=6).deleted_endpoints == []
    assert sweep(sagemaker, now=datetime.now(UTC) + timedelta(hours=7), default_ttl_hours=6).deleted_endpoints == [
        "llmbench-notl"
    ]


def test_handler_runs_the_sweep(sagemaker, monkeypatch) -> None:
    monkeypatch.setenv("DEFAULT_TTL_HOURS", "0")
    _create(sagemaker, "llmbench-now", [{"Key": TAG_KEY, "Value": "true"}])
    _create(sagemaker, "other", [])
    spec = importlib.util.spec_from_file_location("janitor_handler", Path("lambda/janitor/handler.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.handler({}, None)
    assert out["deleted_endpoints"] == ["llmbench-now"]
    assert "other" in out["kept"]
