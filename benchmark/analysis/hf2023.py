"""The 2023 Hugging Face Llama 2 on SageMaker benchmark's raw results, imported as they were defined.

The file is ``results/sagemaker.csv`` of github.com/philschmid/text-generation-inference-tests: one row per
model, instance and virtual-user count, made by ``sagemaker_llm_container/utils/get_metrics.py`` from k6
runs and TGI's per-request log lines. Its numbers do not mean what ours mean, so every imported row carries
:data:`DEFINITIONS` into the report instead of borrowing our method:

- throughput was *derived*, users x 50 x 1000 / mean(TGI ``total_time`` ms), not counted; the importer
  recomputes it from the row's own mean and flags a row where the two disagree;
- ms/token is TGI's ``time_per_token`` = ``inference_time / generated_tokens``: prefill included.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.cost import estimate, import_price
from benchmark.analysis.headroom import headroom
from benchmark.analysis.results import LevelResult, ResultsFileError, tool_version, utc_now
from benchmark.measure.metrics import LevelMetrics, TokenTimeSource
from benchmark.measure.percentiles import PERCENTILES, Distribution, min_samples
from catalog.errors import ConfigError

# The file's own spelling ("Thorughput" included): the header that tells this format apart.
THROUGHPUT = "Thorughput (tokens/second)"
REQUIRED = (
    "Model Id",
    "Instance",
    "Tensor parallelism degree",
    "quantization",
    "generated_tokens per request",
    "Number of requests",
    "Virtual Users",
    THROUGHPUT,
    "Latency (ms/token) med",
    "Latency Request ms avg",
)
# Where the write-up priced its tables; the file itself names no region.
REGION = "us-west-2"
# The engine the 2023 runs served with: TGI 1.0.3, the Hugging Face LLM container the write-up names
# (shared/reference/AWS_FACTS.md) and the repository's benchmark.py asks for:
# get_huggingface_llm_image_uri("huggingface", version="1.0.3").
ENGINE = "tgi"
TGI_VERSION = "1.0.3"
SOURCE = "2023 raw results"
# Two figures of the same formula agree to float noise; a larger gap means the row is not what it claims.
_FORMULA_TOLERANCE = 1e-9

DEFINITIONS: Mapping[str, str] = {
    "tokens/s": "derived, not counted: users x 50 x 1000 / mean(TGI total_time ms), as the 2023 benchmark did",
    "ms/token": "TGI's server-side time_per_token = inference_time / generated tokens, so prefill is included "
    "(ours excludes the first token); percentiles over TGI's log lines",
    "e2e": "TGI's server-side total_time (validation, queue and inference), not what a client saw",
    "requests": "TGI log lines read back from CloudWatch; failures the client saw were not recorded "
    "(error rate unknown)",
    "load": "k6 constant-vus for 90 s, non-streaming InvokeEndpoint, ShareGPT prompts, max_new_tokens 50, "
    f"TGI {TGI_VERSION}",
    "region": f"not in the file; {REGION} (where the 2023 write-up priced its tables) unless --region says otherwise",
}


def is_hf2023(fieldnames: Sequence[str] | None) -> bool:
    """True for the 2023 raw CSV's header (its misspelt throughput column is unique to it)."""
    return THROUGHPUT in (fieldnames or ())


