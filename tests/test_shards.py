"""Fan-out's pieces, unit by unit: the load test's size and shard counts (contract), the shard event, a shard's
lateness, and the merge (percentiles over the union of the shards' records, never averaged; bad merge events
refused). The whole path through the state machine, against the ground truth: tests/test_state_machine_shards.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from benchmark.analysis.results import LevelResult
from benchmark.aws.contract import (
    CLIENT_TOKENS_PER_S_PER_VCPU,
    EXPECTED_TOKENS_PER_S_PER_STREAM,
    ITEM_LOAD,
    ITEM_SHARDS,
    LAMBDA_MAX_MEMORY_MB,
    LAMBDA_MB_PER_VCPU,
    MAX_SHARDS,
    LoadTestSizing,
    ShardEvent,
    level_item,
    level_items,
)
from benchmark.aws.levels import read_event
from benchmark.aws.shards import ShardLate, ShardRecords, merge_level, read_merge_event, run_shard, shard_key
from benchmark.emulator import EmulatorConfig, EmulatorServer, LatencyModel
from benchmark.matrix import load_matrix
from benchmark.measure.processes import process_capacity_tokens_per_s
from benchmark.measure.records import RequestRecord
from benchmark.serialize import from_data, to_data
from catalog.errors import ConfigError
from llama_constructs.benchmark.benchmark_state_machine import matrix_items
from tests.lambda_handlers import load_handler

REGION = "us-east-1"
BUCKET = "results"
SIZING = LoadTestSizing(memory_mb=1024)


# --- sizing -------------------------------------------------------------------------------------------------


def test_the_largest_level_sizes_the_function_from_the_documented_vcpu_per_memory() -> None:
    # AWS Lambda developer guide: one vCPU per 1,769 MB, at most 10,240 MB.
    assert (LAMBDA_MB_PER_VCPU, LAMBDA_MAX_MEMORY_MB) == (1769, 10_240)
    sizing = LoadTestSizing.for_levels([1, 5, 10, 20])  # the 2023 matrix: within the 1,024 MB floor
    assert sizing.memory_mb == 1024 and sizing.tokens_per_s >= 20 * EXPECTED_TOKENS_PER_S_PER_STREAM
    # 128 streams plan 12,800 tokens/s: two vCPUs and a bit, so three whole ones, one worker process each.
    assert 2 < 128 * EXPECTED_TOKENS_PER_S_PER_STREAM / CLIENT_TOKENS_PER_S_PER_VCPU < 3
    assert (LoadTestSizing.for_levels([1, 128]).memory_mb, LoadTestSizing.for_levels([1, 128]).workers) == (3 * 1769, 3)
    assert LoadTestSizing.for_levels([1]).memory_mb == 1024  # never below the size it had before
    assert LoadTestSizing.for_levels([1, 1024]).memory_mb == 10_240  # Lambda's largest: the rest is sharded


@pytest.mark.parametrize("level", [1, 5, 20, 60, 64, 65, 100, 128, 200, 256, 370, 512, 700, 1024])
def test_every_process_of_every_shard_can_drive_its_share_of_the_level(level: int) -> None:
    """The CLI's model of one client process (benchmark.measure.processes: its CPU per token within its busy
    target, at most one vCPU each) against what the sizing gives a level: each process's share of each shard's
    streams, at the planned rate per stream, fits it."""
    sizing = LoadTestSizing.for_levels([level])
    shards = sizing.shards(level)
    processes = max(1, sizing.workers)
    streams_per_process = math.ceil(math.ceil(level / shards) / processes)
    cpu_per_process = min(1.0, sizing.vcpus / processes)
    capacity = cpu_per_process * process_capacity_tokens_per_s("sagemaker")
    assert streams_per_process * EXPECTED_TOKENS_PER_S_PER_STREAM <= capacity, (sizing, shards)


def test_an_open_loop_level_is_planned_on_one_process() -> None:
    sizing = LoadTestSizing(memory_mb=10_240)
    assert sizing.capacity(open_loop=True) == CLIENT_TOKENS_PER_S_PER_VCPU  # one process, one vCPU
    assert sizing.capacity() == 5 * CLIENT_TOKENS_PER_S_PER_VCPU  # five workers, a vCPU each


def test_workers_follow_whole_vcpus() -> None:
    assert [LoadTestSizing(memory_mb=m).workers for m in (1024, 1769, 3538, 5307, 10_240)] == [0, 0, 2, 3, 5]


def test_a_level_beyond_one_function_is_sharded_evenly_and_bounded() -> None:
    largest = LoadTestSizing(memory_mb=10_240)
    per_function = 5 * CLIENT_TOKENS_PER_S_PER_VCPU  # five worker processes of a vCPU each
    assert largest.shards(20) == 1
    three = math.ceil(2.5 * per_function / EXPECTED_TOKENS_PER_S_PER_STREAM)  # streams that need 2.5 functions
    assert largest.shards(three) == math.ceil(three * EXPECTED_TOKENS_PER_S_PER_STREAM / per_function) == 3
    assert largest.shards(2) == 1 and SIZING.shards(3) == 1  # never more shards than the level needs
    too_many = math.ceil(per_function * MAX_SHARDS / EXPECTED_TOKENS_PER_S_PER_STREAM) + 1
    with pytest.raises(ConfigError, match=rf"concurrency={too_many}.*at most {MAX_SHARDS}"):
        largest.shards(too_many)


@pytest.mark.parametrize("memory", [127, 10_241, 1024.5, True])
def test_memory_outside_lambdas_range_is_refused(memory: Any) -> None:
    with pytest.raises(ConfigError, match=r"memory_mb=.*128 to 10240"):
        LoadTestSizing(memory_mb=memory)


def test_level_items_carry_the_shards_each_level_needs() -> None:
    sizing = LoadTestSizing(memory_mb=10_240)
    level = math.ceil(2.5 * sizing.tokens_per_s / EXPECTED_TOKENS_PER_S_PER_STREAM)  # needs three functions
    items = level_items([1, level], sizing)
    assert [i[ITEM_LOAD] for i in items] == [{"concurrency": 1}, {"concurrency": level}]
    assert items[0][ITEM_SHARDS] == []  # not fanned out: the level runs whole, as before
    assert items[1][ITEM_SHARDS] == [{"index": i, "count": 3} for i in range(3)]
    with pytest.raises(ConfigError, match="shards=3"):
        level_item(2, 3)  # more shards than streams


def test_parallel_configurations_times_their_shards_stay_within_the_lambda_concurrency() -> None:
    matrix = load_matrix("smoke")
    sizing = LoadTestSizing(memory_mb=1024)
    level = math.ceil(2.5 * sizing.tokens_per_s / EXPECTED_TOKENS_PER_S_PER_STREAM)  # three shards
    big = dataclasses.replace(matrix, levels=(1, level), max_parallel_endpoints=4)
    with pytest.raises(ConfigError, match=r"max_parallel_endpoints=4: times the 3 load-test Lambdas .* 12 at once"):
        matrix_items(big, image_for=str, weights_bucket_name="w", sizing=sizing)
    fits = dataclasses.replace(big, max_parallel_endpoints=3)  # 9 at once
    assert matrix_items(fits, image_for=str, weights_bucket_name="w", sizing=sizing)


def test_an_open_loop_matrix_cannot_fan_out() -> None:
    matrix = load_matrix("smoke")
    open_loop = dataclasses.replace(matrix, load=dataclasses.replace(matrix.load, request_rate=50.0))
    with pytest.raises(ConfigError, match="open-loop levels cannot fan out"):
        matrix_items(open_loop, image_for=str, weights_bucket_name="w", sizing=LoadTestSizing(memory_mb=128))


# --- the shard event ------------------------------------------------------------------------------------------


def test_shard_event_names_the_common_start_and_refuses_bad_fields() -> None:
    event = ShardEvent(index=1, count=2, map_started_at="2026-12-07T08:00:00.000Z", lead_s=30.0)
    assert event.start_epoch_s == datetime(2026, 12, 7, 8, 0, 30, tzinfo=UTC).timestamp()
    with pytest.raises(ConfigError, match=r"shard.index=2"):
        ShardEvent(index=2, count=2, map_started_at="2026-12-07T08:00:00Z", lead_s=1.0)
    with pytest.raises(ConfigError, match=r"shard.map_started_at='yesterday'"):
        ShardEvent(index=0, count=2, map_started_at="yesterday", lead_s=1.0)


# --- a shard, and the merge -------------------------------------------------------------------------------------


def _level(concurrency: int = 4, shard: dict[str, Any] | None = None) -> dict[str, Any]:
    plan = matrix_items(load_matrix("smoke"), image_for=lambda v: f"tgi:{v}", weights_bucket_name="w", sizing=SIZING)
    event: dict[str, Any] = {
        "run_id": "run1",
        "matrix": "smoke",
        "endpoint_name": "llmbench-run1-a",
        "configuration": plan["configurations"][0],
        "load": {**plan["load"], "concurrency": concurrency, "streaming": True},
    }
    if shard:
        event["shard"] = shard
    return event


def test_a_shard_that_starts_too_late_fails_instead_of_measuring_alone() -> None:
    event = _level(shard={"index": 0, "count": 2, "map_started_at": "2026-12-07T08:00:00Z", "lead_s": 1.0})
    later = datetime(2026, 12, 7, 8, 0, 7, tzinfo=UTC).timestamp()  # 6 s after the common start
    with pytest.raises(ShardLate, match=r"shard 0 of 2 started 6.0 s after the common start"):
        run_shard(event, bucket=BUCKET, results_prefix="runs/", region=REGION, s3=None, wall_clock=lambda: later)


def _record(user: int, start: float, ttft_ms: float) -> RequestRecord:
    first = start + ttft_ms / 1000
    tokens = [first + 0.02 * i for i in range(10)]
    return RequestRecord(
        user=user, start=start, end=tokens[-1], generated_tokens=10, first_token_at=first, token_times=tokens
    )


def _shard(index: int, count: int, ttfts: list[float], *, start_epoch: float = 1.8e9) -> ShardRecords:
    """``count``-way shard ``index``: one user per TTFT (global number index + count * n), each with 3 requests."""
    records = [_record(index + count * n, 0.5 * k, ttft) for n, ttft in enumerate(ttfts) for k in range(3)]
    return ShardRecords(
        index=index, count=count, start_epoch_s=start_epoch, window_start=0.0, window_end=1.5, records=records
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def _merge_event(s3: Any, parts: list[ShardRecords], concurrency: int) -> dict[str, Any]:
    level = _level(concurrency)
    outcomes = []
    for part in parts:
        key = shard_key("runs/", read_level(level), part.index, part.count)
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(to_data(part)).encode())
        outcomes.append({"index": part.index, "count": part.count, "key": key})
    return {"level": level, "shards": outcomes}


def read_level(level: dict[str, Any]) -> Any:
    return read_event(level)


def test_the_merge_takes_percentiles_over_the_union_never_averaged(aws: Any) -> None:
    # Shard 0: three users at 10 ms TTFT; shard 1: one user at 100 ms. The union's median is 10 ms; the average
    # of the two shards' medians would be 55 ms.
    event = _merge_event(aws, [_shard(0, 2, [10.0, 10.0, 10.0]), _shard(1, 2, [100.0])], concurrency=4)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    out = merge_level(event, bucket=BUCKET, results_prefix="runs/", region=REGION, s3=aws, cloudwatch=cloudwatch)
    key = out["record"].removeprefix(f"s3://{BUCKET}/")
    record = from_data(LevelResult, json.loads(aws.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
    m = record.metrics
    assert m.requests_ok == 12 and m.concurrency == 4
    assert m.ttft_ms.median == pytest.approx(10.0)
    assert m.ttft_ms.p90 == pytest.approx(100.0)  # the slow shard's requests are the top quarter of the union
    assert record.started_at == datetime.fromtimestamp(1.8e9, tz=UTC).isoformat()
    assert any("fanned out over 2 load-test Lambdas" in n for n in record.notes)
    # The same through the handler, as the state machine's MergeShards task calls it.
    handled = load_handler("loadtest").handle(
        event, bucket=BUCKET, results_prefix="runs/", region=REGION, s3=aws, cloudwatch=cloudwatch
    )
    assert handled["record"] == out["record"]


def test_a_merge_event_that_misses_a_shard_or_reads_elsewhere_is_refused(aws: Any) -> None:
    event = _merge_event(aws, [_shard(0, 3, [10.0]), _shard(1, 3, [10.0])], concurrency=3)
    with pytest.raises(ConfigError, match="one outcome per shard"):
        read_merge_event(event, "runs/")
    event = _merge_event(aws, [_shard(0, 1, [10.0])], concurrency=1)
    event["shards"][0]["key"] = "runs/run1/levels/secret.json"
    with pytest.raises(ConfigError, match="must each be its shard's key of this level"):
        read_merge_event(event, "runs/")


def test_a_merge_refuses_the_shards_of_another_level_of_the_same_configuration(aws: Any) -> None:
    """Same run, same configuration, another concurrency: under the configuration's prefix, but not this level."""
    event = _merge_event(aws, [_shard(0, 2, [10.0]), _shard(1, 2, [10.0])], concurrency=2)
    other = read_level(_level(4))
    event["shards"][1]["key"] = shard_key("runs/", other, 1, 2)
    assert event["shards"][1]["key"].startswith("runs/run1/shards/") and "concurrency-0004" in event["shards"][1]["key"]
    expected = shard_key("runs/", read_level(event["level"]), 1, 2)
    with pytest.raises(ConfigError, match=rf"concurrency-0004.*must each be its shard's key of this level: {expected}"):
        read_merge_event(event, "runs/")
    event["shards"][1]["key"] = expected.replace("shard-01-of-02", "shard-00-of-02")  # shard 0's key for shard 1
    with pytest.raises(ConfigError, match="must each be its shard's key"):
        read_merge_event(event, "runs/")


