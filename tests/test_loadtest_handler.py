"""The load-test and aggregate Lambda handlers, called as Lambda calls them, with real boto3 clients.

SageMaker runtime is the benchmark emulator (real HTTP and event-stream framing on a loopback port);
S3 and CloudWatch are moto. moto intercepts only AWS hostnames, so the runtime client, pointed at the
emulator through ``BENCHMARK_RUNTIME_ENDPOINT_URL``, reaches the emulator while moto holds the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from benchmark.analysis.results import LevelResult
from benchmark.aws.contract import ITEM_LOAD, LAMBDA_MB_PER_VCPU, LoadTestSizing, level_items, levels_prefix
from benchmark.aws.levels import NAMESPACE, metric_window
from benchmark.emulator import EmulatorConfig, EmulatorServer, FaultKind, FaultRule, LatencyModel
from benchmark.matrix import load_matrix
from benchmark.measure import runner
from benchmark.measure.failfast import LevelAborted
from benchmark.serialize import from_data
from catalog.engines import get_engine
from catalog.errors import ConfigError
from llama_constructs.benchmark.benchmark_state_machine import matrix_items
from tests.lambda_handlers import load_handler, set_loadtest_env

REGION = "us-east-1"
BUCKET = "results-bucket"
ENDPOINT = "llmbench-run1-7b-gptq-g5-2xlarge"
SIZING = LoadTestSizing(memory_mb=1024)
FAST = LatencyModel(prefill_base_ms=1, prefill_ms_per_token=0, tpot_base_ms=1, tpot_slope_ms=0, tokens=20)


def level_event(concurrency: int, *, streaming: bool = True, run_id: str = "run1") -> dict[str, Any]:
    """The RunLevels item the state machine sends, from the construct's own payload: the matrix's shared load
    with the level's item merged over it (as the map's States.JsonMerge does), shortened for the tests."""
    plan = matrix_items(
        load_matrix("smoke"), image_for=lambda v: f"tgi:{v}", weights_bucket_name="weights", sizing=SIZING
    )
    (item,) = level_items([concurrency])
    return {
        "run_id": run_id,
        "matrix": "smoke",
        "endpoint_name": ENDPOINT,
        "configuration": plan["configurations"][0],
        "load": {**plan["load"], **item[ITEM_LOAD], "duration_s": 0.4, "streaming": streaming},
    }


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(latency=FAST, endpoint_names=(ENDPOINT,))) as server:
        yield server


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer) -> Iterator[dict[str, Any]]:
    set_loadtest_env(monkeypatch, region=REGION, bucket=BUCKET, runtime_url=emulator.base_url)
    emulator.configure(EmulatorConfig(latency=FAST, endpoint_names=(ENDPOINT,)))
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield {"s3": s3, "cloudwatch": boto3.client("cloudwatch", region_name=REGION)}


def put_utilization(cloudwatch: Any, values: dict[str, float]) -> None:
    """What SageMaker's agent publishes for the endpoint's instance during the level."""
    dims = [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "AllTraffic"}]
    now = datetime.now(UTC)
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[{"MetricName": k, "Dimensions": dims, "Timestamp": now, "Value": v} for k, v in values.items()],
    )


def stored(s3: Any, key: str) -> LevelResult:
    return from_data(LevelResult, json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def test_level_record_lands_in_s3_with_metrics_and_utilization(aws: dict[str, Any], emulator) -> None:
    emulator.reset()
    # ml.g5.2xlarge: 1 GPU, 8 vCPUs; SageMaker sums CPU over vCPUs, so 400 % is 50 % of the instance.
    put_utilization(
        aws["cloudwatch"],
        {"GPUUtilization": 80.0, "GPUMemoryUtilization": 60.0, "CPUUtilization": 400.0, "MemoryUtilization": 30.0},
    )
    out = load_handler("loadtest").handler(level_event(2), None)

    key = out["record"].removeprefix(f"s3://{BUCKET}/")
    assert key.startswith(levels_prefix("runs/", "run1")) and key.endswith("concurrency-0002.json")
    (listed,) = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="runs/run1/")["Contents"]
    assert listed["Key"] == key  # the enriched record replaced the first write, no second object
    record = stored(aws["s3"], key)
    assert record.concurrency == 2 and record.configuration.label == "7b-gptq-g5-2xlarge"
    assert dict(record.configuration.settings)["MAX_TOTAL_TOKENS"] == "2048"
    assert record.load["target"] == f"sagemaker:{ENDPOINT}"
    m = record.metrics
    assert m.requests_ok > 0 and m.requests_failed == 0
    # The emulator generates FAST.tokens per request and one token per ms per stream, no faster: the
    # count is exact, and two streams cannot receive more than 2 x 1000 tokens/s. No floor: how fast a loaded
    # machine serves is not this test's business (the token count against the emulator's log is).
    assert m.output_tokens == FAST.tokens * m.requests_ok
    assert m.tokens_per_s is not None and m.steady_window_s is not None
    assert 0 < m.tokens_per_s <= 2000 * 1.02
    assert m.ttft_ms.median is not None and m.ttft_ms.median >= FAST.prefill_base_ms  # prefill comes first
    assert record.utilization == {
        "GPUUtilization": 80.0,
        "GPUMemoryUtilization": 60.0,
        "CPUUtilization": 50.0,
        "MemoryUtilization": 30.0,
    }
    assert record.cost is not None and record.cost.instance_type == "ml.g5.2xlarge"
    assert out["headline"]["tokens_per_s"] == m.tokens_per_s and out["utilization"] == record.utilization
    # Every measured request reached the emulator and finished there, none more.
    truths = emulator.truth()
    assert len(truths) == m.requests_total and {t.outcome for t in truths} == {"ok"}
    assert {t.tokens for t in truths} == {FAST.tokens}


@pytest.mark.parametrize(("memory_mb", "workers"), [(1024, 0), (2 * LAMBDA_MB_PER_VCPU, 2)])
def test_the_functions_vcpus_set_its_worker_processes(
    aws: dict[str, Any], emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, memory_mb: int, workers: int
) -> None:
    """Lambda sets AWS_LAMBDA_FUNCTION_MEMORY_SIZE; from two whole vCPUs on, the level runs in that many worker
    processes (Process and Pipe: what Lambda supports). The runner's call is watched, not replaced.

    The level's client-bound verdict measures the client's CPU against the vCPUs the memory grants (one per
    1,769 MB, the Lambda developer guide's "Configure Lambda function memory"), not the CPUs the function sees:
    Lambda shows a 1,024 MB function 2 vCPUs and no cgroup quota, yet gives it 0.58 vCPU of CPU time, so
    against what it sees its CPU could never pass 85 %."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(memory_mb))
    seen: list[int] = []
    real = runner.run_in_workers  # type: ignore[attr-defined]  # the name the runner calls

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_in_workers", watched)
    out = load_handler("loadtest").handler(level_event(4), None)
    assert seen == ([workers] if workers else [])
    record = stored(aws["s3"], out["record"].removeprefix(f"s3://{BUCKET}/"))
    m = record.metrics
    assert m.requests_ok > 0 and m.requests_failed == 0
    granted = memory_mb / 1769  # vCPUs, from the documented ratio (not LoadTestSizing's own arithmetic)
    assert m.client_cpus is not None and m.client_cpus <= granted + 1e-9
    if memory_mb == 1024:
        assert m.client_cpus <= 0.58  # what this machine shows (2 CPUs here, one event loop) is more
        assert m.client_cpus == pytest.approx(granted)


def test_missing_utilization_is_noted_and_errors_are_recorded(aws: dict[str, Any], emulator) -> None:
    emulator.configure(
        EmulatorConfig(
            latency=FAST, endpoint_names=(ENDPOINT,), faults=(FaultRule(FaultKind.SERVER_ERROR, every_nth=2),)
        )
    )
    put_utilization(aws["cloudwatch"], {"GPUUtilization": 55.0})
    out = load_handler("loadtest").handler(level_event(1, streaming=False), None)
    record = stored(aws["s3"], out["record"].removeprefix(f"s3://{BUCKET}/"))
    assert record.utilization == {"GPUUtilization": 55.0}
    assert any("GPUMemoryUtilization" in note and "CPUUtilization" in note for note in record.notes)
    assert record.metrics.requests_failed > 0 and record.metrics.errors_by_kind


def test_unknown_endpoint_aborts_the_level_by_name_and_stores_nothing(aws: dict[str, Any]) -> None:
    event = dict(level_event(1), endpoint_name="llmbench-run1-missing")
    with pytest.raises(LevelAborted) as err:
        load_handler("loadtest").handler(event, None)
    # Lambda reports the exception's class name as the error type the state machine's Catch sees.
    assert type(err.value).__name__ == "LevelAborted"
    message = str(err.value)
    assert message.startswith("endpoint llmbench-run1-missing: 7b/gptq/ml.g5.2xlarge/")
    assert "at concurrency 1: " in message
    assert "the first 10 requests all failed" in message and "Endpoint llmbench-run1-missing" in message
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="runs/")


