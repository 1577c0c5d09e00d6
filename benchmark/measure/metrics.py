"""Turn one load level's request records into the numbers a deployment is judged by.

Rules (each chosen so the number means what its name says):

- Only measured requests count: warm-up records are dropped. A request is *in the window* when it ended
  within ``[window_start, window_end]``; successful in-window requests feed latency and the
  completed-request throughput.
- ``tokens_per_s`` = tokens of successful measured requests that *arrived* inside the steady-state window
  / its length (see :func:`steady_window`): the ramp-up (every user's cold first request) and the ramp-down
  (users going idle after the deadline) are left out, so the figure is the rate the server sustains at
  this concurrency. Streams count each token at its arrival; a request without token times counts its
  tokens when it completes. Counted, not derived. Token counts come from the server; a streamed request
  without a final count falls back to the number of token events it received.
- ``completed_tokens_per_s`` = tokens of successful in-window requests / window length: the older,
  completion-counted figure, biased low at high concurrency (a request in flight at either edge of the
  window is lost); kept as a labelled comparison column.
- ``requests_per_min`` = successful requests completed per minute in steady state (see
  :func:`steady_requests_per_s`): the steady-state window of tokens/s, opened at the requests' own first
  output (the moment every user has completed its first measured request), so each user's cold first
  request does not count against it; each user's completions are counted between two of its own
  completions that bracket the window (a rate between two events, per user), and the users' rates add
  up. ``completed_requests_per_min`` is the older figure, completions in the load window / its length: it
  opens at the first send, so it reads low by up to one request per user.
- ``coalesced_first_token_share`` = share of successful streamed requests whose first token shares its
  kernel receive stamp with later bytes: its time equals the second token's (or, with one token, the
  end's). One ``recvmsg`` that returns several TCP segments carries the last one's stamp, so such a first
  token, and the TTFT, read late: the client read the socket too late (a load generator short of CPU).
  Above :data:`COALESCED_LIMIT` the level is flagged (``late_first_tokens``); a server that writes its first
  two tokens together also shows here.
- ``ms_per_token`` is per request, the time per output token *after the first*, from the best source
  available (see :class:`TokenTimeSource`); percentiles are over requests.
- ``inter_token_ms`` pools every gap between consecutive streamed tokens (streaming only).
- ``error_rate`` = failed measured requests / all measured requests.
- ``requests_resent`` = measured requests sent a second time because the kept-alive connection they went out
  on closed before any byte of an answer (see :func:`benchmark.wire.connection.round_trip`).
- ``send_lateness_ms``: closed loop, how long after its previous answer ended each virtual user sent its next
  request; open loop, how long after its scheduled arrival each request was handed to the client. ``client_cpu_s``:
  the client's CPU (this process and its workers) inside the steady-state window, ``client_cpus`` the CPUs it could
  use. With the coalesced share they give the verdict ``client_bound`` (rules and thresholds:
  :mod:`benchmark.measure.selfcheck`). A level fanned out over several machines (:mod:`benchmark.aws.shards`) is
  client-bound when any shard was on its own records (``shard_client_bound_reasons``), and its client CPU is the
  busiest shard's over the level's steady window: the share that says whether any client ran short.
- ``derived_tokens_per_s_2023`` reproduces the 2023 benchmark's *derived* throughput,
  users x max_new_tokens x 1000 / mean(end-to-end ms), for comparison only.

Percentile definition and the too-few-samples rule are in :mod:`benchmark.measure.percentiles`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import ClassVar, Protocol

from benchmark.measure.percentiles import Distribution
from benchmark.measure.records import ErrorKind, RequestRecord
from benchmark.measure.selfcheck import (
    ADVICE,
    COALESCED_LIMIT,
    Evidence,
    client_bound_reasons,
    cpu_between,
    send_lateness_s,
)
from benchmark.serialize import JsonShape

# Server-reported per-request time per token (ms), as TGI sends it in the x-time-per-token header.
SERVER_TIME_PER_TOKEN_KEYS = ("x-time-per-token", "time_per_token")
# A request that ends this close after the window end (float noise from the clock) still counts.
_WINDOW_SLACK_S = 1e-9


class TokenTimeSource(StrEnum):
    """Where a request's ms per output token came from, best first."""

    STREAM = "stream"  # (last token time - first token time) / (tokens - 1)
    E2E_MINUS_TTFT = "e2e_minus_ttft"  # (e2e - ttft) / (n - 1), non-streaming with a known TTFT
    SERVER = "server_time_per_token"  # TGI's x-time-per-token (includes prefill, as in the 2023 benchmark)
    E2E_OVER_N = "e2e_over_n"  # e2e / n: includes queueing, prefill and network; an upper bound


