"""What the load generator records about each request: the raw material every metric is computed from.

Times are seconds from ``time.perf_counter()`` in the measuring process, so they are only comparable
within one run. Token counts come from the server (TGI ``details.generated_tokens``, OpenAI ``usage``),
never from re-tokenizing the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ErrorKind(StrEnum):
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    THROTTLED = "throttled"  # HTTP 429 or SageMaker ThrottlingException
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset or unresolvable before any response: nothing reached the server
    DROPPED_STREAM = "dropped_stream"  # connection closed before the final event
    MALFORMED_FRAME = "malformed_frame"  # bad event-stream CRC/prelude, bad SSE JSON
    CLIENT = "client"  # anything else raised on our side
    REDIRECT = "redirect"  # HTTP 3xx: recorded with its status and Location, never followed


@dataclass
class RequestRecord:
    """One request as seen by a virtual user."""

    user: int
    start: float
    end: float
    input_tokens: int | None = None  # from the server when it reports it (details.prefill or usage.prompt_tokens)
    generated_tokens: int | None = None  # from the server: details.generated_tokens / usage.completion_tokens
    first_token_at: float | None = None  # absolute time of the first generated token (streaming only)
    token_times: list[float] = field(default_factory=list)  # absolute arrival time of each token (streaming)
    server_timings: dict[str, float] = field(default_factory=dict)  # e.g. x-time-per-token, x-queue-time (ms)
    error: ErrorKind | None = None
    error_detail: str = ""
    warmup: bool = False
    request_id: str | None = None  # the server's id (x-amzn-RequestId, x-request-id): joins server-side logs
    prompt_id: str | None = None
    # Sent a second time, on a new connection, after the kept-alive connection it went out on closed before
    # any byte of an answer (the server never took it); ``start`` is the second send. See wire.round_trip.
    resent: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def e2e_s(self) -> float:
        return self.end - self.start

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.start

    @property
    def inter_token_gaps_s(self) -> list[float]:
        """Gaps between consecutive tokens after the first: decode speed without prefill and queueing."""
        return [b - a for a, b in zip(self.token_times, self.token_times[1:], strict=False)]