def _read(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
        if missing:
            raise ResultsFileError(str(path), 1, missing[0], None, "column is required in the 2023 raw format")
        for row in reader:
            if None in row:
                raise ResultsFileError(str(path), reader.line_num, "row", row[None], "has more cells than the header")
            yield reader.line_num, row


class _Cells:
    """One row's cells, parsed; every failure names the file, the line and the column."""

    def __init__(self, row: Mapping[str, str], location: str, line: int) -> None:
        self.row, self.location, self.line = row, location, line

    def fail(self, name: str, value: object, allowed: str) -> ResultsFileError:
        return ResultsFileError(self.location, self.line, name, value, allowed)

    def number(self, name: str) -> float | None:
        text = (self.row.get(name) or "").strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise self.fail(name, text, "must be a number") from None
        if not (math.isfinite(value) and value >= 0):
            raise self.fail(name, text, "must be a finite number >= 0")
        return value

    def required(self, name: str) -> float:
        value = self.number(name)
        if value is None:
            raise self.fail(name, self.row.get(name), "is required")
        return value

    def count(self, name: str) -> int:
        value = self.required(name)
        if value != int(value) or value < 1:
            raise self.fail(name, self.row.get(name), "must be an integer >= 1")
        return int(value)

    def distribution(self, prefix: str, count: int) -> Distribution:
        """``<prefix> avg/min/med/max/p(90)/p(95)`` as the file gives them; p99 was never recorded."""
        values = {name: self.number(f"{prefix} {column}") for name, column in _STATS.items()}
        unsupported = tuple(
            name for name, q in PERCENTILES.items() if values.get(name) is None or count < min_samples(q)
        )
        return Distribution(count=count, unsupported=unsupported, **values)


_STATS = {"mean": "avg", "minimum": "min", "median": "med", "maximum": "max", "p90": "p(90)", "p95": "p(95)"}


def _configuration(cells: _Cells, region: str) -> BenchmarkConfiguration:
    model_id = cells.row["Model Id"].strip()
    match = re.search(r"llama-2-(\d+)b", model_id, flags=re.IGNORECASE)
    if not match:
        raise cells.fail("Model Id", model_id, "must name a Llama 2 model, e.g. meta-llama/Llama-2-7b-hf")
    quantization = cells.row["quantization"].strip().lower()
    if ("gptq" in model_id.lower()) != (quantization == "gptq"):
        raise cells.fail("quantization", quantization, f"contradicts Model Id {model_id}")
    try:
        configuration = BenchmarkConfiguration(
            model=f"{match.group(1)}b",
            quantization=quantization,
            instance_type=cells.row["Instance"].strip(),
            engine=ENGINE,
            tgi_version=TGI_VERSION,
            region=region,
        )
    except ConfigError as err:
        issue = err.issues[0]
        raise cells.fail(
            {"instance_type": "Instance"}.get(issue.field, issue.field), issue.value, issue.allowed
        ) from None
    tensor_parallel = cells.count("Tensor parallelism degree")
    if tensor_parallel != configuration.instance.gpu_count:
        allowed = f"must be the {configuration.instance.gpu_count} GPUs of {configuration.instance_type}"
        raise cells.fail("Tensor parallelism degree", tensor_parallel, allowed)
    return configuration


def _import_row(cells: _Cells, region: str, prices: Mapping[str, float] | None, source: str) -> LevelResult:
    configuration = _configuration(cells, region)
    users = cells.count("Virtual Users")
    requests = cells.count("Number of requests")
    new_tokens = cells.count("generated_tokens per request")
    throughput = cells.required(THROUGHPUT)
    mean_total_ms = cells.required("Latency Request ms avg")
    derived = users * new_tokens * 1000.0 / mean_total_ms if mean_total_ms > 0 else math.inf
    notes = []
    if not math.isclose(derived, throughput, rel_tol=_FORMULA_TOLERANCE):
        notes.append(f"the file's throughput {throughput:.2f} is not its own formula's {derived:.2f} tokens/s")
    ms_per_token = cells.distribution("Latency (ms/token)", requests)
    metrics = LevelMetrics(
        concurrency=users,
        window_s=0.0,  # not recorded: throughput was derived, not counted over a window
        requests_total=requests,
        requests_ok=requests,
        requests_failed=0,
        errors_by_kind={},
        error_rate=None,
        output_tokens=0,
        tokens_per_s=throughput,
        requests_per_min=None,
        ms_per_token=ms_per_token,
        ms_per_token_sources={TokenTimeSource.SERVER.value: requests},
        inter_token_ms=Distribution(),
        ttft_ms=Distribution(unsupported=tuple(PERCENTILES)),
        e2e_ms=cells.distribution("Latency Request ms", requests),
        derived_tokens_per_s_2023=derived,
        max_new_tokens=new_tokens,
    )
    price = import_price(configuration.instance_type, configuration.region, prices, cells.fail)
    now = utc_now()
    return LevelResult(
        configuration=configuration,
        load={"concurrency": users, "max_new_tokens": new_tokens, "target": source, "dataset": "ShareGPT (2023)"},
        metrics=metrics,
        cost=estimate(throughput, price),
        headroom=headroom(configuration, ms_per_token.median),
        started_at=now,
        finished_at=now,
        tool_version=tool_version(),
        source=source,
        notes=tuple(notes),
        definitions=DEFINITIONS,
    )


def import_2023(
    path: str | Path,
    *,
    region: str | None = None,
    price_overrides: Mapping[str, float] | None = None,
    source: str = SOURCE,
) -> list[LevelResult]:
    """Every row of the 2023 raw CSV as a LevelResult, priced for ``region`` (default us-west-2)."""
    path = Path(path)
    return [
        _import_row(_Cells(row, str(path), line), region or REGION, price_overrides, source)
        for line, row in _read(path)
    ]