class SpecLike(Protocol):
    @property
    def concurrency(self) -> int: ...


class LevelRunLike(Protocol):
    """What metrics need from ``benchmark.measure.loadgen.LevelRun``."""

    @property
    def spec(self) -> SpecLike: ...
    @property
    def window_start(self) -> float: ...
    @property
    def window_end(self) -> float: ...
    @property
    def records(self) -> Sequence[RequestRecord]: ...


def output_tokens(record: RequestRecord) -> int | None:
    """Server-counted generated tokens; for a stream without a final count, the token events received."""
    if record.generated_tokens is not None:
        return record.generated_tokens
    return len(record.token_times) if record.token_times else None


def ms_per_token(record: RequestRecord) -> tuple[float, TokenTimeSource] | None:
    """Time per output token after the first for one successful request, and how it was obtained."""
    if len(record.token_times) >= 2:
        span = record.token_times[-1] - record.token_times[0]
        return span / (len(record.token_times) - 1) * 1000.0, TokenTimeSource.STREAM
    n = output_tokens(record)
    ttft = record.ttft_s
    if ttft is not None and n is not None and n >= 2:
        return (record.e2e_s - ttft) / (n - 1) * 1000.0, TokenTimeSource.E2E_MINUS_TTFT
    for key in SERVER_TIME_PER_TOKEN_KEYS:
        if key in record.server_timings:
            return float(record.server_timings[key]), TokenTimeSource.SERVER
    if n:
        return record.e2e_s / n * 1000.0, TokenTimeSource.E2E_OVER_N
    return None


def steady_window(
    records: Iterable[RequestRecord], first_output: Callable[[RequestRecord], float] | None = None
) -> tuple[float, float] | None:
    """The interval during which every virtual user was inside a measured request cycle.

    It opens when the last user receives the first counted output (``first_output``: by default the first
    token event, else the end; for requests their end) of its first measured request, so nobody is still
    waiting out the cold start or a warm-up request; it closes when the first user finishes its last
    request and goes idle. Outputs are counted in ``(opens, closes]``: the events after the opening one,
    as a rate between two events is measured. None when the two do not overlap (too few requests per
    user to have a steady state).
    """
    by_user: dict[int, list[RequestRecord]] = {}
    for record in records:
        if not record.warmup:
            by_user.setdefault(record.user, []).append(record)
    if not by_user:
        return None
    first = first_output or _first_output
    opens = max(first(min(rs, key=lambda r: r.start)) for rs in by_user.values())
    closes = min(max(r.end for r in rs) for rs in by_user.values())
    return (opens, closes) if closes > opens else None


def _first_output(record: RequestRecord) -> float:
    """When a request's first counted token arrives: its first token event, or its end without any."""
    return record.token_times[0] if record.token_times else record.end


def _end(record: RequestRecord) -> float:
    return record.end


def steady_requests_per_s(records: Iterable[RequestRecord]) -> float | None:
    """Successful requests per second in steady state, the sum of the users' own rates; None without one.

    The window is :func:`steady_window` opened at the requests' first output, their end: from the moment
    every user has completed its first measured request until the first user goes idle. Each user's rate
    is its successful completions in ``(a, b]`` / ``(b - a)``, where ``a`` is its last request end at or
    before the window opens and ``b`` its first at or after the window closes: whole request cycles, so the
    figure is exact for users that each repeat a fixed cycle, in step or not (counting every user's
    completions inside one shared window would lose, at the closing edge, the last completion of each user
    that ends a moment after the first user went idle: a request per user). A user stalled across the
    window's end (a timeout) spans its stall, which lowers its rate as it lowered the throughput.
    """
    measured = [r for r in records if not r.warmup]
    window = steady_window(measured, _end)
    if window is None:
        return None
    opens, closes = window
    by_user: dict[int, list[RequestRecord]] = {}
    for record in measured:
        by_user.setdefault(record.user, []).append(record)
    total = 0.0
    for user_records in by_user.values():
        ends = [r.end for r in user_records]
        a = max(e for e in ends if e <= opens)
        b = min(e for e in ends if e >= closes)
        total += sum(1 for r in user_records if r.ok and a < r.end <= b) / (b - a)
    return total


