"""One concurrency level on a benchmark endpoint, as the state machine's load-test Lambda runs it.

The event is a :class:`benchmark.aws.contract.LevelEvent` (the endpoint's configuration and the level's
``LoadSpec``), as ``constructs/llama_constructs/benchmark/benchmark_state_machine.py`` builds it for each item of
its ``RunLevels`` map. The level runs through the level runner every other caller uses
(:func:`benchmark.measure.runner.run_one_level`), which writes its record to S3 the moment it finishes; the
record is then enriched with the endpoint's CloudWatch utilisation for the level's window and written again
(the same object), so a failure while reading CloudWatch still leaves the measured record in place.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.results import LevelResult, S3ResultsStore
from benchmark.aws.contract import EndpointConfiguration, LevelEvent, levels_prefix
from benchmark.clients import ClientSpec
from benchmark.measure.failfast import LevelAborted
from benchmark.measure.metrics import headline
from benchmark.measure.runner import ProcessOptions, run_one_level
from benchmark.serialize import from_data
from catalog.engines import get_engine
from catalog.errors import ConfigError, Issue

NAMESPACE = "/aws/sagemaker/Endpoints"
# Metric name -> what divides it into a 0-100 % per unit: SageMaker sums GPU metrics over GPUs and CPU
# over vCPUs (an 8-GPU instance reports up to 800 % GPUUtilization); memory is already 0-100 %.
UTILIZATION_METRICS = ("GPUUtilization", "GPUMemoryUtilization", "CPUUtilization", "MemoryUtilization")
PERIOD_S = 60  # endpoint instance metrics are published once a minute
# Container settings implied by the model, quantization and instance: not part of the configuration key.
_IMPLIED_SETTINGS = frozenset(
    {
        *("HF_MODEL_ID", "SM_NUM_GPUS", "HF_MODEL_QUANTIZE"),  # TGI
        # vLLM: the model, its GPUs, quantization and dtype follow from model/quantization/instance; the rest wires
        # the server to the container's port.
        *("SM_VLLM_MODEL", "SM_VLLM_TENSOR_PARALLEL_SIZE", "SM_VLLM_QUANTIZATION", "SM_VLLM_DTYPE"),
        *("SM_VLLM_SERVED_MODEL_NAME", "SM_VLLM_HOST", "SM_VLLM_PORT"),
    }
)


def read_event(event: Mapping[str, Any]) -> LevelEvent:
    """The state machine's item, or a ConfigError naming the missing or bad field (a payload its engine does not
    serve on ``/invocations`` included)."""
    try:
        level = from_data(LevelEvent, event)
        item = level.configuration
        engine = get_engine(item.engine, field="configuration.engine")
    except ConfigError as err:
        raise ConfigError(err.issues, context="load-test event") from None
    if item.payload not in engine.payloads:
        allowed = f"{engine.display_name} serves {', '.join(engine.payloads)} on /invocations"
        raise ConfigError([Issue("configuration.payload", item.payload, allowed)], context="load-test event")
    return level


def benchmark_configuration(item: EndpointConfiguration, *, region: str) -> BenchmarkConfiguration:
    """What a level on this endpoint measured: the deployment, its container settings, the configuration id."""
    environment = item.container.get("Environment", {})
    settings = tuple(sorted((k, str(v)) for k, v in environment.items() if k not in _IMPLIED_SETTINGS))
    return BenchmarkConfiguration(
        model=item.model,
        quantization=item.quantization,
        instance_type=item.instance_type,
        tgi_version=item.tgi_version if item.engine == "tgi" else None,
        engine=item.engine,
        vllm_version=item.vllm_version,
        region=region,
        label=item.id,
        settings=settings,
    )


def variant_name(item: EndpointConfiguration) -> str:
    """The production variant the endpoint's metrics are dimensioned by (no "AllTraffic" fallback)."""
    name = item.variant.get("VariantName")
    if not name:
        raise ConfigError([Issue("configuration.variant.VariantName", name, "is required")], context="load-test event")
    return str(name)


def metric_window(started_at: str, finished_at: str) -> tuple[datetime, datetime]:
    """The level's window widened to whole periods, so the minutes it touched are all read."""
    start = datetime.fromisoformat(started_at)
    end = datetime.fromisoformat(finished_at)
    start = start - timedelta(seconds=start.timestamp() % PERIOD_S)
    end_s = math.ceil(end.timestamp() / PERIOD_S) * PERIOD_S
    return start, datetime.fromtimestamp(max(end_s, start.timestamp() + PERIOD_S), tz=start.tzinfo)


