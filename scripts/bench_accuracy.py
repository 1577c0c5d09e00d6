#!/usr/bin/env python
"""How accurate are the benchmark's latency numbers? Measure the emulator, compare with its ground truth.

The emulator runs in its own process (it must not share the GIL with the client being measured) with a
known latency model; at each concurrency the client reports median ms/token (per request, after the first
token), the pooled median inter-token gap and median TTFT, and the emulator reports what it scheduled for
the very same requests (joined by request id). Also printed: the client's CPU time per token (process
time of this process / tokens received) and the emulator's worst lateness against its own deadlines, which
tells whether an error comes from the server side or the client side.

With ``--guidellm PATH`` (or env ``GUIDELLM_BIN``) GuideLLM, a maintained third-party benchmark, is run as
a separate process against the same emulator at each level (concurrent profile, same duration, OpenAI chat
streaming) and its JSON medians are compared with the emulator's ground truth for the requests it completed.
GuideLLM needs a Hugging Face tokenizer; offline, pass a local folder with ``--guidellm-tokenizer`` (or env
``GUIDELLM_TOKENIZER``). GuideLLM is not a project dependency: install it in a throwaway venv.

Rerunnable, never asserted: ``python scripts/bench_accuracy.py [--levels 1,20,64,256] [--duration 6]
[--guidellm /tmp/glvenv/bin/guidellm --guidellm-tokenizer /path/to/tokenizer]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark.clients import create_client
from benchmark.emulator import EmulatorConfig, LatencyModel, RequestTruth, fetch_truth, reset
from benchmark.loadgen import LevelRun, LoadSpec, run_level
from benchmark.prompts import GenerationParams, builtin_prompts

LATENCY = LatencyModel(
    prefill_base_ms=40.0,
    prefill_ms_per_token=0.1,
    tpot_base_ms=20.0,
    tpot_slope_ms=0.1,  # 20.1 ms/token alone, 45.6 ms/token with 256 in the batch
    max_batch=256,
    tokens=50,
)


@dataclass
class Row:
    client: str
    concurrency: int
    requests: int
    tokens: int
    ms_per_token: float
    ms_per_token_truth: float
    itl_p50: float
    itl_p50_truth: float
    ttft_p50: float
    ttft_p50_truth: float
    cpu_us_per_token: float
    server_lag_p99_ms: float
    errors: int

    @staticmethod
    def err(measured: float, truth: float) -> str:
        return f"{(measured - truth) / truth * 100:+6.2f}%"


@dataclass
class GuideRow:
    """GuideLLM's medians for one level next to the truth of the requests it completed."""

    concurrency: int
    requests: int
    itl_p50: float  # GuideLLM ITL: (last - first token) / (n - 1) per request, median weighted by tokens
    itl_p50_truth: float
    tpot_p50: float  # GuideLLM TPOT: request latency / output tokens (includes TTFT)
    tpot_p50_truth: float
    ttft_p50: float
    ttft_p50_truth: float
    server_lag_p99_ms: float
    errors: int


def start_emulator(config: EmulatorConfig) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmark.emulator", "--port", "0", "--config", json.dumps(config.to_dict())],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return process, line.strip().rsplit(" ", 1)[-1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(kind: str, base_url: str, concurrency: int, duration_s: float) -> tuple[LevelRun, float]:
    options: dict[str, Any] = {}
    target = base_url
    if kind.startswith("sagemaker"):
        target = "bench-endpoint"
        options = {
            "endpoint_url": base_url,
            "region_name": "us-east-1",
            "client_kwargs": {"aws_access_key_id": "x", "aws_secret_access_key": "x"},
        }
    client = create_client(kind, target, concurrency=concurrency, timeout_s=60, **options)
    spec = LoadSpec(concurrency=concurrency, duration_s=duration_s, warmup_requests=concurrency)
    prompts = builtin_prompts((128, 256), per_length=8)
    try:
        cpu = time.process_time()
        run = await run_level(client, prompts, GenerationParams(max_new_tokens=50), spec)
        cpu = time.process_time() - cpu
    finally:
        await client.aclose()
    return run, cpu


