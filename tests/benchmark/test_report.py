"""The report: three recommendation tables, the rules, full results, charts, and escaping everywhere."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.published import published_results
from benchmark.analysis.results import LevelResult, build_result
from benchmark.report import DASH, write_report
from benchmark.report.charts import Bar, Point, bars, scatter
from benchmark.serialize import from_data, to_data
from tests.benchmark.factories import RESULTS, result

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf2023"  # vendored: see its README.md
EVIL = "<script>alert(1)</script>|x"


@pytest.fixture
def report(tmp_path: Path) -> tuple[str, str]:
    evil: LevelResult = result("7b", "gptq", "ml.g5.2xlarge", 1, 10.0, 99.0)
    evil = evil.__class__(**{**evil.__dict__, "notes": (EVIL,), "source": EVIL})
    files = write_report([*RESULTS, evil], tmp_path / "out", title="Bench <&> test")
    return files.markdown.read_text(), files.html.read_text()


def test_markdown_has_three_tables_with_rules_and_numbers(report: tuple[str, str]) -> None:
    md, _ = report
    for title in ("## Most cost-effective", "## Lowest latency", "## Highest throughput", "## All results"):
        assert title in md
    assert "Rule: lowest $ per 1M output tokens at concurrency 5" in md
    # winner row of the cost table: 7B GPTQ g5.2xlarge, 120 tok/s, $1.515/h, 138.89 min, $3.51 per 1M
    assert "| Llama 2 7B | GPTQ | ml.g5.2xlarge | 5 | 34.00 | 120.00 | 1.515 | 138.89 | 3.51 |" in md
    assert "no results for this model at concurrency 5" in md  # 13B has no cost candidate
    assert "p99 needs 100" in md


def test_markdown_escapes_html_and_pipes(report: tuple[str, str]) -> None:
    md, _ = report
    assert "<script>" not in md
    assert "\\<script\\>alert(1)\\</script\\>\\|x" in md  # GitHub renders it as the text (test_markdown_escape)
    assert "# Bench \\<\\&\\> test" in md


def test_html_is_self_contained_escaped_and_has_charts(report: tuple[str, str]) -> None:
    _, html = report
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|x" in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)
    assert html.count("<svg") == 3  # one scatter chart per model size (7B, 13B), then the cost bars
    assert html.count("<table>") == 6  # three recommendations, all results, load generator (measured rows), prices
    assert "<title>Bench &lt;&amp;&gt; test</title>" in html
    assert "<circle" in html and "<rect" in html


def test_charts_escape_labels_and_handle_no_data() -> None:
    svg = scatter([Point("<b>&", "<i>", 10.0, 20.0)], title="<t>", x_label="<x>", y_label="<y>")
    assert "<b>" not in svg and "<i>" not in svg and "<t>" not in svg and "<x>" not in svg
    assert "&lt;b&gt;&amp;" in svg and "&lt;i&gt;" in svg
    assert "no data" in bars([], title="t", value_label="$")
    bar_svg = bars([Bar("a", 3.5, "7b"), Bar("b", 7.0, "13b")], title="t", value_label="$")
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)" height="16"', bar_svg)]
    assert len(widths) == 2
    assert widths[1] == pytest.approx(2 * widths[0], abs=0.2)  # bars are proportional (drawn to 0.1 px)


def test_published_rows_render_with_their_corrections(tmp_path: Path) -> None:
    results = published_results(FIXTURES / "published_llama2_sagemaker_results.csv")
    files = write_report(results, tmp_path)
    md, html = files.markdown.read_text(), files.html.read_text()
    # the 2023 tables wrote "None" for fp16: it read like missing data, so neither tables nor charts say it
    assert "None" not in md and "None" not in html
    assert ">fp16 p4d.24xlarge (published 2023)</text>" in html  # the chart legend
    assert "instance corrected: ml.p4d.12xlarge -\\> ml.p4d.24xlarge" in md
    assert "printed \\$3.97 per 1M tokens, recomputed \\$4.38" in md
    assert (
        "| Llama 2 7B | fp16 | ml.g5.12xlarge (published 2023) | 20 | 44.00‡ | 449.94‡ | 7.090 | 37.04 | 4.38 |" in md
    )


def test_a_level_with_late_first_tokens_is_flagged_in_both_formats(tmp_path: Path) -> None:
    late = result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 34.0)
    late = replace(late, metrics=replace(late.metrics, streamed_ok=200, coalesced_first_tokens=3))  # 1.5 %
    on_time = result("7b", "fp16", "ml.g5.12xlarge", 5, 300.0, 16.0)
    on_time = replace(on_time, metrics=replace(on_time.metrics, streamed_ok=200, coalesced_first_tokens=2))  # 1 %
    files = write_report([late, on_time], tmp_path)
    md, html = files.markdown.read_text(), files.html.read_text()
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| 7b/")}
    assert "| 1.5% ⚠ |" in rows["| 7b/gptq/ml.g5.2xlarge/tgi-3.3.6/us-east-1"]
    assert "| 1.0% |" in rows["| 7b/fp16/ml.g5.12xlarge/tgi-3.3.6/us-east-1"]
    assert "⚠" not in rows["| 7b/fp16/ml.g5.12xlarge/tgi-3.3.6/us-east-1"]
    assert '<td class="n late">1.5% ⚠ <span class="small">TTFT may read late</span></td>' in html
    assert '<td class="n">1.0%</td>' in html
    assert html.count("TTFT may read late</span>") == 1


def test_a_level_without_an_instance_has_no_cost_and_says_why(tmp_path: Path) -> None:
    priced = result("7b", "fp16", "ml.g5.12xlarge", 5, 300.0, 16.0)
    configuration = BenchmarkConfiguration(model="7b", instance_type="")
    unpriced = build_result(configuration, {}, priced.metrics, started_at="t0")
    assert unpriced.cost is None and unpriced.headroom is None
    assert unpriced.notes == ("no instance given: cost not computed",)
    assert from_data(LevelResult, to_data(unpriced)) == unpriced
    files = write_report([unpriced], tmp_path)
    md, html = files.markdown.read_text(), files.html.read_text()
    assert "7b/fp16/no-instance/tgi-3.3.6/us-east-1 at concurrency 5: no instance given: cost not computed" in md
    (row,) = [line for line in md.splitlines() if line.startswith("| 7b/fp16/no-instance/")]
    # bound ms/token, efficiency, $/h, minutes per 1M, $ per 1M, utilization: each an en dash (no value)
    assert row.endswith(" |".join([""] + [f" {DASH}"] * 6) + " |")
    assert "no instance given: cost not computed" in html