def coalesced_first_token(record: RequestRecord) -> bool | None:
    """Whether a streamed request's first token shares its kernel stamp with later bytes (None: not streamed).

    Its time equals the second token's, or, with a single token, the end's (the last bytes' receive time).
    """
    if not record.token_times:
        return None
    later = record.token_times[1] if len(record.token_times) > 1 else record.end
    return record.token_times[0] == later


def tokens_between(record: RequestRecord, start: float, end: float) -> float:
    """Server-counted tokens of one request that arrived within ``(start, end]``.

    Each token event carries ``output_tokens / events`` tokens (1 when the server's count matches the
    events); without token times the whole count lands at the request's end.
    """
    n = output_tokens(record)
    if not n:
        return 0.0
    if record.token_times:
        inside = sum(1 for t in record.token_times if start < t <= end)
        return inside * n / len(record.token_times)
    return float(n) if start < record.end <= end else 0.0


@dataclass(frozen=True)
class LevelMetrics:
    """Everything measured at one concurrency level for one configuration."""

    concurrency: int
    # Defaults: what a record written by another tool (or an older version) lacks reads as nothing measured.
    window_s: float = 0.0
    requests_total: int = 0  # measured (non-warm-up) requests
    requests_ok: int = 0  # successful requests that ended inside the window
    requests_failed: int = 0
    errors_by_kind: Mapping[str, int] = field(default_factory=dict)
    error_rate: float | None = None
    output_tokens: int = 0  # server-counted tokens of the successful in-window requests
    tokens_per_s: float | None = None  # steady state: tokens arrived inside the steady window / its length
    requests_per_min: float | None = None
    ms_per_token: Distribution = field(default_factory=Distribution.empty)
    ms_per_token_sources: Mapping[str, int] = field(default_factory=dict)
    inter_token_ms: Distribution = field(default_factory=Distribution.empty)
    ttft_ms: Distribution = field(default_factory=Distribution.empty)
    e2e_ms: Distribution = field(default_factory=Distribution.empty)
    derived_tokens_per_s_2023: float | None = None
    max_new_tokens: int | None = None
    notes: tuple[str, ...] = field(default=())
    completed_tokens_per_s: float | None = None  # output_tokens / window_s (completion-counted, comparison)
    steady_start_s: float | None = None  # the steady window, in seconds from the measurement window's start
    steady_end_s: float | None = None
    requests_resent: int = 0  # measured requests sent twice: their kept-alive connection closed unanswered
    completed_requests_per_min: float | None = None  # requests_ok / window_s x 60 (from the first send, comparison)
    streamed_ok: int = 0  # successful in-window requests with token times (the TTFT's streams)
    coalesced_first_tokens: int = 0  # of those, first tokens stamped with later bytes (see the module docstring)
    open_loop: bool = False  # arrivals on a schedule (request_rate): send lateness is then dispatch lag
    send_lateness_ms: Distribution = field(default_factory=Distribution.empty)
    client_cpu_s: float | None = None  # client CPU seconds inside the steady window (None: not measured)
    client_cpus: float | None = None  # CPUs it could use: affinity, cgroup quota, one per event-loop process
    client_processes: int | None = None  # event-loop processes that ran the level (1: in the runner's process)
    # A fanned-out level: what made any of its shards client-bound on its own records ("shard i of n: ...").
    # Its client_cpu_s / client_cpus / client_processes are then the busiest shard's (benchmark.aws.shards).
    shard_client_bound_reasons: tuple[str, ...] = ()
    # Written for readers of the file, recomputed on reading.
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(
        derived=(
            "coalesced_first_token_share",
            "late_first_tokens",
            "client_cpu_share",
            "client_bound",
            "client_bound_reasons",
        )
    )

    @property
    def client_cpu_share(self) -> float | None:
        """The client's CPU in the steady window / (its length x the CPUs it could use)."""
        window = self.steady_window_s
        if self.client_cpu_s is None or not self.client_cpus or not window:
            return None
        return self.client_cpu_s / (window * self.client_cpus)

    @property
    def client_bound_reasons(self) -> tuple[str, ...]:
        """Each client-bound rule the level breaks (:mod:`benchmark.measure.selfcheck`), with its threshold."""
        wait = self.ttft_ms.median if self.open_loop else self.e2e_ms.median
        evidence = Evidence(
            coalesced_share=self.coalesced_first_token_share,
            cpu_share=self.client_cpu_share,
            usable_cpus=self.client_cpus,
            lateness_p50_ms=self.send_lateness_ms.median,
            wait_p50_ms=wait,
            open_loop=self.open_loop,
        )
        return client_bound_reasons(evidence) + tuple(self.shard_client_bound_reasons)

    @property
    def client_bound(self) -> bool:
        """The verdict: the load generator, not the endpoint, may have bounded this level's figures."""
        return bool(self.client_bound_reasons)

    @property
    def coalesced_first_token_share(self) -> float | None:
        return self.coalesced_first_tokens / self.streamed_ok if self.streamed_ok else None

    @property
    def late_first_tokens(self) -> bool:
        """Flag: more than :data:`COALESCED_LIMIT` of first tokens coalesced, so the TTFT may read late."""
        share = self.coalesced_first_token_share
        return share is not None and share > COALESCED_LIMIT

    @property
    def steady_window_s(self) -> float | None:
        if self.steady_start_s is None or self.steady_end_s is None:
            return None
        return self.steady_end_s - self.steady_start_s

    @property
    def ms_per_token_source(self) -> str:
        """One label for the report: the single source used, or ``mixed``."""
        used = [name for name, count in self.ms_per_token_sources.items() if count]
        return used[0] if len(used) == 1 else ("mixed" if used else "none")


