"""Gather results from every place they can live into one set: what ``benchmark report`` and the Lambda read.

A location is an ``s3://bucket/prefix`` (one object per level), a JSON-lines file of our own records,
or a CSV/JSONL file from another tool (:mod:`benchmark.analysis.external`), told apart by the ``schema`` tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from benchmark.analysis.external import Corrections, import_file, is_level_result_jsonl
from benchmark.analysis.results import JsonlResultsStore, LevelResult, ResultsFileError, open_store


def load_location(
    location: str,
    *,
    s3_client: Any = None,
    corrections: Corrections | None = None,
    price_overrides: Mapping[str, float] | None = None,
) -> list[LevelResult]:
    if location.startswith("s3://"):
        return open_store(location, s3_client=s3_client).load()
    path = Path(location)
    if not path.is_file():
        raise ResultsFileError(location, 0, "path", location, "must be an existing results file or s3://bucket/prefix")
    if is_level_result_jsonl(path):
        return JsonlResultsStore(path).load()
    return import_file(path, corrections=corrections, price_overrides=price_overrides)  # priced at import


def collect_results(
    locations: Iterable[str],
    *,
    s3_client: Any = None,
    price_overrides: Mapping[str, float] | None = None,
    corrections: Corrections | None = None,
) -> list[LevelResult]:
    """All results of all locations, repriced with the overrides, in a stable order."""
    results: list[LevelResult] = []
    for location in locations:
        results.extend(
            load_location(location, s3_client=s3_client, corrections=corrections, price_overrides=price_overrides)
        )
    if price_overrides:
        results = [result.repriced(price_overrides) for result in results]
    return sorted(results, key=lambda r: (r.configuration.key, r.concurrency, r.source))