def test_a_missing_shard_object_is_a_config_error_naming_its_key(aws: Any) -> None:
    event = _merge_event(aws, [_shard(0, 2, [10.0]), _shard(1, 2, [10.0])], concurrency=2)
    gone = event["shards"][1]["key"]
    aws.delete_object(Bucket=BUCKET, Key=gone)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    with pytest.raises(ConfigError, match=rf"shards.key='{gone}'.*cannot read shard 1's records.*NoSuchKey"):
        merge_level(event, bucket=BUCKET, results_prefix="runs/", region=REGION, s3=aws, cloudwatch=cloudwatch)
    assert "Contents" not in aws.list_objects_v2(Bucket=BUCKET, Prefix="runs/run1/levels/")


def test_shards_that_disagree_on_the_common_start_are_not_merged(aws: Any) -> None:
    parts = [_shard(0, 2, [10.0], start_epoch=1.8e9), _shard(1, 2, [10.0], start_epoch=1.8e9 + 5)]
    event = _merge_event(aws, parts, concurrency=2)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    with pytest.raises(ConfigError, match="one common start"):
        merge_level(event, bucket=BUCKET, results_prefix="runs/", region=REGION, s3=aws, cloudwatch=cloudwatch)
    assert "Contents" not in aws.list_objects_v2(Bucket=BUCKET, Prefix="runs/run1/levels/")


