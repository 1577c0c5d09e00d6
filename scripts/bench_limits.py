#!/usr/bin/env python
"""How many streams and tokens/s can one client drive within the accuracy goals? Per protocol and client size.

For each protocol (``--protocols``) and each client size (``--configs``), levels double from ``--start`` streams
until one misses a goal; each level is one ``scripts/bench_accuracy.py`` run (its own process) against one truth
server started here (``scripts/truth_server.py``, outside any CPU limit, ``--server-options`` setting its latency
model so that it can deliver more than the client reads). A level is within the goals when, against the server's
own log, the TTFT median is within 2 %, the ms/token median within 1 % and steady-state tokens/s within 2 %, no
request failed and the level is not flagged for coalesced first tokens. The limit is the last level within them.

Client sizes:

``process``
    one process, no workers (``--workers 0``);
``workers``
    one worker set: ``--workers N`` processes (``--worker-count``; default usable cores less the server's);
``lambda-MB``
    one process in a CPU cgroup whose quota is what a Lambda function of MB megabytes gets: Lambda allocates
    CPU in proportion to memory, one vCPU at 1,769 MB (Lambda developer guide, "Configuring Lambda function
    memory"); 1,024 MB is 0.58 vCPU. One process, as the load-test Lambda runs it (no ``/dev/shm`` there for
    multiprocessing queues). Needs root and a cgroup v1 ``cpu`` hierarchy or cgroup v2 with the ``cpu`` controller.

Rerunnable, never asserted (the figures depend on the machine, which the output names):
``python scripts/bench_limits.py [--protocols tgi-http-stream,openai-chat-stream,sagemaker-stream,sagemaker-chat-stream]
[--configs process,workers,lambda-1024,lambda-1769,lambda-3008] [--start 64] [--max 4096] [--duration 10]
[--server-options '--tpot-per-active-ms 0 --processes 2'] [--out PATH.md]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_accuracy import CLIENTS, start_server  # noqa: E402

LAMBDA_MB_PER_VCPU = 1769  # Lambda developer guide: one vCPU's worth of CPU at 1,769 MB
GOALS = (2.0, 1.0, 2.0)  # TTFT median %, ms/token median %, tokens/s %
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


@dataclass
class Limit:
    protocol: str
    config: str
    vcpus: float
    passed: dict[str, Any] | None = None  # the last row within the goals
    stopped: str = ""  # why the next level was not
    rows: list[dict[str, Any]] = field(default_factory=list)


def lambda_vcpus(config: str) -> float:
    return int(config.removeprefix("lambda-")) / LAMBDA_MB_PER_VCPU


def miss(row: dict[str, Any]) -> str:
    """Which goal the row misses ('' when within all of them)."""
    reasons = [
        f"{name} {error:+.2f}% (goal {goal:g} %)"
        for name, error, goal in zip(("TTFT", "ms/token", "tokens/s"), row["errors"], GOALS, strict=True)
        if not abs(error) <= goal
    ]
    if row["failed"]:
        reasons.append(f"{row['failed']} failed requests")
    if row["flagged"]:
        reasons.append(f"coalesced first tokens {row['coalesced']:.1%}")
    return "; ".join(reasons)


@contextlib.contextmanager
def cpu_cgroup(name: str, vcpus: float) -> Iterator[Path]:
    """A cgroup limited to ``vcpus`` CPUs (quota per 100 ms period); yields its ``cgroup.procs``."""
    if (CGROUP_V1 / "cpu.cfs_quota_us").exists():
        folder = CGROUP_V1 / name
        folder.mkdir(exist_ok=True)
        (folder / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
        (folder / "cpu.cfs_quota_us").write_text(f"{round(vcpus * PERIOD_US)}\n")
    elif (CGROUP_V2 / "cgroup.controllers").exists():
        with contextlib.suppress(OSError):  # already on, or not delegable: cpu.max below says
            (CGROUP_V2 / "cgroup.subtree_control").write_text("+cpu\n")
        folder = CGROUP_V2 / name
        folder.mkdir(exist_ok=True)
        (folder / "cpu.max").write_text(f"{round(vcpus * PERIOD_US)} {PERIOD_US}\n")
    else:
        raise SystemExit("no cgroup cpu controller found (cgroup v1 cpu or v2): lambda-* sizes need one")
    try:
        yield folder / "cgroup.procs"
    finally:
        for _ in range(50):
            try:
                folder.rmdir()
                break
            except OSError:  # processes still leaving
                time.sleep(0.1)


def run_level(
    protocol: str, streams: int, *, workers: int, server: str, args: argparse.Namespace, procs: Path | None
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            str(ROOT / "scripts" / "bench_accuracy.py"),
            f"--server={server}",
            f"--levels={streams}",
            f"--clients={protocol}",
            f"--workers={workers}",
            # A short ramp (streams / 400 s) and the measured time after it: a steady window at every level.
            f"--ramp-up={streams / 400:g}",
            f"--duration={args.duration + streams / 400:g}",
            "--repeat=1",
            f"--loop={args.loop}",
            f"--json={out.name}",
        ]
        if procs is not None:  # the shell joins the cgroup, then becomes the benchmark: everything it starts is in
            command = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.level_timeout)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            return {"streams": streams, "crashed": f"exit {done.returncode}: {tail}"}
        (row,) = json.loads(Path(out.name).read_text())
    return dict(row, streams=streams)


def find_limit(protocol: str, config: str, server: str, args: argparse.Namespace) -> Limit:
    lambda_size = config.startswith("lambda-")
    vcpus = lambda_vcpus(config) if lambda_size else float(args.worker_count if config == "workers" else 1)
    limit = Limit(protocol, config, vcpus)
    workers = args.worker_count if config == "workers" else 0
    streams = args.start
    while streams <= args.max:
        with cpu_cgroup(f"bench-limits-{os.getpid()}", vcpus) if lambda_size else contextlib.nullcontext() as procs:
            row = run_level(protocol, streams, workers=workers, server=server, args=args, procs=procs)
        limit.rows.append(row)
        reason = row.get("crashed") or miss(row)
        print(f"  {protocol} {config} x {streams}: {reason or 'within the goals'}", file=sys.stderr, flush=True)
        print("  " + raw_rows([Limit(protocol, config, vcpus, rows=[row])])[-1], file=sys.stderr, flush=True)
        if reason:
            limit.stopped = f"{streams} streams: {reason}"
            break
        limit.passed = row
        streams *= 2
    else:
        limit.stopped = f"not tried above {args.max} streams (--max)"
    return limit


def cgroup_interface() -> str:
    if (CGROUP_V1 / "cpu.cfs_quota_us").exists():
        return "cgroup v1 cpu.cfs_quota_us"
    if (CGROUP_V2 / "cgroup.controllers").exists():
        return "cgroup v2 cpu.max"
    return "no cgroup cpu controller"


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0))
    return (
        f"{platform.node() or 'host'}: {os.cpu_count()} cores ({usable} usable), {model or platform.processor()}, "
        f"Linux {platform.release()}, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f} at start"
    )


def table(limits: list[Limit]) -> list[str]:
    lines = [
        "| protocol | client | vCPUs | streams | tokens/s (truth) | steady CPU us/token | next level |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for limit in limits:
        row = limit.passed
        streams = f"{row['streams']}" if row else f"< {limit.rows[0]['streams']}" if limit.rows else "-"
        tps = f"{row['tps_truth']:,.0f}" if row else "-"
        cpu = f"{row['steady_cpu_us_per_token']:.1f}" if row else "-"
        lines.append(
            f"| {limit.protocol} | {limit.config} | {limit.vcpus:.2f} | {streams} | {tps} | {cpu} | {limit.stopped} |"
        )
    return lines


def raw_rows(limits: list[Limit]) -> list[str]:
    lines = [
        "| protocol | client | streams | TTFT err | ms/tok err | tok/s err | tok/s truth | steady CPU us/tok | "
        "coalesced | failed | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for limit in limits:
        for row in limit.rows:
            if "crashed" in row:
                lines.append(f"| {limit.protocol} | {limit.config} | {row['streams']} | {row['crashed']} |")
                continue
            errors = " | ".join(f"{e:+.2f}%" for e in row["errors"])
            lines.append(
                f"| {limit.protocol} | {limit.config} | {row['streams']} | {errors} | {row['tps_truth']:,.0f} | "
                f"{row['steady_cpu_us_per_token']:.1f} | {row['coalesced']:.1%} | {row['failed']} | {row['load']:.1f} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocols", default=",".join(CLIENTS))
    parser.add_argument("--configs", default="process,workers,lambda-1024,lambda-1769,lambda-3008")
    parser.add_argument("--worker-count", type=int, default=0, help="workers of the 'workers' size (0: auto)")
    parser.add_argument("--start", type=int, default=64, help="first level (streams); levels double")
    parser.add_argument("--max", type=int, default=4096, help="highest level tried")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per level")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--server-options",
        default="--tpot-per-active-ms 0",
        help="truth server latency model and processes (default: 50 tokens/s per stream however many streams)",
    )
    parser.add_argument("--level-timeout", type=float, default=300.0, help="seconds before a level is given up")
    parser.add_argument("--out", metavar="PATH", help="also write the tables (markdown) here")
    args = parser.parse_args()
    for name in args.protocols.split(","):
        if name not in CLIENTS:
            parser.error(f"--protocols: {name!r} is not one of {', '.join(CLIENTS)}")
    configs = args.configs.split(",")
    for config in configs:
        if config not in ("process", "workers") and not (config.startswith("lambda-") and config[7:].isdigit()):
            parser.error(f"--configs: {config!r} is not process, workers or lambda-MB (e.g. lambda-1024)")
    if args.worker_count <= 0:
        server_processes = 1
        if "--processes" in args.server_options:
            server_processes = int(args.server_options.split("--processes", 1)[1].split()[0].lstrip("="))
        args.worker_count = max(2, len(os.sched_getaffinity(0)) - server_processes)
    header = [
        f"machine: {machine()}",
        f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; truth server: {args.server_options}; "
        f"levels from {args.start} doubling to {args.max}; ramp-up streams/400 s, measured {args.duration:g} s + the "
        f"ramp; loop {args.loop}; "
        f"workers size: {args.worker_count} processes; Lambda CPU limits by {cgroup_interface()}",
        f"goals: TTFT median {GOALS[0]:g} %, ms/token median {GOALS[1]:g} %, tokens/s {GOALS[2]:g} %, no failed "
        "request, not flagged for coalesced first tokens",
    ]
    print("\n".join(header), flush=True)
    process, server = start_server(args.server_options)
    limits: list[Limit] = []
    try:
        for protocol in args.protocols.split(","):
            for config in configs:
                limits.append(find_limit(protocol, config, server, args))
                if args.out:  # so far, in case the run is cut short
                    Path(args.out).write_text("\n".join(report(header, limits)) + "\n")
    finally:
        process.terminate()
        process.wait(timeout=10)
    print("\n".join(report(header, limits)[len(header) :]))
    return 0


def report(header: list[str], limits: list[Limit]) -> list[str]:
    return [*header, "", *table(limits), "", "Every level:", "", *raw_rows(limits)]


if __name__ == "__main__":
    sys.exit(main())
