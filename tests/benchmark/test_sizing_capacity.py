"""Capacity per instance: the refining sweep against instances whose capacity is known by construction, imported
results at the 2023 levels, and (slow) the real emulator with a batching slope that sets a hand-computed capacity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.sizing.capacity import Measure, SweepSettings, capacity_of, sweep
from benchmark.sizing.levels import MeasuredLevel, load_levels
from benchmark.sizing.slo import parse_slo
from tests.benchmark.sizing_factories import level

BASE_MS, SLOPE_MS, LIMIT_MS = 10.0, 2.0, 41.0
# p90 ms/token = base + slope x concurrency crosses 41 between 15 (40 ms) and 16 (42 ms).
KNOWN_CAPACITY = int((LIMIT_MS - BASE_MS) // SLOPE_MS)
SLO = parse_slo(f"ms_per_token.p90<={LIMIT_MS}")


def linear_instance(calls: list[tuple[int, int]], *, noisy_run: tuple[int, int] | None = None) -> Measure:
    def measure(load: int, repeat: int) -> MeasuredLevel:
        calls.append((load, repeat))
        value = BASE_MS + SLOPE_MS * load + (5.0 if (load, repeat) == noisy_run else 0.0)
        return level(load, [value] * 20, repeat=repeat)

    return measure


def test_sweep_doubles_then_bisects_to_the_known_capacity() -> None:
    calls: list[tuple[int, int]] = []
    levels = sweep(linear_instance(calls), SLO, SweepSettings(start=1, limit=256, step=1, repeats=2))
    capacity = capacity_of(levels, SLO)
    assert KNOWN_CAPACITY == 15
    assert (capacity.capacity, capacity.first_failing) == (15, 16)
    assert calls == [(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (12, 0), (14, 0), (15, 0), (15, 1)]
    assert capacity.requests_at_capacity == 40
    assert capacity.spread() == {"ms_per_token.p90": 0.0}
    assert "between 15 and 16" in capacity.precision


def test_a_coarser_step_stays_within_one_step() -> None:
    levels = sweep(linear_instance([]), SLO, SweepSettings(start=1, limit=256, step=4, repeats=1))
    capacity = capacity_of(levels, SLO)
    assert capacity.capacity is not None and capacity.first_failing is not None
    assert capacity.first_failing - capacity.capacity <= 4
    assert capacity.capacity <= KNOWN_CAPACITY < capacity.first_failing


def test_a_failed_repeat_lowers_the_capacity() -> None:
    calls: list[tuple[int, int]] = []
    levels = sweep(linear_instance(calls, noisy_run=(15, 1)), SLO, SweepSettings(repeats=2))
    capacity = capacity_of(levels, SLO)
    assert capacity.capacity == 14
    assert len(capacity.at_capacity) == 2  # 14 was repeated too
    assert capacity.first_failing == 15


def test_slo_never_broken_gives_a_lower_bound() -> None:
    levels = sweep(linear_instance([]), parse_slo("ms_per_token.p90<=1000"), SweepSettings(limit=32))
    capacity = capacity_of(levels, parse_slo("ms_per_token.p90<=1000"))
    assert (capacity.capacity, capacity.first_failing) == (32, None)
    assert "lower bound" in capacity.precision


def test_failing_at_the_lowest_load_names_the_reason() -> None:
    slo = parse_slo("ms_per_token.p90<=5")
    capacity = capacity_of(sweep(linear_instance([]), slo, SweepSettings()), slo)
    assert capacity.capacity is None
    assert capacity.reason == "fails the SLO already at 1 (ms_per_token.p90 12.0 > 5)"


def test_a_pass_above_a_failure_does_not_count() -> None:
    levels = [level(1, [20.0] * 20), level(5, [50.0] * 20), level(10, [30.0] * 20)]
    capacity = capacity_of(levels, SLO)
    assert (capacity.capacity, capacity.first_failing) == (1, 5)


CSV_2023 = """model,quantization,instance,concurrency,ms_per_token_median,tokens_per_s,max_new_tokens
7b,gptq,ml.g5.2xlarge,1,20,35,50
7b,gptq,ml.g5.2xlarge,5,30,120,50
7b,gptq,ml.g5.2xlarge,10,45,180,50
7b,gptq,ml.g5.2xlarge,20,70,200,50
"""


def test_imported_2023_levels_size_and_say_how_coarse(tmp_path: Path) -> None:
    path = tmp_path / "k6-2023.csv"
    path.write_text(CSV_2023)
    slo = parse_slo("ms_per_token.median<=50")
    capacity = capacity_of(load_levels([str(path)]), slo)
    assert (capacity.capacity, capacity.first_failing) == (10, 20)
    assert capacity.precision == (
        "between 10 and 20 concurrent requests (measured 1, 5, 10, 20; the true capacity may be up to 10 higher)"
    )
    assert capacity.rps_per_instance == pytest.approx(180 / 50)  # no request count: tokens/s over tokens/request
    assert any("no per-request data" in note for note in capacity.notes)


@pytest.mark.slow
def test_emulator_capacity_is_within_one_step_of_the_batching_slope(tmp_path: Path) -> None:
    from benchmark.clients import ClientSpec  # noqa: PLC0415
    from benchmark.emulator import EmulatorConfig, LatencyModel, running_emulator  # noqa: PLC0415
    from benchmark.measure.load import LoadSpec  # noqa: PLC0415
    from benchmark.sizing.measure import LevelPlan, measurer  # noqa: PLC0415

    latency = LatencyModel(
        prefill_base_ms=5, prefill_ms_per_token=0, tpot_base_ms=BASE_MS, tpot_slope_ms=SLOPE_MS, tokens=10
    )
    configuration = BenchmarkConfiguration(model="7b", quantization="gptq", instance_type="ml.g5.2xlarge")
    settings = SweepSettings(start=1, limit=64, step=1, repeats=1)
    with running_emulator(EmulatorConfig(latency=latency)) as base_url:
        plan = LevelPlan(load=LoadSpec(duration_s=1.0, max_new_tokens=10))
        levels = sweep(measurer(configuration, ClientSpec("tgi-http", base_url), plan), SLO, settings)
    capacity = capacity_of(levels, SLO)
    assert capacity.capacity is not None
    assert abs(capacity.capacity - KNOWN_CAPACITY) <= settings.step
    # The capacity rests on per-request samples (a level far past it may end with none inside 1 s on a busy box).
    assert all(lv.samples for lv in levels if lv.load == capacity.capacity)


def test_too_few_requests_is_inconclusive_not_a_failure() -> None:
    levels = [level(1, [12.0] * 8), level(2, [14.0] * 20), level(4, [50.0] * 20)]  # p90 needs 10 requests
    capacity = capacity_of(levels, SLO)
    assert (capacity.capacity, capacity.first_failing) == (2, 4)
    assert capacity.notes[0].startswith("load 1 inconclusive")


def test_open_loop_capacity_is_the_offered_rate() -> None:
    def at_rate(rate: int, values: list[float]) -> MeasuredLevel:
        base = level(64, values, window_s=2.0)
        load = {**base.result.load, "request_rate": float(rate)}
        return MeasuredLevel(replace(base.result, load=load), base.samples)

    capacity = capacity_of([at_rate(20, [30.0] * 20), at_rate(40, [60.0] * 20)], SLO)
    assert (capacity.load_kind, capacity.capacity, capacity.rps_per_instance) == ("request_rate", 20.0, 20.0)
    assert "requests/s" in capacity.precision