def derived_tokens_per_s_2023(users: int, max_new_tokens: int, e2e_ms: Iterable[float]) -> float | None:
    """The 2023 benchmark's throughput: assumes every request produced max_new_tokens. Comparison only."""
    values = list(e2e_ms)
    if not values:
        return None
    mean = math.fsum(values) / len(values)
    return users * max_new_tokens * 1000.0 / mean if mean > 0 else None


def compute_metrics(run: LevelRunLike, *, max_new_tokens: int | None = None) -> LevelMetrics:
    """Metrics of one LevelRun (see the module docstring for every rule)."""
    window_s = run.window_end - run.window_start
    measured = [r for r in run.records if not r.warmup]
    failed = [r for r in measured if not r.ok]
    ok = [r for r in measured if r.ok and run.window_start <= r.end <= run.window_end + _WINDOW_SLACK_S]
    notes: list[str] = []

    tokens = 0
    uncounted = 0
    for record in ok:
        n = output_tokens(record)
        if n is None:
            uncounted += 1
        else:
            tokens += n
    if uncounted:
        notes.append(f"{uncounted} successful request(s) reported no token count and add 0 tokens to throughput")
    excluded = sum(1 for r in measured if r.ok) - len(ok)
    if excluded:
        notes.append(f"{excluded} successful request(s) ended outside the measurement window and are not counted")

    per_token: list[float] = []
    sources: Counter[str] = Counter()
    for record in ok:
        found = ms_per_token(record)
        if found is not None:
            per_token.append(found[0])
            sources[found[1].value] += 1
    if sources.get(TokenTimeSource.E2E_OVER_N.value):
        notes.append(
            "ms/token for some requests is e2e / tokens (no TTFT or server timing): includes queueing and prefill"
        )

    gaps = [gap * 1000.0 for r in ok for gap in r.inter_token_gaps_s]
    ttfts = [r.ttft_s * 1000.0 for r in ok if r.ttft_s is not None]
    e2es = [r.e2e_s * 1000.0 for r in ok]
    by_kind = Counter(str(r.error.value) for r in failed if r.error is not None)
    has_window = window_s > 0
    completed = tokens / window_s if has_window else None
    steady = steady_window(measured)
    if steady is None:
        notes.append("no steady state (too few requests per user): tokens/s counts completed requests only")
        tokens_per_s = completed
    else:
        arrived = math.fsum(tokens_between(r, *steady) for r in measured if r.ok)
        tokens_per_s = arrived / (steady[1] - steady[0])
    completed_rpm = len(ok) / window_s * 60.0 if has_window else None
    steady_rps = steady_requests_per_s(measured)
    if steady_rps is None:
        notes.append("no steady state for requests (too few per user): requests/min counts from the first send")
        requests_per_min = completed_rpm
    else:
        requests_per_min = steady_rps * 60.0
    streamed = [flag for r in ok if (flag := coalesced_first_token(r)) is not None]
    coalesced = sum(streamed)
    if streamed and coalesced / len(streamed) > COALESCED_LIMIT:
        notes.append(late_first_tokens_note(coalesced / len(streamed)))
    # Read with getattr, so runs without them (stand-ins, other tools) still work: dispatch lags, the client's CPU.
    open_loop = getattr(run.spec, "request_rate", None) is not None
    lateness = list(getattr(run, "dispatch_lag_s", ())) if open_loop else send_lateness_s(measured)
    samples = getattr(run, "cpu_samples", ())
    client_cpu = cpu_between(samples, *steady) if samples and steady is not None else None

    metrics = LevelMetrics(
        concurrency=run.spec.concurrency,
        window_s=window_s,
        requests_total=len(measured),
        requests_ok=len(ok),
        requests_failed=len(failed),
        errors_by_kind={kind.value: by_kind.get(kind.value, 0) for kind in ErrorKind if by_kind.get(kind.value)},
        error_rate=len(failed) / len(measured) if measured else None,
        output_tokens=tokens,
        tokens_per_s=tokens_per_s,
        requests_per_min=requests_per_min,
        ms_per_token=Distribution.of(per_token),
        ms_per_token_sources=dict(sorted(sources.items())),
        inter_token_ms=Distribution.of(gaps),
        ttft_ms=Distribution.of(ttfts),
        e2e_ms=Distribution.of(e2es),
        derived_tokens_per_s_2023=(
            derived_tokens_per_s_2023(run.spec.concurrency, max_new_tokens, e2es) if max_new_tokens else None
        ),
        max_new_tokens=max_new_tokens,
        notes=tuple(notes),
        completed_tokens_per_s=completed,
        steady_start_s=None if steady is None else steady[0] - run.window_start,
        steady_end_s=None if steady is None else steady[1] - run.window_start,
        requests_resent=sum(1 for r in measured if r.resent),
        completed_requests_per_min=completed_rpm,
        streamed_ok=len(streamed),
        coalesced_first_tokens=coalesced,
        open_loop=open_loop,
        send_lateness_ms=Distribution.of(x * 1000.0 for x in lateness),
        client_cpu_s=client_cpu,
        client_cpus=getattr(run, "usable_cpus", None),
        client_processes=getattr(run, "processes", None),
        shard_client_bound_reasons=tuple(getattr(run, "shard_client_bound_reasons", ())),
    )
    return _with_client_note(metrics)


