#!/usr/bin/env python
"""Is a level the client bounded ever a silent error? Issue 19's done-when, against scripts/truth_server.py.

Part ``cli``: the command line (``benchmark.cli.cmd_run``, the ``run`` command itself) at ``--streams`` (1,024)
with its default load-generator options (no ``--workers``, no ``--uvloop``: chosen per level), against the
independent truth server. The level's requests are kept (``cmd_run``'s ``measure`` hook) and joined with the
server's log by request id (as ``scripts/bench_accuracy.py`` does): PASS when the TTFT median is within 2 % of
the truth, or the level is marked client-bound in the results with what to change; FAIL (a silent error) else.

Part ``cgroup``: the client in a CPU cgroup with ``--quota`` of a CPU (0.58: a 1,024 MB Lambda) against a truth
server made fast enough (``--tpot-base-ms``, ``--tpot-per-active-ms``) to deliver more than that client can
read, at ``--cgroup-streams``; then the same level sharded over ``--shards`` client processes, each in a cgroup
of its own with the same quota (simulated Lambdas: each shard runs its share of the users, all start at one
agreed instant of the shared monotonic clock, the records are merged as ``benchmark.measure.workers`` merges
its workers'). PASS when the single client is marked client-bound and the sharded level is not and has TTFT,
ms/token and tokens/s within 2 % of the truth. Needs root and a writable cgroup v1 ``cpu`` hierarchy or cgroup
v2 with the ``cpu`` controller; elsewhere the part is skipped with a message. Its cgroups are removed after.

Rerunnable, never asserted: ``python scripts/bench_client_bound.py [--part cli,cgroup] [--streams 1024]
[--duration 15] [--quota 0.58] [--shards 4] [--cgroup-streams 256]``. Exit code 1 when a part FAILs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark import cli  # noqa: E402
from benchmark.clients import ClientFactory, ClientSpec  # noqa: E402
from benchmark.measure.load import LoadSpec  # noqa: E402
from benchmark.measure.loadgen import LevelRun  # noqa: E402
from benchmark.measure.metrics import LevelMetrics, compute_metrics  # noqa: E402
from benchmark.measure.records import RequestRecord  # noqa: E402
from benchmark.measure.runner import ProcessOptions, measure_level  # noqa: E402
from benchmark.measure.selfcheck import cgroup_quota_cpus  # noqa: E402
from benchmark.measure.workers import share  # noqa: E402
from benchmark.serialize import from_data, to_data  # noqa: E402
from scripts.bench_accuracy import call, start_server, truth_figures  # noqa: E402

ACCURACY = 0.02  # the goal: TTFT within 2 % of the truth
PERIOD_US = 100_000


def _err(measured: float | None, truth: float) -> float:
    return float("nan") if measured is None else (measured - truth) / truth


def describe(metrics: LevelMetrics) -> str:
    late = metrics.send_lateness_ms
    cpu = metrics.client_cpu_share
    own = (
        "CPU: see each shard, "
        if metrics.client_processes is None
        else f"processes {metrics.client_processes}, client CPU {'-' if cpu is None else f'{cpu:.0%}'} of "
        f"{metrics.client_cpus or 0:.2f} usable, "
    )
    return (
        own + "sent late p50/p99/max "
        f"{late.median or 0:.2f}/{late.p99 or 0:.2f}/{late.maximum or 0:.2f} ms, "
        f"coalesced {metrics.coalesced_first_token_share or 0:.1%}, client_bound {metrics.client_bound}"
        + ("".join(f"\n    - {reason}" for reason in metrics.client_bound_reasons))
    )


def compare(label: str, run: LevelRun, metrics: LevelMetrics, truths: list[dict[str, Any]]) -> tuple[float, ...]:
    """Print the level's TTFT, ms/token and tokens/s against the truth for the same requests; return the errors."""
    requests, ttft, tpot, tps, window, _ = truth_figures(run, truths)
    errors = (
        _err(metrics.ttft_ms.median, ttft),
        _err(metrics.ms_per_token.median, tpot),
        _err(metrics.tokens_per_s, tps),
    )
    print(
        f"{label}: {requests} requests, steady window {window:.1f} s\n"
        f"  TTFT p50 {metrics.ttft_ms.median or 0:.2f} ms (truth {ttft:.2f}, {errors[0]:+.2%}); "
        f"ms/token p50 {metrics.ms_per_token.median or 0:.2f} (truth {tpot:.2f}, {errors[1]:+.2%}); "
        f"tokens/s {metrics.tokens_per_s or 0:.1f} (truth {tps:.1f}, {errors[2]:+.2%})\n  {describe(metrics)}",
        flush=True,
    )
    return errors


