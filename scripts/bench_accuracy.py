#!/usr/bin/env python
"""How accurate is the benchmark? Our clients and metrics against an independent ground-truth server.

``scripts/truth_server.py`` runs in its own process and shares no code with the benchmark: it logs when
each request's bytes reached the kernel (socket receive timestamps) and when each token's bytes were
written, on the clock every process shares (``CLOCK_MONOTONIC``). At each level the benchmark's own
numbers, computed by ``benchmark.measure.metrics.compute_metrics`` from what the client saw, are compared with
figures this script computes from that log alone, for the very same requests (joined by request id):

- TTFT median: client ``first token - send``; truth ``first token written - request arrived``;
- ms/token median: client per-request ``(last - first token) / (n - 1)``; truth the same over write times;
- tokens/s: client steady-state throughput; truth = tokens the server wrote inside the same steady window
  (an interval of the shared clock) / its length.

Each (client, level) runs ``--repeat`` times; the table gives every run's errors and their median.
Also printed: the client's CPU time per token (this process and its workers) over the whole level (start-up
of the workers included) and at steady state (CPU sampled every 0.2 s, between the steady window's edges, per
token that arrived inside it; Linux ``/proc``), and the machine's load.

Rerunnable, never asserted: ``python scripts/bench_accuracy.py [--levels 1,20,64,256] [--duration 20]
[--repeat 3] [--clients tgi-http-stream,openai-chat-stream,sagemaker-stream,sagemaker-chat-stream] [--ramp-up auto]
[--workers auto] [--loop uvloop] [--server URL | --server-options '--tpot-base-ms 5 --processes 4'] [--json PATH]``.
The same settings exist on ``python -m benchmark run``: ``--ramp-up``,
``--workers``, ``--uvloop``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.clients import ClientSpec  # noqa: E402
from benchmark.measure.load import LoadSpec  # noqa: E402
from benchmark.measure.loadgen import LevelRun  # noqa: E402
from benchmark.measure.metrics import compute_metrics  # noqa: E402
from benchmark.measure.prompts import builtin_prompts  # noqa: E402
from benchmark.measure.runner import ProcessOptions, measure_level  # noqa: E402

# sagemaker-chat-stream: the SageMaker client with payload="openai-chat" (vLLM's OpenAI chat on /invocations).
CLIENTS = ("tgi-http-stream", "openai-chat-stream", "sagemaker-stream", "sagemaker-chat-stream")
TRUTH_TOKENS = 50  # what scripts/truth_server.py generates per request (unless its --tokens says fewer)


@dataclass
class Row:
    client: str
    concurrency: int
    requests: int
    ttft: float
    ttft_truth: float
    tpot: float
    tpot_truth: float
    tps: float
    tps_truth: float
    window_s: float
    send_lag_ms: float  # median: request arrived at the server - client's start stamp
    read_lag_ms: float  # median: client's first-token stamp - server's first token write
    cpu_us_per_token: float  # whole level: CPU of this process and its workers / tokens
    steady_cpu_us_per_token: float  # steady window: their CPU inside it / tokens that arrived inside it
    load: float
    coalesced: float  # share of first tokens read with later bytes (the level is flagged above 1 %)
    flagged: bool
    failed: int = 0  # requests that ended in an error

    def errors(self) -> tuple[float, float, float]:
        return (_err(self.ttft, self.ttft_truth), _err(self.tpot, self.tpot_truth), _err(self.tps, self.tps_truth))


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
    errors: int


def _fmt_err(measured: float, truth: float) -> str:
    return f"{_err(measured, truth):+6.2f}%"


def _err(measured: float, truth: float) -> float:
    return (measured - truth) / truth * 100 if truth else float("nan")


def start_server(options: str = "") -> tuple[subprocess.Popen[str], str]:
    """scripts/truth_server.py with ``options`` (its latency model, processes), and the URL it listens on."""
    command = [sys.executable, str(ROOT / "scripts" / "truth_server.py"), *options.split()]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"truth server did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].split()[0]


def call(base_url: str, path: str, method: str = "GET") -> Any:
    data = b"{}" if method == "POST" else None
    with urllib.request.urlopen(urllib.request.Request(base_url + path, data=data, method=method), timeout=60) as r:
        return json.loads(r.read())


def client_spec(kind: str, base_url: str) -> ClientSpec:
    protocol = kind.removesuffix("-stream")
    if protocol.startswith("sagemaker"):
        options: dict[str, Any] = {
            "endpoint_url": base_url,
            "region_name": "us-east-1",
            "client_kwargs": {"aws_access_key_id": "x", "aws_secret_access_key": "x"},
        }
        if protocol == "sagemaker-chat":
            protocol, options["payload"] = "sagemaker", "openai-chat"
        return ClientSpec(protocol, "bench-endpoint", options)
    return ClientSpec(protocol, base_url)


@functools.cache
def prompts_file() -> str:
    """The prompts every level sends (128 and 256 tokens, 8 each), as the JSONL dataset a LoadSpec names."""
    path = Path(tempfile.mkdtemp(prefix="bench-accuracy-")) / "prompts.jsonl"
    lines = [json.dumps({"id": p.id, "prompt": p.text}) for p in builtin_prompts((128, 256), per_length=8)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def lags(run: LevelRun, truths: list[dict[str, Any]]) -> tuple[float, float]:
    """Where a TTFT error comes from: median send lag and first-token read lag (ms), from log and records."""
    by_id = {t["id"]: t for t in truths}
    pairs = [(r, by_id[r.request_id]) for r in run.records if r.ok and r.request_id in by_id and r.first_token_at]
    send = statistics.median((t["arrival"] - r.start) * 1000 for r, t in pairs)
    read = statistics.median(((r.first_token_at or 0.0) - t["writes"][0]) * 1000 for r, t in pairs)
    return send, read


class CpuSampler(threading.Thread):
    """(perf_counter, CPU seconds of this process and its descendants but ``exclude``) every ``every_s`` seconds.

    Descendants are found and read in ``/proc`` (their ``utime + stime``, in clock ticks); this process's own
    CPU is ``process_time`` less the sampler thread's. Elsewhere than Linux there are no samples.
    """

    def __init__(self, exclude: int, every_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self._exclude, self._every_s = exclude, every_s
        self._halt = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def run(self) -> None:
        if not os.path.isdir("/proc"):
            return
        while not self._halt.is_set():
            self.samples.append((time.perf_counter(), self._tree_cpu_s()))
            self._halt.wait(self._every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def _tree_cpu_s(self) -> float:
        children: dict[int, list[int]] = {}
        ticks: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            pid = int(entry)
            children.setdefault(int(fields[1]), []).append(pid)  # field 4 of stat(5): ppid
            ticks[pid] = int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
        total, pending = 0, list(children.get(os.getpid(), []))
        while pending:
            pid = pending.pop()
            if pid != self._exclude:
                total += ticks.get(pid, 0)
                pending += children.get(pid, [])
        return time.process_time() - time.thread_time() + total / self._tick

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds spent between ``start`` and ``end`` (linear between the samples around each edge)."""
        return self._at(end) - self._at(start)

    def _at(self, when: float) -> float:
        before = [s for s in self.samples if s[0] <= when]
        after = [s for s in self.samples if s[0] >= when]
        if not before or not after:
            return float("nan")
        (t0, c0), (t1, c1) = before[-1], after[0]
        return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)


