"""Is the load generator the bottleneck of a level? Its own CPU, its users' lateness, and one verdict.

A client short of CPU does not fail: it reads sockets late (first tokens coalesce with later bytes and read
late, see :func:`benchmark.measure.metrics.coalesced_first_token`) and sends late (its users idle between
requests, so the load it offers is lower than asked). Both are silent in the latency figures, so every level
measures them and says whether the client, not the endpoint, bounded it. The thresholds are here, in one place
(documented in ``benchmark/README.md``, "client-bound"):

- :data:`COALESCED_LIMIT`: share of first tokens read in one piece with later bytes;
- :data:`CPU_BUSY_LIMIT`: the client's CPU over the steady-state window (this process and its worker processes,
  user + system) / the CPUs it can use (:func:`usable_cpus`: its CPU affinity and its cgroup's quota, but no
  more than one per event loop it runs, nor than a cap its caller knows: a Lambda function's vCPU share);
- :data:`SEND_LATENESS_LIMIT`: median send lateness / the median time a virtual user waits on the endpoint (the
  end-to-end time in a closed loop, where lateness lowers the offered load by about that share; the TTFT in an
  open loop, where lateness is inside each TTFT, measured from the scheduled arrival).

CPU accounting (:class:`CpuMonitor`, :func:`tree_cpu_s`) reads Linux ``/proc``; elsewhere there are no samples and
the CPU rule is not applied. Cgroup v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) and v2 (``cpu.max``) are
read for the cgroup of this process named in ``/proc/self/cgroup``, and its ancestors (a parent's quota binds too).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.measure.records import ErrorKind, RequestRecord

# Above this share of coalesced first tokens a level's TTFT may read late.
COALESCED_LIMIT = 0.01
# Above this share of its usable CPUs over the steady-state window, the client is busy enough to read late.
CPU_BUSY_LIMIT = 0.85
# Above this median send lateness, as a share of the median end-to-end time (closed loop) or TTFT (open loop).
SEND_LATENESS_LIMIT = 0.02
# What to change when a level is client-bound.
ADVICE = "add load-generator processes (--workers N --uvloop, at most one per vCPU) or shard the level over machines"
# Threads of this process that are not the client: the local emulator serves demos from a thread of it.
NOT_CLIENT_THREADS = ("llm-emulator",)
SAMPLE_EVERY_S = 0.25


# --- the verdict ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """What one level's verdict is judged on (None: not measured, the rule is not applied)."""

    coalesced_share: float | None = None
    cpu_share: float | None = None  # client CPU in the steady window / (window x usable CPUs)
    usable_cpus: float | None = None
    lateness_p50_ms: float | None = None
    wait_p50_ms: float | None = None  # median e2e (closed loop) or TTFT (open loop)
    open_loop: bool = False


def client_bound_reasons(evidence: Evidence) -> tuple[str, ...]:
    """Each rule the level breaks, in words with its threshold; empty when the client kept up."""
    e = evidence
    reasons: list[str] = []
    if e.coalesced_share is not None and e.coalesced_share > COALESCED_LIMIT:
        reasons.append(
            f"{e.coalesced_share:.1%} of first tokens coalesced with later bytes (limit {COALESCED_LIMIT:.0%}): "
            "TTFT may read late"
        )
    if e.cpu_share is not None and e.cpu_share > CPU_BUSY_LIMIT:
        cpus = "" if e.usable_cpus is None else f" of the {e.usable_cpus:.2g} CPU(s) it can use"
        reasons.append(f"client CPU {e.cpu_share:.0%}{cpus} (limit {CPU_BUSY_LIMIT:.0%})")
    if e.lateness_p50_ms is not None and e.wait_p50_ms:
        share = e.lateness_p50_ms / e.wait_p50_ms
        if share > SEND_LATENESS_LIMIT:
            what = "TTFT" if e.open_loop else "end-to-end time"
            effect = "inside each TTFT" if e.open_loop else "the offered load was lower than asked"
            reasons.append(
                f"requests sent {e.lateness_p50_ms:.1f} ms late at the median, {share:.1%} of the median {what} "
                f"(limit {SEND_LATENESS_LIMIT:.0%}): {effect}"
            )
    return tuple(reasons)


def send_lateness_s(records: Iterable[RequestRecord]) -> list[float]:
    """Closed loop: for each measured request, how long after its user's previous answer ended it was sent.

    A user's first request has no previous answer; a request after a connection failure follows a deliberate
    back-off (:func:`benchmark.measure.failfast.backoff_s`) and is left out.
    """
    by_user: dict[int, list[RequestRecord]] = {}
    for record in records:
        by_user.setdefault(record.user, []).append(record)
    out: list[float] = []
    for user_records in by_user.values():
        ordered = sorted(user_records, key=lambda r: r.start)
        for previous, current in itertools.pairwise(ordered):
            if current.warmup or previous.error is ErrorKind.CONNECTION:
                continue
            out.append(max(0.0, current.start - previous.end))
    return out


