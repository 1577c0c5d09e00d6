"""Requests/s per instance against a server whose capacity is computed by hand (issue 16 item 2).

The server (uvicorn, ``tests/benchmark/uvicorn_llm.py``) answers every request in a fixed 0.5 s, so 4 users in
a closed loop complete 4 / 0.5 = 8 requests/s. The figure sizing divides traffic by must be that rate: it is
counted in the steady-state window, so each user's cold first request does not count against it. The
oracle is the server's own log of completed requests (per keep-alive connection, i.e. per user: completions
after its first / the time between its first and last completion), not the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmark.uvicorn_llm import LlmApp, Sent, serving

ROOT = Path(__file__).resolve().parents[2]
USERS = 4
SERVICE_S = 0.5
HAND = USERS / SERVICE_S  # requests/s


def server_rate(log: list[Sent]) -> float:
    """Requests/s the server completed in steady state: per connection (one per user), summed."""
    by_connection: dict[str, list[float]] = {}
    for sent in log:
        assert sent.done is not None
        by_connection.setdefault(sent.connection, []).append(sent.done)
    assert len(by_connection) == USERS, sorted(by_connection)
    return sum((len(done) - 1) / (max(done) - min(done)) for done in by_connection.values())


@pytest.mark.slow
def test_requests_per_second_matches_a_hand_computable_server_at_an_8_s_level(tmp_path: Path) -> None:
    app = LlmApp(tokens=10, service_s=SERVICE_S)
    with serving(app) as url:
        command = [sys.executable, "-m", "benchmark", "run", "--target", "tgi", "--url", url]
        command += ["--concurrency", str(USERS), "--duration", "8", "--max-new-tokens", "10"]
        command += ["--results", str(tmp_path / "r.jsonl"), "--json"]
        env = {k: v for k, v in os.environ.items() if k != "BENCHMARK_API_KEY"}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    (level,) = [json.loads(line) for line in done.stdout.splitlines()]
    metrics = level["metrics"]
    assert metrics["error_rate"] == 0
    truth = server_rate(app.log)
    assert truth == pytest.approx(HAND, rel=0.02)  # the server behaved as computed by hand
    measured = metrics["requests_per_min"] / 60.0
    assert measured == pytest.approx(truth, rel=0.02)
    assert measured == pytest.approx(HAND, rel=0.02)
    # The figure counted from the first send reads a request per user low: 15 of 16 cycles fit in 8 s.
    assert metrics["completed_requests_per_min"] / 60.0 < 0.97 * HAND