def _with_client_note(metrics: LevelMetrics) -> LevelMetrics:
    """The notes, with what made the level client-bound besides coalesced first tokens over its records (noted
    already), and advice; a shard's reasons are all noted (its coalesced share is over its own records)."""
    shards = metrics.shard_client_bound_reasons
    others = [r for r in metrics.client_bound_reasons if "coalesced" not in r or r in shards]
    if not others:
        return metrics
    return replace(metrics, notes=(*metrics.notes, f"client-bound: {'; '.join(others)}; {ADVICE}"))


def late_first_tokens_note(share: float) -> str:
    """What a flagged level says: why its TTFT may read late, and what to do."""
    return (
        f"TTFT may read late: {share:.1%} of first tokens arrived in one read with later bytes (above "
        f"{COALESCED_LIMIT:.0%}); the load generator read the socket too late: run with --workers N --uvloop"
    )


def headline(metrics: LevelMetrics) -> dict[str, float | int | None]:
    """The few numbers a dashboard or a state-machine output shows."""
    return {
        "concurrency": metrics.concurrency,
        "tokens_per_s": metrics.tokens_per_s,
        "ms_per_token_median": metrics.ms_per_token.median,
        "ms_per_token_p90": metrics.ms_per_token.p90,
        "ttft_ms_median": metrics.ttft_ms.median,
        "e2e_ms_median": metrics.e2e_ms.median,
        "requests_per_min": metrics.requests_per_min,
        "error_rate": metrics.error_rate,
    }
