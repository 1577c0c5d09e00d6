"""One durable record per (configuration, concurrency), and where records are kept.

A level's record is written the moment the level finishes, so a crash, a Lambda timeout or a Ctrl-C
loses at most the level in flight, and a rerun skips every level already on disk (resume):

- a local path is a JSON-lines file, appended with flush + fsync;
- ``s3://bucket/prefix`` holds one object per level (S3 cannot append), read back as one set.

Records from other tools come in through :mod:`benchmark.analysis.external`; the schema is in ``benchmark/README.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.cost import CostEstimate, estimate, price_for
from benchmark.analysis.headroom import Headroom, headroom
from benchmark.measure.metrics import LevelMetrics
from benchmark.serialize import JsonShape, dumps, from_data
from catalog.errors import ConfigError, Issue

SCHEMA = "llama2-benchmark/level-result/1"
TOOL_NAME = "llama2-sagemaker-benchmark"
MEASURED = "measured"
NO_INSTANCE_NOTE = "no instance given: cost not computed"


def tool_version() -> str:
    try:
        return metadata.version("llama2-sagemaker")
    except metadata.PackageNotFoundError:
        return "0.1.0+source"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultsFileError(ConfigError):
    """A results file that cannot be read: names the file, the line and the field."""

    def __init__(self, location: str, line: int, field_name: str, value: object, allowed: str) -> None:
        self.location = location
        self.line = line
        where = f"{location}:{line}" if line > 0 else location
        super().__init__([Issue(f"{where}: {field_name}", value, allowed)], context="results file")


LevelKey = tuple[str, int]  # (configuration key, concurrency)


@dataclass(frozen=True)
class LevelResult:
    """Configuration, load, metrics, cost and headroom of one level, with when and by what it was made."""

    configuration: BenchmarkConfiguration
    load: Mapping[str, Any]  # the LoadSpec plus max_new_tokens, target and dataset
    metrics: LevelMetrics
    cost: CostEstimate | None
    headroom: Headroom | None  # None without an instance type (no GPU to bound ms/token)
    started_at: str
    finished_at: str
    tool_version: str
    source: str = MEASURED  # "measured", or the tool/file an imported row came from
    utilization: Mapping[str, float] | None = None  # CloudWatch GPU/GPU memory/CPU/memory %, added later
    notes: tuple[str, ...] = field(default=())
    # What an imported row's figures mean where they differ from our method (metric -> definition); empty
    # for measured rows, whose definitions are the report's Method section.
    definitions: Mapping[str, str] = field(default_factory=dict)
    # The record as stored: the schema first (checked on reading), the tool and the configuration's key beside
    # the fields for readers of the file (recomputed, never read).
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(header={"schema": SCHEMA}, derived=("tool", "configuration_key"))

    @property
    def tool(self) -> str:
        return TOOL_NAME

    @property
    def configuration_key(self) -> str:
        return self.configuration.key

    @property
    def concurrency(self) -> int:
        return self.metrics.concurrency

    @property
    def level_key(self) -> LevelKey:
        return (self.configuration.key, self.concurrency)

    @property
    def measured(self) -> bool:
        return self.source == MEASURED

    def with_utilization(self, utilization: Mapping[str, float]) -> LevelResult:
        return replace(self, utilization=dict(utilization))

    def repriced(self, overrides: Mapping[str, float]) -> LevelResult:
        """Cost recomputed with a user price for this instance; unchanged when no override names it."""
        if self.configuration.instance_type not in overrides:
            return self
        price = price_for(self.configuration.instance_type, self.configuration.region, overrides)
        return replace(self, cost=estimate(self.metrics.tokens_per_s, price))


def build_result(
    configuration: BenchmarkConfiguration,
    load: Mapping[str, Any],
    metrics: LevelMetrics,
    *,
    started_at: str,
    finished_at: str | None = None,
    price_overrides: Mapping[str, float] | None = None,
    source: str = MEASURED,
    notes: Iterable[str] = (),
) -> LevelResult:
    """Attach cost and headroom to measured metrics. No instance or no catalog price: cost empty, with a note."""
    extra = list(notes)
    cost: CostEstimate | None = None
    if not configuration.has_instance:
        extra.append(NO_INSTANCE_NOTE)
    else:
        try:
            price = price_for(configuration.instance_type, configuration.region, price_overrides)
            cost = estimate(metrics.tokens_per_s, price)
        except ConfigError as err:
            extra.append(f"no cost: {'; '.join(str(i) for i in err.issues)}")
    return LevelResult(
        configuration=configuration,
        load=dict(load),
        metrics=metrics,
        cost=cost,
        headroom=headroom(configuration, metrics.ms_per_token.median),
        started_at=started_at,
        finished_at=finished_at or utc_now(),
        tool_version=tool_version(),
        source=source,
        notes=tuple(extra),
    )


def parse_record(text: str, location: str, line: int) -> LevelResult:
    """One stored record, or a ResultsFileError naming the file, line and offending field."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultsFileError(location, line, "json", text[:60], f"must be one JSON object ({err.msg})") from None
    if not isinstance(data, dict):
        raise ResultsFileError(location, line, "record", text[:60], "must be a JSON object")
    if data.get("schema") != SCHEMA:
        raise ResultsFileError(location, line, "schema", data.get("schema"), f"must be {SCHEMA}")
    try:
        return from_data(LevelResult, data)
    except ConfigError as err:
        issue = err.issues[0]
        raise ResultsFileError(location, line, issue.field, issue.value, issue.allowed) from None
    except (TypeError, ValueError, AttributeError) as err:
        raise ResultsFileError(location, line, "record", text[:60], f"is not a valid level result ({err})") from None


