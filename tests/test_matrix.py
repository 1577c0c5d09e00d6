"""Matrix validation uses DeploymentConfig: infeasible entries are refused with reasons, or skipped on request."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmark.matrix import load_matrix, parse_matrix
from benchmark.measure.load import LoadSpec
from catalog.errors import ConfigError

BASE = {"name": "t", "load": {"concurrency": [1, 5]}}


def test_2023_matrix_has_15_feasible_pairs() -> None:
    m = load_matrix("2023")
    assert len(m.configurations) == 15 and m.runs == 60
    assert {c.deployment.tgi_version for c in m.configurations} == {"1.0.3"}
    env = m.configurations[0].deployment.container_environment()
    assert env["MAX_INPUT_LENGTH"] == "1024" and env["MAX_TOTAL_TOKENS"] == "2048"


def test_refuse_lists_every_infeasible_entry() -> None:
    data = {
        **BASE,
        "configurations": [
            {"model": "13b", "quantization": "fp16", "instance_type": "ml.g5.2xlarge"},
            {"model": "7b", "quantization": "fp16", "instance_type": "ml.p4d.12xlarge"},
            {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"},
        ],
    }
    with pytest.raises(ConfigError) as err:
        parse_matrix(data)
    text = str(err.value)
    assert "13b-fp16-g5-2xlarge" in text and "too small" in text
    assert "ml.p4d.12xlarge" in text


def test_skip_keeps_feasible_and_carries_reasons() -> None:
    data = {
        **BASE,
        "on_infeasible": "skip",
        "configurations": [
            {"model": "13b", "quantization": "fp16", "instance_type": "ml.g5.2xlarge"},
            {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"},
        ],
    }
    m = parse_matrix(data)
    assert [c.id for c in m.configurations] == ["7b-gptq-g5-2xlarge"]
    assert m.skipped[0].id == "13b-fp16-g5-2xlarge" and "too small" in m.skipped[0].reasons[0]


def test_scenario_supplies_instance_and_quantization() -> None:
    m = parse_matrix({**BASE, "configurations": [{"model": "13b", "scenario": "cost", "id": "cost-13b"}]})
    assert m.configurations[0].deployment.instance_type == "ml.g5.2xlarge"
    with pytest.raises(ConfigError, match="instance_type"):
        parse_matrix({**BASE, "configurations": [{"model": "7b"}]})


def test_unknown_keys_and_duplicate_ids_are_refused() -> None:
    entry = {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"}
    with pytest.raises(ConfigError) as err:
        parse_matrix({**BASE, "load": {"concurrency": [1], "durration_s": 5}, "configurations": [entry, entry]})
    assert "durration_s" in str(err.value) and "used twice" in str(err.value)


def test_the_load_section_is_the_load_spec_every_level_shares() -> None:
    entry = {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"}
    load = {"concurrency": [1, 5], "duration_s": 30, "fail_fast_requests": 2, "max_error_rate": 0.1, "ramp_up_s": 1}
    m = parse_matrix({**BASE, "load": load, "configurations": [entry]})
    shared = LoadSpec(duration_s=30.0, fail_fast_requests=2, max_error_rate=0.1, ramp_up_s=1.0)
    assert m.levels == (1, 5) and m.load == shared
    assert m.level_specs == (replace(shared, concurrency=1), replace(shared, concurrency=5))
    assert load_matrix("2023").load == LoadSpec(duration_s=90.0, max_new_tokens=50, streaming=False)


def test_load_problems_are_named_by_their_key_and_open_loop_keys_are_refused() -> None:
    entry = {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"}
    load = {"concurrency": [1, 1], "duration_s": "long", "warmup_requests": 1.5, "request_rate": 3, "dataset": "x"}
    with pytest.raises(ConfigError) as err:
        parse_matrix({**BASE, "load": load, "configurations": [entry]})
    assert set(err.value.fields) == {
        "load.concurrency",
        "load.duration_s",
        "load.warmup_requests",
        "matrix.load.request_rate",
        "matrix.load.dataset",
    }
    assert "load.duration_s='long': must be a number" in str(err.value)
    with pytest.raises(ConfigError, match=r"load\.max_error_rate=2.0: must be within \[0, 1\) or unset"):
        parse_matrix({**BASE, "load": {"concurrency": [1], "max_error_rate": 2}, "configurations": [entry]})