def truth_figures(run: LevelRun, truths: list[dict[str, Any]]) -> tuple[int, float, float, float, float, float]:
    """(requests, TTFT and ms/token truth medians, tokens/s truth, steady window length, its start), from the log."""
    metrics = compute_metrics(run)
    by_id = {t["id"]: t for t in truths}
    # The requests the metrics used: measured, successful, ended inside the load window.
    used = [
        by_id[r.request_id]
        for r in run.records
        if not r.warmup and r.ok and r.request_id in by_id and run.window_start <= r.end <= run.window_end + 1e-9
    ]
    ttft = statistics.median((t["writes"][0] - t["arrival"]) * 1000 for t in used)
    tpot = statistics.median((t["writes"][-1] - t["writes"][0]) / (len(t["writes"]) - 1) * 1000 for t in used)
    assert metrics.steady_start_s is not None and metrics.steady_end_s is not None, "no steady state: run longer"
    opens = run.window_start + metrics.steady_start_s
    closes = run.window_start + metrics.steady_end_s
    written = sum(1 for t in truths for w in t["writes"] if opens < w <= closes)
    return len(used), ttft, tpot, written / (closes - opens), closes - opens, opens


def measure(kind: str, base_url: str, concurrency: int, args: argparse.Namespace, server_pid: int) -> Row:
    call(base_url, "/reset", "POST")
    ramp = (concurrency / 100.0 if args.ramp_up == "auto" else float(args.ramp_up)) if concurrency > 1 else 0.0
    spec = LoadSpec(
        concurrency=concurrency,
        duration_s=args.duration,
        warmup_requests=concurrency,
        ramp_up_s=ramp,
        timeout_s=60,
        max_new_tokens=50,
        streaming=kind.endswith("-stream"),
        dataset=prompts_file(),
    )
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_s()
    process = ProcessOptions(workers=workers_for(args.workers, concurrency), uvloop=args.loop == "uvloop")
    sampler = CpuSampler(exclude=server_pid)
    sampler.start()
    try:
        run = measure_level(spec, client_spec(kind, base_url), process)
    finally:
        sampler.stop()
    cpu = _cpu_s() - cpu_before
    metrics = compute_metrics(run)
    truths = call(base_url, "/truth")
    requests, ttft_truth, tpot_truth, tps_truth, window, opens = truth_figures(run, truths)
    tokens = sum(len(r.token_times) for r in run.records)
    steady_tokens = sum(1 for r in run.records for t in r.token_times if opens < t <= opens + window)
    steady_cpu = sampler.cpu_between(opens, opens + window)
    send_lag, read_lag = lags(run, truths)
    assert metrics.ttft_ms.median and metrics.ms_per_token.median and metrics.tokens_per_s
    failed = sum(1 for r in run.records if not r.ok)
    if failed:
        print(f"  {kind} x {concurrency}: {failed} failed requests", file=sys.stderr)
    return Row(
        client=kind,
        concurrency=concurrency,
        requests=requests,
        ttft=metrics.ttft_ms.median,
        ttft_truth=ttft_truth,
        tpot=metrics.ms_per_token.median,
        tpot_truth=tpot_truth,
        tps=metrics.tokens_per_s,
        tps_truth=tps_truth,
        window_s=window,
        send_lag_ms=send_lag,
        read_lag_ms=read_lag,
        cpu_us_per_token=cpu / max(1, tokens) * 1e6,
        steady_cpu_us_per_token=steady_cpu / max(1, steady_tokens) * 1e6,
        load=(load_before + os.getloadavg()[0]) / 2,
        coalesced=metrics.coalesced_first_token_share or 0.0,
        flagged=metrics.late_first_tokens,
        failed=failed,
    )


