"""The 2023 benchmark's nine published recommendation rows, recomputed rather than trusted.

The rows go through the same import schema as any other tool's results and are priced from the catalog
(us-west-2, as published). Every departure from what was printed is reported, never silently fixed:

- ``ml.p4d.12xlarge`` does not exist; the text says ml.p4d.24xlarge, so it is mapped with a visible note;
- a printed minutes or $ figure that differs from the recomputed one by more than rounding is flagged
  (the 7B throughput row: 449.94 tokens/s is 37.04 minutes and $4.38 per 1M, not 33.59 and $3.97);
- the printed $/h (1.52, 37.69) are the catalog's 1.515 and 37.688 rounded; costs use the unrounded price.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark.analysis import hf2023
from benchmark.analysis.external import import_rows
from benchmark.analysis.results import LevelResult, ResultsFileError

PUBLISHED_REGION = "us-west-2"
SOURCE = "published 2023"
CORRECTIONS = {
    "ml.p4d.12xlarge": ("ml.p4d.24xlarge", "no such instance exists; the publication's text names ml.p4d.24xlarge"),
}
# Printed figures have two decimals: anything further off than half a cent (plus float noise) is an error.
ROUNDING_TOLERANCE = 0.005 + 1e-9
_COLUMNS = {
    "model": "model",
    "quantization": "quantization",
    "instance": "instance",
    "concurrent_requests": "concurrency",
    "latency_ms_per_token_median": "ms_per_token_median",
    "throughput_tokens_per_s": "tokens_per_s",
}
# The printed figures come from the raw 2023 results, so they mean what those mean.
DEFINITIONS = {
    **{name: text for name, text in hf2023.DEFINITIONS.items() if name in {"tokens/s", "ms/token", "load"}},
    "cost": "recomputed here from the printed tokens/s and the catalog's us-west-2 price; printed errors flagged",
}


@dataclass(frozen=True)
class PublishedRow:
    scenario: str
    line: int
    printed_instance: str
    printed_usd_per_hour: float
    printed_minutes_per_1m: float
    printed_usd_per_1m: float
    result: LevelResult  # recomputed with the catalog price
    flags: tuple[str, ...]  # every difference between what was printed and what is right

    @property
    def minutes_per_1m(self) -> float | None:
        return None if self.result.cost is None else self.result.cost.minutes_per_1m_tokens

    @property
    def usd_per_1m(self) -> float | None:
        return None if self.result.cost is None else self.result.cost.usd_per_1m_tokens


def _printed(row: Mapping[str, str], name: str, location: str, line: int) -> float:
    try:
        return float(row[name])
    except (KeyError, TypeError, ValueError):
        raise ResultsFileError(location, line, name, row.get(name), "must be a number") from None


def _read(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, row


def load_published(path: str | Path) -> list[PublishedRow]:
    """Published rows with costs recomputed from the catalog and each printed error flagged."""
    path = Path(path)
    location = str(path)
    if not path.is_file():
        raise ResultsFileError(location, 0, "path", location, "must be an existing file")
    raw = list(_read(path))
    mapped: list[tuple[int, Mapping[str, Any]]] = [
        (
            line,
            {new: row.get(old) for old, new in _COLUMNS.items()}
            | {"region": PUBLISHED_REGION, "engine": "tgi", "tgi_version": "1.0.3", "source": SOURCE},
        )
        for line, row in raw
    ]
    results = import_rows(mapped, location, corrections=CORRECTIONS, source=SOURCE, definitions=DEFINITIONS)
    published = []
    for (line, row), result in zip(raw, results, strict=True):
        flags = list(result.notes)
        printed_hourly = _printed(row, "on_demand_usd_per_hour_us_west_2", location, line)
        printed_minutes = _printed(row, "minutes_per_1m_tokens", location, line)
        printed_usd = _printed(row, "usd_per_1m_tokens", location, line)
        cost = result.cost
        if cost is not None and abs(printed_hourly - cost.usd_per_hour) > ROUNDING_TOLERANCE:
            flags.append(f"printed ${printed_hourly:.2f}/h, catalog ${cost.usd_per_hour:g}/h")
        if cost is not None and cost.minutes_per_1m_tokens is not None and cost.usd_per_1m_tokens is not None:
            if abs(printed_minutes - cost.minutes_per_1m_tokens) > ROUNDING_TOLERANCE:
                flags.append(
                    f"printed {printed_minutes:.2f} minutes per 1M tokens, recomputed {cost.minutes_per_1m_tokens:.2f}"
                )
            if abs(printed_usd - cost.usd_per_1m_tokens) > ROUNDING_TOLERANCE:
                flags.append(f"printed ${printed_usd:.2f} per 1M tokens, recomputed ${cost.usd_per_1m_tokens:.2f}")
        published.append(
            PublishedRow(
                scenario=row.get("scenario", ""),
                line=line,
                printed_instance=row.get("instance", ""),
                printed_usd_per_hour=printed_hourly,
                printed_minutes_per_1m=printed_minutes,
                printed_usd_per_1m=printed_usd,
                result=replace(result, notes=tuple(flags)),
                flags=tuple(flags),
            )
        )
    return published


def published_results(path: str | Path) -> list[LevelResult]:
    """Just the recomputed results (with their correction notes), ready for the report."""
    return [row.result for row in load_published(path)]
