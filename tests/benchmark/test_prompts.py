"""Prompts and generation parameters: dataset errors name file and line; built-ins are deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.measure.prompts import GenerationParams, builtin_prompts, estimate_tokens, load_jsonl
from catalog.errors import ConfigError


def test_jsonl_loader_reads_prompts_ids_and_sharegpt(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(
        '{"prompt": "Hello", "id": "a", "input_tokens": 2}\n'
        "\n"
        '{"prompt": "World"}\n'
        '{"prompt": [{"from": "gpt", "value": "no"}, {"from": "human", "value": "ShareGPT turn"}]}\n',
        encoding="utf-8",
    )
    prompts = load_jsonl(path)
    assert [p.text for p in prompts] == ["Hello", "World", "ShareGPT turn"]
    assert prompts[0].id == "a" and prompts[0].expected_input_tokens == 2
    assert prompts[1].id == "set.jsonl:3"
    assert load_jsonl(path, limit=1) == prompts[:1]


def test_jsonl_custom_field(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Why?"}\n', encoding="utf-8")
    assert load_jsonl(path, field="question")[0].text == "Why?"
    with pytest.raises(ConfigError, match=r"q\.jsonl:1.*field 'prompt'"):
        load_jsonl(path)


def test_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "broken"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2.*one JSON object per line"):
        load_jsonl(path)
    path.write_text('["not", "an", "object"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1.*JSON object"):
        load_jsonl(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="at least one prompt"):
        load_jsonl(tmp_path / "empty.jsonl")


def test_builtin_prompts_are_deterministic_with_controlled_lengths() -> None:
    prompts = builtin_prompts((64, 512), per_length=3)
    assert prompts == builtin_prompts((64, 512), per_length=3)
    assert prompts != builtin_prompts((64, 512), per_length=3, seed=1)
    assert len({p.id for p in prompts}) == 6
    for prompt in prompts:
        assert prompt.expected_input_tokens in (64, 512)
        assert estimate_tokens(prompt.text) == pytest.approx(prompt.expected_input_tokens, rel=0.05)
    with pytest.raises(ConfigError):
        builtin_prompts((4,))


def test_generation_params_defaults_and_payloads() -> None:
    params = GenerationParams()
    assert params.max_new_tokens == 50 and params.do_sample is False
    assert params.tgi_parameters() == {"max_new_tokens": 50, "details": True, "do_sample": False}
    assert params.openai_parameters() == {"max_tokens": 50, "temperature": 0.0}
    sampled = GenerationParams(max_new_tokens=8, do_sample=True, temperature=0.7, top_p=0.9, seed=3, stop=("\n",))
    assert sampled.tgi_parameters() == {
        "max_new_tokens": 8,
        "details": True,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
        "stop": ["\n"],
    }
    assert sampled.openai_parameters()["temperature"] == 0.7


def test_generation_params_validation() -> None:
    with pytest.raises(ConfigError) as err:
        GenerationParams(max_new_tokens=0, temperature=0, top_p=1.0)
    assert set(err.value.fields) == {"max_new_tokens", "temperature", "top_p"}