def workers_for(setting: str, concurrency: int) -> int:
    """``auto``: one worker process per 32 streams, at most 8, none below 64 streams."""
    return min(8, concurrency // 32) if setting == "auto" else int(setting)


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    own = time.process_time()
    children = os.times()
    return own + children.children_user + children.children_system


def _print_header(header: str) -> None:
    print(header)
    print("-" * len(header))


def print_rows(rows: list[Row], repeat: int) -> None:
    header = (
        f"{'client':<20}{'conc':>5}{'reqs':>6}{'TTFT p50':>10}{'truth':>8}{'err':>8}{'ms/tok':>8}{'truth':>8}"
        f"{'err':>8}{'tok/s':>9}{'truth':>9}{'err':>8}{'window':>8}{'send':>7}{'read':>7}{'CPU us/tok':>11}"
        f"{'steady':>8}{'load':>6}{'coalesced':>11}"
    )
    _print_header(header)
    for r in rows:
        e = r.errors()
        print(
            f"{r.client:<20}{r.concurrency:>5}{r.requests:>6}{r.ttft:>10.2f}{r.ttft_truth:>8.2f}{e[0]:>+7.2f}%"
            f"{r.tpot:>8.2f}{r.tpot_truth:>8.2f}{e[1]:>+7.2f}%{r.tps:>9.1f}{r.tps_truth:>9.1f}{e[2]:>+7.2f}%"
            f"{r.window_s:>7.1f}s{r.send_lag_ms:>7.2f}{r.read_lag_ms:>7.2f}{r.cpu_us_per_token:>11.1f}"
            f"{r.steady_cpu_us_per_token:>8.1f}{r.load:>6.1f}{r.coalesced:>9.1%}{' !' if r.flagged else '  '}"
        )
    if repeat > 1:
        print()
        print(f"median error of {repeat} runs")
        print(f"{'client':<20}{'conc':>5}{'TTFT p50':>10}{'ms/token':>10}{'tokens/s':>10}{'steady CPU us/tok':>19}")
        keys = sorted({(r.client, r.concurrency) for r in rows}, key=lambda k: (CLIENTS.index(k[0]), k[1]))
        for client, concurrency in keys:
            same = [r for r in rows if (r.client, r.concurrency) == (client, concurrency)]
            medians = [statistics.median(r.errors()[i] for r in same) for i in range(3)]
            cpu = statistics.median(r.steady_cpu_us_per_token for r in same)
            print(f"{client:<20}{concurrency:>5}" + "".join(f"{m:>+9.2f}%" for m in medians) + f"{cpu:>19.1f}")


def run_guidellm(binary: str, tokenizer: str, base_url: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    """One GuideLLM concurrent run at ``concurrency`` streams; returns its first benchmark from the JSON output."""
    with tempfile.TemporaryDirectory(prefix="guidellm-") as workdir:
        out = Path(workdir) / "guidellm.json"
        command = [
            binary,
            "run",
            "--backend",
            f"kind=openai_http,target={base_url},model=truth",
            "--profile",
            f"kind=concurrent,streams={concurrency}",
            "--constraint",
            f"kind=max_duration,seconds={duration_s:g}",
            "--tokenizer",
            f"kind=huggingface_auto,model={tokenizer}",
            "--data",
            f"kind=synthetic_text,prompt_tokens=192,output_tokens={TRUTH_TOKENS}",
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


def analyse_guidellm(concurrency: int, benchmark: dict[str, Any], truths: list[dict[str, Any]]) -> GuideRow:
    """GuideLLM sends no id the server can join on: compare with every request the truth server completed."""
    metrics = benchmark["metrics"]

    def gl_median(name: str) -> float:
        value = metrics[name]["successful"].get("median")
        return float(value) if value is not None else float("nan")

    done = [t for t in truths if len(t["writes"]) > 1]
    itl_truth = [(t["writes"][-1] - t["writes"][0]) / (len(t["writes"]) - 1) * 1e3 for t in done]
    return GuideRow(
        concurrency=concurrency,
        requests=len(benchmark["requests"]["successful"]),
        itl_p50=gl_median("inter_token_latency_ms"),
        itl_p50_truth=statistics.median(itl_truth),
        tpot_p50=gl_median("time_per_output_token_ms"),
        tpot_p50_truth=statistics.median((t["writes"][-1] - t["arrival"]) / len(t["writes"]) * 1e3 for t in done),
        ttft_p50=gl_median("time_to_first_token_ms"),
        ttft_p50_truth=statistics.median((t["writes"][0] - t["arrival"]) * 1e3 for t in done),
        errors=len(benchmark["requests"]["errored"]),
    )


def print_guidellm_table(rows: list[GuideRow]) -> None:
    header = (
        f"{'client':<18}{'conc':>5}{'reqs':>6}{'ITL p50':>9}{'truth':>8}{'err':>9}{'TPOT p50':>10}{'truth':>8}"
        f"{'err':>9}{'TTFT p50':>10}{'truth':>8}{'err':>9}{'errors':>7}"
    )
    _print_header(header)
    for r in rows:
        print(
            f"{'guidellm':<18}{r.concurrency:>5}{r.requests:>6}"
            f"{r.itl_p50:>9.2f}{r.itl_p50_truth:>8.2f}{_fmt_err(r.itl_p50, r.itl_p50_truth):>9}"
            f"{r.tpot_p50:>10.2f}{r.tpot_p50_truth:>8.2f}{_fmt_err(r.tpot_p50, r.tpot_p50_truth):>9}"
            f"{r.ttft_p50:>10.2f}{r.ttft_p50_truth:>8.2f}{_fmt_err(r.ttft_p50, r.ttft_p50_truth):>9}"
            f"{r.errors:>7}"
        )
    print(
        "guidellm ITL: per-request (last - first token) / (n - 1), token-weighted median (truth: per-request mean\n"
        "scheduled gap, median over completed requests); TPOT: latency / output tokens (truth: (TTFT + gaps) / tokens)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,20,64,256")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--repeat", type=int, default=3, help="runs per (client, level); the median is reported")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--ramp-up", default="auto", help="seconds, or auto (concurrency / 100 s)")
    parser.add_argument(
        "--workers", default="auto", help="client worker processes (0: in this process; auto: concurrency // 32, <= 8)"
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="the client's event loop")
    parser.add_argument(
        "--guidellm", default=os.environ.get("GUIDELLM_BIN"), help="also run GuideLLM (env GUIDELLM_BIN)"
    )
    parser.add_argument("--server", metavar="URL", help="a truth server already running (else one is started)")
    parser.add_argument(
        "--server-options", default="", help="options for the truth server started here, e.g. '--tpot-base-ms 5'"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every row as JSON (scripts/bench_limits.py)")
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
    print(
        f"duration {args.duration:g} s per level after {max(levels)} warm-up requests at most; "
        f"ramp-up {args.ramp_up}; workers {args.workers}; loop {args.loop}; repeat {args.repeat}; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    process, base_url = (None, args.server.rstrip("/")) if args.server else start_server(args.server_options)
    server_pid = process.pid if process is not None else -1
    rows: list[Row] = []
    guide_rows: list[GuideRow] = []
    try:
        for _ in range(args.repeat):
            for kind in args.clients.split(","):
                for concurrency in levels:
                    rows.append(measure(kind, base_url, concurrency, args, server_pid))
                    print(f"  done {kind} x {concurrency}", file=sys.stderr, flush=True)
        for concurrency in levels if args.guidellm else ():
            call(base_url, "/reset", "POST")
            benchmark = run_guidellm(args.guidellm, args.guidellm_tokenizer, base_url, concurrency, args.duration)
            guide_rows.append(analyse_guidellm(concurrency, benchmark, call(base_url, "/truth")))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    if args.json:
        Path(args.json).write_text(json.dumps([dict(asdict(r), errors=r.errors()) for r in rows], indent=1) + "\n")
    rows.sort(key=lambda r: (CLIENTS.index(r.client), r.concurrency))
    print_rows(rows, args.repeat)
    print(
        "TTFT p50 / ms/tok: the benchmark's medians over the level's requests, truth over the same requests from\n"
        "the server's log; tok/s: steady-state throughput, truth = tokens written in the same window / window.\n"
        "send / read: median ms from the client's start stamp to the request's arrival at the server, and from\n"
        "the server writing the first token to the client's stamp of it (where a TTFT error comes from).\n"
        "CPU us/tok: the client's CPU (this process and its workers) over the level / its tokens; steady: their CPU\n"
        "inside the steady window / the tokens that arrived inside it (no start-up, ramp or drain).\n"
        "coalesced: share of first tokens read in one piece with later bytes (stamped late); ! flags the level\n"
        "(above 1 %), as the benchmark's results and report do."
    )
    if guide_rows:
        print()
        print_guidellm_table(guide_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
