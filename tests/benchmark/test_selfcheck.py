"""The load generator's self-measurement: the client-bound rules on constructed inputs, the cgroup quota read from
constructed trees and from the kernel's own (where this test may make a cgroup), CPU accounting of a real busy
child process, and what a client-bound level does to the results, the sizing sweep, a recommendation and the
choice of worker processes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.analysis.recommend import DEFAULT_RULES, recommend_one
from benchmark.measure import selfcheck
from benchmark.measure.load import LoadSpec
from benchmark.measure.loadgen import LevelRun
from benchmark.measure.metrics import LevelMetrics, compute_metrics
from benchmark.measure.processes import ASSUMED_STREAM_TOKENS_PER_S, choose, process_capacity_tokens_per_s
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.measure.selfcheck import (
    COALESCED_LIMIT,
    CPU_BUSY_LIMIT,
    SEND_LATENESS_LIMIT,
    CpuMonitor,
    Evidence,
    cgroup_quota_cpus,
    client_bound_reasons,
    cpu_between,
    descendants_cpu_s,
    send_lateness_s,
)
from benchmark.serialize import from_data, to_data
from benchmark.sizing.capacity import SweepSettings, capacity_of, sweep
from benchmark.sizing.levels import MeasuredLevel
from benchmark.sizing.slo import parse_slo
from benchmark.target import client_bound_advice
from tests.benchmark.factories import result
from tests.benchmark.sizing_factories import level

# --- the rules ----------------------------------------------------------------------------------------------------


def test_each_rule_trips_just_above_its_threshold_and_not_at_it() -> None:
    assert client_bound_reasons(Evidence()) == ()
    at = Evidence(
        coalesced_share=COALESCED_LIMIT,
        cpu_share=CPU_BUSY_LIMIT,
        usable_cpus=2.0,
        lateness_p50_ms=SEND_LATENESS_LIMIT * 1000.0,
        wait_p50_ms=1000.0,
    )
    assert client_bound_reasons(at) == ()
    (coalesced,) = client_bound_reasons(replace(at, coalesced_share=COALESCED_LIMIT + 0.001))
    assert "coalesced" in coalesced and "limit 1%" in coalesced
    (cpu,) = client_bound_reasons(replace(at, cpu_share=CPU_BUSY_LIMIT + 0.01))
    assert "client CPU 86% of the 2 CPU(s)" in cpu and f"limit {CPU_BUSY_LIMIT:.0%}" in cpu
    (late,) = client_bound_reasons(replace(at, lateness_p50_ms=21.0))
    assert "21.0 ms late" in late and "end-to-end time" in late and "offered load was lower" in late
    (late_open,) = client_bound_reasons(replace(at, lateness_p50_ms=21.0, open_loop=True))
    assert "median TTFT" in late_open and "inside each TTFT" in late_open


def record(user: int, start: float, end: float, **fields: object) -> RequestRecord:
    return RequestRecord(user=user, start=start, end=end, **fields)  # type: ignore[arg-type]


def test_send_lateness_is_each_users_gap_after_its_previous_answer() -> None:
    records = [
        record(0, 0.0, 1.0, warmup=True),
        record(0, 1.002, 2.0),  # 2 ms after the warm-up's end: counted (a measured request)
        record(0, 2.010, 3.0),  # 10 ms
        record(1, 0.5, 1.5, error=ErrorKind.CONNECTION),
        record(1, 1.6, 2.5),  # after a connection failure: a deliberate back-off, not lateness
        record(1, 2.5005, 3.5),  # 0.5 ms
    ]
    lateness = sorted(send_lateness_s(reversed(records)))  # order of records does not matter
    assert lateness == pytest.approx([0.0005, 0.002, 0.010])


def test_compute_metrics_records_lateness_cpu_and_the_verdict_and_the_file_carries_them() -> None:
    spec = LoadSpec(concurrency=2, duration_s=10.0)
    records = []
    for user in (0, 1):
        t = 0.0
        for _ in range(6):
            records.append(record(user, t, t + 1.0, token_times=[t + 0.1, t + 0.5, t + 1.0], generated_tokens=3))
            t += 1.1  # sent 100 ms after the previous answer ended: 10 % of the 1 s end-to-end time
    run = LevelRun(spec=spec, window_start=0.0, window_end=6.6, records=records)
    run.cpu_samples = [(0.0, 0.0), (3.0, 1.5), (6.6, 3.3)]  # half a CPU throughout
    run.usable_cpus, run.processes = 0.5, 1
    metrics = compute_metrics(run)
    assert metrics.send_lateness_ms.median == pytest.approx(100.0)
    assert metrics.steady_window_s is not None
    assert metrics.client_cpu_s == pytest.approx(0.5 * metrics.steady_window_s)
    assert metrics.client_cpu_share == pytest.approx(1.0)
    assert metrics.client_bound
    assert [r.split(" ")[0] for r in metrics.client_bound_reasons] == ["client", "requests"]
    assert any(note.startswith("client-bound: client CPU 100%") for note in metrics.notes)
    data = to_data(metrics)
    assert data["client_bound"] is True and data["client_cpu_share"] == pytest.approx(1.0)
    assert data["send_lateness_ms"]["max"] == pytest.approx(100.0)
    assert from_data(LevelMetrics, data) == metrics  # derived keys are written, never read back


def test_a_record_written_before_the_self_measurement_reads_as_not_measured() -> None:
    old = to_data(result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 34.0).metrics)
    for key in ("send_lateness_ms", "client_cpu_s", "client_cpus", "client_processes", "client_bound"):
        old.pop(key)
    metrics = from_data(LevelMetrics, old)
    assert metrics.send_lateness_ms.count == 0 and metrics.client_cpu_share is None and not metrics.client_bound


# --- the CPUs there are -------------------------------------------------------------------------------------------


def fake_proc(tmp: Path, cgroup: str, mountinfo: str) -> Path:
    proc = tmp / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text(mountinfo)
    return proc


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


V1_MOUNTS = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
V2_MOUNTS = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_cgroup_v1_quota_of_the_group_and_the_tighter_of_its_ancestors(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "4:memory:/x\n1:cpu:/lambda/fn\n0::/\n", V1_MOUNTS)
    base = tmp_path / "sys/fs/cgroup/cpu"
    write(base / "lambda/fn/cpu.cfs_quota_us", "58000\n")
    write(base / "lambda/fn/cpu.cfs_period_us", "100000\n")
    write(base / "cpu.cfs_quota_us", "-1\n")
    write(base / "cpu.cfs_period_us", "100000\n")
    assert cgroup_quota_cpus(proc, tmp_path) == pytest.approx(0.58)
    write(base / "lambda/cpu.cfs_quota_us", "25000\n")
    write(base / "lambda/cpu.cfs_period_us", "100000\n")
    assert cgroup_quota_cpus(proc, tmp_path) == pytest.approx(0.25)


def test_cgroup_without_a_quota_or_without_files_is_none(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "1:cpu,cpuacct:/\n", V1_MOUNTS.replace("rw,cpu", "rw,cpu,cpuacct"))
    write(tmp_path / "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
    assert cgroup_quota_cpus(proc, tmp_path) is None
    assert cgroup_quota_cpus(tmp_path / "nowhere", tmp_path) is None
    (proc / "cgroup").write_text("garbage\n1:cpu,cpuacct:/\n")
    write(tmp_path / "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "200000\n")
    assert cgroup_quota_cpus(proc, tmp_path) == pytest.approx(2.0)  # the malformed line is passed over


def test_cgroup_v2_cpu_max(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "0::/system.slice/bench.service\n", V2_MOUNTS)
    base = tmp_path / "sys/fs/cgroup"
    write(base / "system.slice/bench.service/cpu.max", "max 100000\n")
    assert cgroup_quota_cpus(proc, tmp_path) is None
    write(base / "system.slice/cpu.max", "150000 100000\n")
    assert cgroup_quota_cpus(proc, tmp_path) == pytest.approx(1.5)


def test_a_container_sees_its_cgroup_as_the_mounts_root(tmp_path: Path) -> None:
    """Inside a container the mount's root is the container's group: the path is taken relative to it."""
    proc = fake_proc(
        tmp_path, "0::/docker/abc\n", V2_MOUNTS.replace(" / /sys/fs/cgroup", " /docker/abc /sys/fs/cgroup")
    )
    write(tmp_path / "sys/fs/cgroup/cpu.max", "50000 100000\n")
    assert cgroup_quota_cpus(proc, tmp_path) == pytest.approx(0.5)


CGROUP_V1 = Path("/sys/fs/cgroup/cpu")


@pytest.mark.skipif(
    not ((CGROUP_V1 / "cpu.cfs_quota_us").exists() and os.access(CGROUP_V1, os.W_OK)),
    reason="needs a writable cgroup v1 cpu hierarchy (root)",
)
def test_the_kernels_own_cgroup_quota_is_read_in_a_child_put_there() -> None:
    group = CGROUP_V1 / f"test-selfcheck-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_quota_us").write_text("58000")
        code = "from benchmark.measure.selfcheck import *; print(cgroup_quota_cpus(), usable_cpus(4))"
        procs = group / "cgroup.procs"
        out = subprocess.run(
            [sys.executable, "-c", code],
            preexec_fn=lambda: procs.write_text(str(os.getpid())),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert [float(x) for x in out] == [0.58, 0.58]
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


# --- CPU accounting of real processes -------------------------------------------------------------------------------

BUSY_CHILD = """
import sys, time
while time.process_time() < 0.4:
    pass
