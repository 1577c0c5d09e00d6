"""Failing fast: a dead target ends the run in seconds with a message, users back off, an error-rate limit."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest

from benchmark.clients import create_client
from benchmark.measure.failfast import BACKOFF_FIRST_S, BACKOFF_MAX_S, FailFast, LevelAborted, backoff_s
from benchmark.measure.loadgen import LevelRun, LoadSpec, run_level
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = [Prompt(text="hello", id="p0")]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class ScriptedClient:
    """Answers each request with the error kind ``outcome(n)`` returns (None: success), instantly."""

    name = "scripted"
    streaming = False

    def __init__(self, outcome: object) -> None:
        self.outcome = outcome
        self.sent: list[tuple[int, float]] = []  # (user, send time)

    async def send(self, prompt: Prompt, params: GenerationParams, *, user: int) -> RequestRecord:
        now = time.perf_counter()
        self.sent.append((user, now))
        record = RequestRecord(user=user, start=now, end=now, generated_tokens=1)
        kind = self.outcome(len(self.sent))  # type: ignore[operator]
        if kind is not None:
            record.error, record.error_detail = kind, f"scripted {kind.value}"
        await asyncio.sleep(0.001)
        record.end = time.perf_counter()
        return record

    async def aclose(self) -> None:
        pass


def run(client: object, spec: LoadSpec) -> LevelRun:
    return asyncio.run(run_level(client, PROMPTS, GenerationParams(), spec))  # type: ignore[arg-type]


def test_closed_port_aborts_within_seconds_naming_the_address() -> None:
    port = closed_port()

    async def go() -> None:
        client = create_client("tgi-http-stream", f"http://127.0.0.1:{port}", concurrency=4, timeout_s=30)
        try:
            await run_level(client, PROMPTS, GenerationParams(), LoadSpec(concurrency=4, duration_s=60))
        finally:
            await client.aclose()

    started = time.monotonic()
    with pytest.raises(LevelAborted) as err:
        asyncio.run(go())
    assert time.monotonic() - started < 5.0  # not the 60 s duration
    assert "the first 10 requests all failed" in err.value.reason
    assert f"connection: cannot connect to http://127.0.0.1:{port}: ConnectionRefusedError" in err.value.reason
    assert 10 <= len(err.value.records) <= 10 + 4  # the other users' requests in flight at the abort
    assert {r.error for r in err.value.records} == {ErrorKind.CONNECTION}


def test_every_first_request_failing_aborts_after_exactly_the_first_n() -> None:
    client = ScriptedClient(lambda n: ErrorKind.HTTP_4XX)
    with pytest.raises(LevelAborted, match=r"the first 5 requests all failed; last error: http_4xx: scripted"):
        run(client, LoadSpec(concurrency=1, duration_s=30, fail_fast_requests=5))
    assert len(client.sent) == 5


def test_one_success_among_the_first_requests_keeps_the_level_running() -> None:
    client = ScriptedClient(lambda n: None if n == 7 else ErrorKind.HTTP_5XX)
    result = run(client, LoadSpec(concurrency=1, duration_s=None, max_requests=12, fail_fast_requests=10))
    assert len(result.records) == 12


def test_throttling_alone_is_a_measurement_not_a_broken_target() -> None:
    client = ScriptedClient(lambda n: ErrorKind.THROTTLED)
    result = run(client, LoadSpec(concurrency=2, duration_s=None, max_requests=30))
    assert len(result.records) == 30


def test_fail_fast_zero_never_aborts() -> None:
    client = ScriptedClient(lambda n: ErrorKind.HTTP_4XX)
    result = run(client, LoadSpec(concurrency=1, duration_s=None, max_requests=15, fail_fast_requests=0))
    assert len(result.records) == 15


def test_error_rate_limit_is_judged_after_enough_requests() -> None:
    every_third = ScriptedClient(lambda n: ErrorKind.HTTP_5XX if n % 3 == 0 else None)
    with pytest.raises(LevelAborted, match=r"error rate 33% of 21 requests exceeds the limit 30%"):
        run(every_third, LoadSpec(concurrency=1, duration_s=30, max_error_rate=0.3))
    # Exactly at the limit is not past it.
    at_limit = FailFast(concurrency=1, first_requests=0, max_error_rate=0.5)
    for n in range(1, 41):
        at_limit.check(RequestRecord(user=0, start=0.0, end=0.0, error=ErrorKind.HTTP_5XX if n % 2 == 0 else None))
    assert at_limit.reason is None
    # The minimum is the concurrency when that is larger than 20.
    wide = FailFast(concurrency=64, first_requests=0, max_error_rate=0.1)
    for _ in range(63):
        wide.check(RequestRecord(user=0, start=0.0, end=0.0, error=ErrorKind.TIMEOUT))
    assert wide.reason is None
    wide.check(RequestRecord(user=0, start=0.0, end=0.0, error=ErrorKind.TIMEOUT))
    assert wide.reason is not None and "of 64 requests" in wide.reason


def test_connection_errors_back_off_doubling_to_a_cap() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4, 5, 6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert (BACKOFF_FIRST_S, BACKOFF_MAX_S) == (0.05, 0.5)
    client = ScriptedClient(lambda n: ErrorKind.CONNECTION if n <= 4 else None)
    run(client, LoadSpec(concurrency=1, duration_s=None, max_requests=6))
    gaps = [b - a for (_, a), (_, b) in pairwise(client.sent)]
    # After failures 1..4 the user waits 50, 100, 200, 400 ms; after the first success it goes on at once.
    for gap, wait in zip(gaps, (0.05, 0.1, 0.2, 0.4), strict=False):
        assert wait <= gap < wait + 0.05
    assert gaps[4] < 0.04


def test_other_errors_do_not_back_off() -> None:
    client = ScriptedClient(lambda n: ErrorKind.HTTP_5XX if n % 2 else None)
    run(client, LoadSpec(concurrency=1, duration_s=None, max_requests=10, fail_fast_requests=0))
    assert max(b - a for (_, a), (_, b) in pairwise(client.sent)) < 0.04


def test_spec_refuses_bad_abort_settings() -> None:
    from catalog.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as err:
        LoadSpec(concurrency=1, fail_fast_requests=-1, max_error_rate=1.0, ramp_up_s=-2)
    assert set(err.value.fields) == {"fail_fast_requests", "max_error_rate", "ramp_up_s"}


def test_cli_against_a_closed_port_exits_non_zero_within_10_s_with_a_clear_message(tmp_path: Path) -> None:
    port = closed_port()
    url = f"http://someone:s3cret@127.0.0.1:{port}"
    command = [sys.executable, "-m", "benchmark", "run", "--target", "tgi", "--url", url, "--model", "7b"]
    command += ["--instance", "ml.g5.12xlarge", "--concurrency", "1", "--duration", "60"]
    command += ["--results", str(tmp_path / "results.jsonl")]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    elapsed = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert elapsed < 10.0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: run aborted against http://127.0.0.1:{port}: 7b/fp16/ml.g5.12xlarge/")
    assert "at concurrency 1: the first 10 requests all failed" in last
    assert f"cannot connect to http://127.0.0.1:{port}: ConnectionRefusedError" in last
    assert "s3cret" not in done.stderr
    assert not (tmp_path / "results.jsonl").exists() or not (tmp_path / "results.jsonl").read_text()