def test_the_merged_window_spans_every_shards_window(aws: Any) -> None:
    # Shards' windows differ (their ramps start apart, their last requests end apart); each shard measured every
    # request inside its own window, so the level counts every one of them, as one client would have.
    late = _shard(1, 2, [10.0])
    late = dataclasses.replace(
        late,
        window_start=0.5,
        window_end=2.0,
        records=[
            dataclasses.replace(
                r,
                start=r.start + 0.5,
                end=r.end + 0.5,
                first_token_at=(r.first_token_at or 0.0) + 0.5,
                token_times=[t + 0.5 for t in r.token_times],
            )
            for r in late.records
        ],
    )
    event = _merge_event(aws, [_shard(0, 2, [10.0]), late], concurrency=2)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    out = merge_level(event, bucket=BUCKET, results_prefix="runs/", region=REGION, s3=aws, cloudwatch=cloudwatch)
    key = out["record"].removeprefix(f"s3://{BUCKET}/")
    record = from_data(LevelResult, json.loads(aws.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
    assert record.metrics.requests_ok == 6
    assert not any("outside the measurement window" in n for n in record.notes)


# --- shards run against a server: the common start, the ramp, the shares and the users' numbers ------------------

ENDPOINT = "llmbench-run1-a"  # _level's endpoint
FAST = LatencyModel(prefill_base_ms=1, prefill_ms_per_token=0, tpot_base_ms=1, tpot_slope_ms=0, tokens=10)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(latency=FAST, endpoint_names=(ENDPOINT,))) as server:
        yield server


def test_shards_start_together_and_ramp_as_one_level(aws: Any, emulator: EmulatorServer) -> None:
    """Three shards of an 8-user level, run side by side as the Map runs them, against the emulator (loopback).

    What one client running the whole level would do: no request before the common start; the level's user u
    starts its first request ``u * ramp_up_s / concurrency`` after it (loadgen's ramp); users numbered 0..7 once
    each across the shards; the shards' shares differ by at most one (8 over 3: 3, 3, 2).
    """
    users, count, ramp = 8, 3, 0.8
    emulator.reset()
    common = time.time() + 1.5  # every shard is up before it, as SHARD_LEAD_S provides in AWS
    started = datetime.fromtimestamp(common - 1.0, tz=UTC).isoformat()

    def one(index: int) -> dict[str, Any]:
        event = _level(users, shard={"index": index, "count": count, "map_started_at": started, "lead_s": 1.0})
        event["load"] |= {"duration_s": 1.5, "ramp_up_s": ramp, "warmup_requests": 0, "max_requests": None}
        return run_shard(
            event, bucket=BUCKET, results_prefix="runs/", region=REGION, s3=aws, endpoint_url=emulator.base_url
        )

    with ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(one, range(count)))
    parts = [
        from_data(ShardRecords, json.loads(aws.get_object(Bucket=BUCKET, Key=o["key"])["Body"].read()))
        for o in outcomes
    ]
    assert all(p.start_epoch_s == pytest.approx(common) for p in parts)
    per_part = [{r.user for r in p.records} for p in parts]
    assert sorted(len(u) for u in per_part) == [2, 3, 3]
    assert sum(len(u) for u in per_part) == users and set().union(*per_part) == set(range(users))
    records = [r for p in parts for r in p.records]
    assert all(r.ok for r in records) and len(records) >= 2 * users
    # Times are seconds since the common start (each shard's wall clock): nothing before it.
    assert min(r.start for r in records) >= -0.005
    first = {u: min(r.start for r in records if r.user == u) for u in range(users)}
    early = {u: round(t, 3) for u, t in first.items() if t < ramp * u / users - 0.005}
    assert not early, f"users that started before their place in the level's ramp: {early}"


