"""BenchmarkStack template: the state machine's states, teardown on every failure path, IAM scopes, schedule."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from benchmark.matrix import load_matrix
from benchmark.serialize import to_data
from tests.benchmark_fixtures import Built, build
from tests.iam.account import Account
from tests.iam.calls import pass_role_call, sagemaker_call

ROOT = Path(__file__).resolve().parents[1]
TEARDOWN = ("DeleteEndpoint", "DeleteEndpointConfig", "DeleteModel")


@pytest.fixture(scope="module")
def built() -> Built:
    return build()


def _all_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, including those inside Map item processors (names are unique in a CDK definition)."""
    out: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        out[name] = state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            out.update(_all_states(processor))
    return out


def _successors(state: dict[str, Any]) -> set[str]:
    nxt = {state["Next"]} if "Next" in state else set()
    nxt |= {c["Next"] for c in state.get("Catch", [])}
    nxt |= {c["Next"] for c in state.get("Choices", [])}
    if "Default" in state:
        nxt.add(state["Default"])
    return nxt


def _reachable(states: dict[str, dict[str, Any]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_successors(states[name]))
    return seen


def test_nag_clean_and_states(built: Built) -> None:
    states = _all_states(built.definition)
    for name in (
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "DescribeEndpoint",
        "EndpointInService?",
        "WaitForEndpoint",
        "RunLevels",
        "LoadTest",
        "RecordFailure",
        *TEARDOWN,
        "Aggregate",
        "Notify",
    ):
        assert name in states, name
    assert states["CreateModel"]["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:createModel"
    assert states["RunLevels"]["MaxConcurrency"] == 1
    assert (
        built.definition["States"]["ForEachConfiguration"]["MaxConcurrency"] == 1
    )  # smallest limit of the carried matrices (smoke: 1)


def test_every_failing_task_reaches_the_whole_teardown(built: Built) -> None:
    states = _all_states(built.definition)
    per_config = built.definition["States"]["ForEachConfiguration"]["ItemProcessor"]["States"]
    can_fail = [n for n, s in per_config.items() if s["Type"] in ("Task", "Map") and n not in TEARDOWN]
    assert {
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "DescribeEndpoint",
        "RunLevels",
        "RecordFailure",
    } <= set(can_fail)
    for name in can_fail:
        catches = states[name].get("Catch", [])
        assert catches and catches[0]["ErrorEquals"] == ["States.ALL"], name
        for catch in catches:
            assert set(TEARDOWN) <= _reachable(states, catch["Next"]), name
    # the deadline and Failed branches of the poll loop also end in teardown
    for name in ("EndpointDeadline", "EndpointFailed"):
        assert set(TEARDOWN) <= _reachable(states, name)
    # and each delete goes on to the next one when it fails (e.g. "not found")
    assert states["DeleteEndpoint"]["Catch"][0]["Next"] == "DeleteEndpointConfig"
    assert states["DeleteEndpointConfig"]["Catch"][0]["Next"] == "DeleteModel"
    assert states["DeleteModel"]["Catch"][0]["Next"] == "ConfigurationDone"


def test_poll_deadline(built: Built) -> None:
    choice = _all_states(built.definition)["EndpointInService?"]
    deadline = [c for c in choice["Choices"] if c.get("Next") == "EndpointDeadline"]
    assert deadline and deadline[0]["NumericGreaterThanEquals"] == 120


# GPUs per instance from the AWS instance pages; TGI uses all of them (SM_NUM_GPUS, tensor parallel).
GPUS = {"ml.g5.2xlarge": "1", "ml.g5.12xlarge": "4", "ml.g5.48xlarge": "8", "ml.p4d.24xlarge": "8"}
# The 2023 method (AWS_FACTS): TGI 1.0.3, which reads MAX_INPUT_LENGTH (renamed MAX_INPUT_TOKENS in 2.0), 1024
# input and 2048 total tokens; prefill and concurrency keep their defaults.
TGI_1_0_3_ENV = {
    "HF_MODEL_ID": "/opt/ml/model",
    "MAX_INPUT_LENGTH": "1024",
    "MAX_TOTAL_TOKENS": "2048",
    "MAX_BATCH_PREFILL_TOKENS": "4096",
    "MAX_CONCURRENT_REQUESTS": "128",
}


def test_matrix_items_carry_container_settings_from_deployment_config(built: Built) -> None:
    payload = built.definition["States"]["Matrix-2023"]["Result"]
    matrix = load_matrix("2023")
    assert [c["id"] for c in payload["configurations"]] == [c.id for c in matrix.configurations]
    for item, config in zip(payload["configurations"], matrix.configurations, strict=True):
        d = config.deployment
        quantize = {"HF_MODEL_QUANTIZE": "gptq"} if d.quantization == "gptq" else {}
        assert item["container"]["Environment"] == {
            **TGI_1_0_3_ENV,
            "SM_NUM_GPUS": GPUS[str(d.instance_type)],
            **quantize,
        }
        assert item["container"]["ModelDataSource"]["S3DataSource"]["CompressionType"] == "None"
        assert "VolumeSizeInGB" not in item["variant"] and "KmsKeyId" not in item["variant"]
        assert item["container"]["Image"].endswith(":2.0.1-tgi1.0.3-gpu-py39-cu118-ubuntu20.04")
    # 20 streams fit one load-test Lambda of the size the stack gives it: no level of the 2023 matrix fans out.
    assert payload["levels"] == [{"load": {"concurrency": c}, "shards": []} for c in (1, 5, 10, 20)]
    # The shared load: the matrix's LoadSpec but the level's concurrency; null fields (default null) left out.
    assert payload["load"] == {k: v for k, v in to_data(matrix.load).items() if k != "concurrency" and v is not None}
    assert (payload["load"]["duration_s"], payload["load"]["streaming"]) == (90.0, False)


def _policy_statements(built: Built, role_fragment: str) -> list[dict[str, Any]]:
    out = []
    for logical, res in built.template.find_resources("AWS::IAM::Policy").items():
        if role_fragment in logical:
            out.extend(res["Properties"]["PolicyDocument"]["Statement"])
    return out


@pytest.mark.parametrize(
    "case",
    [
        ("sagemaker:CreateEndpoint", "endpoint", "llmbench-r1-a", None, True),
        ("sagemaker:CreateEndpoint", "endpoint", "llama2-7b-fp16-latency", None, False),
        ("sagemaker:DeleteModel", "model", "llmbench-r1-a", None, True),
        ("sagemaker:DeleteModel", "model", "llama2-7b-fp16-latency", None, False),
        ("sagemaker:DeleteEndpointConfig", "endpoint-config", "prod-config", None, False),
        ("iam:PassRole", "role", "model", "sagemaker.amazonaws.com", True),
        ("iam:PassRole", "role", "model", "lambda.amazonaws.com", False),
        ("iam:PassRole", "role", "loadtest", "sagemaker.amazonaws.com", False),
    ],
)
def test_state_machine_iam_is_scoped_to_the_prefix(
    account: Account, case: tuple[str, str, str, str | None, bool]
) -> None:
    """Evaluated over the synthesized role policy (tests/iam): names outside the prefix and any other role or
    service for PassRole are refused."""
    action, kind, name, passed_to, allowed = case
    role = account.role("LlamaBenchmarkStack", "RunnerStateMachineRole")
    if kind == "role":
        passed = account.role("LlamaBenchmarkStack", "ModelRole" if name == "model" else "LoadtestRole")
        call = pass_role_call(role, passed, str(passed_to))
    else:
        call = sagemaker_call(role, action, kind, name)
    assert call.evaluate(account).allowed is allowed


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_state_machine_encrypted_logged_traced(built: Built) -> None:
    built.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
            "EncryptionConfiguration": Match.object_like({"Type": "CUSTOMER_MANAGED_KMS_KEY"}),
        },
    )


