"""The 2023 published rows, recomputed from the catalog: right numbers, visible corrections."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmark.analysis.external import import_file
from benchmark.analysis.published import load_published
from benchmark.analysis.results import ResultsFileError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf2023"  # vendored: see its README.md
CSV = FIXTURES / "published_llama2_sagemaker_results.csv"
RAW = FIXTURES / "sagemaker.csv"  # the 2023 raw results the published tables were taken from

# Computed by hand: minutes = 1e6 / tokens_per_s / 60, $ = 1e6 / tokens_per_s / 3600 x $/h with the
# unrounded prices $1.515 (g5.2xlarge), $7.09 (g5.12xlarge), $37.688 (p4d.24xlarge).
EXPECTED = [
    # scenario, model key, instance, minutes, $
    ("cost", "7b", "ml.g5.2xlarge", 138.78, 3.50),  # 1e6/120.0941633 = 8326.80 s
    ("cost", "13b", "ml.g5.2xlarge", 232.43, 5.87),  # 13945.91 s
    ("cost", "70b", "ml.g5.12xlarge", 499.99, 59.08),  # 29999.65 s
    ("latency", "7b", "ml.g5.12xlarge", 271.19, 32.05),  # 16271.45 s
    ("latency", "13b", "ml.g5.12xlarge", 353.43, 41.76),  # 21205.60 s
    ("latency", "70b", "ml.p4d.24xlarge", 679.88, 427.05),  # 40792.53 s
    ("throughput", "7b", "ml.g5.12xlarge", 37.04, 4.38),  # 2222.51 s; printed 33.59 / $3.97 are wrong
    ("throughput", "13b", "ml.p4d.24xlarge", 24.95, 15.67),  # 1496.96 s; printed as ml.p4d.12xlarge
    ("throughput", "70b", "ml.p4d.24xlarge", 51.83, 32.56),  # 3110.06 s
]


def test_all_nine_rows_are_recomputed_from_the_catalog() -> None:
    rows = load_published(CSV)
    assert len(rows) == len(EXPECTED)
    for row, (scenario, model, instance, minutes, usd) in zip(rows, EXPECTED, strict=True):
        config = row.result.configuration
        assert (row.scenario, config.model, config.instance_type, config.region) == (
            scenario,
            model,
            instance,
            "us-west-2",
        )
        assert row.minutes_per_1m is not None and row.usd_per_1m is not None
        assert round(row.minutes_per_1m, 2) == minutes, row
        assert round(row.usd_per_1m, 2) == usd, row
        assert row.result.cost is not None and row.result.cost.usd_per_hour in (1.515, 7.09, 37.688)


def test_wrong_rows_are_flagged_and_the_rest_are_not() -> None:
    rows = load_published(CSV)
    flagged = {(r.scenario, r.result.configuration.model): r.flags for r in rows if r.flags}
    assert set(flagged) == {("throughput", "7b"), ("throughput", "13b")}
    assert flagged["throughput", "7b"] == (
        "printed 33.59 minutes per 1M tokens, recomputed 37.04",
        "printed $3.97 per 1M tokens, recomputed $4.38",
    )
    (note,) = flagged["throughput", "13b"]
    assert note.startswith("instance corrected: ml.p4d.12xlarge -> ml.p4d.24xlarge")
    assert next(r for r in rows if r.flags == flagged["throughput", "13b"]).printed_instance == "ml.p4d.12xlarge"
    # the corrections travel with the result into any report
    assert all(r.result.notes == r.flags for r in rows)


def test_unknown_instance_without_a_correction_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "published.csv"
    header = "model,quantization,instance,concurrency,ms_per_token_median,tokens_per_s"
    bad.write_text(header + "\n" + "Llama 2 13B,None,ml.p4d.12xlarge,20,67.4,668.0\n")
    with pytest.raises(ResultsFileError, match=r"instance='ml\.p4d\.12xlarge'"):
        import_file(bad)


def _raw_rows() -> dict[tuple[str, str, str, int], dict[str, str]]:
    """The raw 2023 rows keyed by (model size, quantization, instance, users)."""
    with RAW.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    keyed = {}
    for row in rows:
        size = row["Model Id"].lower().split("llama-2-")[1].split("-")[0]  # ".../Llama-2-13B-GPTQ" -> "13b"
        quant = "gptq" if row["quantization"] == "gptq" else "fp16"
        keyed[size, quant, row["Instance"], int(row["Virtual Users"])] = row
    assert len(keyed) == len(rows) == 60  # 15 model/instance pairs x 1, 5, 10, 20 users, no duplicates
    return keyed


def test_every_published_figure_traces_to_the_raw_results_except_the_mixed_13b_row() -> None:
    # Independent check of the published table against the raw CSV it was built from: each printed
    # (ms/token, tokens/s) pair is the raw row of the same configuration, except the 13B throughput row,
    # whose 67.40 ms/token belongs to ml.g5.12xlarge (its tokens/s is ml.p4d.24xlarge's).
    raw = _raw_rows()
    mismatched = []
    for row in load_published(CSV):
        c = row.result.configuration
        source = raw[c.model, c.quantization, c.instance_type, row.result.concurrency]
        assert float(source["Thorughput (tokens/second)"]) == pytest.approx(row.result.metrics.tokens_per_s, rel=1e-9)
        if float(source["Latency (ms/token) med"]) != pytest.approx(row.result.metrics.ms_per_token.median, rel=1e-6):
            mismatched.append((row.scenario, c.model, c.instance_type))
    assert mismatched == [("throughput", "13b", "ml.p4d.24xlarge")]
    g5 = raw["13b", "fp16", "ml.g5.12xlarge", 20]
    assert float(g5["Latency (ms/token) med"]) == pytest.approx(67.402746, rel=1e-6)
    assert float(raw["13b", "fp16", "ml.p4d.24xlarge", 20]["Latency (ms/token) med"]) == pytest.approx(28.61, abs=0.01)
