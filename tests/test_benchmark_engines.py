"""A benchmark matrix that mixes engines: each entry deploys its engine's image and container the way the endpoint
stacks do, the load test is told its engine's payload, and TGI-only matrices keep the definition they had.

Oracles: the vendored SDK image tables (``catalog/data/*_images.json``, held equal to sagemaker-core's by
tests/test_images.py) for every URI, the vLLM container contract written out from the DLC's documentation
(``tests.test_vllm_endpoints.documented_environment``), and the app itself for synth refusals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from cfnlint.api import lint

from benchmark.aws.contract import EndpointConfiguration, configuration_data
from benchmark.matrix import Matrix, load_matrix, parse_matrix
from benchmark.serialize import from_data
from catalog.engines import PAYLOAD_OPENAI_CHAT, PAYLOAD_TGI
from catalog.errors import ConfigError
from tests.test_compliance import LINT_REGIONS
from tests.test_state_machine_local import REGION, synthesized_definition
from tests.test_vllm_endpoints import HOST_AMI, documented_environment

if TYPE_CHECKING:
    from tests.conftest import AppAssembly

ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    engine: json.loads((ROOT / "catalog" / "data" / f"{engine}_images.json").read_text()) for engine in ("tgi", "vllm")
}
# What every configuration of a TGI-only matrix has carried since before vLLM, and nothing else.
TGI_KEYS = {"id", "description", "model", "quantization", "instance_type", "tgi_version", "container", "variant"}


@pytest.fixture(scope="module")
def engines() -> Matrix:
    return load_matrix("engines")


@pytest.fixture(scope="module")
def mixed(engines: Matrix) -> dict[str, Any]:
    """The shipped mixed matrix's Pass-state payload, as synthesized in a stack of concrete region."""
    definition = synthesized_definition(engines)
    plan: dict[str, Any] = definition["States"]["Matrix-engines"]["Result"]
    return plan


def table_uri(engine: str, version: str) -> str:
    entry = TABLES[engine]["versions"][version]
    return f"{entry['registries'][REGION]}.dkr.ecr.{REGION}.amazonaws.com/{entry['repository']}:{entry['tag']}"


def test_the_shipped_mixed_matrix_runs_both_engines_on_the_same_deployments(engines: Matrix) -> None:
    by_engine: dict[str, set[tuple[str, str, str]]] = {}
    for c in engines.configurations:
        d = c.deployment
        by_engine.setdefault(d.engine, set()).add((d.model, str(d.quantization), str(d.instance_type)))
    assert set(by_engine) == {"tgi", "vllm"}
    assert by_engine["tgi"] == by_engine["vllm"]
    assert {("7b", "gptq", "ml.g5.2xlarge"), ("7b", "fp16", "ml.g5.12xlarge")} <= by_engine["vllm"]


def test_each_entry_deploys_its_engines_image_from_the_vendored_table(engines: Matrix, mixed: dict[str, Any]) -> None:
    deployments = {c.id: c.deployment for c in engines.configurations}
    assert {c["id"] for c in mixed["configurations"]} == set(deployments)
    for config in mixed["configurations"]:
        d = deployments[config["id"]]
        version = d.vllm_version if d.engine == "vllm" else d.tgi_version
        assert config["container"]["Image"] == table_uri(d.engine, str(version)), config["id"]
    images = {c["container"]["Image"].split("/")[1].split(":")[0] for c in mixed["configurations"]}
    assert images == {"huggingface-pytorch-tgi-inference", "huggingface-vllm"}