# --- the client's self-check, per shard and merged ----------------------------------------------------------------

LAMBDA_VCPUS = 1024 / 1769  # a 1,024 MB function's share of a vCPU (Lambda developer guide)
LATE = "requests sent 12.0 ms late at the median, 6.3% of the median end-to-end time (limit 2%): fewer requests"


def _checked_shard(index: int, count: int, *, cpu_share: float, reasons: tuple[str, ...] = ()) -> ShardRecords:
    """Two users, three requests each sent back to back (no send lateness, no coalesced first token), and a client
    that used ``cpu_share`` of its LAMBDA_VCPUS steadily: what a shard stores after its own self-check."""
    e2e = 0.01 + 0.18  # _record: 10 ms to the first token, then nine 20 ms gaps
    records = [_record(index + count * n, k * e2e, 10.0) for n in range(2) for k in range(3)]
    samples = [(t, t * cpu_share * LAMBDA_VCPUS) for t in (0.0, 0.25, 0.5, 0.75)]
    return ShardRecords(
        index=index,
        count=count,
        start_epoch_s=1.8e9,
        window_start=0.0,
        window_end=3 * e2e,
        records=records,
        cpu_samples=samples,
        usable_cpus=LAMBDA_VCPUS,
        processes=1,
        client_cpu_s=cpu_share * LAMBDA_VCPUS * 0.5,
        client_cpu_share=cpu_share,
        client_bound_reasons=reasons,
    )