# --- part cli ---------------------------------------------------------------------------------------------------


def part_cli(args: argparse.Namespace) -> bool:
    print(f"== part cli: `run` with default load-generator options at {args.streams} streams ==", flush=True)
    server, url = start_server(args.cli_server_options)
    runs: list[LevelRun] = []

    def keep(spec: LoadSpec, clients: ClientFactory, process: ProcessOptions) -> LevelRun:
        run = measure_level(spec, clients, process)
        runs.append(run)
        return run

    with tempfile.TemporaryDirectory(prefix="bench-client-bound-") as out:
        argv = [
            "run",
            *("--target", "tgi", "--url", url, "--concurrency", str(args.streams)),
            *("--duration", f"{args.duration:g}", "--warmup", str(args.streams)),
            *("--ramp-up", f"{args.streams / 100:g}", "--results", f"{out}/results.jsonl"),
        ]
        print("argv: python -m benchmark " + " ".join(argv), flush=True)
        try:
            code = cli.cmd_run(cli.build_parser().parse_args(argv), measure=keep)
            truths = call(url, "/truth")
        finally:
            server.terminate()
            server.wait(timeout=10)
        record = json.loads(Path(f"{out}/results.jsonl").read_text().splitlines()[-1])
    stored = record["metrics"]
    print(
        f"results file: client_bound={stored['client_bound']}, reasons={stored['client_bound_reasons']}, "
        f"client_cpu_share={stored['client_cpu_share']}, send_lateness_ms p50/p99/max="
        f"{stored['send_lateness_ms']['median']}/{stored['send_lateness_ms']['p99']}/{stored['send_lateness_ms']['max']}"
    )
    run = runs[-1]
    metrics = compute_metrics(run, max_new_tokens=run.spec.max_new_tokens)
    ttft_err = compare(f"cli at {args.streams} streams (exit {code})", run, metrics, truths)[0]
    within = abs(ttft_err) <= ACCURACY
    verdict = (
        "PASS: TTFT within 2 % of truth"
        if within
        else "PASS: marked client-bound (the advice above says what to change)"
        if stored["client_bound"]
        else "FAIL: TTFT off by more than 2 % and the level is not marked client-bound (a silent error)"
    )
    print(verdict, flush=True)
    return within or bool(stored["client_bound"])


# --- part cgroup -----------------------------------------------------------------------------------------------


def cgroup_base() -> tuple[str, Path] | str:
    """("v1" | "v2", the hierarchy's directory) where a CPU cgroup can be made here, else why not."""
    v1 = Path("/sys/fs/cgroup/cpu")
    if (v1 / "cpu.cfs_quota_us").exists():
        return ("v1", v1) if os.access(v1, os.W_OK) else f"{v1} is not writable (run as root)"
    v2 = Path("/sys/fs/cgroup")
    controllers = v2 / "cgroup.controllers"
    if controllers.exists():
        if "cpu" not in controllers.read_text().split():
            return "cgroup v2 without the cpu controller"
        return ("v2", v2) if os.access(v2, os.W_OK) else f"{v2} is not writable (run as root)"
    return "no cgroup cpu hierarchy at /sys/fs/cgroup"


