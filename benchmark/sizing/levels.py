"""A measured level as sizing sees it: the stored level result plus, when we measured it, every request's numbers.

Goodput needs each request's TTFT, ms/token and end-to-end time (which requests met every limit); the level
record keeps only their percentiles. A sweep therefore writes its own JSON-lines file (schema
:data:`SCHEMA`): one line per level and repeat, the level record under ``result`` and the requests under
``requests``. Results without requests (our plain records, other tools' imports, the 2023 data) still size,
from their percentiles; their goodput is unknown and says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from benchmark.analysis.collect import collect_results
from benchmark.analysis.results import LevelResult, ResultsFileError
from benchmark.measure.metrics import LevelRunLike, ms_per_token, output_tokens
from benchmark.serialize import Codec, JsonShape, dumps, from_data, loads

SCHEMA = "llama2-benchmark/sizing-level/1"
_FIELDS = ("ok", "ttft_ms", "ms_per_token", "e2e_ms", "tokens")
_WINDOW_SLACK_S = 1e-9  # as benchmark.measure.metrics: a request ending this close after the window still counts


@dataclass(frozen=True)
class RequestSample:
    """One measured request: failed ones count against the SLO; successful ones ended inside the window."""

    ok: bool
    ttft_ms: float | None
    ms_per_token: float | None
    e2e_ms: float
    tokens: int | None

    def value(self, metric: str) -> float | None:
        found: float | None = getattr(self, metric)
        return found


def samples_of(run: LevelRunLike) -> tuple[RequestSample, ...]:
    """The requests metrics count: every failed measured request, and successful ones that ended in the window."""
    out: list[RequestSample] = []
    for record in run.records:
        if record.warmup:
            continue
        in_window = run.window_start <= record.end <= run.window_end + _WINDOW_SLACK_S
        if record.ok and not in_window:
            continue
        per_token = ms_per_token(record) if record.ok else None
        out.append(
            RequestSample(
                ok=record.ok,
                ttft_ms=None if record.ttft_s is None else record.ttft_s * 1000.0,
                ms_per_token=None if per_token is None else per_token[0],
                e2e_ms=record.e2e_s * 1000.0,
                tokens=output_tokens(record) if record.ok else None,
            )
        )
    return tuple(out)


def _rows(samples: tuple[RequestSample, ...] | None) -> dict[str, Any] | None:
    """The requests as a table, one row each: a sweep level holds thousands of them."""
    if samples is None:
        return None
    return {"fields": list(_FIELDS), "rows": [[getattr(s, f) for f in _FIELDS] for s in samples]}


def _samples(table: Mapping[str, Any] | None) -> tuple[RequestSample, ...] | None:
    if table is None:
        return None
    names = list(table["fields"])
    return tuple(from_data(RequestSample, dict(zip(names, row, strict=True))) for row in table["rows"])


@dataclass(frozen=True)
class MeasuredLevel:
    result: LevelResult
    samples: tuple[RequestSample, ...] | None = None  # None: only the level's percentiles are known
    repeat: int = 0
    # One line of a sizing file: the schema first, the requests as a table under "requests".
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(
        header={"schema": SCHEMA}, keys={"samples": "requests"}, codecs={"samples": Codec(_rows, _samples)}
    )

    @property
    def load_kind(self) -> str:
        return "request_rate" if self.result.load.get("request_rate") else "concurrency"

    @property
    def load(self) -> float:
        rate = self.result.load.get("request_rate")
        return float(rate) if rate else float(self.result.concurrency)


def append_level(path: str | os.PathLike[str], level: MeasuredLevel) -> None:
    """Append one level and fsync, so a killed sweep keeps every level it finished."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("a", encoding="utf-8") as handle:
        handle.write(dumps(level))
        handle.flush()
        os.fsync(handle.fileno())


def is_sizing_file(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    try:
        return bool(json.loads(first).get("schema") == SCHEMA)
    except (json.JSONDecodeError, AttributeError):
        return False


def read_sizing_file(path: Path) -> list[MeasuredLevel]:
    levels: list[MeasuredLevel] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            levels.append(loads(MeasuredLevel, line))
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as err:
            raise ResultsFileError(str(path), number, "record", line[:60], f"is not a sizing level ({err})") from None
    return levels


def load_levels(locations: Sequence[str], *, price_overrides: Mapping[str, float] | None = None) -> list[MeasuredLevel]:
    """Sizing files keep their requests; anything ``benchmark report`` reads comes in without them."""
    levels: list[MeasuredLevel] = []
    others: list[str] = []
    for location in locations:
        path = Path(location)
        if not location.startswith("s3://") and is_sizing_file(path):
            found = read_sizing_file(path)
            levels += [MeasuredLevel(lv.result.repriced(price_overrides or {}), lv.samples, lv.repeat) for lv in found]
        else:
            others.append(location)
    levels += [MeasuredLevel(result) for result in collect_results(others, price_overrides=price_overrides)]
    return levels


def by_configuration(levels: Iterable[MeasuredLevel]) -> dict[str, list[MeasuredLevel]]:
    grouped: dict[str, list[MeasuredLevel]] = {}
    for level in levels:
        grouped.setdefault(level.result.configuration.key, []).append(level)
    return grouped