class ResultsStore(Protocol):
    """Where level results go; the runner, the CLI and the Lambda only see this."""

    @property
    def location(self) -> str: ...
    def append(self, result: LevelResult) -> None: ...
    def load(self) -> list[LevelResult]: ...


def finished_levels(store: ResultsStore) -> set[LevelKey]:
    """Levels already recorded (measured ones only): a rerun skips these."""
    return {result.level_key for result in store.load() if result.measured}


class JsonlResultsStore:
    """A local JSON-lines file, one record per line, each fsynced before the next level starts."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def location(self) -> str:
        return str(self.path)

    def append(self, result: LevelResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    # A run killed mid-write left a partial record: it never finished, so drop it.
                    handle.truncate(self.path.read_bytes().rfind(b"\n") + 1)
            handle.write(dumps(result).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def load(self) -> list[LevelResult]:
        if not self.path.exists():
            return []
        *complete, tail = self.path.read_text(encoding="utf-8").split("\n")
        results = [
            parse_record(line, self.location, number) for number, line in enumerate(complete, start=1) if line.strip()
        ]
        if tail.strip():  # no newline after it: complete only if it parses, else an interrupted write
            with contextlib.suppress(ResultsFileError):
                results.append(parse_record(tail, self.location, len(complete) + 1))
        return results


class S3ResultsStore:
    """``s3://bucket/prefix``: one object per level, named after its configuration key and concurrency."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.client = client

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def object_key(self, key: LevelKey) -> str:
        configuration_key, concurrency = key
        return f"{self.prefix}{quote(configuration_key, safe='')}/concurrency-{concurrency:04d}.json"

    def append(self, result: LevelResult) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.object_key(result.level_key),
            Body=dumps(result).encode("utf-8"),
            ContentType="application/json",
        )

    def load(self) -> list[LevelResult]:
        results: list[LevelResult] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if not key.endswith(".json"):
                    continue
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8")
                results.append(parse_record(body.strip(), f"s3://{self.bucket}/{key}", 1))
        return sorted(results, key=lambda r: r.level_key)


def split_s3_url(url: str) -> tuple[str, str]:
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError([Issue("results", url, "must be a local path or s3://bucket/prefix")])
    return bucket, prefix


def open_store(location: str, *, s3_client: Any = None) -> ResultsStore:
    """A store for a local path or an ``s3://bucket/prefix`` URL (boto3 client created when not given)."""
    if location.startswith("s3://"):
        bucket, prefix = split_s3_url(location)
        if s3_client is None:
            import boto3  # noqa: PLC0415 - only S3 users pay for the import (about 0.3 s)

            s3_client = boto3.client("s3")
        return S3ResultsStore(bucket, prefix, s3_client)
    return JsonlResultsStore(location)