def test_error_rate_limit_from_the_event_aborts_the_level(aws: dict[str, Any], emulator) -> None:
    emulator.configure(
        EmulatorConfig(
            latency=FAST, endpoint_names=(ENDPOINT,), faults=(FaultRule(FaultKind.SERVER_ERROR, every_nth=2),)
        )
    )
    emulator.reset()  # fault count from 1: requests 2, 4, 6, ... fail
    event = level_event(1, streaming=False)
    event["load"] = dict(event["load"], duration_s=5.0, max_error_rate=0.25)
    with pytest.raises(LevelAborted, match=r"error rate 50% of 20 requests exceeds the limit 25%"):
        load_handler("loadtest").handler(event, None)
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="runs/")


def test_results_write_failure_raises(aws: dict[str, Any]) -> None:
    aws["s3"].delete_bucket(Bucket=BUCKET)
    with pytest.raises(aws["s3"].exceptions.NoSuchBucket):
        load_handler("loadtest").handler(level_event(1), None)


def test_a_payload_the_engine_does_not_serve_is_refused_before_any_request(
    aws: dict[str, Any], emulator: EmulatorServer
) -> None:
    # vLLM's /invocations takes an OpenAI chat completion only; TGI's /generate body would be a 4xx on every request.
    emulator.reset()
    event = level_event(1)
    event["configuration"] |= {"engine": "vllm", "vllm_version": get_engine("vllm").default_version, "payload": "tgi"}
    with pytest.raises(ConfigError) as err:
        load_handler("loadtest").handler(event, None)
    assert err.value.fields == ("configuration.payload",)
    assert "configuration.payload='tgi'" in str(err.value) and "openai-chat" in str(err.value)
    assert emulator.truth() == []  # nothing was sent


