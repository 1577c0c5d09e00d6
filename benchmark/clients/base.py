"""The one interface every client implements, and the pieces they share (no network library imported).

A client turns one prompt into one :class:`RequestRecord`: it never raises for a failed request, it
records the failure with its :class:`ErrorKind`, so that errors are counted and never stop a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import SplitResult, urlsplit, urlunsplit

from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from catalog.errors import ConfigError, Issue

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


DEFAULT_API_KEY_ENV = "BENCHMARK_API_KEY"


def api_key_from_env(variable: str | None) -> str | None:
    """The API key lives only in the environment: a flag value would land in shell history and results.

    ``variable`` None reads :data:`DEFAULT_API_KEY_ENV` when it is set; a variable named explicitly must be set.
    """
    if variable is None:
        return os.environ.get(DEFAULT_API_KEY_ENV) or None
    if not variable.replace("_", "").isalnum() or variable[0].isdigit():
        raise ConfigError([Issue("api_key_env", variable, "must be an environment variable name, not a key")])
    value = os.environ.get(variable)
    if not value:
        raise ConfigError([Issue("api_key_env", variable, "names an environment variable that is unset or empty")])
    return value


def _parts(url: str, field: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError([Issue(field, redact_url(url), "must be an http:// or https:// URL with a host")])
    return parts


def split_credentials(url: str, field: str = "url") -> tuple[str, tuple[str, str] | None]:
    """``http://user:pass@host/`` -> (``http://host/``, (user, pass)); the URL kept never holds a secret."""
    parts = _parts(url, field)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)), (parts.username or "", parts.password or "")


def redact_url(url: str) -> str:
    """The URL as it may be written to results and logs: user, password and query values replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(f"{pair.partition('=')[0]}=***" for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))