def read_utilization(
    cloudwatch: Any,
    *,
    endpoint_name: str,
    variant_name: str,
    configuration: BenchmarkConfiguration,
    start: datetime,
    end: datetime,
) -> dict[str, float]:
    """Mean of the per-minute averages of each metric in the window, as % per GPU / vCPU; absent ones left out."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant_name}]
    queries = [
        {
            "Id": f"m{index}",
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dimensions},
                "Period": PERIOD_S,
                "Stat": "Average",
            },
            "ReturnData": True,
        }
        for index, name in enumerate(UTILIZATION_METRICS)
    ]
    values: dict[str, list[float]] = {name: [] for name in UTILIZATION_METRICS}
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
        if token:
            kwargs["NextToken"] = token
        response = cloudwatch.get_metric_data(**kwargs)
        for item in response.get("MetricDataResults", []):
            values[UTILIZATION_METRICS[int(item["Id"][1:])]].extend(float(v) for v in item.get("Values", []))
        token = response.get("NextToken")
        if not token:
            break
    instance = configuration.instance
    units = {
        "GPUUtilization": instance.gpu_count,
        "GPUMemoryUtilization": instance.gpu_count,
        "CPUUtilization": instance.vcpus,
        "MemoryUtilization": 1,
    }
    return {name: sum(v) / len(v) / units[name] for name, v in values.items() if v}


def client_spec(level: LevelEvent, *, region: str, endpoint_url: str | None, runtime: Any) -> ClientSpec:
    """The SageMaker client a level (or a shard of one) measures its endpoint with, sending its engine's payload:
    TGI's /generate body, or an OpenAI chat completion for vLLM."""
    options = {
        "region_name": region,
        "endpoint_url": endpoint_url,
        "boto_client": runtime,
        "payload": level.configuration.payload,
    }
    return ClientSpec("sagemaker", level.endpoint_name, options)


def run_level(
    event: Mapping[str, Any],
    *,
    bucket: str,
    results_prefix: str,
    region: str,
    s3: Any,
    cloudwatch: Any,
    runtime: Any = None,
    endpoint_url: str | None = None,
    settle_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    workers: int = 0,
    cpu_cap: float | None = None,
) -> dict[str, Any]:
    """Run the level, store its record, add utilisation, store it again; returns a summary for the map's output.

    A level whose target fails fast raises :class:`LevelAborted` (the Lambda's error type) and stores
    nothing, so the state machine sees a failed level instead of an empty one.

    ``settle_s``: how long to keep asking CloudWatch for the window's last minute (metrics arrive with a
    delay of about a minute); whatever has arrived by then is recorded, and a missing metric is noted.
    ``workers``: processes a closed-loop level is spread over (the function's vCPUs, ``LoadTestSizing.workers``).
    ``cpu_cap``: the vCPUs the function's memory grants (``LoadTestSizing.vcpus``), the CPUs its client-bound
    verdict measures against (Lambda shows more and no cgroup quota: ``ProcessOptions.cpu_cap``).
    """
    level = read_event(event)
    if level.shard is not None:
        raise ConfigError(
            [Issue("shard", level.shard.index, "a shard of a level runs through benchmark.aws.shards.run_shard")],
            context="load-test event",
        )
    configuration = benchmark_configuration(level.configuration, region=region)
    variant_name(level.configuration)  # checked before the level runs, not after
    store = S3ResultsStore(bucket, levels_prefix(results_prefix, level.run_id), s3)
    try:
        outcome = run_one_level(
            configuration,
            level.load,
            client_spec(level, region=region, endpoint_url=endpoint_url, runtime=runtime),
            target=f"sagemaker:{level.endpoint_name}",
            store=store,
            process=ProcessOptions(
                workers=0 if level.load.open_loop else min(workers, level.load.concurrency), cpu_cap=cpu_cap
            ),
        )
    except LevelAborted as err:  # raised by name, so the state machine records a failed level
        raise err.within(f"endpoint {level.endpoint_name}") from None
    return record_level(
        outcome.result,
        level,
        store=store,
        bucket=bucket,
        configuration=configuration,
        cloudwatch=cloudwatch,
        settle_s=settle_s,
        sleep=sleep,
    )


def record_level(
    result: LevelResult,
    level: LevelEvent,
    *,
    store: S3ResultsStore,
    bucket: str,
    configuration: BenchmarkConfiguration,
    cloudwatch: Any,
    settle_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Add the endpoint's utilisation in the level's window to its stored record and store it again; the summary
    the state machine's map collects. A level run whole and a fanned-out level's merge both end here."""
    variant = variant_name(level.configuration)
    start, end = metric_window(result.started_at, result.finished_at)
    deadline = time.monotonic() + settle_s
    while True:
        utilization = read_utilization(
            cloudwatch,
            endpoint_name=level.endpoint_name,
            variant_name=variant,
            configuration=configuration,
            start=start,
            end=end,
        )
        if len(utilization) == len(UTILIZATION_METRICS) or time.monotonic() >= deadline:
            break
        sleep(min(15.0, max(0.0, deadline - time.monotonic())))
    enriched = _with_utilization(result, utilization)
    store.append(enriched)  # same object key: the measured record is replaced by the enriched one
    return {
        "configuration_id": level.configuration.id,
        "concurrency": enriched.concurrency,
        "record": f"s3://{bucket}/{store.object_key(enriched.level_key)}",
        "headline": headline(enriched.metrics),
        "utilization": dict(enriched.utilization or {}),
    }


def _with_utilization(result: LevelResult, utilization: Mapping[str, float]) -> LevelResult:
    missing = [name for name in UTILIZATION_METRICS if name not in utilization]
    enriched = result.with_utilization(utilization)
    if missing:
        note = f"no CloudWatch data for {', '.join(missing)} in the level's window"
        enriched = replace(enriched, notes=(*enriched.notes, note))
    return enriched