@contextlib.contextmanager
def cpu_cgroup(kind: str, base: Path, name: str, quota: float) -> Iterator[Path]:
    """A cgroup allowed ``quota`` CPUs (``quota x 100 ms`` per 100 ms), removed when the block ends."""
    path = base / name
    path.mkdir()
    try:
        if kind == "v1":
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(round(quota * PERIOD_US)))
        else:
            (path / "cpu.max").write_text(f"{round(quota * PERIOD_US)} {PERIOD_US}")
        yield path
    finally:
        for _ in range(50):  # its processes have exited; the kernel may take a moment to let the group go
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def join_cgroup(procs: Path) -> None:
    """Run in the child between fork and exec: move this process into the cgroup whose ``cgroup.procs`` is given."""
    procs.write_text(str(os.getpid()))


def shard_main(args: argparse.Namespace) -> int:
    """One shard (a simulated Lambda): its share of the level from the agreed instant; records as JSON."""
    index, parts = (int(x) for x in args.shard.split("/"))
    spec = level_spec(args.cgroup_streams, args.duration)
    own = share(spec, index, parts)
    time.sleep(max(0.0, args.start_at - time.perf_counter()))
    if spec.ramp_up_s:
        time.sleep(spec.ramp_up_s * index / spec.concurrency)  # interleaved, as benchmark.measure.workers does
    run = measure_level(own, ClientSpec("tgi-http", args.url), ProcessOptions(workers=None, uvloop=None))
    metrics = compute_metrics(run, max_new_tokens=own.max_new_tokens)
    data = {
        "window": [run.window_start, run.window_end],
        "records": [to_data(r) for r in run.records],
        "metrics": to_data(metrics),
        "quota": cgroup_quota_cpus(),
    }
    Path(args.out).write_text(json.dumps(data))
    return 0


def level_spec(streams: int, duration: float) -> LoadSpec:
    return LoadSpec(
        concurrency=streams,
        duration_s=duration,
        warmup_requests=streams,
        ramp_up_s=streams / 100,
        max_new_tokens=50,
        timeout_s=60,
    )


def sharded(args: argparse.Namespace, kind: str, base: Path, url: str, parts: int) -> tuple[LevelRun, list[Any]]:
    """The level over ``parts`` shard processes, each in a cgroup of its own; the merged run and each shard's data."""
    spec = level_spec(args.cgroup_streams, args.duration)
    start_at = time.perf_counter() + 3.0 + 0.5 * parts  # time for every shard to start and import
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="shards-") as out:
        processes = []
        for index in range(parts):
            group = stack.enter_context(cpu_cgroup(kind, base, f"bench-client-bound-{os.getpid()}-{index}", args.quota))
            procs = group / "cgroup.procs"
            command = [
                sys.executable,
                __file__,
                *("--shard", f"{index}/{parts}", "--url", url, "--start-at", repr(start_at)),
                *("--cgroup-streams", str(args.cgroup_streams), "--duration", f"{args.duration:g}"),
                *("--out", f"{out}/{index}.json"),
            ]
            # Into its cgroup before it runs a line of Python: the child writes its own pid, then execs.
            processes.append(subprocess.Popen(command, preexec_fn=functools.partial(join_cgroup, procs)))  # noqa: PLW1509
        codes = [p.wait() for p in processes]
        if any(codes):
            raise SystemExit(f"a shard failed: exit codes {codes}")
        shards = [json.loads(Path(f"{out}/{i}.json").read_text()) for i in range(parts)]
    records: list[RequestRecord] = []
    for index, data in enumerate(shards):
        for item in data["records"]:
            record = from_data(RequestRecord, item)
            record.user = record.user * parts + index
            records.append(record)
    merged = LevelRun(
        spec=spec,
        window_start=min(d["window"][0] for d in shards),
        window_end=max(d["window"][1] for d in shards),
        records=records,
    )
    return merged, shards


