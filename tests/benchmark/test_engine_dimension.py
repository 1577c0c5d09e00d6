"""The serving engine as a benchmark dimension: identity, matrix, plan, recommendation, report, sizing, imports.

TGI-only inputs keep their keys, ids and outputs (the tests that pin them are elsewhere); what is checked here is
that a vLLM row is told apart everywhere and that a mix of both engines names the engine of every figure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.external import import_file
from benchmark.analysis.plan import format_plan, make_plan
from benchmark.analysis.recommend import DEFAULT_RULES, recommend
from benchmark.analysis.results import LevelResult, open_store
from benchmark.cli import build_parser
from benchmark.cli import main as cli_main
from benchmark.matrix import load_matrix, parse_matrix
from benchmark.report import write_report
from benchmark.serialize import from_data, to_data
from benchmark.sizing.capacity import capacity_of
from benchmark.sizing.config_writer import render_config, write_config
from benchmark.sizing.plan import Traffic
from benchmark.sizing.plan import make_plan as sizing_plan
from benchmark.sizing.report import write_sizing_report
from benchmark.sizing.slo import parse_slo
from benchmark.target import open_target
from catalog.engines import get_engine
from catalog.errors import ConfigError
from settings import load_settings
from tests.benchmark.factories import result
from tests.benchmark.sizing_factories import level

VLLM = get_engine("vllm").default_version
RAW_2023 = Path(__file__).resolve().parents[1] / "fixtures" / "hf2023" / "sagemaker.csv"


# --- identity -----------------------------------------------------------------------------------------------------


def test_a_record_without_an_engine_reads_as_tgi_with_its_old_key() -> None:
    old = {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge", "tgi_version": "3.3.6"}
    configuration = from_data(BenchmarkConfiguration, old)
    assert (configuration.engine, configuration.vllm_version) == ("tgi", None)
    assert configuration.key == "7b/gptq/ml.g5.2xlarge/tgi-3.3.6/us-east-1"
    assert configuration.engine_label == "TGI 3.3.6"


def test_a_vllm_configuration_has_its_own_key_and_label_and_round_trips() -> None:
    vllm = BenchmarkConfiguration(model="7b", quantization="gptq", instance_type="g5.2xlarge", engine="vLLM")
    tgi = BenchmarkConfiguration(model="7b", quantization="gptq", instance_type="g5.2xlarge")
    assert (vllm.engine, vllm.vllm_version, vllm.tgi_version) == ("vllm", VLLM, None)
    assert vllm.key == f"7b/gptq/ml.g5.2xlarge/vllm-{VLLM}/us-east-1" != tgi.key
    assert vllm.display_name == f"Llama 2 7B GPTQ ml.g5.2xlarge on vLLM {VLLM}"
    assert tgi.display_name == "Llama 2 7B GPTQ ml.g5.2xlarge on TGI 3.3.6"
    data = to_data(vllm)
    assert (data["engine"], data["vllm_version"], data["tgi_version"]) == ("vllm", VLLM, None)
    assert from_data(BenchmarkConfiguration, json.loads(json.dumps(data))) == vllm


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"engine": "sglang"}, "engine"),
        ({"engine": "tgi", "vllm_version": VLLM}, "vllm_version"),
        ({"engine": "vllm", "vllm_version": "0.0.1"}, "vllm_version"),
    ],
)
def test_an_engine_setting_that_cannot_be_is_refused_naming_the_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_data(
            BenchmarkConfiguration, {"model": "7b", "quantization": "gptq", "instance_type": "g5.2xlarge", **fields}
        )
    assert field in [issue.field for issue in err.value.issues]


def test_a_vllm_configuration_does_not_read_a_tgi_version_as_a_deployment_does_not() -> None:
    """A matrix whose defaults name a TGI version may hold vLLM entries: DeploymentConfig accepts them, and so
    must the configuration the load-test Lambda builds from them."""
    data = {
        "defaults": {"tgi_version": "2.0.2"},
        "load": {"concurrency": [1], "duration_s": 10},
        "configurations": [{"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge", "engine": "vllm"}],
    }
    (entry,) = parse_matrix(data).configurations
    deployment = entry.deployment
    assert (deployment.engine, deployment.tgi_version) == ("vllm", "2.0.2")
    configuration = BenchmarkConfiguration(
        model="7b", quantization="gptq", instance_type="g5.2xlarge", engine="vllm", tgi_version=deployment.tgi_version
    )
    assert configuration.tgi_version is None and configuration.key == f"7b/gptq/ml.g5.2xlarge/vllm-{VLLM}/us-east-1"


def test_a_vllm_configuration_is_checked_against_vllm_s_own_rules() -> None:
    """vLLM's memory rule reserves gpu_memory_utilization (0.9) of each GPU; TGI's the whole GPU."""
    vllm = BenchmarkConfiguration(model="7b", quantization="fp16", instance_type="ml.g5.2xlarge", engine="vllm")
    assert vllm.memory_plan.engine == "vllm"
    assert (
        vllm.memory_plan.issues()
        == get_engine("vllm")
        .memory_plan(vllm.model_spec, vllm.quantization_spec, vllm.instance, vllm.max_total_tokens)
        .issues()
    )


# --- matrix and plan ------------------------------------------------------------------------------------------


def test_a_matrix_mixing_engines_gets_distinct_ids_and_tgi_ids_stay() -> None:
    matrix = load_matrix("engines")
    ids = [c.id for c in matrix.configurations]
    assert len(set(ids)) == len(ids)
    assert "7b-gptq-g5-2xlarge" in ids and "7b-gptq-g5-2xlarge-vllm" in ids
    described = {c.id: c.describe() for c in matrix.configurations}
    assert described["7b-gptq-g5-2xlarge"] == "Llama 2 7B gptq on ml.g5.2xlarge (TGI 3.3.6)"
    assert described["7b-gptq-g5-2xlarge-vllm"] == f"Llama 2 7B gptq on ml.g5.2xlarge (vLLM {VLLM})"
    # the engine of the matrix defaults counts too
    data = {
        "defaults": {"engine": "vllm"},
        "load": {"concurrency": [1], "duration_s": 10},
        "configurations": [
            {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"},
            {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge", "engine": "tgi"},
        ],
    }
    assert [c.id for c in parse_matrix(data).configurations] == ["7b-gptq-g5-2xlarge-vllm", "7b-gptq-g5-2xlarge"]


def test_the_plan_splits_deployments_hours_and_dollars_per_engine() -> None:
    plan = make_plan(load_matrix("engines"))
    for method in (plan.ours, plan.method_2023):
        assert [e.engine for e in method.engines] == ["tgi", "vllm"]
        assert sum(e.deployments for e in method.engines) == method.deployments
        assert sum(e.endpoint_hours for e in method.engines) == pytest.approx(method.endpoint_hours)
        assert sum(e.usd for e in method.engines) == pytest.approx(method.usd)
        rows = {c.id: c for c in method.configurations}
        assert (rows["7b-gptq-g5-2xlarge-vllm"].engine, rows["7b-gptq-g5-2xlarge"].engine) == ("vllm", "tgi")
    assert [e.configurations for e in plan.ours.engines] == [3, 3]
    text = format_plan(plan)
    assert re.search(r"^vLLM\s+3\s+3\s", text, flags=re.M) and re.search(r"^TGI\s+3\s+3\s", text, flags=re.M)
    assert re.search(rf"^7b-gptq-g5-2xlarge-vllm\s+vLLM {re.escape(VLLM)}\s+ml\.g5\.2xlarge", text, flags=re.M)
    only_tgi = make_plan(load_matrix("2023"))
    assert [e.engine for e in only_tgi.ours.engines] == ["tgi"]


# --- recommendation and report -------------------------------------------------------------------------------


def mixed() -> list[LevelResult]:
    """vLLM is cheaper at 7B concurrency 5 (150 vs 120 tokens/s on one g5.2xlarge); TGI wins the other rules."""
    rows = []
    for engine, cheap_tps in (("tgi", 120.0), ("vllm", 150.0)):
        rows += [
            result("7b", "gptq", "ml.g5.2xlarge", 5, cheap_tps, 34.0, engine=engine),
            result("7b", "gptq", "ml.g5.2xlarge", 1, 35.0, 28.0 if engine == "tgi" else 29.0, engine=engine),
            result("7b", "gptq", "ml.g5.2xlarge", 20, 200.0 if engine == "tgi" else 190.0, 90.0, engine=engine),
            result("13b", "gptq", "ml.g5.2xlarge", 5, 70.0, 56.0, engine=engine),
        ]
    return rows


def test_either_engine_may_win_and_the_other_engine_s_best_is_named() -> None:
    recs = recommend(mixed(), DEFAULT_RULES)
    cost_7b = [r for r in recs if r.rule.name == "cost" and r.model == "7b"]
    assert [(r.engine, r.winner and r.winner.configuration.engine) for r in cost_7b] == [(None, "vllm"), ("tgi", "tgi")]
    assert cost_7b[1].explanation == "best on TGI of 1 qualifying"
    latency_7b = [r for r in recs if r.rule.name == "latency" and r.model == "7b"]
    assert [(r.engine, r.winner and r.winner.configuration.engine) for r in latency_7b] == [
        (None, "tgi"),
        ("vllm", "vllm"),
    ]
    # one engine only: one recommendation per rule and model, as before engines
    only_tgi = [r for r in mixed() if r.configuration.engine == "tgi"]
    assert all(r.engine is None for r in recommend(only_tgi, DEFAULT_RULES))


def _md_tables(md: str) -> list[str]:
    """Each run of consecutive table lines."""
    return re.findall(r"(?:^\|.*\n)+", md, flags=re.M)


def assert_both_engines_everywhere(md: str, html: str) -> None:
    """Every table of both renderings and every chart names TGI and vLLM."""
    tables = _md_tables(md)
    assert len(tables) == 6  # three recommendations, all results, load generator, prices
    for table in tables:
        assert "TGI" in table and "vLLM" in table, table[:200]
    html_tables = re.findall(r"<table>.*?</table>", html, flags=re.S)
    assert len(html_tables) == 6
    for table in html_tables:
        assert "TGI" in table and "vLLM" in table, table[:200]
    charts = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert charts
    for chart in charts:
        labels = re.findall(r"<text[^>]*>([^<]*)</text>", chart)
        assert any("TGI" in label for label in labels) and any("vLLM" in label for label in labels), chart[:200]


def test_every_table_and_chart_of_a_mixed_report_names_each_engine(tmp_path: Path) -> None:
    files = write_report(mixed(), tmp_path)
    md, html = files.markdown.read_text(), files.html.read_text()
    assert_both_engines_everywhere(md, html)
    # the cost winner is vLLM, and the best TGI row follows it, saying so
    assert f"| vLLM {VLLM} | Llama 2 7B | GPTQ | ml.g5.2xlarge | 5 | 34.00 | 150.00 |" in md
    assert "| TGI 3.3.6 | Llama 2 7B (best on TGI) | GPTQ | ml.g5.2xlarge | 5 | 34.00 | 120.00 |" in md
    assert f"| 7b/gptq/ml.g5.2xlarge/vllm-{VLLM}/us-east-1 | vLLM {VLLM} | measured | 5 |" in md
    assert "| ml.g5.2xlarge | us-east-1 | 1.515 | 2026-11 |" in md and f"| TGI 3.3.6, vLLM {VLLM} |" in md
    # the chart legend: the engine in its own column beside each configuration
    assert '<text x="100.0" y="' in html and f'font-weight="bold">vLLM {VLLM}</text>' in html


def test_a_tgi_only_report_names_the_engine_too(tmp_path: Path) -> None:
    only_tgi = [r for r in mixed() if r.configuration.engine == "tgi"]
    md = write_report(only_tgi, tmp_path).markdown.read_text()
    for table in _md_tables(md):
        assert "TGI 3.3.6" in table and "vLLM" not in table
    assert "best on" not in md


# --- sizing ---------------------------------------------------------------------------------------------------

SLO = parse_slo("ms_per_token.p90<=50")


def _capacity(engine: str, ms: float) -> object:
    levels = [
        level(5, [ms] * 50, window_s=10.0, engine=engine),
        level(10, [80.0] * 50, window_s=10.0, engine=engine),
    ]
    return capacity_of(levels, SLO)


def test_sizing_carries_the_engine_into_the_report_and_a_deployable_config(tmp_path: Path) -> None:
    vllm, tgi = _capacity("vllm", 30.0), _capacity("tgi", 40.0)
    sizing = sizing_plan([tgi, vllm], Traffic(peak_rps=20.0, average_rps=8.0))  # type: ignore[list-item]
    cheapest = sizing.cheapest
    assert cheapest is not None
    markdown, _ = write_sizing_report(sizing, SLO, tmp_path)
    text = markdown.read_text()
    name = f"7b gptq ml.g5.2xlarge on vLLM {VLLM}"
    assert f"| {name} |" in text and "| 7b gptq ml.g5.2xlarge |" in text
    engine = cheapest.capacity.configuration.engine_label
    assert f"Engine: {engine}." in text
    vllm_plan = next(p for p in sizing.configurations if p.capacity.configuration.engine == "vllm")
    rendered = render_config(sizing, vllm_plan, SLO)
    section = yaml.safe_load(rendered)["cost"]
    assert (section["engine"], section["vllm_version"]) == ("vllm", VLLM) and "tgi_version" not in section
    assert f"# Engine: vLLM {VLLM}, as measured" in rendered
    # the app's own loader (what cdk synth -c config=FILE runs) deploys what was measured
    path = write_config(sizing, vllm_plan, SLO, tmp_path / "sized.yaml")
    deployed = load_settings({"config": str(path), "scenarios": "cost"}).deployments["cost"]
    assert (deployed.engine, deployed.vllm_version, deployed.instance_type) == ("vllm", VLLM, "ml.g5.2xlarge")
    tgi_plan = next(p for p in sizing.configurations if p.capacity.configuration.engine == "tgi")
    tgi_section = yaml.safe_load(render_config(sizing, tgi_plan, SLO))["cost"]
    assert (tgi_section["engine"], tgi_section["tgi_version"]) == ("tgi", "3.3.6") and "vllm_version" not in tgi_section


# --- imports --------------------------------------------------------------------------------------------------


def test_the_2023_rows_are_tgi_1_0_3() -> None:
    rows = import_file(RAW_2023, price_overrides={"ml.g5.48xlarge": 20.36})
    assert len(rows) == 60
    assert {(r.configuration.engine, r.configuration.tgi_version) for r in rows} == {("tgi", "1.0.3")}
    assert all("/tgi-1.0.3/" in r.configuration.key for r in rows)


def test_another_tool_s_rows_may_name_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text(
        "model,quantization,instance,concurrency,ms_per_token_median,tokens_per_s,engine,vllm_version\n"
        f"7b,gptq,ml.g5.2xlarge,5,30,150,vllm,{VLLM}\n"
        "7b,gptq,ml.g5.2xlarge,5,34,120,,\n"
    )
    first, second = import_file(path)
    assert (first.configuration.engine, first.configuration.vllm_version) == ("vllm", VLLM)
    assert (second.configuration.engine, second.configuration.tgi_version) == ("tgi", "3.3.6")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "model,quantization,instance,concurrency,ms_per_token_median,tokens_per_s,engine\n"
        "7b,gptq,ml.g5.2xlarge,5,30,150,triton\n"
    )
    with pytest.raises(ConfigError, match=r"bad\.csv:2: engine=.*triton"):
        import_file(bad)


def test_results_keep_the_engine_through_a_results_file(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "r.jsonl"))
    row = mixed()[4]
    assert row.configuration.engine == "vllm"
    store.append(row)
    (back,) = store.load()
    assert back.configuration == row.configuration and back.level_key == row.level_key
    record = json.loads((tmp_path / "r.jsonl").read_text())
    assert record["configuration"]["engine"] == "vllm"
    assert record["configuration_key"] == f"7b/gptq/ml.g5.2xlarge/vllm-{VLLM}/us-east-1"


# --- the demo -------------------------------------------------------------------------------------------------


def test_the_demo_puts_tgi_and_vllm_side_by_side_in_every_table_and_chart(tmp_path: Path) -> None:
    """The demo's matrix holds both engines on the same hardware; each is measured in its own protocol."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--concurrency", "1,5,20", "--duration", "0.5", "--max-new-tokens", "8"]
    assert cli_main(args) == 0
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert_both_engines_everywhere(md, html)
    assert html.count("<svg") == 3  # 7B and 13B scatter charts, cost bars
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    engines = {(r["configuration"]["engine"], r["configuration"]["instance_type"]) for r in records}
    assert {("tgi", "ml.g5.2xlarge"), ("vllm", "ml.g5.2xlarge")} <= engines
    # every level of either engine completed requests: vLLM's over chat completions (the emulated vLLM has no
    # TGI routes, so a TGI client would have failed every request)
    assert all(r["metrics"]["requests_ok"] > 0 and r["metrics"]["requests_failed"] == 0 for r in records)


