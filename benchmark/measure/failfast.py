"""When a level stops early, as k6 thresholds with ``abortOnFail`` stop a test, and how users back off.

No network or load-generator import: the runner, the CLI and the Lambda catch :class:`LevelAborted`
without needing the HTTP stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmark.measure.records import ErrorKind, RequestRecord

# Back-off of a virtual user after a connection error: first delay, cap (doubling in between).
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 0.5
# Finished requests needed before the error-rate limit is judged (at least the concurrency).
ERROR_RATE_MIN_REQUESTS = 20


class LevelAborted(Exception):  # noqa: N818 - the name the state machine records for a failed level
    """A level stopped early because the target fails; ``reason`` says why, with the last error seen."""

    def __init__(self, reason: str, records: Sequence[RequestRecord] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.records = list(records)

    def within(self, context: str) -> LevelAborted:
        """The same abort with ``context`` (which level, which endpoint) in front of the reason."""
        return LevelAborted(f"{context}: {self.reason}", self.records)


def backoff_s(failures: int) -> float:
    """Delay after the ``failures``-th consecutive connection error of one virtual user."""
    return float(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, failures - 1)))


class FailFast:
    """Watches finished requests (warm-up included) and names the reason to abort once there is one.

    - ``first_requests``: the first this many finished requests all failed, not all by throttling (a
      throttled server is a measurement; a refused connection, a wrong URL, key or model is not). 0: off.
    - ``max_error_rate``: the share of failed requests passed the limit once at least
      ``max(ERROR_RATE_MIN_REQUESTS, concurrency)`` requests finished. None: no limit.
    """

    def __init__(self, concurrency: int, first_requests: int, max_error_rate: float | None) -> None:
        self.first_requests = first_requests
        self.max_error_rate = max_error_rate
        self.min_requests = max(ERROR_RATE_MIN_REQUESTS, concurrency)
        self.finished = self.failed = self.succeeded = self.throttled = 0
        self.reason: str | None = None

    def check(self, record: RequestRecord) -> None:
        self.finished += 1
        if record.ok:
            self.succeeded += 1
            return
        self.failed += 1
        self.throttled += record.error is ErrorKind.THROTTLED
        detail = f"{record.error.value if record.error else 'error'}: {record.error_detail}"
        first = self.first_requests
        if first and self.finished == first and self.succeeded == 0 and self.throttled < first:
            self.reason = f"the first {first} requests all failed; last error: {detail}"
        limit = self.max_error_rate
        rate = self.failed / self.finished
        if self.reason is None and limit is not None and self.finished >= self.min_requests and rate > limit:
            self.reason = (
                f"error rate {rate:.0%} of {self.finished} requests exceeds the limit {limit:.0%}; last error: {detail}"
            )
