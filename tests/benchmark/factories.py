"""Benchmark result rows for the recommendation and report tests: one factory and a table with known winners."""

from __future__ import annotations

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.cost import estimate, price_for
from benchmark.analysis.headroom import headroom
from benchmark.analysis.results import LevelResult
from benchmark.measure.metrics import LevelMetrics
from benchmark.measure.percentiles import Distribution


def result(  # noqa: PLR0917  (one row of a results table, read positionally)
    model: str,
    quant: str,
    instance: str,
    concurrency: int,
    tps: float,
    ms: float,
    error_rate: float = 0.0,
    label: str = "",
    engine: str = "tgi",
) -> LevelResult:
    config = BenchmarkConfiguration(model=model, quantization=quant, instance_type=instance, label=label, engine=engine)
    metrics = LevelMetrics(
        concurrency=concurrency,
        window_s=60.0,
        requests_total=100,
        requests_ok=100,
        requests_failed=0,
        errors_by_kind={},
        error_rate=error_rate,
        output_tokens=int(tps * 60),
        tokens_per_s=tps,
        requests_per_min=100.0,
        ms_per_token=Distribution(count=100, median=ms),
        ms_per_token_sources={"stream": 100},
        inter_token_ms=Distribution(),
        ttft_ms=Distribution(),
        e2e_ms=Distribution(),
        derived_tokens_per_s_2023=None,
        max_new_tokens=50,
    )
    cost = estimate(tps, price_for(instance, "us-east-1"))
    return LevelResult(config, {}, metrics, cost, headroom(config, ms), "t0", "t1", "test")


# A tuple: both test modules share it, and none may change what the other sees.
RESULTS: tuple[LevelResult, ...] = (
    # 7B at concurrency 5: g5.2xlarge GPTQ is cheapest ($1.515/h at 120 tok/s = $3.50/1M)
    result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 34.0),
    result("7b", "fp16", "ml.g5.12xlarge", 5, 300.0, 16.0),  # $7.09/h / 300 tok/s = $6.56/1M
    # 7B at concurrency 1: g5.12xlarge fp16 is fastest per token
    result("7b", "fp16", "ml.g5.12xlarge", 1, 61.0, 16.8),
    result("7b", "gptq", "ml.g5.2xlarge", 1, 35.0, 28.0),
    # 7B at concurrency 20: g5.12xlarge fp16 has the highest throughput
    result("7b", "fp16", "ml.g5.12xlarge", 20, 450.0, 44.0),
    result("7b", "gptq", "ml.g5.2xlarge", 20, 200.0, 90.0),
    # 13B only at concurrency 1
    result("13b", "fp16", "ml.g5.12xlarge", 1, 47.0, 21.0),
)