@pytest.mark.parametrize(("engine", "payload"), [("tgi", "tgi"), ("vllm", "openai-chat")])
def test_a_sagemaker_target_is_sent_its_engine_s_payload(engine: str, payload: str) -> None:
    args = build_parser().parse_args(["run", "--target", "sagemaker", "--endpoint", "ep"])
    configuration = BenchmarkConfiguration(model="7b", quantization="gptq", instance_type="g5.2xlarge", engine=engine)
    with open_target(args, configuration) as spec:
        assert (spec.protocol, spec.options["payload"]) == ("sagemaker", payload)


def test_the_emulator_demo_runs_the_engine_asked_for_and_names_a_missing_one() -> None:
    from benchmark.cli import _configurations  # noqa: PLC0415 (the CLI's one reading of what is measured)

    def engines(*argv: str) -> list[str]:
        return [c.engine for c in _configurations(build_parser().parse_args(["run", "--target", "emulator", *argv]))]

    assert engines("--engine", "vllm") == ["vllm", "vllm"]
    assert engines("--engine", "tgi") == ["tgi", "tgi", "tgi"]
    assert sorted(set(engines())) == ["tgi", "vllm"]  # no --engine: the whole demo
    assert engines("--engine", "vllm", "--instance", "ml.g5.2xlarge") == ["vllm"]
    with pytest.raises(ConfigError, match=r"engine='sglang'"):
        engines("--engine", "sglang")