def test_bad_event_names_the_field(aws: dict[str, Any]) -> None:
    event = level_event(1)
    del event["endpoint_name"]
    with pytest.raises(ConfigError) as err:
        load_handler("loadtest").handler(event, None)
    assert err.value.fields == ("endpoint_name",)
    assert "endpoint_name=None: is required" in str(err.value)


def test_aggregate_writes_report_metrics_and_summary(aws: dict[str, Any]) -> None:
    s3, cloudwatch = aws["s3"], aws["cloudwatch"]
    put_utilization(cloudwatch, {"GPUUtilization": 70.0})
    for concurrency in (1, 5):
        load_handler("loadtest").handler(level_event(concurrency), None)
    failure_state = {"config": {"id": "13b-gptq-g5-2xlarge"}, "error": {"Error": "EndpointDeadline", "Cause": "slow"}}
    s3.put_object(Bucket=BUCKET, Key="runs/run1/failures/13b-gptq-g5-2xlarge.json", Body=json.dumps(failure_state))

    event = {
        "run_id": "run1",
        "matrix": "smoke",
        "configurations": [
            {"id": "7b-gptq-g5-2xlarge", "name": ENDPOINT, "outcome": "succeeded"},
            {"id": "13b-gptq-g5-2xlarge", "name": "llmbench-run1-13b", "outcome": "failed"},
        ],
        "skipped": [{"id": "70b-fp16-g5-2xlarge", "reasons": ["does not fit"]}],
    }
    summary = load_handler("aggregate").handler(event, None)

    assert summary["levels"] == 2 and summary["configurations_succeeded"] == 1
    assert summary["configurations_failed"] == ["13b-gptq-g5-2xlarge"]
    markdown = s3.get_object(Bucket=BUCKET, Key="runs/run1/report/report.md")["Body"].read().decode()
    html = s3.get_object(Bucket=BUCKET, Key="runs/run1/report/report.html")
    assert html["ContentType"].startswith("text/html") and b"<html" in html["Body"].read()
    assert "13b-gptq-g5-2xlarge failed: EndpointDeadline" in markdown
    assert "70b-fp16-g5-2xlarge skipped" in markdown and "7b/gptq/ml.g5.2xlarge" in markdown
    assert summary["report"]["html"] == f"s3://{BUCKET}/runs/run1/report/report.html"
    latency = [r for r in summary["recommendations"] if r["rule"] == "latency"]
    assert latency and latency[0]["winner"] and "g5.2xlarge" in latency[0]["winner"]
    assert len(json.dumps(summary)) < 4096  # travels in the SNS message

    metrics = cloudwatch.list_metrics(Namespace="LlamaBenchmark")["Metrics"]
    names = {m["MetricName"] for m in metrics}
    assert {"OutputTokensPerSecond", "MsPerTokenMedian", "UsdPer1MOutputTokens", "ErrorRate"} <= names
    dims = {tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in metrics}
    assert (
        ("Concurrency", "5"),
        ("InstanceType", "ml.g5.2xlarge"),
        ("Model", "7b"),
        ("Quantization", "gptq"),
    ) in dims
    assert summary["metrics_published"] == sum(1 for m in metrics)


def test_aggregate_of_a_run_where_everything_failed(aws: dict[str, Any]) -> None:
    state = {"config": {"id": "7b-gptq-g5-2xlarge"}, "error": {"Error": "SageMaker.ValidationException"}}
    aws["s3"].put_object(Bucket=BUCKET, Key="runs/run9/failures/7b-gptq-g5-2xlarge.json", Body=json.dumps(state))
    summary = load_handler("aggregate").handler({"run_id": "run9", "matrix": "smoke", "configurations": []}, None)
    assert summary["levels"] == 0 and summary["metrics_published"] == 0
    body = aws["s3"].get_object(Bucket=BUCKET, Key="runs/run9/report/report.md")["Body"].read().decode()
    assert "SageMaker.ValidationException" in body


def test_metric_window_covers_whole_minutes() -> None:
    start, end = metric_window("2026-01-01T10:00:30+00:00", "2026-01-01T10:02:05+00:00")
    assert (start.minute, start.second, end.minute, end.second) == (0, 0, 3, 0)
