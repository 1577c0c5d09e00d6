"""Bad inputs are refused before any construct exists, naming the field and what is allowed.

One table, three doors: ``DeploymentConfig(...)``, ``load_settings(context)`` (what ``-c key=value`` reaches) and
``read_config_file``. Each row asserts the field named in the error and a fragment of the allowed values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog.errors import ConfigError
from settings import DeploymentConfig, load_settings, read_config_file
from settings.stages import parse_stages


def cfg(**kw: Any) -> Callable[[Path], object]:
    return lambda _tmp: DeploymentConfig(**{"scenario": "latency", **kw})


def ctx(**context: Any) -> Callable[[Path], object]:
    return lambda _tmp: load_settings({"scenarios": "latency", **context})


def config_file(text: str, suffix: str = ".yaml") -> Callable[[Path], object]:
    def run(tmp: Path) -> object:
        path = tmp / f"config{suffix}"
        path.write_text(text)
        return read_config_file(path)

    return run


# (id, how to build it, field fragment, allowed fragment)
BAD_INPUTS: list[tuple[str, Callable[[Path], object], str, str]] = [
    ("no-p4d-12xlarge", cfg(instance_type="ml.p4d.12xlarge"), "instance_type", "ml.p4d.24xlarge"),
    (
        "13b-fp16-on-one-a10g",
        cfg(model="13b", quantization="fp16", instance_type="ml.g5.2xlarge"),
        "instance_type",
        "too small",
    ),
    (
        "70b-fp16-on-g5-12xlarge",
        cfg(model="70b", quantization="fp16", instance_type="ml.g5.12xlarge"),
        "instance_type",
        "too small",
    ),
    ("gptq-on-tgi-0.8.2", cfg(quantization="gptq", tgi_version="0.8.2"), "tgi_version", "needs TGI >= 0.9.3"),
    ("unknown-tgi-version", cfg(tgi_version="9.9.9"), "tgi_version", "3.3.6"),
    (
        "input-equals-total",
        cfg(max_input_tokens=4096, max_total_tokens=4096),
        "max_input_tokens",
        "below max_total_tokens",
    ),
    ("total-over-context", cfg(max_total_tokens=8192, max_batch_prefill_tokens=8192), "max_total_tokens", "4096"),
    (
        "prefill-below-input",
        cfg(max_batch_prefill_tokens=1024),
        "max_batch_prefill_tokens",
        "at least max_input_tokens",
    ),
    ("batch-total-too-small", cfg(max_batch_total_tokens=2048), "max_batch_total_tokens", "at least max_total_tokens"),
    (
        "startup-timeout-below-60",
        cfg(startup_health_check_timeout_s=30),
        "startup_health_check_timeout_s",
        "between 60 and 3600",
    ),
    (
        "download-timeout-above-3600",
        cfg(model_data_download_timeout_s=7200),
        "model_data_download_timeout_s",
        "between 60 and 3600",
    ),
    ("min-above-max", cfg(min_instances=3, max_instances=2), "max_instances", "at least min_instances"),
    ("min-zero", cfg(min_instances=0), "min_instances", "cannot scale to zero"),
    ("max-over-cap", cfg(max_instances=50), "max_instances", "at most 20"),
    ("region-without-image", cfg(region="us-iso-east-1"), "region", "us-east-1"),
    ("malformed-region", cfg(region="US_EAST_1"), "region", "such as us-east-1"),
    ("volume-size-on-nvme", cfg(volume_size_gb=100), "volume_size_gb", "rejects VolumeSizeInGB"),
    ("endpoint-config-kms-on-nvme", cfg(endpoint_config_kms=True), "endpoint_config_kms", "rejects KmsKeyId"),
    ("bad-endpoint-name", cfg(endpoint_name="llama_2!"), "endpoint_name", "letters, digits or hyphens"),
    ("weights-prefix-absolute", cfg(weights_prefix="/models/x/"), "weights_prefix", "ending with '/'"),
    ("weights-prefix-no-slash", cfg(weights_prefix="models/x"), "weights_prefix", "ending with '/'"),
    ("weights-prefix-outside-models", cfg(weights_prefix="weights/llama/"), "weights_prefix", "under models/"),
    ("alarm-pct-over-100", cfg(alarm_5xx_rate_pct=150), "alarm_5xx_rate_pct", "(0, 100]"),
    ("gpu-alarm-zero", cfg(alarm_gpu_memory_pct=0), "alarm_gpu_memory_pct", "(0, 100]"),
    ("negative-cooldown", cfg(scale_in_cooldown_s=-1), "scale_in_cooldown_s", "between 0 and 3600"),
    ("autoscaling-target-zero", cfg(autoscaling_target=0.0), "autoscaling_target", "positive"),
    ("unknown-scenario", lambda _t: DeploymentConfig(scenario="fastest"), "scenario", "cost, latency, throughput"),
    ("unknown-model", cfg(model="34b"), "model", "13b"),
    ("unknown-engine", cfg(engine="sglang"), "engine", "tgi, vllm"),
    ("context-unknown-engine", ctx(engine="triton"), "latency.engine", "must be one of tgi, vllm"),
    ("vllm-version-on-tgi", cfg(vllm_version="0.29"), "vllm_version", "is a vLLM setting"),
    ("unknown-vllm-version", cfg(engine="vllm", vllm_version="1.0"), "vllm_version", "0.29.0"),
    ("vllm-region-without-image", cfg(engine="vllm", region="me-west-1"), "region", "no vLLM 0.29.0 image"),
    ("gpu-utilization-on-tgi", cfg(gpu_memory_utilization=0.8), "gpu_memory_utilization", "is a vLLM setting"),
    ("gpu-utilization-over-1", cfg(engine="vllm", gpu_memory_utilization=1.2), "gpu_memory_utilization", "(0, 1]"),
    ("batch-total-on-vllm", cfg(engine="vllm", max_batch_total_tokens=9000), "max_batch_total_tokens", "TGI setting"),
    (
        "file-bad-utilization",
        config_file("latency:\n  engine: vllm\n  gpu_memory_utilization: most\n"),
        "gpu_memory_utilization (config.yaml:latency)",
        "must be a number",
    ),
    ("unknown-quantization", cfg(quantization="awq"), "quantization", "gptq"),
    ("bad-hub-id", cfg(hf_model_id="not a repo"), "hf_model_id", "Hub repository id"),
    ("hf-revision-branch", cfg(hf_revision="main"), "hf_revision", "40 lowercase hexadecimal"),
    ("hf-revision-short", cfg(hf_revision="f5db02d"), "hf_revision", "40 lowercase hexadecimal"),
    ("context-key-typo", ctx(modle="13b"), "-c modle", "unknown context key"),
    ("pipeline-is-not-a-context-key", ctx(pipeline="true"), "-c pipeline", "unknown context key"),
    ("benchmark-option-unknown-key", ctx(benchmark="nope=1"), "benchmark.nope", "unknown key"),
    ("stage-file-missing", ctx(stages="no-such-stages.yaml"), "stages", "existing YAML or JSON stage file"),
    ("context-non-integer", ctx(min_instances="two"), "min_instances (cdk context)", "whole number"),
    ("context-fraction", ctx(max_instances="2.5"), "max_instances (cdk context)", "whole number"),
    ("context-bad-bool", ctx(endpoint_config_kms="maybe"), "endpoint_config_kms (cdk context)", "true or false"),
    ("context-scoped-unknown-key", ctx(**{"latency.colour": "red"}), "-c latency.colour", "unknown context key"),
    ("context-bad-scenarios", ctx(scenarios="latency,fastest"), "scenarios", "subset of cost, latency, throughput"),
    (
        "context-scoped-value",
        ctx(**{"latency.instance_type": "ml.p4d.12xlarge"}),
        "latency.instance_type",
        "ml.p4d.24xlarge",
    ),
    ("context-bad-autoscaling", ctx(**{"latency.autoscaling": "sometimes"}), "autoscaling", "true or false"),
    ("az-count-one", ctx(az_count="1"), "az_count", "from 2 to 6"),
    ("az-count-seven", ctx(az_count=7), "az_count", "from 2 to 6"),
    ("az-count-words", ctx(az_count="three"), "az_count", "whole number"),
    ("zones-one", ctx(availability_zones="us-east-1a"), "availability_zones", "2 to 6 distinct zone names"),
    ("zones-two-regions", ctx(availability_zones="us-east-1a,us-west-2a"), "availability_zones", "of one region"),
    (
        "zones-local-zone",
        ctx(availability_zones="us-west-2-lax-1a,us-west-2-lax-1b"),
        "availability_zones",
        "one region",
    ),
    ("zones-twice", ctx(availability_zones="us-east-1a,us-east-1a"), "availability_zones", "distinct"),
    ("zones-vs-count", ctx(availability_zones="us-east-1a,us-east-1b", az_count="3"), "az_count", "must be 2"),
    (
        "zones-vs-region",
        ctx(availability_zones="us-east-1a,us-east-1b", region="us-west-2"),
        "latency.region",
        "us-east-1",
    ),
    ("context-missing-config-file", ctx(config="no-such-file.yaml"), "config", "existing YAML or JSON file"),
    ("file-unknown-section", config_file("defaults: {}\nstaging: {model: 7b}\n"), "staging", "unknown section"),
    (
        "file-unknown-setting",
        config_file("latency:\n  instance: ml.g5.2xlarge\n"),
        "instance (config.yaml:latency)",
        "unknown setting",
    ),
    ("file-section-not-mapping", config_file("cost: [1, 2]\n"), "cost (config.yaml)", "mapping of settings"),
    ("file-not-yaml", config_file("cost: [unclosed\n"), "config", "not valid yaml"),
    ("file-not-json", config_file("{'cost': 1}", ".json"), "config", "not valid json"),
    (
        "file-bad-type",
        config_file("defaults:\n  max_total_tokens: lots\n"),
        "max_total_tokens (config.yaml:defaults)",
        "whole number",
    ),
]


@pytest.mark.parametrize(
    ("build", "field", "allowed"), [row[1:] for row in BAD_INPUTS], ids=[row[0] for row in BAD_INPUTS]
)
def test_bad_input_names_field_and_allowed(
    build: Callable[[Path], object], field: str, allowed: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(tmp_path)
    err = caught.value
    assert any(field in f for f in err.fields), f"{field!r} not in {err.fields}"
    assert allowed in str(err)


def test_table_is_distinct_and_large_enough() -> None:
    assert len({row[0] for row in BAD_INPUTS}) == len(BAD_INPUTS) >= 25


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        DeploymentConfig(scenario="cost", min_instances=0, volume_size_gb=10, alarm_5xx_rate_pct=0)
    assert {"min_instances", "volume_size_gb", "alarm_5xx_rate_pct"} <= set(caught.value.fields)


def test_context_errors_name_the_scenario() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"model": "13b", "instance_type": "ml.p4d.12xlarge"})
    assert set(caught.value.fields) == {f"{s}.instance_type" for s in ("cost", "latency", "throughput")}


def test_good_inputs_pass_and_resolve() -> None:
    """The other side of the table: the same doors accept valid values (so the rows above fail for their reason)."""
    settings = load_settings({"model": "13", "latency.min_instances": "2", "max_instances": "4.0"})
    assert settings.deployments["latency"].min_instances == 2
    assert settings.deployments["cost"].max_instances == 4
    assert settings.deployments["throughput"].instance_type == "ml.p4d.24xlarge"


def test_hf_revision_is_the_catalogs_commit_only_for_the_catalogs_hub_id() -> None:
    latency = DeploymentConfig(scenario="latency", model="7b")
    assert latency.hf_revision == latency.model_spec.hub_revisions["fp16"]
    own = DeploymentConfig(scenario="latency", model="7b", hf_model_id="me/my-llama")
    assert own.hf_revision is None, "another repository's commit is not the catalog's to guess"
    pinned = DeploymentConfig(scenario="latency", model="7b", hf_model_id="me/my-llama", hf_revision="a" * 40)
    assert pinned.hf_revision == "a" * 40


def test_az_count_defaults_to_three_and_accepts_a_cli_string() -> None:
    assert load_settings({}).options.az_count == 3
    assert load_settings({"az_count": "4"}).options.az_count == 4
    pinned = load_settings({"availability_zones": "us-east-1a, us-east-1c"}).options
    assert (pinned.availability_zones, pinned.az_count) == (("us-east-1a", "us-east-1c"), 2)
    assert load_settings({}).options.availability_zones == ()


def test_example_config_file_is_valid_and_states_the_defaults() -> None:
    root = Path(__file__).resolve().parents[1]
    from_file = load_settings({"config": "config.example.yaml"}, base_dir=root)
    assert dict(from_file.deployments) == dict(load_settings({}).deployments)


def test_the_engine_is_chosen_per_scenario_and_defaults_to_tgi() -> None:
    settings = load_settings({"latency.engine": "vllm", "latency.vllm_version": "0.17"})
    assert {s: d.engine for s, d in settings.deployments.items()} == {
        "cost": "tgi",
        "latency": "vllm",
        "throughput": "tgi",
    }
    assert settings.deployments["latency"].vllm_version == "0.17.0"
    assert settings.deployments["cost"].vllm_version is None


def test_a_config_files_model_is_not_overridden_by_the_apps_own_context(tmp_path: Path) -> None:
    """cdk.json's context is cdk context, which wins over a config file: it must not set a deployment value, or a
    file's `model:` (config.vllm.example.yaml, a `size plan --write-config` file) would silently deploy 7B."""
    from app import project_context  # noqa: PLC0415 (the app module loads CDK)

    context = project_context()
    assert not set(context) & ({f.name for f in fields(DeploymentConfig)} | {"scenarios"})
    path = tmp_path / "sized.yaml"
    path.write_text("cost:\n  model: 13b\n")
    settings = load_settings({**context, "config": str(path), "scenarios": "cost"})
    assert settings.deployments["cost"].model == "13b"


def test_a_stage_may_set_its_az_count_and_a_bad_one_names_the_stage() -> None:
    root = Path(__file__).resolve().parents[1]
    data = yaml.safe_load((root / "stages.example.yaml").read_text())
    assert parse_stages(data).stages[0].settings.options.az_count == 3
    data["stages"][0]["az_count"] = 4
    first = parse_stages(data).stages[0]
    assert first.settings.options.az_count == 4
    data["stages"][0]["az_count"] = 9
    with pytest.raises(ConfigError) as caught:
        parse_stages(data)
    assert f"stages.{first.name}.az_count" in caught.value.fields
