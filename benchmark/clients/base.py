"""The one interface every client implements, and the pieces they share (no network library imported).

A client turns one prompt into one :class:`RequestRecord`: it never raises for a failed request, it
records the failure with its :class:`ErrorKind`, so that errors are counted and never stop a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from benchmark.prompts import GenerationParams, Prompt
from benchmark.records import ErrorKind, RequestRecord

# Server timing headers kept in ``RequestRecord.server_timings`` (all milliseconds in every TGI version).
# ``x-compute-time`` is left out on purpose: TGI 1.x sent milliseconds, later versions seconds.
TIMING_HEADERS = (
    "x-total-time",
    "x-validation-time",
    "x-queue-time",
    "x-inference-time",
    "x-time-per-token",
    # Ground truth from the local emulator (see benchmark.emulator).
    "x-emulator-ttft-ms",
    "x-emulator-tpot-ms",
    "x-emulator-queue-ms",
)
REQUEST_ID_HEADERS = ("x-amzn-requestid", "x-request-id")


class Client(Protocol):
    """An inference endpoint as the load generator sees it."""

    name: str
    streaming: bool

    async def send(self, prompt: Prompt, params: GenerationParams, *, user: int) -> RequestRecord: ...

    async def aclose(self) -> None: ...


class RequestFailed(Exception):  # noqa: N818 - a control-flow signal carrying the record's error
    """Raised inside a client to end a request with a classified error."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


def status_error_kind(status: int) -> ErrorKind:
    """HTTP status to error kind: 429 is throttling (TGI's "Model is overloaded"), not a generic 4xx."""
    if status == 429:
        return ErrorKind.THROTTLED
    if 400 <= status < 500:
        return ErrorKind.HTTP_4XX
    return ErrorKind.HTTP_5XX


def fail(record: RequestRecord, kind: ErrorKind, detail: str, end: float) -> RequestRecord:
    record.error = kind
    record.error_detail = detail[:500]
    record.end = end
    return record


def read_headers(record: RequestRecord, headers: Mapping[str, str]) -> None:
    """Copy server timings, token counts and the request id from response headers (case-insensitive)."""
    lower = {key.lower(): value for key, value in headers.items()}
    for name in TIMING_HEADERS:
        value = lower.get(name)
        if value is not None:
            try:
                record.server_timings[name] = float(value)
            except ValueError:
                continue
    prompt_tokens = lower.get("x-prompt-tokens")
    if prompt_tokens is not None and prompt_tokens.isdigit():
        record.input_tokens = int(prompt_tokens)
    for name in REQUEST_ID_HEADERS:
        if name in lower:
            record.request_id = lower[name]
            break
