"""Every CLI command that reaches a target completes against a third-party server, for each target kind.

The commands: ``python -m benchmark run``, ``python -m benchmark size sweep`` and ``python -m benchmark.aws.smoke``
(the post-deploy check), each run as a subprocess, exactly as a user types it. The servers, and whose log
is the oracle:

- TGI (``/generate_stream``) and OpenAI (``/v1/chat/completions``): the ASGI app of
  ``tests/benchmark/uvicorn_llm.py`` served by uvicorn, which logs every request and the tokens it sent.
- SageMaker with ``--endpoint-url``: moto's server (``moto.server.ThreadedMotoServer``, moto 5.2.5)
  implements sagemaker-runtime ``InvokeEndpoint`` (answers from a queue set through its
  ``/moto-api/static/sagemaker/endpoint-results``; its recorder logs every request), so the non-streaming
  client (``--no-stream``) and the smoke test go to moto. Moto does not implement
  ``InvokeEndpointWithResponseStream``: its sagemakerruntime module routes only ``invocations`` and
  ``async-invocations``, and ``invocations-response-stream`` answers 404. The streaming client (the default)
  therefore goes to the uvicorn app's SageMaker route (``POST /endpoints/NAME/invocations-response-stream``,
  TGI SSE in event-stream ``PayloadPart`` messages).

Levels are short (concurrency 1-2, at most a second, or a few requests) so the module stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmark.cli import build_parser
from benchmark.target import add_request_arguments
from tests.benchmark.uvicorn_llm import LlmApp, serving

ROOT = Path(__file__).resolve().parents[2]
TOKENS = 4  # what the uvicorn app generates per request (max_new_tokens asks for more)
ENDPOINT = "llama-ep"
CONFIG = "model=7b,quantization=gptq,instance=ml.g5.2xlarge"
MOTO_TOKENS = 3
MOTO_ANSWER = [{"generated_text": " a b c", "details": {"finish_reason": "length", "generated_tokens": MOTO_TOKENS}}]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[LlmApp, str]]:
    server = LlmApp(tokens=TOKENS, service_s=0.02)
    server.endpoints = {ENDPOINT}
    with serving(server) as url:
        yield server, url


@pytest.fixture
def llm(app: tuple[LlmApp, str]) -> tuple[LlmApp, str]:
    app[0].log.clear()
    return app


def _post(url: str, data: Any) -> bytes:
    request = urllib.request.Request(url, json.dumps(data).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
        return body


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only this module needs moto's server

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Moto answering every InvokeEndpoint with a TGI answer of MOTO_TOKENS tokens, recording every request."""
    monkeypatch.chdir(tmp_path)  # the recorder writes ./moto_recording
    # One queued answer per distinct request (moto answers a repeated one as before): more than the prompts.
    answer = {"Body": json.dumps(MOTO_ANSWER), "ContentType": "application/json"}
    _post(f"{moto_server}/moto-api/static/sagemaker/endpoint-results", {"results": [answer] * 40})
    _post(f"{moto_server}/moto-api/recorder/reset-recording", {})
    _post(f"{moto_server}/moto-api/recorder/start-recording", {})
    try:
        yield moto_server
    finally:
        _post(f"{moto_server}/moto-api/recorder/stop-recording", {})


def moto_invocations(url: str) -> list[dict[str, Any]]:
    """Moto's own record of the InvokeEndpoint requests it received."""
    with urllib.request.urlopen(f"{url}/moto-api/recorder/download-recording", timeout=30) as response:
        lines = response.read().decode().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e for e in entries if e["method"] == "POST" and e["url"].endswith(f"/endpoints/{ENDPOINT}/invocations")]


