"""The command line: one-line errors with exit code 2 for bad input, report rendering, and the demo."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmark import emulator
from benchmark.cli import build_parser, main, parse_concurrency
from benchmark.emulator import EmulatorConfig, EmulatorServer, RequestTruth
from benchmark.measure import loadgen
from benchmark.measure.load import LoadSpec
from benchmark.measure.loadgen import LevelRun
from benchmark.target import load_spec

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "hf2023"  # vendored 2023 data
ROOT = Path(__file__).resolve().parents[2]


def error_lines(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    assert main(argv) == 2
    return [line for line in capsys.readouterr().err.splitlines() if line]


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "x", "1,,5", "5,5", ""])
def test_bad_concurrency_is_refused(capsys: pytest.CaptureFixture[str], value: str) -> None:
    (line,) = error_lines(capsys, ["run", "--concurrency", value])
    assert line.startswith(f"error: concurrency={value!r}: must be a comma-separated list of distinct positive")


def test_concurrency_parses() -> None:
    assert parse_concurrency("1, 5,10,20") == (1, 5, 10, 20)


def test_unknown_instance_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = error_lines(capsys, ["run", "--model", "13b", "--instance", "ml.p4d.12xlarge"])
    assert line.startswith("error: instance_type='ml.p4d.12xlarge': must be one of ")
    assert "ml.p4d.24xlarge" in line


def test_configuration_that_does_not_fit_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = error_lines(capsys, ["run", "--config", "model=13b,quantization=fp16,instance=ml.g5.2xlarge"])
    assert "instance_type='ml.g5.2xlarge': too small" in line


def test_missing_dataset_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    (line,) = error_lines(capsys, ["run", "--dataset", str(missing), "--max-requests", "1"])
    assert line == f"error: dataset='{missing}': file does not exist"


def test_real_target_needs_its_address(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = error_lines(capsys, ["run", "--target", "sagemaker", "--instance", "ml.g5.2xlarge"])
    assert line.startswith("error: endpoint=None: is required")


def test_emulator_needs_an_instance_to_emulate(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = error_lines(capsys, ["run", "--model", "13b"])
    assert line.startswith("error: instance=None: is required with --target emulator")


def test_sweep_refuses_emulator_latency_for_a_real_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["size", "sweep", "--target", "tgi", "--url", "http://127.0.0.1:9"]
    argv += ["--config", "model=7b,instance=g5.2xlarge", "--slo", "error_rate<=0.01"]
    argv += ["--emulator-latency", "{}", "--out", str(tmp_path / "s.jsonl")]
    (line,) = error_lines(capsys, argv)
    assert line == "error: emulator_latency='{}': applies to --target emulator only"


def test_sweep_refuses_workers_for_an_open_loop(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["size", "sweep", "--config", "model=7b,instance=g5.2xlarge", "--slo", "error_rate<=0.01"]
    argv += ["--mode", "rate", "--workers", "2", "--out", str(tmp_path / "s.jsonl")]
    (line,) = error_lines(capsys, argv)
    assert line == "error: workers=2: applies to --mode concurrency only (closed loop)"


def test_malformed_results_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "other.csv"
    bad.write_text(
        "model,quantization,instance,concurrency,ms_per_token_median,tokens_per_s\n7b,fp16,ml.g5.2xlarge,x,1,2\n"
    )
    (line,) = error_lines(capsys, ["report", str(bad), "--out", str(tmp_path / "r")])
    assert line == f"error: {bad}:2: concurrency='x': must be an integer >= 1"


def test_bad_price_override_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (line,) = error_lines(capsys, ["report", "--price-override", "ml.g5.2xlarge=free", "--out", str(tmp_path)])
    assert line.startswith("error: price_override='ml.g5.2xlarge=free'")


# The header and the cost-table row for 7B GPTQ on ml.g5.2xlarge, as the 2023 Hugging Face benchmark published them.
PUBLISHED_ROW = (
    "scenario,model,quantization,instance,concurrent_requests,latency_ms_per_token_median,throughput_tokens_per_s,"
    "on_demand_usd_per_hour_us_west_2,minutes_per_1m_tokens,usd_per_1m_tokens\n"
    "cost,Llama 2 7B,GPTQ,ml.g5.2xlarge,5,34.245736,120.0941633,1.52,138.78,3.50\n"
)


def test_report_command_prices_with_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "published.csv"
    csv.write_text(PUBLISHED_ROW)
    out = tmp_path / "report"
    assert main(["report", "--published", str(csv), "--price-override", "ml.g5.2xlarge=3.03", "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    # 7B GPTQ at 120.0941633 tokens/s, $3.03/h: 1e6 / 120.0941633 / 3600 x 3.03 = $7.01 per 1M
    assert "| Llama 2 7B | GPTQ | ml.g5.2xlarge (published 2023) | 5 | 34.25‡ | 120.09‡ | 3.030 | 138.78 | 7.01 |" in md
    assert "| ml.g5.2xlarge | us-west-2 | 3.030 | user override | user override |" in md
    assert (out / "report.html").read_text().count("<svg") == 2  # one model size: its scatter chart, cost bars


def test_module_entry_point_reports_errors_with_exit_code_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark", "run", "--concurrency", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: concurrency='0'")


@pytest.fixture
def emulator_log(monkeypatch: pytest.MonkeyPatch) -> tuple[list[RequestTruth], list[LevelRun]]:
    """What the emulators the CLI starts sent (their own log), and every level run the load generator returned."""
    truths: list[RequestTruth] = []
    runs: list[LevelRun] = []

    @contextlib.contextmanager
    def logged(config: EmulatorConfig | None = None) -> Iterator[str]:
        with EmulatorServer(config) as server:
            yield server.base_url
            truths.extend(server.truth())

    real_run_level = loadgen.run_level

    async def run_level(*args: Any, **kwargs: Any) -> LevelRun:
        run = await real_run_level(*args, **kwargs)
        runs.append(run)
        return run

    monkeypatch.setattr(emulator, "running_emulator", logged)
    monkeypatch.setattr(loadgen, "run_level", run_level)
    return truths, runs


def test_run_against_emulator_end_to_end_then_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], emulator_log: tuple[list[RequestTruth], list[LevelRun]]
) -> None:
    results = tmp_path / "results.jsonl"
    argv = [
        "run",
        "--config",
        "model=7b,quantization=gptq,instance=ml.g5.2xlarge",
        "--concurrency",
        "1,4",
        "--duration",
        "1.0",
        "--max-new-tokens",
        "8",
        "--results",
        str(results),
        "--json",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    assert main(argv) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["metrics"]["concurrency"] for r in printed] == [1, 4]
    truths, runs = emulator_log
    sent = {truth.request_id: truth for truth in truths}  # what the emulator sent, by request id
    for record, run in zip(printed, runs, strict=True):
        m = record["metrics"]
        assert m["error_rate"] == 0 and m["requests_ok"] > 0
        # Token counts come from the server: the emulator's log says 8 tokens went out for every request.
        assert {sent[r.request_id].tokens_sent for r in run.records if r.request_id} == {8}
        assert m["output_tokens"] == 8 * m["requests_ok"]
        # Tokens/s against what the emulator's log says it wrote inside the same steady window (not against
        # wall-clock expectations): a token written just before an edge of the window may be stamped by the
        # client just after it, at most one per user and edge.
        opens, closes = run.window_start + m["steady_start_s"], run.window_start + m["steady_end_s"]
        ids = {r.request_id for r in run.records}
        written = sum(1 for t in truths if t.request_id in ids for at in t.sent_at if opens < at <= closes)
        assert written > 0
        assert abs(m["tokens_per_s"] * (closes - opens) - written) <= 2 * m["concurrency"], (m, written)
    assert len(results.read_text().splitlines()) == 2
    assert main(argv) == 0  # resume: nothing left to run
    assert capsys.readouterr().out == ""
    assert "Most cost-effective" in (tmp_path / "report" / "report.md").read_text()


def test_load_options_take_the_load_spec_defaults_and_errors_name_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    assert load_spec(parser.parse_args(["run"]), concurrency=5) == LoadSpec(concurrency=5)
    sweep = parser.parse_args(
        ["size", "sweep", "--config", "model=7b,instance=ml.g5.2xlarge", "--slo", "error_rate<=0.1"]
    )
    assert load_spec(sweep) == LoadSpec(duration_s=30.0)  # a sweep's own level length, the rest LoadSpec's
    argv = ["--no-stream", "--timeout", "7", "--fail-fast", "2", "--abort-error-rate", "0.3", "--ramp-up", "1"]
    assert load_spec(parser.parse_args(["run", *argv]), concurrency=1) == LoadSpec(
        streaming=False, timeout_s=7.0, fail_fast_requests=2, max_error_rate=0.3, ramp_up_s=1.0
    )
    (line,) = error_lines(capsys, ["run", "--duration", "-1"])
    assert line == "error: duration=-1.0: must be > 0 or unset"
    lines = error_lines(capsys, ["run", "--abort-error-rate", "1.5", "--fail-fast", "-1", "--timeout", "0"])
    assert [line.split("=")[0] for line in lines] == ["error: timeout", "error: fail_fast", "error: abort_error_rate"]
