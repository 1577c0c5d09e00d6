"""The end of a state-machine run: report to S3, headline metrics to CloudWatch, a summary for SNS.

Reads the run's level records (``runs/<run id>/levels/``) and failure records (``runs/<run id>/failures/``,
written by the state machine's ``RecordFailure``), renders the benchmark package's report with the
failures listed as notes, uploads it to ``runs/<run id>/report/`` and publishes one set of headline
metrics per measured level. The returned summary is small: it travels in the SNS message.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from benchmark.analysis.collect import collect_results
from benchmark.analysis.recommend import recommend
from benchmark.analysis.results import LevelResult
from benchmark.aws.contract import OUTCOME_FAILED, OUTCOME_SUCCEEDED, failures_prefix, levels_prefix, report_prefix
from benchmark.report import write_report
from benchmark.sizing.regression import run_over_run
from catalog.errors import ConfigError, Issue

# headline metric -> (CloudWatch metric name, unit)
HEADLINE_METRICS: Mapping[str, tuple[str, str]] = {
    "tokens_per_s": ("OutputTokensPerSecond", "Count/Second"),
    "ms_per_token_median": ("MsPerTokenMedian", "Milliseconds"),
    "ms_per_token_p90": ("MsPerTokenP90", "Milliseconds"),
    "ttft_ms_median": ("TimeToFirstTokenMedian", "Milliseconds"),
    "e2e_ms_median": ("EndToEndLatencyMedian", "Milliseconds"),
    "error_rate": ("ErrorRate", "None"),
}
_PUT_BATCH = 500  # PutMetricData takes at most 1000 values per call


def read_failures(s3: Any, bucket: str, prefix: str) -> list[dict[str, str]]:
    """Each failed configuration's id and error, from the state the state machine stored when it caught it."""
    failures: list[dict[str, str]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            try:
                state = json.loads(body)
                error = state.get("error") or {}
                failures.append(
                    {
                        "id": str(state.get("config", {}).get("id", item["Key"])),
                        "error": str(error.get("Error", "unknown")),
                        "cause": str(error.get("Cause", ""))[:500],
                    }
                )
            except (ValueError, AttributeError):
                failures.append({"id": str(item["Key"]), "error": "unreadable failure record", "cause": ""})
    return failures


def unrecorded_failures(event: Mapping[str, Any], recorded: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Configurations the state machine marked failed whose failure record never landed (its write failed):
    the report must still count them as failed."""
    known = {f["id"] for f in recorded}
    return [
        {"id": str(c.get("id")), "error": "unrecorded", "cause": "marked failed; its failure record was not written"}
        for c in event.get("configurations") or []
        if c.get("outcome") == OUTCOME_FAILED and str(c.get("id")) not in known
    ]


def metric_data(results: Sequence[LevelResult]) -> list[dict[str, Any]]:
    """PutMetricData values: one per headline metric and measured level, dimensioned by what was deployed."""
    data: list[dict[str, Any]] = []
    for result in results:
        if not result.measured:
            continue
        c = result.configuration
        dimensions = [
            {"Name": "Model", "Value": c.model},
            {"Name": "Quantization", "Value": c.quantization},
            {"Name": "InstanceType", "Value": c.instance_type},
            {"Name": "Concurrency", "Value": str(result.concurrency)},
        ]
        timestamp = datetime.fromisoformat(result.finished_at)
        values: dict[str, float | int | None] = {
            "tokens_per_s": result.metrics.tokens_per_s,
            "ms_per_token_median": result.metrics.ms_per_token.median,
            "ms_per_token_p90": result.metrics.ms_per_token.p90,
            "ttft_ms_median": result.metrics.ttft_ms.median,
            "e2e_ms_median": result.metrics.e2e_ms.median,
            "error_rate": result.metrics.error_rate,
        }
        for key, (name, unit) in HEADLINE_METRICS.items():
            value = values[key]
            if value is not None:
                data.append(
                    {
                        "MetricName": name,
                        "Dimensions": dimensions,
                        "Timestamp": timestamp,
                        "Value": float(value),
                        "Unit": unit,
                    }
                )
        if result.cost is not None and result.cost.usd_per_1m_tokens is not None:
            data.append(
                {
                    "MetricName": "UsdPer1MOutputTokens",
                    "Dimensions": dimensions,
                    "Timestamp": timestamp,
                    "Value": float(result.cost.usd_per_1m_tokens),
                    "Unit": "None",
                }
            )
    return data


def _batches(items: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def recommendations(results: Sequence[LevelResult]) -> list[dict[str, Any]]:
    out = []
    for rec in recommend(results):
        winner = rec.winner
        out.append(
            {
                "rule": rec.rule.name,
                "model": rec.model,
                "concurrency": rec.rule.concurrency,
                "winner": None if winner is None else winner.configuration.display_name,
                "explanation": rec.explanation,
            }
        )
    return out


def aggregate_run(
    event: Mapping[str, Any], *, bucket: str, results_prefix: str, namespace: str, s3: Any, cloudwatch: Any
) -> dict[str, Any]:
    """Report and metrics for one run; the returned summary goes into the SNS notification."""
    try:
        run_id, matrix = str(event["run_id"]), str(event["matrix"])
    except KeyError as err:
        raise ConfigError([Issue(str(err.args[0]), None, "is required")], context="aggregate event") from None
    results = collect_results([f"s3://{bucket}/{levels_prefix(results_prefix, run_id)}"], s3_client=s3)
    failures = read_failures(s3, bucket, failures_prefix(results_prefix, run_id))
    failures += unrecorded_failures(event, failures)
    notes = [f"run {run_id} of matrix {matrix}"]
    notes += [f"{f['id']} failed: {f['error']} {f['cause']}".strip() for f in failures]
    notes += [f"{s.get('id')} skipped: {'; '.join(s.get('reasons', []))}" for s in event.get("skipped") or []]
    keys = {}
    with tempfile.TemporaryDirectory() as out:
        files = write_report(results, out, title=f"Llama 2 on SageMaker benchmark: {matrix}", notes=notes)
        for path, content_type in ((files.markdown, "text/markdown"), (files.html, "text/html")):
            key = f"{report_prefix(results_prefix, run_id)}{path.name}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=f"{content_type}; charset=utf-8")
            keys[path.suffix.lstrip(".")] = f"s3://{bucket}/{key}"
    # Against the previous run of each configuration (benchmark/sizing/regression.py): change metrics + trend.
    trend_key = f"{report_prefix(results_prefix, run_id)}trend.md"
    compared = run_over_run(
        results,
        run_id=run_id,
        bucket=bucket,
        results_prefix=results_prefix,
        s3=s3,
        slo=event.get("slo"),
        trend_key=trend_key,
    )
    data = metric_data(results) + compared.metric_data
    for batch in _batches(data, _PUT_BATCH):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=list(batch))
    outcomes = [str(c.get("outcome")) for c in event.get("configurations") or []]
    return {
        "run_id": run_id,
        "matrix": matrix,
        "levels": len(results),
        "configurations_succeeded": outcomes.count(OUTCOME_SUCCEEDED),
        "configurations_failed": [f["id"] for f in failures],
        "report": {"markdown": keys["md"], "html": keys["html"]},
        "metrics_published": len(data),
        "recommendations": recommendations(results),
        "regression": compared.summary,
    }
