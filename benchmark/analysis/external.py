"""Results measured by other tools (CSV or JSON lines), brought in so they can be priced and compared.

Schema (also in ``benchmark/README.md``); one row per (configuration, concurrency):

required: model, quantization, instance, concurrency, ms_per_token_median, tokens_per_s
optional: region, engine (tgi, the default, or vllm), tgi_version, vllm_version, label, usd_per_hour,
          ms_per_token_p90, ttft_ms_median, e2e_ms_median, error_rate, requests, max_new_tokens, source

Every value is checked; the first bad one raises :class:`~benchmark.analysis.results.ResultsFileError` naming the
file, the line and the field. Known faults in a source can be mapped explicitly with ``corrections``
(instance name -> (replacement, reason)); each use leaves a visible note on the row, never a silent fix.

The 2023 benchmark's raw CSV (``results/sagemaker.csv``) is recognised by its header and imported by
:mod:`benchmark.analysis.hf2023` with its own definitions. Prices: ``--price-override`` first, then the file's
``usd_per_hour``, then the catalog.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from benchmark.analysis import hf2023
from benchmark.analysis.configuration import DEFAULT_TGI_VERSION, BenchmarkConfiguration
from benchmark.analysis.cost import estimate, import_price
from benchmark.analysis.headroom import headroom
from benchmark.analysis.results import LevelResult, ResultsFileError, tool_version, utc_now
from benchmark.measure.metrics import LevelMetrics
from benchmark.measure.percentiles import Distribution
from catalog import DEFAULT_REGION
from catalog.engines import DEFAULT_ENGINE
from catalog.errors import ConfigError

REQUIRED = ("model", "quantization", "instance", "concurrency", "ms_per_token_median", "tokens_per_s")
Corrections = Mapping[str, tuple[str, str]]  # instance as written -> (instance to use, why)
# The schema says what each figure is, not how the source tool measured it: the report must say so.
DEFINITIONS: Mapping[str, str] = {
    "all figures": "as the source tool reported them; how it measured them was not recorded with the file",
}


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def _rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    location = str(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
            if missing:
                raise ResultsFileError(location, 1, missing[0], None, f"column is required; header needs {REQUIRED}")
            for row in reader:
                if None in row:
                    raise ResultsFileError(
                        location, reader.line_num, "row", row[None], "has more cells than the header"
                    )
                yield reader.line_num, row
        return
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise ResultsFileError(
                location, number, "json", line[:60], f"must be one JSON object ({err.msg})"
            ) from None
        if not isinstance(data, dict):
            raise ResultsFileError(location, number, "record", line[:60], "must be a JSON object")
        yield number, data


def _model_name(value: str) -> str:
    """``Llama 2 7B`` / ``llama-2-13b`` / ``70B`` -> the catalog's size."""
    return re.sub(r"^llama[\s_-]*2[\s_-]*", "", value.strip().lower())


class _Row:
    """Typed access to one row; every failure names the location and field."""

    def __init__(self, data: Mapping[str, Any], location: str, line: int) -> None:
        self.data = data
        self.location = location
        self.line = line

    def fail(self, name: str, value: object, allowed: str) -> ResultsFileError:
        return ResultsFileError(self.location, self.line, name, value, allowed)

    def text(self, name: str, default: str | None = None) -> str:
        value = self.data.get(name)
        if value is None or str(value).strip() == "":
            if default is None:
                raise self.fail(name, value, "is required")
            return default
        return str(value).strip()

    def number(self, name: str, *, required: bool = False, low: float = 0.0, high: float = math.inf) -> float | None:
        value = self.data.get(name)
        if value is None or str(value).strip() == "":
            if required:
                raise self.fail(name, value, "is required")
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(name, value, "must be a number") from None
        if not (math.isfinite(number) and low <= number <= high):
            allowed = f">= {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
            raise self.fail(name, value, f"must be a number {allowed}")
        return number

    def integer(self, name: str, *, required: bool = False, low: int = 0) -> int | None:
        value = self.data.get(name)
        if value is None or str(value).strip() == "":
            if required:
                raise self.fail(name, value, "is required")
            return None
        text = str(value).strip()
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", text) or int(text) < low:
            raise self.fail(name, value, f"must be an integer >= {low}")
        return int(text)