def analyse(kind: str, concurrency: int, run: LevelRun, cpu_s: float, truths: list[RequestTruth]) -> Row:
    by_id = {truth.request_id: truth for truth in truths}
    measured = [r for r in run.records if not r.warmup and r.ok and r.request_id in by_id and len(r.token_times) > 1]
    pairs = [(r, by_id[r.request_id or ""]) for r in measured]
    per_request = [(r.token_times[-1] - r.token_times[0]) / (len(r.token_times) - 1) * 1000 for r, _ in pairs]
    per_request_truth = [t.tpot_ms or 0.0 for _, t in pairs]
    gaps = [g * 1000 for r, _ in pairs for g in r.inter_token_gaps_s]
    gaps_truth = [g for _, t in pairs for g in t.gaps_ms]
    ttft = [(r.ttft_s or 0.0) * 1000 for r, _ in pairs]
    ttft_truth = [t.ttft_ms or 0.0 for _, t in pairs]
    all_tokens = sum(len(r.token_times) for r in run.records)
    return Row(
        client=kind,
        concurrency=concurrency,
        requests=len(pairs),
        tokens=all_tokens,
        ms_per_token=median(per_request),
        ms_per_token_truth=median(per_request_truth),
        itl_p50=median(gaps),
        itl_p50_truth=median(gaps_truth),
        ttft_p50=median(ttft),
        ttft_p50_truth=median(ttft_truth),
        cpu_us_per_token=cpu_s / max(1, all_tokens) * 1e6,
        server_lag_p99_ms=percentile([t.max_lag_ms for _, t in pairs], 0.99),
        errors=sum(1 for r in run.records if not r.ok),
    )


