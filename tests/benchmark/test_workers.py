"""A level split over worker processes: shares add up, users stay distinct, records merge on one clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.clients import ClientSpec
from benchmark.emulator import EmulatorConfig, EmulatorServer, LatencyModel
from benchmark.measure.failfast import LevelAborted
from benchmark.measure.load import LoadSpec
from benchmark.measure.runner import ProcessOptions, measure_level
from benchmark.measure.workers import run_in_workers, share, split
from catalog.errors import ConfigError


def test_split_gives_near_equal_shares_that_add_up() -> None:
    assert split(10, 3) == [4, 3, 3]
    assert split(256, 8) == [32] * 8
    assert split(5, 5) == [1] * 5


def test_share_divides_users_warmup_budget_and_keeps_the_ramp_pace() -> None:
    spec = LoadSpec(concurrency=10, duration_s=None, max_requests=31, warmup_requests=10, ramp_up_s=1.0)
    shares = [share(spec, i, 3) for i in range(3)]
    assert [s.concurrency for s in shares] == [4, 3, 3]
    assert [s.max_requests for s in shares] == [11, 10, 10]
    assert [s.warmup_requests for s in shares] == [4, 3, 3]
    # Worker 0's 4 users start 0.3 s apart (global users 0, 3, 6, 9 of 10 over 1 s): its own ramp is 1.2 s.
    assert shares[0].ramp_up_s == pytest.approx(1.2)


def test_workers_refuse_bad_counts_and_open_loops() -> None:
    clients = ClientSpec("tgi-http", "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="workers=-1"):
        ProcessOptions(workers=-1)
    with pytest.raises(ConfigError, match="closed-loop"):
        measure_level(LoadSpec(concurrency=2, max_requests=2, request_rate=5.0), clients, ProcessOptions(workers=2))


def test_two_workers_measure_one_level_against_the_emulator() -> None:
    latency = LatencyModel(prefill_base_ms=5, prefill_ms_per_token=0, tpot_base_ms=2, tpot_slope_ms=0, tokens=8)
    with EmulatorServer(EmulatorConfig(latency=latency)) as server:
        spec = LoadSpec(
            concurrency=6, duration_s=None, max_requests=24, warmup_requests=6, max_new_tokens=8, timeout_s=10
        )
        run = measure_level(spec, ClientSpec("tgi-http", server.base_url), ProcessOptions(workers=2))
        truths = server.truth()
    assert len(run.records) == 30 and all(r.ok for r in run.records)
    assert {r.user for r in run.records} == set(range(6))  # worker i's user u became u * 2 + i
    assert sum(r.warmup for r in run.records) == 6
    # One clock: every record's times lie inside the merged run's span and match the emulator's requests.
    assert sorted(r.request_id or "" for r in run.records) == sorted(t.request_id for t in truths)
    # <= at the end: a first token that arrived in one read with the last bytes shares their kernel stamp.
    assert all(r.start < r.first_token_at <= r.end for r in run.records if r.first_token_at)
    assert run.window_start < run.window_end


def test_cli_runs_a_level_in_worker_processes(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    argv = ["run", "--target", "emulator", "--config", "model=7b,quantization=fp16,instance=ml.g5.12xlarge"]
    argv += ["--concurrency", "4", "--duration", "1", "--warmup", "4", "--workers", "2", "--uvloop"]
    assert main([*argv, "--results", str(results)]) == 0
    (line,) = results.read_text().splitlines()
    metrics = json.loads(line)["metrics"]
    assert metrics["requests_failed"] == 0 and metrics["requests_ok"] >= 4
    assert metrics["tokens_per_s"] > 0 and metrics["steady_start_s"] is not None
    assert main([*argv[:-3], "--workers", "-1", "--results", str(results)]) == 2


def test_workers_start_together_at_the_agreed_time() -> None:
    """The common start sent over the pipes: no worker's first request goes out before it."""
    latency = LatencyModel(prefill_base_ms=2, prefill_ms_per_token=0, tpot_base_ms=1, tpot_slope_ms=0, tokens=4)
    with EmulatorServer(EmulatorConfig(latency=latency)) as server:
        spec = LoadSpec(concurrency=4, duration_s=None, max_requests=8, max_new_tokens=4, timeout_s=10)
        start_at = time.perf_counter() + 3.0  # after the workers' start-up (spawn and imports) on a loaded machine
        run = run_in_workers(spec, ClientSpec("tgi-http", server.base_url), 2, start_at=start_at)
    assert len(run.records) == 8 and all(r.ok for r in run.records)
    assert min(r.start for r in run.records) >= start_at


def test_a_failing_worker_fails_the_level() -> None:
    spec = LoadSpec(concurrency=2, duration_s=5, fail_fast_requests=2, timeout_s=2)
    with pytest.raises(LevelAborted, match="first 2 requests all failed"):
        measure_level(spec, ClientSpec("tgi-http", "http://127.0.0.1:1"), ProcessOptions(workers=2))