def import_file(
    path: str | Path,
    *,
    corrections: Corrections | None = None,
    default_region: str | None = None,
    source: str | None = None,
    price_overrides: Mapping[str, float] | None = None,
) -> list[LevelResult]:
    """Every row of an external results file as a LevelResult (the 2023 raw CSV is recognised and converted).

    ``default_region`` applies to rows that name none (default: us-east-1; us-west-2 for the 2023 file).
    """
    path = Path(path)
    if not path.is_file():
        raise ResultsFileError(str(path), 0, "path", str(path), "must be an existing file")
    if path.suffix.lower() == ".csv" and hf2023.is_hf2023(_csv_header(path)):
        return hf2023.import_2023(
            path, region=default_region, price_overrides=price_overrides, source=source or hf2023.SOURCE
        )
    return import_rows(
        _rows(path),
        str(path),
        corrections=corrections,
        default_region=default_region or DEFAULT_REGION,
        source=source or path.name,
        price_overrides=price_overrides,
    )


def import_rows(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    location: str,
    *,
    corrections: Corrections | None = None,
    default_region: str = DEFAULT_REGION,
    source: str,
    price_overrides: Mapping[str, float] | None = None,
    definitions: Mapping[str, str] = DEFINITIONS,
) -> list[LevelResult]:
    """(line number, row) pairs already read from ``location``, in the import schema."""
    return [
        _import_row(_Row(data, location, line), corrections or {}, default_region, source, price_overrides, definitions)
        for line, data in rows
    ]


def _import_row(  # noqa: PLR0917  (one row plus the import's settings)
    row: _Row,
    corrections: Corrections,
    default_region: str,
    source: str,
    price_overrides: Mapping[str, float] | None,
    definitions: Mapping[str, str],
) -> LevelResult:
    notes: list[str] = []
    instance = row.text("instance")
    if instance in corrections:
        replacement, reason = corrections[instance]
        notes.append(f"instance corrected: {instance} -> {replacement} ({reason})")
        instance = replacement
    try:
        configuration = BenchmarkConfiguration(
            model=_model_name(row.text("model")),
            quantization=row.text("quantization"),
            instance_type=instance,
            engine=row.text("engine", DEFAULT_ENGINE),
            tgi_version=row.text("tgi_version", DEFAULT_TGI_VERSION),
            vllm_version=str(row.data.get("vllm_version") or "").strip() or None,
            region=row.text("region", default_region),
            label=row.text("label", ""),
        )
    except ConfigError as err:
        issue = err.issues[0]
        name = {"instance_type": "instance"}.get(issue.field, issue.field)
        raise row.fail(name, issue.value, issue.allowed) from None

    concurrency = row.integer("concurrency", required=True, low=1)
    median = row.number("ms_per_token_median", required=True)
    tokens_per_s = row.number("tokens_per_s", required=True)
    requests = row.integer("requests")
    max_new_tokens = row.integer("max_new_tokens", low=1)
    assert concurrency is not None and median is not None  # required=True

    usd = row.number("usd_per_hour")
    if usd is not None and usd <= 0:
        raise row.fail("usd_per_hour", row.data.get("usd_per_hour"), "must be a positive number of USD per hour")
    price = import_price(
        configuration.instance_type,
        configuration.region,
        price_overrides,
        row.fail,
        file_usd_per_hour=usd,
        file_source=source,
    )

    def point(name: str) -> Distribution:
        value = row.number(name)
        return Distribution(median=value) if value is not None else Distribution(unsupported=("median",))

    p90 = row.number("ms_per_token_p90")
    metrics = LevelMetrics(
        concurrency=concurrency,
        window_s=0.0,
        requests_total=requests or 0,
        requests_ok=0,
        requests_failed=0,
        errors_by_kind={},
        error_rate=row.number("error_rate", high=1.0),
        output_tokens=0,
        tokens_per_s=tokens_per_s,
        requests_per_min=None,
        ms_per_token=Distribution(median=median, p90=p90, count=requests or 0),
        ms_per_token_sources={"imported": requests or 1},
        inter_token_ms=Distribution(),
        ttft_ms=point("ttft_ms_median"),
        e2e_ms=point("e2e_ms_median"),
        derived_tokens_per_s_2023=None,
        max_new_tokens=max_new_tokens,
        notes=("imported: percentiles and sample counts as reported by the source tool",),
    )
    now = utc_now()
    return LevelResult(
        configuration=configuration,
        load={"concurrency": concurrency, "max_new_tokens": max_new_tokens, "target": source},
        metrics=metrics,
        cost=estimate(tokens_per_s, price),
        headroom=headroom(configuration, median),
        started_at=now,
        finished_at=now,
        tool_version=tool_version(),
        source=row.text("source", source),
        notes=tuple(notes),
        definitions=definitions,
    )


def is_level_result_jsonl(path: Path) -> bool:
    """True when the first non-blank line is one of our own records (it carries the schema tag)."""
    if path.suffix.lower() == ".csv":
        return False
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    return True  # let the strict reader report the line
                return isinstance(data, dict) and "schema" in data
    return True
