"""Importing the 2023 benchmark's raw CSV: its numbers, its definitions, and prices applied at import.

Expected values are worked out by hand from the vendored CSV's cells (tests/fixtures/hf2023/sagemaker.csv,
see its README for source and commit), not produced by the importer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.analysis.external import import_file
from benchmark.analysis.hf2023 import DEFINITIONS
from benchmark.analysis.results import LevelResult, ResultsFileError
from benchmark.cli import main
from benchmark.measure.metrics import TokenTimeSource
from benchmark.report import write_report

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "hf2023" / "sagemaker.csv"
G5_48_USD = 20.36  # us-west-2 has no catalog price for ml.g5.48xlarge: the user gives one
OVERRIDE = {"ml.g5.48xlarge": G5_48_USD}


@pytest.fixture(scope="module")
def imported() -> dict[tuple[str, str, str, int], LevelResult]:
    rows = import_file(RAW, price_overrides=OVERRIDE)
    keyed = {
        (r.configuration.model, r.configuration.quantization, r.configuration.instance_type, r.concurrency): r
        for r in rows
    }
    assert len(rows) == len(keyed) == 60
    return keyed


def test_a_row_keeps_the_2023_figures_and_its_own_throughput_formula(
    imported: dict[tuple[str, str, str, int], LevelResult],
) -> None:
    # CSV line 6: TheBloke/Llama-2-7B-GPTQ, ml.g5.2xlarge, TP 1, gptq, 50 tokens, 205 requests, 5 users.
    r = imported["7b", "gptq", "ml.g5.2xlarge", 5]
    c = r.configuration
    assert (c.region, c.tgi_version) == ("us-west-2", "1.0.3")
    m = r.metrics
    # throughput cell 120.09416333072869 = 5 users x 50 x 1000 / 2081.6998350829267 ms mean total_time
    assert m.tokens_per_s == pytest.approx(120.09416333072869, rel=1e-12)
    assert m.derived_tokens_per_s_2023 == pytest.approx(5 * 50 * 1000 / 2081.6998350829267, rel=1e-12)
    assert (m.requests_total, m.max_new_tokens, m.error_rate) == (205, 50, None)
    # time_per_token: med 34.245736, p(90) 44.3280604, p(95) 54.1808366, avg 37.703348697560976
    assert (m.ms_per_token.median, m.ms_per_token.p90, m.ms_per_token.p95) == (34.245736, 44.3280604, 54.1808366)
    assert m.ms_per_token.mean == 37.703348697560976 and m.ms_per_token.count == 205
    assert m.ms_per_token.p99 is None and m.ms_per_token.unsupported == ("p99",)  # never recorded
    assert m.ms_per_token_sources == {TokenTimeSource.SERVER.value: 205}
    assert m.e2e_ms.median == 1743.98413  # Latency Request ms med (TGI total_time)
    assert m.ttft_ms.median is None
    # $1.515/h (catalog, us-west-2): 1e6 / 120.0941633 = 8326.80 s = 138.78 min = 2.3130 h -> $3.5042
    assert r.cost is not None and r.cost.usd_per_hour == 1.515
    assert r.cost.minutes_per_1m_tokens == pytest.approx(138.780, abs=5e-4)
    assert r.cost.usd_per_1m_tokens == pytest.approx(3.5042, abs=5e-5)
    assert r.notes == ()


def test_the_override_prices_the_instance_the_catalog_lacks_in_us_west_2(
    imported: dict[tuple[str, str, str, int], LevelResult],
) -> None:
    # CSV line 36: meta-llama/Llama-2-7b-hf, ml.g5.48xlarge, 1 user, 56.501382414569015 tokens/s
    # = 50 x 1000 / 884.9341000744679 ms; 1e6 / 56.5013824 = 17698.68 s = 4.91630 h x $20.36 = $100.096
    r = imported["7b", "fp16", "ml.g5.48xlarge", 1]
    assert r.metrics.tokens_per_s == pytest.approx(50 * 1000 / 884.9341000744679, rel=1e-12)
    assert r.cost is not None and (r.cost.usd_per_hour, r.cost.price_source) == (G5_48_USD, "user override")
    assert r.cost.usd_per_1m_tokens == pytest.approx(100.096, abs=5e-4)
    assert r.cost.minutes_per_1m_tokens == pytest.approx(294.978, abs=5e-4)


def test_without_an_override_the_import_stops_naming_the_instance_and_the_flag() -> None:
    with pytest.raises(ResultsFileError) as err:
        import_file(RAW)
    text = str(err.value)
    assert "sagemaker.csv:7" in text and "ml.g5.48xlarge" in text and "us-west-2" in text
    assert "--price-override ml.g5.48xlarge=USD_PER_HOUR" in text


def test_region_can_be_given_and_then_the_catalog_prices_it(tmp_path: Path) -> None:
    rows = import_file(RAW, default_region="us-east-1")
    r = next(r for r in rows if r.configuration.instance_type == "ml.g5.48xlarge")
    assert r.configuration.region == "us-east-1" and r.cost is not None and r.cost.usd_per_hour == 20.36


def _rewrite(tmp_path: Path, line: int, column: str, value: str) -> Path:
    header, *rows = RAW.read_text(encoding="utf-8").splitlines()
    names = header.split(",")
    cells = rows[line - 2].split(",")
    cells[names.index(column)] = value
    rows[line - 2] = ",".join(cells)
    out = tmp_path / "sagemaker.csv"
    out.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return out


def test_a_throughput_that_is_not_its_own_formula_is_flagged(tmp_path: Path) -> None:
    path = _rewrite(tmp_path, 6, "Thorughput (tokens/second)", "130.0")
    r = next(r for r in import_file(path, price_overrides=OVERRIDE) if r.metrics.tokens_per_s == 130.0)
    assert r.notes == ("the file's throughput 130.00 is not its own formula's 120.09 tokens/s",)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Tensor parallelism degree", "4", "Tensor parallelism degree=4: must be the 1 GPUs of ml.g5.2xlarge"),
        ("quantization", "none", "quantization='none': contradicts Model Id TheBloke/Llama-2-7B-GPTQ"),
        ("Instance", "ml.p4d.12xlarge", "Instance='ml.p4d.12xlarge'"),
        ("Virtual Users", "2.5", "Virtual Users='2.5': must be an integer >= 1"),
        ("Latency (ms/token) med", "fast", "Latency (ms/token) med='fast': must be a number"),
    ],
)
def test_a_bad_cell_is_refused_naming_file_line_and_column(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    path = _rewrite(tmp_path, 6, column, value)
    with pytest.raises(ResultsFileError, match=r"sagemaker\.csv:6") as err:
        import_file(path, price_overrides=OVERRIDE)
    assert message in str(err.value)


def test_the_report_labels_imported_definitions_and_keeps_method_for_measured_rows(
    imported: dict[tuple[str, str, str, int], LevelResult], tmp_path: Path
) -> None:
    files = write_report(list(imported.values()), tmp_path)
    md, html = files.markdown.read_text(), files.html.read_text()
    method = md.split("## Method")[1].split("\n## ")[0]
    assert "no row in this report was measured by this tool" in method
    imported_section = md.split("## Imported results")[1].split("\n## ")[0]
    assert "2023 raw results" in imported_section
    assert "derived, not counted: users x 50 x 1000 / mean(TGI total\\_time ms)" in imported_section
    assert "time\\_per\\_token" in imported_section and "prefill is included" in imported_section
    # the 7B cost winner at 5 users is fp16 on g5.2xlarge ($1.515/h, 131.29 tokens/s = $3.21), marked ‡
    assert "| Llama 2 7B | fp16 | ml.g5.2xlarge (2023 raw results) | 5 | 37.94‡ | 131.29‡ |" in md
    assert "time_per_token" in html and "Imported results" in html


def test_cli_import_writes_results_once_and_reports_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "imported.jsonl"
    argv = ["import", str(RAW), "--results", str(results), "--price-override", f"ml.g5.48xlarge={G5_48_USD}"]
    assert main([*argv, "--report-dir", str(tmp_path / "report")]) == 0
    assert "60 level(s) imported, 0 already there" in capsys.readouterr().out
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 60 and all(r["definitions"] == dict(DEFINITIONS) for r in records)
    assert main(argv) == 0  # a second import adds nothing
    assert "0 level(s) imported, 60 already there" in capsys.readouterr().out
    assert len(results.read_text().splitlines()) == 60
    assert "## Imported results" in (tmp_path / "report" / "report.md").read_text()


def test_cli_import_without_the_needed_override_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(RAW), "--results", str(tmp_path / "r.jsonl")]) == 2
    assert "--price-override ml.g5.48xlarge=USD_PER_HOUR" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists()


def test_report_reads_the_raw_csv_directly_with_the_override(tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", str(RAW), "--price-override", f"ml.g5.48xlarge={G5_48_USD}", "--out", str(out)]) == 0
    assert "(2023 raw results)" in (out / "report.md").read_text()
