"""Each injected fault is recorded as an error of the right kind, for every client, and the run completes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmark.clients import KINDS, Client, create_client
from benchmark.emulator import (
    EmulatorConfig,
    EmulatorServer,
    FaultKind,
    FaultRule,
    LatencyModel,
    configure,
    fetch_stats,
    fetch_truth,
)
from benchmark.emulator.config import FaultPicker
from benchmark.measure.loadgen import LevelRun, LoadSpec, run_level
from benchmark.measure.prompts import GenerationParams, builtin_prompts
from benchmark.measure.records import ErrorKind
from benchmark.serialize import from_data, to_data
from catalog.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LATENCY = LatencyModel(prefill_base_ms=2, prefill_ms_per_token=0, tpot_base_ms=1, tpot_slope_ms=0, tokens=6)
CLIENT_TIMEOUT_S = 0.4
STALL_S = 1.5
EVERY = 3
REQUESTS = 9

EXPECTED: dict[FaultKind, ErrorKind] = {
    FaultKind.SERVER_ERROR: ErrorKind.HTTP_5XX,
    FaultKind.THROTTLE: ErrorKind.THROTTLED,
    FaultKind.DROP: ErrorKind.DROPPED_STREAM,
    FaultKind.STREAM_ERROR: ErrorKind.DROPPED_STREAM,  # a 5xx when the request is not streamed
    FaultKind.STALL: ErrorKind.TIMEOUT,
    FaultKind.MALFORMED: ErrorKind.MALFORMED_FRAME,
    FaultKind.TRUNCATE: ErrorKind.DROPPED_STREAM,  # a malformed body when the request is not streamed
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(latency=LATENCY)) as server:
        yield server


def make(kind: str, base_url: str, concurrency: int) -> Client:
    options: dict[str, Any] = {}
    target = base_url
    if kind.startswith("sagemaker"):
        target = "llama-ep"
        options = {
            "endpoint_url": base_url,
            "region_name": "us-east-1",
            "client_kwargs": {"aws_access_key_id": "x", "aws_secret_access_key": "x"},
        }
    return create_client(kind, target, concurrency=concurrency, timeout_s=CLIENT_TIMEOUT_S, **options)


def run(kind: str, base_url: str, spec: LoadSpec) -> LevelRun:
    async def go() -> LevelRun:
        client = make(kind, base_url, spec.concurrency)
        try:
            return await run_level(
                client, builtin_prompts((16,), per_length=2), GenerationParams(max_new_tokens=10), spec
            )
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("fault", list(FaultKind))
@pytest.mark.parametrize("kind", KINDS)
def test_fault_is_counted_with_its_kind(emulator: EmulatorServer, kind: str, fault: FaultKind) -> None:
    emulator.configure(
        EmulatorConfig(latency=LATENCY, faults=(FaultRule(fault, every_nth=EVERY),), stall_s=STALL_S, payload_split=2)
    )
    emulator.reset()
    result = run(kind, emulator.base_url, LoadSpec(concurrency=3, duration_s=None, max_requests=REQUESTS))
    records = result.records
    assert len(records) == REQUESTS  # the run completed despite the faults
    expected = EXPECTED[fault]
    if fault is FaultKind.STREAM_ERROR and not kind.endswith("-stream"):
        expected = ErrorKind.HTTP_5XX
    if fault is FaultKind.TRUNCATE and not kind.endswith("-stream"):
        expected = ErrorKind.MALFORMED_FRAME
    errors = Counter(r.error for r in records if not r.ok)
    details = [r.error_detail for r in records if not r.ok]
    resent = sum(r.resent for r in records)
    ok = [r for r in records if r.ok]
    assert all(r.generated_tokens == LATENCY.tokens for r in ok)
    # The server agrees on which requests it broke.
    outcomes = Counter(t.outcome for t in emulator.truth())
    assert outcomes["ok"] == len(ok)
    if fault is FaultKind.DROP and kind in ("tgi-http", "openai-chat", "sagemaker"):
        # A whole answer dropped before its first byte on a kept-alive connection is what a server closing that
        # connection looks like: sent again once on a new connection and counted as resent, not as an error
        # (benchmark.wire.connection.round_trip). Every drop the server made is one or the other.
        assert set(errors) <= {expected}, details
        assert errors[expected] + resent == sum(outcomes.values()) - outcomes["ok"]
    else:
        assert errors == {expected: REQUESTS // EVERY}, details
        assert resent == 0
        assert outcomes["ok"] == REQUESTS - REQUESTS // EVERY


def test_openai_stream_without_done_is_complete(emulator: EmulatorServer) -> None:
    """``transformers serve`` ends after the ``finish_reason`` chunk, without ``[DONE]``: every request is ok."""
    emulator.configure(EmulatorConfig(latency=LATENCY, openai_done=False))
    emulator.reset()
    result = run("openai-chat-stream", emulator.base_url, LoadSpec(concurrency=3, duration_s=None, max_requests=6))
    assert [r.error for r in result.records] == [None] * 6
    assert [r.generated_tokens for r in result.records] == [LATENCY.tokens] * 6


@pytest.mark.parametrize("kind", ["tgi-http-stream", "sagemaker"])
def test_capacity_limit_throttles_the_excess(emulator: EmulatorServer, kind: str) -> None:
    slow = LatencyModel(prefill_base_ms=30, prefill_ms_per_token=0, tpot_base_ms=5, tpot_slope_ms=0, tokens=5)
    emulator.configure(EmulatorConfig(latency=LatencyModel(**{**slow.__dict__, "max_concurrent": 2})))
    emulator.reset()
    result = run(kind, emulator.base_url, LoadSpec(concurrency=4, duration_s=None, max_requests=16))
    kinds = Counter(r.error for r in result.records)
    assert kinds[ErrorKind.THROTTLED] > 0
    assert kinds[None] > 0
    assert emulator.stats()["max_in_flight"] <= 2


def test_rate_based_faults_are_deterministic_per_seed() -> None:
    rules = (FaultRule(FaultKind.THROTTLE, rate=0.3),)
    first, again, other = FaultPicker(rules, seed=7), FaultPicker(rules, seed=7), FaultPicker(rules, seed=8)
    picks = [first.pick(n) for n in range(1, 200)]
    assert picks == [again.pick(n) for n in range(1, 200)]
    assert picks != [other.pick(n) for n in range(1, 200)]
    picker = FaultPicker(rules, seed=7)
    picks = [picker.pick(n) for n in range(1, 2001)]
    assert 400 < picks.count(FaultKind.THROTTLE) < 800


def test_fault_config_is_validated() -> None:
    with pytest.raises(ConfigError) as err:
        EmulatorConfig(faults=(FaultRule(FaultKind.DROP), FaultRule(FaultKind.STALL, rate=1.5)), payload_split=0)
    assert set(err.value.fields) == {"faults[0]", "faults[1].rate", "payload_split"}


def test_config_round_trips_through_json() -> None:
    config = EmulatorConfig(latency=LATENCY, faults=(FaultRule(FaultKind.MALFORMED, every_nth=4),), stall_s=2)
    assert from_data(EmulatorConfig, to_data(config)) == config
    with pytest.raises(ConfigError, match="bogus"):
        from_data(EmulatorConfig, {"bogus": 1})


def test_emulator_runs_as_its_own_process() -> None:
    """``python -m benchmark.emulator`` (what the accuracy script uses): serves, reconfigures over HTTP, stops."""
    config = EmulatorConfig(latency=LATENCY)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmark.emulator", "--port", "0", "--config", json.dumps(to_data(config))],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:")
        configure(base_url, EmulatorConfig(latency=LATENCY, faults=(FaultRule(FaultKind.THROTTLE, every_nth=1),)))
        record = run("tgi-http", base_url, LoadSpec(concurrency=1, duration_s=None, max_requests=2)).records[0]
        assert record.error is ErrorKind.THROTTLED
        assert fetch_stats(base_url)["outcomes"] == {"throttle": 2}
        assert [t.fault for t in fetch_truth(base_url)] == ["throttle", "throttle"]
    finally:
        process.terminate()
        process.wait(timeout=10)
    bad = subprocess.run(
        [sys.executable, "-m", "benchmark.emulator", "--config", '{"stall_s": -1}'],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "stall_s=-1" in bad.stderr