def cli(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` from the repository root, with fake AWS credentials and no proxy or API key."""
    drop = {"BENCHMARK_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        NO_PROXY="127.0.0.1,localhost",
    )
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)


def target_args(kind: str, url: str) -> list[str]:
    if kind == "sagemaker":
        return ["--target", "sagemaker", "--endpoint", ENDPOINT, "--endpoint-url", url]
    return ["--target", kind, "--url", url]


# --- the root cause of item 1: one declaration of the target options ---------------------------------------


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {action.dest for action in parser._actions}


def test_every_command_that_reaches_a_target_declares_every_target_option() -> None:
    reference = argparse.ArgumentParser()
    add_request_arguments(reference)
    wanted = _dests(reference) - {"help"}
    parser = build_parser()
    for argv in (["run"], ["size", "sweep", "--config", CONFIG, "--slo", "error_rate<=0.01"]):
        args = parser.parse_args([*argv, "--target", "openai", "--url", "http://127.0.0.1:9"])
        assert wanted <= set(vars(args)), (argv, wanted - set(vars(args)))


# --- run ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tgi", "openai", "sagemaker"])
def test_run_against_a_uvicorn_server(kind: str, llm: tuple[LlmApp, str], tmp_path: Path) -> None:
    server, url = llm
    results, report = tmp_path / "results.jsonl", tmp_path / "report"
    instance = [] if kind == "openai" else ["--config", CONFIG]  # measuring a URL needs no instance type
    done = cli(
        "benchmark",
        "run",
        *target_args(kind, url),
        *instance,
        *("--concurrency", "2", "--max-requests", "6", "--duration", "30", "--max-new-tokens", "16"),
        *("--results", str(results), "--report-dir", str(report), "--json"),
    )
    assert done.returncode == 0, done.stderr
    (level,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert [json.loads(line) for line in results.read_text().splitlines()] == [level]
    metrics = level["metrics"]
    sent = [entry for entry in server.log if entry.protocol == kind]
    assert len(sent) == len(server.log) == 6  # every request reached the server, on this protocol
    assert (metrics["requests_ok"], metrics["requests_failed"]) == (6, 0)
    assert metrics["output_tokens"] == sum(entry.tokens for entry in sent) == 6 * TOKENS
    md = (report / "report.md").read_text()
    assert (report / "report.html").read_text().startswith("<!DOCTYPE html>")
    if kind == "openai":
        assert level["cost"] is None and level["headroom"] is None
        assert level["configuration_key"] == "7b/fp16/no-instance/tgi-3.3.6/us-east-1"
        assert "no instance given: cost not computed" in md
    else:
        assert level["cost"]["usd_per_1m_tokens"] > 0


def test_run_sagemaker_without_streaming_against_moto(moto: str, tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    done = cli(
        "benchmark",
        "run",
        *target_args("sagemaker", moto),
        *("--no-stream", "--config", CONFIG, "--concurrency", "2", "--max-requests", "5", "--duration", "30"),
        *("--results", str(results), "--json"),
    )
    assert done.returncode == 0, done.stderr
    (level,) = [json.loads(line) for line in done.stdout.splitlines()]
    received = moto_invocations(moto)
    assert len(received) == 5
    assert (level["metrics"]["requests_ok"], level["metrics"]["requests_failed"]) == (5, 0)
    assert level["metrics"]["output_tokens"] == MOTO_TOKENS * len(received)
    assert level["load"]["target"] == f"sagemaker:{ENDPOINT} via {moto}"
    assert results.exists()


# --- size sweep -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tgi", "openai", "sagemaker"])
def test_size_sweep_against_a_uvicorn_server(kind: str, llm: tuple[LlmApp, str], tmp_path: Path) -> None:
    server, url = llm
    out = tmp_path / "sweep.jsonl"
    done = cli(
        "benchmark",
        "size",
        "sweep",
        *target_args(kind, url),
        *("--config", CONFIG, "--slo", "ms_per_token.p90<=60", "--start", "1", "--limit", "1", "--repeats", "1"),
        *("--duration", "1", "--max-new-tokens", "16", "--out", str(out)),
    )
    assert done.returncode == 0, done.stderr
    assert "capacity 1 (concurrency)" in done.stdout
    (line,) = out.read_text().splitlines()
    level = json.loads(line)
    metrics = level["result"]["metrics"]
    sent = [entry for entry in server.log if entry.protocol == kind]
    assert len(sent) == len(server.log) == metrics["requests_total"] > 0
    assert {entry.tokens for entry in sent} == {TOKENS}
    assert metrics["requests_failed"] == 0
    assert metrics["output_tokens"] == TOKENS * metrics["requests_ok"]
    assert sum(row[-1] for row in level["requests"]["rows"]) == metrics["output_tokens"]  # per-request tokens
    assert level["result"]["load"]["target"] == _persisted(kind, url)


def _persisted(kind: str, url: str) -> str:
    if kind == "sagemaker":
        return f"sagemaker:{ENDPOINT} via {url}"
    return f"{kind}:{url}" + (" model=tgi" if kind == "openai" else "")


# --- the post-deploy smoke test ------------------------------------------------------------------------------


def test_smoke_against_moto(moto: str) -> None:
    done = cli("benchmark.aws.smoke", "--endpoint-name", ENDPOINT, "--region", "us-east-1", "--endpoint-url", moto)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"ok     {ENDPOINT} ")
    assert "a b c" in done.stdout
    assert len(moto_invocations(moto)) == 1