def test_vllm_entries_carry_the_documented_container_and_host_and_tgi_entries_tgis(
    engines: Matrix, mixed: dict[str, Any]
) -> None:
    deployments = {c.id: c.deployment for c in engines.configurations}
    for config in mixed["configurations"]:
        d = deployments[config["id"]]
        environment = config["container"]["Environment"]
        if d.engine == "vllm":
            expected = {
                **documented_environment(str(d.quantization), str(d.instance.gpu_count)),
                "SM_VLLM_MAX_MODEL_LEN": str(d.max_total_tokens),  # the matrix's, where it sets one
            }
            assert environment == expected, config["id"]
            assert config["variant"]["InferenceAmiVersion"] == HOST_AMI
        else:
            assert not any(k.startswith("SM_VLLM_") for k in environment)
            assert environment["MAX_TOTAL_TOKENS"] == str(d.max_total_tokens)
            assert environment["SM_NUM_GPUS"] == str(d.instance.gpu_count)
            assert "InferenceAmiVersion" not in config["variant"]
        # The endpoint stacks' one builder: the same environment as the deployment would get on its own.
        assert environment == d.container_environment()


def test_the_load_test_is_told_each_engines_payload(engines: Matrix, mixed: dict[str, Any]) -> None:
    deployments = {c.id: c.deployment for c in engines.configurations}
    told = {}
    for config in mixed["configurations"]:
        item = from_data(EndpointConfiguration, config)  # as the load test reads it
        told[config["id"]] = (item.engine, item.vllm_version, item.payload)
    expected = {
        i: ("vllm", "0.29.0", PAYLOAD_OPENAI_CHAT) if d.engine == "vllm" else ("tgi", None, PAYLOAD_TGI)
        for i, d in deployments.items()
    }
    assert told == expected
    assert {payload for _, _, payload in told.values()} == {PAYLOAD_TGI, PAYLOAD_OPENAI_CHAT}


@pytest.mark.parametrize("name", ["smoke", "2023", "engines"])
def test_tgi_configurations_carry_exactly_what_they_carried_before_vllm(name: str) -> None:
    """A TGI configuration's payload has no engine key, in a TGI-only matrix and in a mixed one alike, so that the
    definition of a TGI-only matrix is the one it was (checked byte for byte with scripts/compare_templates.py)."""
    definition = synthesized_definition(load_matrix(name))
    configurations = definition["States"][f"Matrix-{name}"]["Result"]["configurations"]
    tgi = [c for c in configurations if not c["container"]["Environment"].get("SM_VLLM_MODEL")]
    assert tgi
    assert all(set(c) == TGI_KEYS for c in tgi)
    vllm = [c for c in configurations if c not in tgi]
    assert all(set(c) == TGI_KEYS | {"engine", "vllm_version", "payload"} for c in vllm)


def test_configuration_data_leaves_out_only_tgis_own_values() -> None:
    fields = {k: "x" for k in ("id", "description", "model", "quantization", "instance_type", "tgi_version")}
    tgi = EndpointConfiguration(**fields, container={}, variant={})
    assert set(configuration_data(tgi)) == TGI_KEYS
    # A TGI configuration that speaks TGI's Messages API is not TGI's default: its payload is carried.
    messages = EndpointConfiguration(**fields, container={}, variant={}, payload=PAYLOAD_OPENAI_CHAT)
    assert configuration_data(messages)["payload"] == PAYLOAD_OPENAI_CHAT
    assert from_data(EndpointConfiguration, configuration_data(messages)) == messages
    assert from_data(EndpointConfiguration, configuration_data(tgi)) == tgi


# --- what synth refuses -------------------------------------------------------------------------------------


SHIPPED: dict[str, Any] = yaml.safe_load((ROOT / "benchmark" / "matrices" / "engines.yaml").read_text())
ADDED = len(SHIPPED["configurations"])  # the position of an entry appended to the shipped matrix


def mixed_with(entry: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "benchmark" / "matrices" / "engines.yaml").read_text())
    data["configurations"].append(entry)
    return data


