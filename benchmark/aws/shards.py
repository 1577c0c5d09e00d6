"""A level fanned out over several load-test Lambdas: each shard's run, its raw records, and their merge.

When a level's expected token rate is more than one load-test Lambda can drive
(:meth:`benchmark.aws.contract.LoadTestSizing.shards`), the state machine runs it as a Map of shards, every one
a load-test Lambda with its share of the virtual users (:func:`benchmark.measure.workers.share`: shares differ
by at most one, users numbered across the level), all starting at one agreed time carried in the event
(:class:`~benchmark.aws.contract.ShardEvent`). Each shard writes its raw per-request records to the results
bucket (:func:`~benchmark.aws.contract.shards_prefix`); once every shard has succeeded, the level's merge step
reads them back, merges them into one :class:`~benchmark.measure.loadgen.LevelRun` and computes the level's
metrics from the union of the records, as if one client had measured them: percentiles over every request,
never averaged percentiles; throughput over the steady-state window common to every user of every shard
(:func:`benchmark.measure.metrics.steady_window` opens when the last user has its first output and closes
when the first user goes idle). A level whose shard failed is never merged: the Map fails, the state machine
records the failure and tears the endpoint down, and no level record exists for it.

The client's self-check: each shard runs through the level runner an unsharded level runs through
(:func:`benchmark.measure.runner.measure_level`: its CPU monitored, its usable CPUs capped at the function's vCPU
share) and stores its CPU samples, usable CPUs, processes and its own client-bound verdict over its own records.
The merged level is client-bound when any shard was (each reason prefixed with its shard), and its client CPU is
the busiest shard's over the level's steady window (:func:`busiest_shard`): one client short of CPU bounds the
level whatever the others did, so the largest share is the one that says whether a client kept up.

Clocks: every shard stamps on its own ``perf_counter`` (``CLOCK_MONOTONIC``, not comparable between machines),
so each converts its times to seconds since the common start on its wall clock (Lambda hosts keep theirs
NTP-synchronised). Per-request figures (TTFT, ms/token) are differences within one shard and do not depend on
it; only the common window's edges and the throughput do, by the clocks' offset (milliseconds, over a window
of tens of seconds).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from benchmark.analysis.results import S3ResultsStore, build_result
from benchmark.aws.contract import (
    SHARD_LATE_S,
    LevelEvent,
    MergeEvent,
    ShardOutcome,
    levels_prefix,
    shards_prefix,
)
from benchmark.aws.levels import (
    benchmark_configuration,
    client_spec,
    read_event,
    record_level,
    run_level,
    variant_name,
)
from benchmark.measure.failfast import LevelAborted
from benchmark.measure.loadgen import LevelRun
from benchmark.measure.metrics import compute_metrics, steady_window
from benchmark.measure.records import RequestRecord
from benchmark.measure.runner import ProcessOptions, describe_load, measure_level
from benchmark.measure.selfcheck import cpu_between
from benchmark.measure.workers import global_user, ramp_offset_s, share
from benchmark.serialize import JsonShape, from_data, to_data
from catalog.errors import ConfigError, Issue


class ShardLate(RuntimeError):  # noqa: N818 - the error name the state machine shows for a failed level
    """A shard started too long after the common start: its users would not overlap the others' as asked."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShardRecords:
    """One shard's raw records, times in seconds since the common start (its wall clock)."""

    index: int
    count: int
    start_epoch_s: float  # the common start
    window_start: float
    window_end: float
    records: list[RequestRecord]
    # The shard's client, as measure_level measured it: (time, cumulative CPU seconds) samples on the same time
    # base as the records, the CPUs it could use and its event-loop processes; then its own verdict, over its own
    # records and steady window (its CPU seconds there and their share of its usable CPUs; the reasons it was
    # client-bound, empty when it kept up).
    cpu_samples: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    usable_cpus: float | None = None
    processes: int | None = None
    client_cpu_s: float | None = None
    client_cpu_share: float | None = None
    client_bound_reasons: tuple[str, ...] = ()
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)

    @property
    def client_bound(self) -> bool:
        return bool(self.client_bound_reasons)


def shard_key(results_prefix: str, level: LevelEvent, index: int, count: int) -> str:
    return (
        f"{shards_prefix(results_prefix, level.run_id)}{level.configuration.id}/"
        f"concurrency-{level.load.concurrency:04d}/shard-{index:02d}-of-{count:02d}.json"
    )


def realtime_offset() -> float:
    """``time.time() - time.perf_counter()``, from the tightest of several bracketed readings."""
    best = (float("inf"), 0.0)
    for _ in range(50):
        before = time.perf_counter()
        wall = time.time()
        after = time.perf_counter()
        best = min(best, (after - before, wall - (before + after) / 2))
    return best[1]


def shift(run: LevelRun, by: float) -> tuple[float, float, list[RequestRecord]]:
    """The run's window and records with every time moved by ``by`` seconds (durations unchanged; its CPU samples:
    :func:`shift_samples`)."""
    records = [
        dataclasses.replace(
            r,
            start=r.start + by,
            end=r.end + by,
            first_token_at=None if r.first_token_at is None else r.first_token_at + by,
            token_times=[t + by for t in r.token_times],
        )
        for r in run.records
    ]
    return run.window_start + by, run.window_end + by, records