print(time.process_time(), flush=True)
sys.stdin.read()  # stays alive (and counted) until the parent closes stdin
"""


def test_a_busy_child_process_cpu_is_counted_as_the_clients() -> None:
    before = descendants_cpu_s()
    with CpuMonitor(every_s=0.05) as monitor:
        child = subprocess.Popen(
            [sys.executable, "-c", BUSY_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdin is not None
        own = float(child.stdout.readline())  # its own account of its CPU seconds
        time.sleep(0.1)  # at least one sample with the child's CPU
        counted = descendants_cpu_s() - before
        child.stdin.close()
        child.wait()
    assert own >= 0.4
    # Clock ticks are 10 ms; other live children of this process (servers of other tests) may add some.
    assert own - 0.03 <= counted <= own + 0.25
    assert max(cpu for _, cpu in monitor.samples) - monitor.samples[0][1] >= own - 0.03


def test_cpu_between_interpolates_and_is_none_outside_the_samples() -> None:
    samples = [(0.0, 0.0), (1.0, 0.5), (2.0, 1.5)]
    assert cpu_between(samples, 0.5, 1.5) == pytest.approx(1.0 - 0.25)
    assert cpu_between(samples, -1.0, 1.0) is None
    assert cpu_between(samples, 1.0, 3.0) is None


# --- what a client-bound level does ------------------------------------------------------------------------------


def bound(measured: MeasuredLevel) -> MeasuredLevel:
    metrics = replace(measured.result.metrics, streamed_ok=100, coalesced_first_tokens=50)
    return replace(measured, result=replace(measured.result, metrics=metrics))


SLO = parse_slo("ms_per_token.p90<=41")


def test_a_client_bound_failure_is_inconclusive_not_a_failure_of_the_endpoint() -> None:
    levels = [level(8, [20.0] * 20), bound(level(16, [60.0] * 20))]
    capacity = capacity_of(levels, SLO)
    assert (capacity.capacity, capacity.first_failing) == (8, None)
    assert "client-bound at 16 streams: inconclusive, add workers/shards" in capacity.notes
    only = capacity_of([bound(level(4, [60.0] * 20))], SLO)
    assert only.capacity is None and only.reason == "client-bound at 4 streams: inconclusive, add workers/shards"
    unbound = capacity_of([level(8, [20.0] * 20), level(16, [60.0] * 20)], SLO)
    assert (unbound.capacity, unbound.first_failing) == (8, 16)


def test_a_client_bound_pass_counts_and_says_so() -> None:
    capacity = capacity_of([bound(level(8, [20.0] * 20)), level(16, [60.0] * 20)], SLO)
    assert capacity.capacity == 8
    assert any(note.startswith("client-bound at 8 streams but met the SLO") for note in capacity.notes)


def test_the_sweep_turns_back_at_a_client_bound_level_instead_of_climbing() -> None:
    calls: list[int] = []

    def measure(load: int, repeat: int) -> MeasuredLevel:
        calls.append(load)
        made = level(load, [60.0 if load >= 16 else 20.0] * 20, repeat=repeat)
        return bound(made) if load >= 16 else made  # the client gives out where the SLO would too

    capacity = capacity_of(sweep(measure, SLO, SweepSettings(limit=256, repeats=1)), SLO)
    assert max(calls) == 16  # no 32, 64, ...: a higher load would be more client-bound still
    assert capacity.capacity == 15 and capacity.first_failing is None
    assert "client-bound at 16 streams: inconclusive, add workers/shards" in capacity.notes


def test_a_recommendation_resting_on_a_client_bound_level_says_so() -> None:
    winner = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 34.0)
    winner = replace(winner, metrics=replace(winner.metrics, streamed_ok=100, coalesced_first_tokens=5))
    found = recommend_one(DEFAULT_RULES[0], "7b", [winner])
    assert found.winner is winner
    assert found.caveat.startswith("client-bound level") and "5.0% of first tokens" in found.caveat
    assert found.caveat in found.explanation
    clean = recommend_one(DEFAULT_RULES[0], "7b", [result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 34.0)])
    assert clean.caveat == "" and clean.explanation == "best of 1 qualifying"


def test_the_advice_names_the_levels_and_what_to_change() -> None:
    base = LevelMetrics(concurrency=1024, streamed_ok=100, coalesced_first_tokens=40, client_processes=1)
    fine = LevelMetrics(concurrency=20, streamed_ok=100, coalesced_first_tokens=0, client_processes=1)
    assert client_bound_advice([fine]) is None
    cpus = max(1, math.floor(selfcheck.machine_cpus()))
    text = client_bound_advice([fine, base])
    assert text is not None and "client-bound at concurrency 1024" in text and "40.0% of first tokens" in text
    if cpus >= 2:
        assert f"--workers {cpus} --uvloop" in text
    full = client_bound_advice([replace(base, client_processes=cpus)])
    assert full is not None and "measure fewer streams per machine" in full


# --- how many processes -------------------------------------------------------------------------------------------


def test_workers_follow_the_expected_token_rate_up_to_the_cpus() -> None:
    per_process = process_capacity_tokens_per_s("tgi-http")
    assert per_process == pytest.approx(0.5 / 63.5e-6)
    few = choose(concurrency=20, protocol="tgi-http", cpus=16, has_uvloop=True)
    assert (few.workers, few.uvloop, few.short) == (0, True, False)  # 2,000 tokens/s: one process
    many = choose(concurrency=1024, protocol="tgi-http", cpus=2, has_uvloop=True)
    assert many.expected_tokens_per_s == 1024 * ASSUMED_STREAM_TOKENS_PER_S
    assert (many.workers, many.needed, many.short) == (2, 14, True)  # 102,400 tokens/s over 7,874 per process
    assert "may be client-bound" in many.describe()
    measured = choose(concurrency=1024, protocol="tgi-http", cpus=16, stream_tokens_per_s=8.0, has_uvloop=False)
    assert (measured.workers, measured.uvloop) == (2, False)  # 8,192 tokens/s over 7,874 per process
    lambda_sized = choose(concurrency=256, protocol="sagemaker", cpus=0.58, has_uvloop=True)
    assert (lambda_sized.workers, lambda_sized.short) == (0, True)
    assert choose(concurrency=1, protocol="tgi-http", cpus=4, has_uvloop=True).uvloop is False
    assert choose(concurrency=512, protocol="tgi-http", cpus=8, open_loop=True).workers == 0


def test_an_unmeasured_protocol_is_planned_at_the_costliest_measured_cpu_per_token() -> None:
    # A protocol with no measured CPU per token must not be given more capacity than any measured one: planning it
    # high would leave its levels one process short and read the client's lateness as the endpoint's.
    measured = [process_capacity_tokens_per_s(p) for p in ("tgi-http", "openai-chat", "sagemaker")]
    assert process_capacity_tokens_per_s("not-measured") == pytest.approx(min(measured))

    def needed(protocol: str) -> int:
        return choose(concurrency=1024, protocol=protocol, cpus=64.0, has_uvloop=True).needed

    assert needed("not-measured") == max(needed(p) for p in ("tgi-http", "openai-chat", "sagemaker"))


@pytest.mark.parametrize(
    ("affinity", "quota", "processes", "usable"),
    [
        (8, None, 1, 1.0),  # one event loop runs on one CPU at a time, however many the machine has
        (8, None, 3, 3.0),
        (8, None, 16, 8.0),  # no more than the affinity mask allows
        (8, 2.5, 4, 2.5),  # nor more than the cgroup's quota
        (8, 0.58, 1, 0.58),
    ],
)
def test_usable_cpus_are_one_per_event_loop_within_affinity_and_quota(
    monkeypatch: pytest.MonkeyPatch, affinity: int, quota: float | None, processes: int, usable: float
) -> None:
    monkeypatch.setattr(selfcheck, "affinity_cpus", lambda: affinity)
    monkeypatch.setattr(selfcheck, "cgroup_quota_cpus", lambda *a, **k: quota)
    assert selfcheck.usable_cpus(processes) == pytest.approx(usable)


def test_level_runs_carry_the_clients_cpu_samples_and_processes() -> None:
    """A real level in this process against nothing listening: the runner still measures its own CPU."""
    from benchmark.clients import ClientSpec  # noqa: PLC0415
    from benchmark.measure.runner import ProcessOptions, measure_level  # noqa: PLC0415

    spec = LoadSpec(concurrency=2, duration_s=0.6, fail_fast_requests=0, timeout_s=1.0)
    run = measure_level(spec, ClientSpec("tgi-http", "http://127.0.0.1:9"), ProcessOptions(workers=None, uvloop=None))
    assert run.processes == 1 and run.usable_cpus is not None and run.usable_cpus <= selfcheck.affinity_cpus()
    assert run.usable_cpus <= 1.0  # one process, one event loop: one CPU at most, whatever the machine has
    assert len(run.cpu_samples) >= 2
    assert [s[0] for s in run.cpu_samples] == sorted(s[0] for s in run.cpu_samples)


def test_a_cpu_cap_bounds_the_usable_cpus_and_a_level_waits_for_its_start() -> None:
    """Where the platform grants less CPU time than it shows (a Lambda function: its memory's vCPU share, no cgroup
    quota), the caller's cap is what the CPU rule measures against; a shard's level starts at its common start."""
    import time  # noqa: PLC0415

    from benchmark.clients import ClientSpec  # noqa: PLC0415
    from benchmark.measure.runner import ProcessOptions, measure_level, resolve_process  # noqa: PLC0415
    from catalog.errors import ConfigError  # noqa: PLC0415

    assert selfcheck.usable_cpus(4, cap=0.58) == pytest.approx(min(0.58, selfcheck.machine_cpus()))
    assert selfcheck.usable_cpus(1, cap=64.0) == selfcheck.usable_cpus(1)  # a cap above what there is: no change
    spec = LoadSpec(concurrency=2, duration_s=0.4, fail_fast_requests=0, timeout_s=1.0)
    clients = ClientSpec("tgi-http", "http://127.0.0.1:9")
    start_at = time.perf_counter() + 0.3
    run = measure_level(spec, clients, ProcessOptions(workers=0, cpu_cap=0.25), start_at=start_at)
    assert run.usable_cpus == pytest.approx(0.25)
    assert run.records and min(r.start for r in run.records) >= start_at
    assert run.cpu_samples[0][0] < start_at  # the monitor covers the wait
    capped, _ = resolve_process(LoadSpec(concurrency=256), clients, ProcessOptions(workers=None, cpu_cap=0.58))
    assert capped.workers == 0  # the automatic choice counts the capped CPUs: no worker on 0.58 of one
    for bad in (0, -1.0, float("inf"), True, "1"):
        with pytest.raises(ConfigError, match=r"cpu_cap=.*positive number of CPUs"):
            ProcessOptions(cpu_cap=bad)  # type: ignore[arg-type]


def test_the_command_line_chooses_per_level_unless_told() -> None:
    from benchmark.cli import build_parser  # noqa: PLC0415
    from benchmark.clients import ClientSpec  # noqa: PLC0415
    from benchmark.measure.runner import resolve_process  # noqa: PLC0415
    from benchmark.target import process_options  # noqa: PLC0415

    base = ["run", "--target", "tgi", "--url", "http://127.0.0.1:1"]
    auto = process_options(build_parser().parse_args(base))
    assert (auto.workers, auto.uvloop, auto.automatic) == (None, None, True)
    told = process_options(build_parser().parse_args([*base, "--workers", "3", "--no-uvloop"]))
    assert (told.workers, told.uvloop, told.automatic) == (3, False, False)
    spec = LoadSpec(concurrency=1024)
    clients = ClientSpec("tgi-http", "http://127.0.0.1:1")
    chosen, choice = resolve_process(spec, clients, replace(auto, workers=5))  # --workers 5, loop chosen
    assert chosen.workers == 5 and chosen.uvloop == choice.uvloop
    chosen, choice = resolve_process(spec, clients, auto)
    assert chosen.workers == choice.workers <= max(1, selfcheck.affinity_cpus())