def test_schedule_is_disabled_by_default_and_can_only_start_this_machine(built: Built) -> None:
    built.template.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {"State": "DISABLED", "Target": Match.object_like({"Input": json.dumps({"matrix": "smoke"})})},
    )
    statements = _policy_statements(built, "ScheduleRole")
    assert [s["Action"] for s in statements if "states:" in json.dumps(s["Action"])] == ["states:StartExecution"]


def test_janitor_deletes_only_tagged_resources(built: Built) -> None:
    statements = _policy_statements(built, "JanitorRole")
    deletes = [s for s in statements if "sagemaker:DeleteEndpoint" in _list(s["Action"])]
    assert len(deletes) == 1
    assert deletes[0]["Condition"] == {"StringEquals": {"aws:ResourceTag/llama-benchmark": "true"}}
    assert set(_list(deletes[0]["Action"])) == {
        "sagemaker:DeleteEndpoint",
        "sagemaker:DeleteEndpointConfig",
        "sagemaker:DeleteModel",
    }


def test_results_bucket_is_kms_tls_versioned_logged(built: Built) -> None:
    built.template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})})
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": Match.any_value(),
        },
    )


def test_rendered_definition_is_valid_asl(built: Built, tmp_path: Path) -> None:
    validator = ROOT / "node_modules" / ".bin" / "asl-validator"
    if not validator.exists() or shutil.which("node") is None:
        pytest.fail("asl-validator is not installed: run scripts/setup")
    file = tmp_path / "definition.json"
    file.write_text(json.dumps(built.definition))
    out = subprocess.run([str(validator), "--json-path", str(file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_benchmark_has_its_own_rotating_key_for_its_data(built: Built) -> None:
    """Results, runs, logs and the topic use the benchmark's key; the foundation key only decrypts weights."""
    keys = built.template.find_resources("AWS::KMS::Key")
    assert len(keys) == 1
    (key_id, key) = next(iter(keys.items()))
    assert key["Properties"]["EnableKeyRotation"] is True
    machine = next(iter(built.template.find_resources("AWS::StepFunctions::StateMachine").values()))
    assert key_id in json.dumps(machine["Properties"]["EncryptionConfiguration"])
    topic = next(iter(built.template.find_resources("AWS::SNS::Topic").values()))
    assert key_id in json.dumps(topic["Properties"]["KmsMasterKeyId"])


def test_results_bucket_refuses_plain_http_and_old_tls(built: Built) -> None:
    buckets = built.template.find_resources("AWS::S3::Bucket")
    (results_id,) = [
        logical
        for logical, bucket in buckets.items()
        if "aws:kms" in json.dumps(bucket["Properties"].get("BucketEncryption", {}))
    ]
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in built.template.find_resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": results_id}
    ]
    (statements,) = policies
    denies = [s["Condition"] for s in statements if s["Effect"] == "Deny"]
    assert {"Bool": {"aws:SecureTransport": "false"}} in denies
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in denies
