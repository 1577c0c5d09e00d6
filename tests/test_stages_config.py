"""The stage file: the shipped example, and every way a bad one is refused before synth."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import build_app
from catalog.errors import ConfigError
from settings import load_settings
from settings.stages import load_stages, parse_stages

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "stages.example.yaml"


@pytest.fixture(scope="module")
def example_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def test_the_example_lists_dev_staging_prod_in_order_with_approval_only_on_prod() -> None:
    config = load_stages("stages.example.yaml", base_dir=ROOT)
    assert [s.name for s in config.stages] == ["dev", "staging", "prod"]
    assert [s.requires_approval for s in config.stages] == [False, False, True]
    assert config.stage("prod").production
    assert config.file == "stages.example.yaml"
    assert config.pipeline.source.provider == "connection"


def test_each_stage_gets_its_own_validated_deployments() -> None:
    config = load_stages(EXAMPLE)
    dev, prod = config.stage("dev").deployments["cost"], config.stage("prod").deployments
    assert (dev.model, dev.quantization, dev.instance_type) == ("7b", "gptq", "ml.g5.2xlarge")
    assert dev.region == "us-east-1"
    assert {d.instance_type for d in prod.values()} == {"ml.p4d.24xlarge"}
    assert {d.region for d in prod.values()} == {"us-west-2"}
    # stage defaults, then the scenario's own section on top
    assert (prod["latency"].min_instances, prod["latency"].max_instances) == (2, 4)
    assert prod["throughput"].max_instances == 6
    assert prod["latency"].alarm_model_latency_p90_ms == 20000 != dev.alarm_model_latency_p90_ms
    # the file-wide defaults reach every stage
    assert {d.tgi_version for s in config.stages for d in s.deployments.values()} == {"3.3.6"}


def test_the_benchmark_schedule_switch_reaches_the_stage_settings() -> None:
    config = load_stages(EXAMPLE)
    assert config.stage("dev").settings.options.benchmark.enabled is True
    assert config.stage("prod").settings.options.benchmark.enabled is False
    assert list(config.stage("staging").settings.deployments) == ["cost", "latency"]


def test_codecommit_is_the_alternative_source(example_data: dict[str, Any]) -> None:
    data = copy.deepcopy(example_data)
    data["pipeline"]["source"] = {"provider": "codecommit", "repository": "llama2-sagemaker"}
    source = parse_stages(data).pipeline.source
    assert (source.provider, source.repository, source.branch, source.connection_arn) == (
        "codecommit",
        "llama2-sagemaker",
        "main",
        None,
    )


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """``stages.0.account`` style paths; value ``...`` deletes the key."""
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    elif value is ...:
        del node[last]
    else:
        node[last] = value


BAD = [
    # (what, path, value, expected field, expected text)
    ("unknown top-level key", "stage", [], "stage", "unknown key"),
    ("typo in a stage key", "stages.0.acount", "222222222222", "stages.dev.acount", "unknown key"),
    ("missing account", "stages.0.account", ..., "stages.dev.account", "is required"),
    ("unquoted account", "stages.0.account", 222222222222, "stages.dev.account", "quoted 12-digit"),
    ("malformed account", "stages.1.account", "3333-3333", "stages.staging.account", "12-digit"),
    ("malformed pipeline account", "pipeline.account", "abc", "pipeline.account", "12-digit"),
    ("duplicate stage name", "stages.1.name", "Dev", "stages[1].name", "duplicates stages[0]"),
    ("unknown scenario", "stages.0.scenarios", ["cost", "speed"], "stages.dev.scenarios", "subset of"),
    ("no scenarios", "stages.0.scenarios", [], "stages.dev.scenarios", "non-empty list"),
    ("region without a TGI image", "stages.0.region", "us-isof-south-1", "stages.dev.cost.region", "no TGI"),
    ("not a region", "stages.0.region", "Virginia", "stages.dev.region", "region name"),
    ("prod without approval", "stages.2.requires_approval", False, "stages.prod.requires_approval", "production"),
    ("unknown setting", "stages.0.deployments.defaults.instance_typ", "x", "instance_typ", "unknown setting"),
    ("bad setting value", "defaults.max_instances", "many", "max_instances", "whole number"),
    ("model does not fit", "stages.0.deployments.defaults.model", "70b", "stages.dev.cost.instance_type", "too small"),
    ("section for a scenario not deployed", "stages.0.deployments.latency", {}, "stages.dev.deployments.latency", ""),
    ("region in a deployment section", "stages.2.deployments.defaults.region", "eu-west-1", "region", "stage's"),
    ("bad boolean", "stages.0.benchmark_schedule", "sometimes", "stages.dev.benchmark_schedule", "true or false"),
    ("connection without ARN", "pipeline.source.connection_arn", ..., "pipeline.source.connection_arn", "required"),
    ("unknown source provider", "pipeline.source.provider", "github", "pipeline.source.provider", "one of"),
    ("same account and region twice", "stages.1.account", "222222222222", "stages.staging.account", "also stage dev"),
    ("no stages", "stages", [], "stages", "non-empty list"),
    ("pipeline name too long for role names", "pipeline.name", "P" * 31, "pipeline.name", "1-30"),
]


@pytest.mark.parametrize(("path", "value", "field", "text"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_stage_file_is_refused_naming_field_value_and_what_is_allowed(
    example_data: dict[str, Any], path: str, value: Any, field: str, text: str
) -> None:
    data = copy.deepcopy(example_data)
    _set(data, path, value)
    with pytest.raises(ConfigError) as caught:
        parse_stages(data, file="bad.yaml")
    matching = [i for i in caught.value.issues if field in i.field and text in i.allowed]
    assert matching, str(caught.value)
    assert "bad.yaml" in str(caught.value)


def test_a_stage_marked_production_needs_approval_whatever_its_name(example_data: dict[str, Any]) -> None:
    data = copy.deepcopy(example_data)
    data["stages"][1]["production"] = True
    with pytest.raises(ConfigError) as caught:
        parse_stages(data)
    assert caught.value.fields == ("stages.staging.requires_approval",)


def test_every_problem_is_reported_at_once(example_data: dict[str, Any]) -> None:
    data = copy.deepcopy(example_data)
    data["stages"][0]["account"] = "1"
    data["stages"][2]["requires_approval"] = False
    with pytest.raises(ConfigError) as caught:
        parse_stages(data)
    assert set(caught.value.fields) == {"stages.dev.account", "stages.prod.requires_approval"}


def test_codecommit_refuses_a_connection_arn(example_data: dict[str, Any]) -> None:
    data = copy.deepcopy(example_data)
    data["pipeline"]["source"]["provider"] = "codecommit"
    with pytest.raises(ConfigError) as caught:
        parse_stages(data)
    assert "pipeline.source.connection_arn" in caught.value.fields


@pytest.mark.parametrize(("content", "text"), [(None, "existing"), ("stages: [unclosed", "not valid")])
def test_an_unreadable_stage_file_is_refused(tmp_path: Path, content: str | None, text: str) -> None:
    path = tmp_path / "stages.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=text) as caught:
        load_stages(path)
    assert caught.value.fields == ("stages",)


def test_the_app_refuses_a_bad_stage_file_before_building_any_stack(
    tmp_path: Path, example_data: dict[str, Any]
) -> None:
    data = copy.deepcopy(example_data)
    del data["stages"][2]["requires_approval"]
    path = tmp_path / "stages.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="requires_approval"):
        build_app({"stages": str(path)}, outdir=str(tmp_path / "out"))


def test_the_stage_file_is_read_with_the_other_settings() -> None:
    """``-c stages=...`` is parsed by settings loading, once, not by the app."""
    settings = load_settings({"stages": "stages.example.yaml"}, base_dir=ROOT)
    assert settings.options.stages == load_stages("stages.example.yaml", base_dir=ROOT)
    assert load_settings({}).options.stages is None
