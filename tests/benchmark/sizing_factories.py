"""Measured levels for the sizing tests, built from per-request numbers chosen by hand."""

from __future__ import annotations

from collections.abc import Sequence

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.results import build_result
from benchmark.measure.metrics import LevelMetrics
from benchmark.measure.percentiles import Distribution
from benchmark.sizing.levels import MeasuredLevel, RequestSample


def level(
    concurrency: int,
    ms_per_token: Sequence[float],
    *,
    ttft_ms: float = 100.0,
    failed: int = 0,
    window_s: float = 10.0,
    tokens: int = 50,
    instance: str = "ml.g5.2xlarge",
    quantization: str = "gptq",
    model: str = "7b",
    repeat: int = 0,
    engine: str = "tgi",
) -> MeasuredLevel:
    """One level whose successful requests have these ms/token values (and the same TTFT)."""
    configuration = BenchmarkConfiguration(
        model=model, quantization=quantization, instance_type=instance, engine=engine
    )
    samples = [RequestSample(True, ttft_ms, v, ttft_ms + v * (tokens - 1), tokens) for v in ms_per_token]
    samples += [RequestSample(False, None, None, 5.0, None)] * failed
    ok = len(ms_per_token)
    metrics = LevelMetrics(
        concurrency=concurrency,
        window_s=window_s,
        requests_total=ok + failed,
        requests_ok=ok,
        requests_failed=failed,
        errors_by_kind={"http_5xx": failed} if failed else {},
        error_rate=failed / (ok + failed) if ok + failed else None,
        output_tokens=ok * tokens,
        tokens_per_s=ok * tokens / window_s,
        requests_per_min=ok / window_s * 60.0,
        ms_per_token=Distribution.of(ms_per_token),
        ms_per_token_sources={"stream": ok},
        inter_token_ms=Distribution(),
        ttft_ms=Distribution.of([ttft_ms] * ok),
        e2e_ms=Distribution.of([s.e2e_ms for s in samples if s.ok]),
        derived_tokens_per_s_2023=None,
        max_new_tokens=tokens,
    )
    result = build_result(configuration, {"concurrency": concurrency}, metrics, started_at="t0", finished_at="t1")
    return MeasuredLevel(result, tuple(samples), repeat)
