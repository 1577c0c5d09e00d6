"""scripts/truth_server.py's latency model options and its multi-process log (the accuracy runs' ground truth)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).resolve().parents[2] / "scripts" / "truth_server.py"


@contextmanager
def truth_server(*options: str) -> Iterator[str]:
    process = subprocess.Popen([sys.executable, str(SERVER), *options], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        yield line.split("listening on ", 1)[1].split()[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


def call(url: str, path: str, body: dict[str, Any] | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b"{}" if path == "/reset" else None
    with urllib.request.urlopen(urllib.request.Request(url + path, data=data), timeout=30) as answer:
        return bytes(answer.read())


def generate(url: str, tokens: int) -> bytes:
    return call(url, "/generate_stream", {"inputs": "x" * 400, "parameters": {"max_new_tokens": tokens}})


def follows(truth: dict[str, Any], prefill_ms: float, tpot_ms: float, slack_ms: float = 15) -> bool:
    """Token i is due at arrival + prefill + i x tpot (each on its own schedule): never early, and not much late."""
    return all(
        prefill_ms + i * tpot_ms - 1 <= (written - truth["arrival"]) * 1000 < prefill_ms + i * tpot_ms + slack_ms
        for i, written in enumerate(truth["writes"])
    )


def test_the_default_model_is_the_one_every_earlier_figure_used() -> None:
    with truth_server() as url:
        generate(url, 4)
        (truth,) = json.loads(call(url, "/truth"))
    # Prefill 40 + 0.1 x 100 input tokens = 50 ms; then 20 + 0.1 x 1 active = 20.1 ms a token.
    assert len(truth["writes"]) == 4 and follows(truth, 50, 20.1)


def test_a_fast_model_served_by_several_processes_logs_every_request_once() -> None:
    options = ("--tpot-base-ms", "2", "--tpot-per-active-ms", "0", "--prefill-base-ms", "5", "--tokens", "6")
    with truth_server(*options, "--processes", "3") as url:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: generate(url, 50), range(16)))
        truths = json.loads(call(url, "/truth"))
        call(url, "/reset")
        assert json.loads(call(url, "/truth")) == []
    assert all(answer.count(b"data:") == 6 for answer in answers)  # --tokens caps what was asked for
    assert len(truths) == 16 and len({t["id"] for t in truths}) == 16
    assert all(len(t["writes"]) == 6 for t in truths)
    # Due at 15 + 2i ms: the default model's 20 ms a token would put the last one at 115 ms, past the slack.
    late = [[round((w - t["arrival"]) * 1000, 1) for w in t["writes"]] for t in truths if not follows(t, 15, 2.0, 40)]
    assert late == []


@pytest.mark.parametrize("option", [("--tpot-base-ms", "0"), ("--tokens", "0"), ("--processes", "0")])
def test_an_impossible_model_is_refused(option: tuple[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, str(SERVER), *option], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2 and "--tpot-base-ms must be > 0" in done.stderr
