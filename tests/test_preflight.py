"""The preflight against botocore's Stubber: every request it makes and every response it reads is checked
against the real service models (Service Quotas, S3, CloudFormation) by botocore itself.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from catalog.deployment import DeploymentConfig
from settings import load_settings
from settings.preflight import (
    BUCKET_OUTPUT,
    FOUNDATION_STACK,
    Finding,
    instances_needed,
    main,
    quota_name,
    run_checks,
)
from settings.staging_record import record_key

REGION = "us-east-1"
BUCKET = "llama-weights-bucket"
LATENCY = load_settings({"scenarios": "latency"}).deployments["latency"]  # 7B fp16, ml.g5.12xlarge, max 4


@dataclass
class Aws:
    quotas: Any
    s3: Any
    cloudformation: Any
    stubs: dict[str, Stubber]

    def quota(self, instance_type: str, value: float, code: str = "L-12345678") -> None:
        quota = {"QuotaName": quota_name(instance_type), "QuotaCode": code, "Value": value, "ServiceCode": "sagemaker"}
        self.stubs["quotas"].add_response("list_service_quotas", {"Quotas": [quota]}, {"ServiceCode": "sagemaker"})
        self.stubs["quotas"].add_response(
            "list_aws_default_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"}
        )

    def foundation(self) -> None:
        stack = {
            "StackName": FOUNDATION_STACK,
            "CreationTime": datetime(2026, 12, 1, tzinfo=UTC),
            "StackStatus": "CREATE_COMPLETE",
            "Outputs": [{"OutputKey": BUCKET_OUTPUT, "OutputValue": BUCKET}],
        }
        self.stubs["cfn"].add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": FOUNDATION_STACK})

    def weights(self, d: DeploymentConfig, files: list[str], record: dict[str, str] | None) -> None:
        prefix = str(d.weights_prefix)
        contents = [{"Key": prefix + f, "Size": 1} for f in files]
        listed = {"Contents": contents, "KeyCount": len(contents), "IsTruncated": False}
        self.stubs["s3"].add_response("list_objects_v2", listed, {"Bucket": BUCKET, "Prefix": prefix})
        if not files:
            return
        key = {"Bucket": BUCKET, "Key": record_key(prefix)}
        if record is None:
            self.stubs["s3"].add_client_error("get_object", "NoSuchKey", http_status_code=404, expected_params=key)
            return
        body = json.dumps(record).encode()
        self.stubs["s3"].add_response("get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))}, key)

    def staged(self, files: list[str], record: dict[str, str] | None, quota: float = 8.0) -> list[Finding]:
        """The latency deployment against a foundation stack whose bucket holds ``files`` and ``record``."""
        self.quota("ml.g5.12xlarge", quota, code="L-ABCDEF12")
        self.foundation()
        self.weights(LATENCY, files, record)
        return self.run([LATENCY])

    def run(self, deployments: list[DeploymentConfig]) -> list[Finding]:
        return run_checks(deployments, REGION, quotas=self.quotas, s3=self.s3, cloudformation=self.cloudformation)


@pytest.fixture
def aws() -> Iterator[Aws]:
    session = boto3.Session(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    quotas, s3, cfn = session.client("service-quotas"), session.client("s3"), session.client("cloudformation")
    stubs = {"quotas": Stubber(quotas), "s3": Stubber(s3), "cfn": Stubber(cfn)}
    with ExitStack() as stack:
        for stub in stubs.values():
            stack.enter_context(stub)
        yield Aws(quotas, s3, cfn, stubs)
        for stub in stubs.values():
            stub.assert_no_pending_responses()  # every stubbed call was made


SHARDS = ["config.json", "tokenizer.model", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def _record(d: DeploymentConfig) -> dict[str, str]:
    return {"hf_model_id": str(d.hf_model_id), "revision": str(d.hf_revision), "build_id": "b:1"}


def test_peak_counts_every_endpoint_scaled_out_plus_one_blue_green_fleet() -> None:
    deployments = load_settings({}).deployments.values()  # 7B: cost g5.2xlarge, latency and throughput g5.12xlarge
    assert instances_needed(deployments) == {"ml.g5.12xlarge": 4 + 4 + 4, "ml.g5.2xlarge": 4 + 4}


def test_sufficient_quota_and_the_configured_commit_staged_pass(aws: Aws) -> None:
    findings = aws.staged(SHARDS, _record(LATENCY))
    assert all(f.ok for f in findings), [f.render() for f in findings]
    assert {f.check for f in findings} == {"image", "quota", "weights", "commit"}


def test_insufficient_quota_fails_and_says_what_to_request(aws: Aws) -> None:
    (quota,) = [f for f in aws.staged(SHARDS, _record(LATENCY), quota=0.0) if f.check == "quota"]
    assert not quota.ok
    assert "ml.g5.12xlarge for endpoint usage = 0, needed 8" in quota.message
    assert "--service-code sagemaker --quota-code L-ABCDEF12 --desired-value 8" in quota.action


def test_missing_weights_fail_with_the_staging_inputs(aws: Aws) -> None:
    (weights,) = [f for f in aws.staged([], None) if f.check == "weights"]
    assert not weights.ok
    assert f"HF_MODEL_ID={LATENCY.hf_model_id}, WEIGHTS_PREFIX={LATENCY.weights_prefix}" in weights.action


def test_weights_staged_from_another_commit_are_refused(aws: Aws) -> None:
    (commit,) = [f for f in aws.staged(SHARDS, {**_record(LATENCY), "revision": "f" * 40}) if f.check == "commit"]
    assert not commit.ok
    assert f"staged commit {'f' * 40}, configured hf_revision {LATENCY.hf_revision}" in commit.message


def test_weights_without_a_staging_record_are_refused(aws: Aws) -> None:
    (commit,) = [f for f in aws.staged(SHARDS, None) if f.check == "commit"]
    assert not commit.ok and "no staging record" in commit.message


def test_without_the_foundation_stack_it_says_to_deploy_it(aws: Aws) -> None:
    aws.quota("ml.g5.12xlarge", 8.0)
    aws.stubs["cfn"].add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {FOUNDATION_STACK} does not exist"
    )
    (weights,) = [f for f in aws.run([LATENCY]) if f.check == "weights"]
    assert not weights.ok and f"npx cdk deploy {FOUNDATION_STACK}" in weights.action


class _NoCredentials:
    region_name = REGION

    def get_credentials(self) -> None:
        return None

    def client(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("offline: no AWS call may be made")


def test_offline_it_explains_what_it_would_check_and_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "scenarios=latency"], session=_NoCredentials()) == 0
    out = capsys.readouterr().out
    assert "No AWS credentials" in out
    assert "'ml.g5.12xlarge for endpoint usage' must be at least 8" in out
    assert record_key(str(LATENCY.weights_prefix)) in out


def test_a_bad_setting_stops_it_like_synth(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "latency.instance_type=ml.p4d.12xlarge"], session=_NoCredentials()) == 2
    assert "ml.p4d.12xlarge" in capsys.readouterr().err
    assert main(["-c", "model"], session=_NoCredentials()) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