def run_guidellm(binary: str, tokenizer: str, base_url: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    """One GuideLLM concurrent run at ``concurrency`` streams; returns its first benchmark from the JSON output."""
    with tempfile.TemporaryDirectory(prefix="guidellm-") as workdir:
        out = Path(workdir) / "guidellm.json"
        command = [
            binary,
            "run",
            "--backend",
            f"kind=openai_http,target={base_url},model=emulator",
            "--profile",
            f"kind=concurrent,streams={concurrency}",
            "--constraint",
            f"kind=max_duration,seconds={duration_s:g}",
            "--tokenizer",
            f"kind=huggingface_auto,model={tokenizer}",
            "--data",
            f"kind=synthetic_text,prompt_tokens=192,output_tokens={LATENCY.tokens}",
            "--output",
            f"kind=json,path={out}",
            "--disable-console",
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
            raise SystemExit(f"guidellm failed (exit {done.returncode}):\n" + "\n".join(tail))
        benchmark: dict[str, Any] = json.loads(out.read_text())["benchmarks"][0]
        return benchmark


def analyse_guidellm(concurrency: int, benchmark: dict[str, Any], truths: list[RequestTruth]) -> GuideRow:
    """GuideLLM sends no id the emulator can join on: compare with every request the emulator completed."""
    metrics = benchmark["metrics"]

    def gl_median(name: str) -> float:
        value = metrics[name]["successful"].get("median")
        return float(value) if value is not None else float("nan")

    done = [t for t in truths if t.outcome == "ok" and t.gaps_ms and t.ttft_ms is not None]
    return GuideRow(
        concurrency=concurrency,
        requests=len(benchmark["requests"]["successful"]),
        itl_p50=gl_median("inter_token_latency_ms"),
        itl_p50_truth=median([t.tpot_ms or 0.0 for t in done]),
        tpot_p50=gl_median("time_per_output_token_ms"),
        tpot_p50_truth=median([((t.ttft_ms or 0.0) + sum(t.gaps_ms)) / t.tokens for t in done]),
        ttft_p50=gl_median("time_to_first_token_ms"),
        ttft_p50_truth=median([t.ttft_ms or 0.0 for t in done]),
        server_lag_p99_ms=percentile([t.max_lag_ms for t in done], 0.99),
        errors=len(benchmark["requests"]["errored"]),
    )


def print_guidellm_table(rows: list[GuideRow]) -> None:
    header = (
        f"{'client':<18}{'conc':>5}{'reqs':>6}{'ITL p50':>9}{'truth':>8}{'err':>9}{'TPOT p50':>10}{'truth':>8}"
        f"{'err':>9}{'TTFT p50':>10}{'truth':>8}{'err':>9}{'srv lag p99':>12}{'errors':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{'guidellm':<18}{r.concurrency:>5}{r.requests:>6}"
            f"{r.itl_p50:>9.2f}{r.itl_p50_truth:>8.2f}{Row.err(r.itl_p50, r.itl_p50_truth):>9}"
            f"{r.tpot_p50:>10.2f}{r.tpot_p50_truth:>8.2f}{Row.err(r.tpot_p50, r.tpot_p50_truth):>9}"
            f"{r.ttft_p50:>10.2f}{r.ttft_p50_truth:>8.2f}{Row.err(r.ttft_p50, r.ttft_p50_truth):>9}"
            f"{r.server_lag_p99_ms:>12.2f}{r.errors:>7}"
        )
    print(
        "guidellm ITL: per-request (last - first token) / (n - 1), token-weighted median (truth: per-request mean\n"
        "scheduled gap, median over completed requests); TPOT: latency / output tokens (truth: (TTFT + gaps) / tokens)."
    )


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'client':<18}{'conc':>5}{'reqs':>6}{'ms/tok':>9}{'truth':>8}{'err':>9}{'ITL p50':>9}{'err':>9}"
        f"{'TTFT p50':>10}{'truth':>8}{'err':>9}{'CPU us/tok':>11}{'srv lag p99':>12}{'errors':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.client:<18}{r.concurrency:>5}{r.requests:>6}{r.ms_per_token:>9.2f}{r.ms_per_token_truth:>8.2f}"
            f"{Row.err(r.ms_per_token, r.ms_per_token_truth):>9}"
            f"{r.itl_p50:>9.2f}{Row.err(r.itl_p50, r.itl_p50_truth):>9}"
            f"{r.ttft_p50:>10.2f}{r.ttft_p50_truth:>8.2f}{Row.err(r.ttft_p50, r.ttft_p50_truth):>9}"
            f"{r.cpu_us_per_token:>11.1f}{r.server_lag_p99_ms:>12.2f}{r.errors:>7}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,20,64,256")
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per level")
    parser.add_argument("--clients", default="tgi-http-stream,sagemaker-stream")
    parser.add_argument(
        "--guidellm",
        default=os.environ.get("GUIDELLM_BIN"),
        metavar="PATH_TO_GUIDELLM_BIN",
        help="also run GuideLLM at each level (env GUIDELLM_BIN)",
    )
    parser.add_argument(
        "--guidellm-tokenizer",
        default=os.environ.get("GUIDELLM_TOKENIZER"),
        metavar="DIR",
        help="local Hugging Face tokenizer folder for GuideLLM (env GUIDELLM_TOKENIZER)",
    )
    args = parser.parse_args()
    if args.guidellm and not args.guidellm_tokenizer:
        parser.error("--guidellm needs --guidellm-tokenizer (or env GUIDELLM_TOKENIZER): a local tokenizer folder")
    levels = [int(x) for x in args.levels.split(",")]
    print(f"cores: {os.cpu_count()} (usable: {len(os.sched_getaffinity(0))}); python {sys.version.split()[0]}")
    print(f"latency model: {LATENCY}")
    process, base_url = start_emulator(EmulatorConfig(latency=LATENCY))
    rows: list[Row] = []
    guide_rows: list[GuideRow] = []
    try:
        for kind in args.clients.split(","):
            for concurrency in levels:
                reset(base_url)
                run, cpu = asyncio.run(measure(kind, base_url, concurrency, args.duration))
                rows.append(analyse(kind, concurrency, run, cpu, fetch_truth(base_url)))
                print(f"  done {kind} x {concurrency}", file=sys.stderr, flush=True)
        if args.guidellm:
            for concurrency in levels:
                reset(base_url)
                benchmark = run_guidellm(args.guidellm, args.guidellm_tokenizer, base_url, concurrency, args.duration)
                guide_rows.append(analyse_guidellm(concurrency, benchmark, fetch_truth(base_url)))
                print(f"  done guidellm x {concurrency}", file=sys.stderr, flush=True)
    finally:
        process.terminate()
        process.wait(timeout=10)
    print_table(rows)
    print(
        "ms/tok: per-request (last - first token) / (n - 1), median over requests; ITL: pooled inter-token gaps;\n"
        "truth: what the emulator scheduled for the same requests; srv lag: emulator lateness vs its deadlines."
    )
    if guide_rows:
        print()
        print_guidellm_table(guide_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