def _merged(aws: Any, parts: list[ShardRecords]) -> LevelResult:
    event = _merge_event(aws, parts, concurrency=4)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    out = merge_level(event, bucket=BUCKET, results_prefix="runs/", region=REGION, s3=aws, cloudwatch=cloudwatch)
    body = aws.get_object(Bucket=BUCKET, Key=out["record"].removeprefix(f"s3://{BUCKET}/"))["Body"].read()
    return from_data(LevelResult, json.loads(body))  # as a report reads it back


def test_a_merged_level_carries_the_busiest_shards_cpu_and_is_client_bound_when_that_client_was(aws: Any) -> None:
    busy = "client CPU 95% of the 0.58 CPU(s) it can use (limit 85%)"  # shard 1's own verdict
    parts = [_checked_shard(0, 2, cpu_share=0.2), _checked_shard(1, 2, cpu_share=0.95, reasons=(busy,))]
    m = _merged(aws, parts).metrics
    assert m.steady_window_s is not None and m.send_lateness_ms.median == pytest.approx(0.0, abs=1e-6)
    # The level's CPU figures are shard 1's, over the level's steady window, from its samples: 95 % of 0.58.
    assert m.client_cpus == pytest.approx(LAMBDA_VCPUS) and m.client_processes == 1
    assert m.client_cpu_share == pytest.approx(0.95)
    assert m.client_cpu_s == pytest.approx(0.95 * LAMBDA_VCPUS * m.steady_window_s)
    assert m.client_bound
    assert f"shard 1 of 2: {busy}" in m.client_bound_reasons
    assert any(r.startswith("client CPU 95%") for r in m.client_bound_reasons)  # the merged window's own rule
    assert not any(r.startswith("shard 0") for r in m.client_bound_reasons)


def test_a_shards_own_verdict_makes_the_level_client_bound_where_the_union_looks_fine(aws: Any) -> None:
    """Shard 1's lateness (over its own records) is diluted in the union, and no client's CPU is high: the level is
    client-bound on shard 1's word alone, and says so in a note."""
    parts = [_checked_shard(0, 2, cpu_share=0.3), _checked_shard(1, 2, cpu_share=0.2, reasons=(LATE,))]
    record = _merged(aws, parts)
    m = record.metrics
    assert m.client_cpu_share == pytest.approx(0.3)  # shard 0's: the busiest client
    assert m.client_bound_reasons == (f"shard 1 of 2: {LATE}",)
    assert any(n.startswith(f"client-bound: shard 1 of 2: {LATE}") for n in m.notes)
    assert any("client CPU: shard 0's, the busiest of the 2" in n for n in record.notes)


def test_a_merged_level_whose_shards_all_kept_up_is_not_client_bound(aws: Any) -> None:
    m = _merged(aws, [_checked_shard(0, 2, cpu_share=0.3), _checked_shard(1, 2, cpu_share=0.5)]).metrics
    assert not m.client_bound and m.client_bound_reasons == ()
    assert m.client_cpu_share == pytest.approx(0.5)