def shift_samples(samples: list[tuple[float, float]], by: float) -> list[tuple[float, float]]:
    """CPU samples with their times moved by ``by`` seconds (the CPU seconds unchanged)."""
    return [(at + by, cpu) for at, cpu in samples]


def run_shard(
    event: Mapping[str, Any],
    *,
    bucket: str,
    results_prefix: str,
    region: str,
    s3: Any,
    runtime: Any = None,
    endpoint_url: str | None = None,
    workers: int = 0,
    cpu_cap: float | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Run this shard's share of the level from the common start and store its raw records and its client's
    self-check; returns its :class:`ShardOutcome` for the shard Map's output. Raises :class:`LevelAborted` when
    the target fails fast and :class:`ShardLate` when the function started more than ``SHARD_LATE_S`` after the
    common start. ``workers`` and ``cpu_cap``: as :func:`benchmark.aws.levels.run_level` takes them."""
    level = read_event(event)
    shard = level.shard
    if shard is None:
        raise ConfigError([Issue("shard", None, "is required for a shard of a level")], context="load-test event")
    if level.load.open_loop:
        raise ConfigError(
            [Issue("load.request_rate", level.load.request_rate, "a fanned-out level must be closed-loop (unset)")],
            context="load-test event",
        )
    variant_name(level.configuration)
    start_epoch = shard.start_epoch_s
    late = wall_clock() - start_epoch
    if late > SHARD_LATE_S:
        raise ShardLate(
            f"shard {shard.index} of {shard.count} started {late:.1f} s after the common start "
            f"(at most {SHARD_LATE_S:g} s): its users would not run beside the other shards' as asked"
        )
    spec = share(level.load, shard.index, shard.count)
    clients = client_spec(level, region=region, endpoint_url=endpoint_url, runtime=runtime)
    offset = realtime_offset()
    start_perf = start_epoch - offset + ramp_offset_s(level.load, shard.index)
    process = ProcessOptions(
        workers=min(workers, spec.concurrency) if workers and min(workers, spec.concurrency) > 1 else 0,
        uvloop=False,
        cpu_cap=cpu_cap,
    )
    try:
        run = measure_level(spec, clients, process, start_at=start_perf)
    except LevelAborted as err:
        raise err.within(f"endpoint {level.endpoint_name}, shard {shard.index} of {shard.count}") from None
    for record in run.records:
        record.user = global_user(record.user, shard.index, shard.count)
    own = compute_metrics(run, max_new_tokens=spec.max_new_tokens)  # this shard's verdict, on its own records
    window_start, window_end, records = shift(run, offset - start_epoch)
    body = ShardRecords(
        index=shard.index,
        count=shard.count,
        start_epoch_s=start_epoch,
        window_start=window_start,
        window_end=window_end,
        records=records,
        cpu_samples=shift_samples(run.cpu_samples, offset - start_epoch),
        usable_cpus=run.usable_cpus,
        processes=run.processes,
        client_cpu_s=own.client_cpu_s,
        client_cpu_share=own.client_cpu_share,
        client_bound_reasons=own.client_bound_reasons,
    )
    key = shard_key(results_prefix, level, shard.index, shard.count)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(to_data(body), separators=(",", ":")).encode(),
        ContentType="application/json",
    )
    return dict(to_data(ShardOutcome(index=shard.index, count=shard.count, key=key)))


def read_merge_event(event: Mapping[str, Any], results_prefix: str) -> MergeEvent:
    """The merge step's event, checked: one outcome per shard, each at the key its shard of this level writes
    (:func:`shard_key`), so no other level's (nor any other) object is read."""
    try:
        merge = from_data(MergeEvent, event)
    except ConfigError as err:
        raise ConfigError(err.issues, context="merge event") from None
    level, shards = merge.level, merge.shards
    issues = []
    counts = {s.count for s in shards}
    if len(counts) != 1 or sorted(s.index for s in shards) != list(range(len(shards))) or counts != {len(shards)}:
        found = [(s.index, s.count) for s in shards]
        issues.append(Issue("shards", found, "must be one outcome per shard, indices 0..count-1, one count"))
    expected = {s.key: shard_key(results_prefix, level, s.index, s.count) for s in shards}
    elsewhere = [key for key, own in expected.items() if key != own]
    if elsewhere:
        wanted = ", ".join(expected[key] for key in elsewhere)
        issues.append(Issue("shards.key", elsewhere, f"must each be its shard's key of this level: {wanted}"))
    if level.shard is not None:
        issues.append(Issue("level.shard", level.shard.index, "the merge is of the whole level: no shard"))
    if issues:
        raise ConfigError(issues, context="merge event")
    return merge


def merge_runs(level: LevelEvent, parts: list[ShardRecords]) -> LevelRun:
    """One run of the whole level from its shards' records (all on the common start's time base), with the
    busiest shard's CPU samples, usable CPUs and processes (:func:`busiest_shard`) and every shard's client-bound
    reasons, prefixed with its shard."""
    ordered = sorted(parts, key=lambda p: p.index)
    run = LevelRun(
        spec=level.load,
        window_start=min(p.window_start for p in ordered),
        window_end=max(p.window_end for p in ordered),
        records=[record for part in ordered for record in part.records],
    )
    busiest = busiest_shard(ordered, steady_window(run.measured))
    if busiest is not None:
        run.cpu_samples = list(busiest.cpu_samples)
        run.usable_cpus = busiest.usable_cpus
        run.processes = busiest.processes
    run.shard_client_bound_reasons = [
        f"shard {p.index} of {p.count}: {reason}" for p in ordered for reason in p.client_bound_reasons
    ]
    return run


def busiest_shard(parts: list[ShardRecords], steady: tuple[float, float] | None) -> ShardRecords | None:
    """The shard whose client used the largest share of its usable CPUs over the level's steady window (its own
    share where the window or its samples do not cover it); None when no shard measured its CPU."""
    shares: list[tuple[float, int, ShardRecords]] = []
    for part in parts:
        share_ = part.client_cpu_share
        if steady is not None and part.usable_cpus:
            cpu = cpu_between(part.cpu_samples, *steady)
            if cpu is not None:
                share_ = cpu / ((steady[1] - steady[0]) * part.usable_cpus)
        if share_ is not None:
            shares.append((share_, -part.index, part))
    return max(shares, key=lambda s: s[:2])[2] if shares else None


def merge_level(
    event: Mapping[str, Any],
    *,
    bucket: str,
    results_prefix: str,
    region: str,
    s3: Any,
    cloudwatch: Any,
    settle_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Merge every shard of a level into its record (as :func:`run_level` stores an unsharded one), with the
    endpoint's utilisation; the same summary as an unsharded level's."""
    merge = read_merge_event(event, results_prefix)
    level = merge.level
    parts = []
    for outcome in merge.shards:
        try:
            body = s3.get_object(Bucket=bucket, Key=outcome.key)["Body"].read()
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "?")
            what = f"cannot read shard {outcome.index}'s records from bucket {bucket}: {code}"
            raise ConfigError([Issue("shards.key", outcome.key, what)], context="merge event") from None
        try:
            part = from_data(ShardRecords, json.loads(body))
        except (ConfigError, ValueError) as err:
            raise ConfigError([Issue("shards.key", outcome.key, f"unreadable shard records: {err}")]) from None
        if (part.index, part.count) != (outcome.index, outcome.count):
            raise ConfigError([Issue("shards.key", outcome.key, f"holds shard {part.index} of {part.count}")])
        parts.append(part)
    starts = {p.start_epoch_s for p in parts}
    if len(starts) != 1:
        raise ConfigError([Issue("shards", sorted(starts), "every shard must share one common start")])
    run = merge_runs(level, parts)
    configuration = benchmark_configuration(level.configuration, region=region)
    start_epoch = starts.pop()
    last = max([run.window_end, *(r.end for r in run.records)])
    metrics = compute_metrics(run, max_new_tokens=level.load.max_new_tokens)
    notes = [f"fanned out over {len(parts)} load-test Lambdas from one common start; their records merged"]
    busiest = busiest_shard(parts, steady_window(run.measured))
    if busiest is not None and metrics.client_cpus:
        notes.append(f"client CPU: shard {busiest.index}'s, the busiest of the {len(parts)} shards' clients")
    result = build_result(
        configuration,
        describe_load(level.load, target=f"sagemaker:{level.endpoint_name}"),
        metrics,
        started_at=_iso(start_epoch),
        finished_at=_iso(start_epoch + last),
        notes=notes,
    )
    store = S3ResultsStore(bucket, levels_prefix(results_prefix, level.run_id), s3)
    store.append(result)
    return record_level(
        result,
        level,
        store=store,
        bucket=bucket,
        configuration=configuration,
        cloudwatch=cloudwatch,
        settle_s=settle_s,
        sleep=sleep,
    )


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat()


def handle(
    event: Mapping[str, Any],
    *,
    bucket: str,
    results_prefix: str,
    region: str,
    s3: Any,
    cloudwatch: Any,
    endpoint_url: str | None = None,
    settle_s: float = 0.0,
    workers: int = 0,
    cpu_cap: float | None = None,
) -> dict[str, Any]:
    """What the load-test Lambda was asked for: a whole level, one shard of a level, or the merge of a level.
    ``workers`` and ``cpu_cap``: the function's worker processes and vCPU share (``LoadTestSizing``)."""
    where = {"bucket": bucket, "results_prefix": results_prefix, "region": region, "s3": s3}
    if "shards" in event and "level" in event:
        return merge_level(event, **where, cloudwatch=cloudwatch, settle_s=settle_s)
    if event.get("shard") is not None:
        return run_shard(event, **where, endpoint_url=endpoint_url, workers=workers, cpu_cap=cpu_cap)
    return run_level(
        event,
        **where,
        cloudwatch=cloudwatch,
        endpoint_url=endpoint_url,
        settle_s=settle_s,
        workers=workers,
        cpu_cap=cpu_cap,
    )