# --- the CPUs this process may use ----------------------------------------------------------------------------


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity mask), or all of them where the mask is unknown."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cgroup_quota_cpus(proc: Path = Path("/proc/self"), fs_root: Path = Path("/")) -> float | None:
    """The CPU quota of this process's cgroup and its ancestors, in CPUs (0.58 for 58 ms per 100 ms); None: none.

    Reads the cgroup named in ``/proc/self/cgroup`` under the mount ``/proc/self/mountinfo`` gives for it:
    v2 ``cpu.max`` (``max 100000`` or ``58000 100000``), v1 ``cpu.cfs_quota_us`` (-1: none) over
    ``cpu.cfs_period_us``. ``proc`` and ``fs_root`` let tests point it at a constructed tree.
    """
    try:
        groups = (proc / "cgroup").read_text().splitlines()
        mounts = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in groups:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue  # not a cgroup line: nothing to read
        _, controllers, path = fields
        v2 = controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        for mount_root, mount_point in _cgroup_mounts(mounts, v2=v2):
            relative = os.path.relpath(path, mount_root) if path.startswith(mount_root) else None
            if relative is None or relative.startswith(".."):
                continue
            base = fs_root / mount_point.lstrip("/")
            quotas += _quotas_upwards(base, Path(relative), v2=v2)
    return min(quotas) if quotas else None


def _cgroup_mounts(mountinfo: Sequence[str], *, v2: bool) -> list[tuple[str, str]]:
    """(root inside the hierarchy, mount point) of each cgroup v2 mount, or each v1 mount with the cpu controller."""
    found: list[tuple[str, str]] = []
    for line in mountinfo:
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, options = tail[0], tail[2].split(",")
        if (v2 and fstype == "cgroup2") or (not v2 and fstype == "cgroup" and "cpu" in options):
            found.append((fields[3], fields[4]))
    return found


def _quotas_upwards(base: Path, relative: Path, *, v2: bool) -> list[float]:
    quotas: list[float] = []
    parts = [] if str(relative) == "." else list(relative.parts)
    for depth in range(len(parts), -1, -1):
        directory = base.joinpath(*parts[:depth])
        quota = _read_v2(directory) if v2 else _read_v1(directory)
        if quota is not None:
            quotas.append(quota)
    return quotas


def _read_v2(directory: Path) -> float | None:
    try:
        limit, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) / int(period)


def _read_v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def machine_cpus() -> float:
    """CPUs this process and its children may use together: its affinity, capped by its cgroup's quota."""
    quota = cgroup_quota_cpus()
    return float(affinity_cpus()) if quota is None else min(float(affinity_cpus()), quota)


def usable_cpus(processes: int = 1, cap: float | None = None) -> float:
    """CPUs the client can use: :func:`machine_cpus`, no more than one per event-loop process, nor than ``cap``.

    ``cap``: the CPU time the platform grants where neither the affinity mask nor a cgroup quota shows it. AWS
    Lambda shows small functions 2 vCPUs and documents no cgroup quota, yet grants CPU time in proportion to
    memory (0.58 vCPU at 1,024 MB), so there the caller passes the function's share
    (:attr:`benchmark.aws.contract.LoadTestSizing.vcpus`), or the CPU rule could never fire.
    """
    cpus = min(machine_cpus(), float(max(1, processes)))
    return cpus if cap is None else min(cpus, cap)


# --- CPU accounting ---------------------------------------------------------------------------------------------


def _ticks_per_s() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu_ticks(path: Path) -> int | None:
    """utime + stime (fields 14 and 15 of proc(5) stat) of one process or thread, in clock ticks."""
    try:
        fields = path.read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, from each of its threads' ``children`` file (Linux 3.5+)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return out


def descendants_cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of the live descendants of ``pid`` (default: this process), from ``/proc``."""
    total = 0
    pending = _children(os.getpid() if pid is None else pid)
    while pending:
        child = pending.pop()
        ticks = _stat_cpu_ticks(Path(f"/proc/{child}/stat"))
        if ticks is not None:
            total += ticks
            pending += _children(child)
    return total / _ticks_per_s()


def _not_client_threads_s() -> float:
    """CPU seconds of this process's threads that are not the client (:data:`NOT_CLIENT_THREADS`)."""
    ticks = 0
    for thread in threading.enumerate():
        if thread.name in NOT_CLIENT_THREADS and thread.native_id is not None:
            ticks += _stat_cpu_ticks(Path(f"/proc/self/task/{thread.native_id}/stat")) or 0
    return ticks / _ticks_per_s()


def tree_cpu_s() -> float:
    """CPU seconds of this process (but threads that are not the client) and its live descendants."""
    return time.process_time() - _not_client_threads_s() + descendants_cpu_s()


class CpuMonitor:
    """Samples :func:`tree_cpu_s` (less its own thread's CPU) on ``time.perf_counter()`` while the block runs.

    ``cpu_between(a, b)`` then gives the client's CPU seconds between two instants of the level (interpolated
    between the samples around each edge). No samples where ``/proc`` is missing (not Linux).
    """

    def __init__(self, every_s: float = SAMPLE_EVERY_S) -> None:
        self.samples: list[tuple[float, float]] = []
        self._every_s = every_s
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="client-cpu", daemon=True)

    def __enter__(self) -> CpuMonitor:
        if os.path.isdir("/proc/self/task"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.perf_counter(), tree_cpu_s() - time.thread_time()))
            if self._halt.wait(self._every_s):
                self.samples.append((time.perf_counter(), tree_cpu_s() - time.thread_time()))
                return


def cpu_between(samples: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """CPU seconds spent between ``start`` and ``end`` from (time, cumulative CPU) samples; None outside them."""
    a, b = _cpu_at(samples, start), _cpu_at(samples, end)
    if a is None or b is None:
        return None
    return max(0.0, b - a)


def _cpu_at(samples: Sequence[tuple[float, float]], when: float) -> float | None:
    before = [s for s in samples if s[0] <= when]
    after = [s for s in samples if s[0] >= when]
    if not before or not after:
        return None
    (t0, c0), (t1, c1) = before[-1], after[0]
    return c0 if math.isclose(t1, t0) else c0 + (c1 - c0) * (when - t0) / (t1 - t0)