# Entries the vLLM image cannot serve, each with the field, value and reason synth names.
REFUSED: list[tuple[str, dict[str, Any], str, object, str]] = [
    (
        "vllm-memory-rule",  # 7B fp16 (13.5 GB) on one 24 GB A10G at gpu_memory_utilization 0.5
        {
            "id": "7b-fp16-g5-2xlarge-vllm",
            "engine": "vllm",
            "model": "7b",
            "quantization": "fp16",
            "instance_type": "ml.g5.2xlarge",
            "gpu_memory_utilization": 0.5,
        },
        f"configurations[{ADDED}] (7b-fp16-g5-2xlarge-vllm).instance_type",
        "ml.g5.2xlarge",
        "vLLM refuses to start",
    ),
    (
        "no-vllm-image-in-region",  # me-west-1 has TGI images but no vLLM image in the SDK's table
        {
            "id": "west",
            "engine": "vllm",
            "model": "7b",
            "quantization": "gptq",
            "instance_type": "ml.g5.2xlarge",
            "region": "me-west-1",
        },
        f"configurations[{ADDED}] (west).region",
        "me-west-1",
        "has no vLLM 0.29.0 image",
    ),
    (
        "tgi-setting-on-vllm",
        {
            "id": "batch",
            "engine": "vllm",
            "model": "7b",
            "quantization": "gptq",
            "instance_type": "ml.g5.2xlarge",
            "max_batch_total_tokens": 8192,
        },
        f"configurations[{ADDED}] (batch).max_batch_total_tokens",
        8192,
        "is a TGI setting",
    ),
]


@pytest.mark.parametrize(("entry", "field", "value", "allowed"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_refused_entry_is_named_with_field_value_and_reason(
    entry: dict[str, Any], field: str, value: object, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_matrix(mixed_with(entry), source="engines")
    matching = [i for i in caught.value.issues if i.field == field]
    assert matching, caught.value
    assert any(i.value == value and allowed in i.allowed for i in matching), caught.value


def test_the_controls_of_the_refusals_are_served() -> None:
    """The same entries with the one refused setting changed are accepted: the refusals are about that setting."""
    controls = [
        {**REFUSED[0][1], "gpu_memory_utilization": 0.85},
        {**REFUSED[1][1], "region": "us-east-1"},
        {k: v for k, v in REFUSED[2][1].items() if k != "max_batch_total_tokens"},
    ]
    for control in controls:
        assert len(parse_matrix(mixed_with(control), source="engines").configurations) == ADDED + 1


def test_synth_of_a_refused_matrix_names_the_combination_and_exits_2(tmp_path: Path) -> None:
    """As ``cdk synth -c benchmark=matrices=...`` runs it: the CLI passes context by environment."""
    refused = tmp_path / "refused.yaml"
    refused.write_text(yaml.safe_dump(mixed_with(REFUSED[0][1])))
    context = json.dumps({"benchmark": f"matrices=smoke,{refused}"})
    env = {**os.environ, "CDK_CONTEXT_JSON": context, "CDK_OUTDIR": str(tmp_path / "out")}
    run = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 2, run.stderr
    assert f"configurations[{ADDED}] (7b-fp16-g5-2xlarge-vllm).instance_type='ml.g5.2xlarge'" in run.stderr
    assert "vLLM refuses to start" in run.stderr and "Traceback" not in run.stderr


def test_scripts_synth_synthesizes_the_mixed_matrix() -> None:
    """``scripts/synth`` builds the benchmark stack with the engines matrix; the matrix it names is shipped."""
    script = (ROOT / "scripts" / "synth").read_text()
    assert '-c "benchmark=matrices=engines;schedule_matrix=engines" -o cdk.out/engines' in script
    assert {c.deployment.engine for c in load_matrix("engines").configurations} == {"tgi", "vllm"}


def test_cfn_lint_has_no_errors_or_warnings_on_the_mixed_benchmark_stack(engines_assembly: AppAssembly) -> None:
    """The stack scripts/synth builds in cdk.out/engines: the vLLM image's mapping and region rule beside TGI's."""
    template = engines_assembly.stacks["LlamaBenchmarkStack"].template_file.read_text()
    assert "VllmImage0290" in template
    problems = [
        f"{match.rule.id} line {match.linenumber}: {match.message}"
        for match in lint(template, regions=LINT_REGIONS)
        if not match.rule.id.startswith("I")
    ]
    assert not problems, "\n".join(problems)