def part_cgroup(args: argparse.Namespace) -> bool | None:
    print(
        f"== part cgroup: {args.cgroup_streams} streams, the client in {args.quota:g} CPU, then {args.shards} shards "
        f"of {args.quota:g} CPU each ==",
        flush=True,
    )
    found = cgroup_base()
    if isinstance(found, str):
        print(f"SKIPPED: cannot make a CPU cgroup here: {found}", flush=True)
        return None
    kind, base = found
    server_options = (
        "--tpot-base-ms",
        f"{args.tpot_base_ms:g}",
        "--tpot-per-active-ms",
        f"{args.tpot_per_active_ms:g}",
    )
    results: dict[int, tuple[bool, tuple[float, ...]]] = {}
    for parts in (1, args.shards):
        server, url = start_server(" ".join(server_options))
        try:
            merged, shards = sharded(args, kind, base, url, parts)
            truths = call(url, "/truth")
        finally:
            server.terminate()
            server.wait(timeout=10)
        metrics = compute_metrics(merged, max_new_tokens=merged.spec.max_new_tokens)
        shard_metrics = [from_data(LevelMetrics, d["metrics"]) for d in shards]
        for index, (data, m) in enumerate(zip(shards, shard_metrics, strict=True)):
            print(f"  shard {index}/{parts} (its cgroup quota {data['quota']} CPU): {describe(m)}", flush=True)
        bound = metrics.client_bound or any(m.client_bound for m in shard_metrics)
        errors = compare(f"{parts} shard(s), merged", merged, metrics, truths)
        print(f"  level client-bound (merged or any shard): {bound}", flush=True)
        results[parts] = (bound, errors)
    single_bound = results[1][0]
    many_bound, many_errors = results[args.shards]
    ok = single_bound and not many_bound and all(abs(e) <= ACCURACY for e in many_errors)
    print(
        ("PASS" if ok else "FAIL")
        + f": one client in {args.quota:g} CPU client-bound={single_bound}; {args.shards} shards client-bound="
        f"{many_bound}, errors TTFT/ms per token/tokens per s " + "/".join(f"{e:+.2%}" for e in many_errors),
        flush=True,
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="cli,cgroup", help="cli, cgroup or both (comma-separated)")
    parser.add_argument("--streams", type=int, default=1024, help="part cli: concurrency")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per level")
    parser.add_argument(
        "--cli-server-options",
        default="",
        help="part cli: the truth server's options, e.g. '--processes 6 --tpot-per-active-ms 0' (a faster server)",
    )
    parser.add_argument("--quota", type=float, default=0.58, help="part cgroup: CPUs per client (a 1,024 MB Lambda)")
    parser.add_argument("--shards", type=int, default=4, help="part cgroup: client processes of --quota each")
    parser.add_argument("--cgroup-streams", type=int, default=256, help="part cgroup: concurrency")
    parser.add_argument("--tpot-base-ms", type=float, default=8.0, help="part cgroup: the truth server's speed")
    parser.add_argument("--tpot-per-active-ms", type=float, default=0.03, help="part cgroup: its batching slope")
    parser.add_argument("--shard", help=argparse.SUPPRESS)  # internal: run one shard ("I/N")
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shard:
        return shard_main(args)
    print(
        f"cores: {os.cpu_count()} (affinity {len(os.sched_getaffinity(0))}, quota {cgroup_quota_cpus()}); "
        f"python {sys.version.split()[0]}; load {os.getloadavg()[0]:.1f}; "
        + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        flush=True,
    )
    outcomes: list[bool | None] = []
    parts = args.part.split(",")
    if "cli" in parts:
        outcomes.append(part_cli(args))
    if "cgroup" in parts:
        outcomes.append(part_cgroup(args))
    print(f"load at the end {os.getloadavg()[0]:.1f}", flush=True)
    return 1 if any(o is False for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
