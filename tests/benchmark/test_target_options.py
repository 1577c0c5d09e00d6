"""`run` options for reaching a real target: request model name, API key from the environment only,
credentials in ``--url`` sent but never recorded, and a SageMaker endpoint URL."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.clients.base import redact_url, split_credentials
from benchmark.emulator import EmulatorConfig, EmulatorServer, LatencyModel
from catalog.errors import ConfigError
from tests.benchmark.replay import FIXTURES, Exchange, replaying

LATENCY = LatencyModel(prefill_base_ms=1, prefill_ms_per_token=0, tpot_base_ms=1, tpot_slope_ms=0, tokens=4)
SECRET = "s3cr3t-key-value"
REQUESTS = 3


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(latency=LATENCY)) as server:
        yield server


def run(tmp_path: Path, *options: str) -> tuple[int, list[dict[str, object]], str]:
    results = tmp_path / "results.jsonl"
    argv = ["run", "--instance", "ml.g5.12xlarge", "--concurrency", "1", "--duration", "20"]
    argv += ["--max-requests", str(REQUESTS), "--results", str(results), *options]
    code = main(argv)
    text = results.read_text() if results.exists() else ""
    return code, [json.loads(line) for line in text.splitlines()], text


def test_model_name_and_key_reach_the_server(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, api_key=SECRET, model_name="meta-llama/Llama-2-7b-chat-hf"))
    emulator.reset()
    monkeypatch.setenv("MY_KEY", SECRET)
    code, levels, text = run(
        tmp_path,
        *("--target", "openai", "--url", emulator.base_url),
        *("--model-name", "meta-llama/Llama-2-7b-chat-hf", "--api-key-env", "MY_KEY"),
    )
    assert code == 0
    assert [t.outcome for t in emulator.truth()] == ["ok"] * REQUESTS
    assert SECRET not in text
    assert levels[0]["load"]["target"] == f"openai:{emulator.base_url} model=meta-llama/Llama-2-7b-chat-hf"  # type: ignore[index]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(("--model-name", "tgi", "--api-key-env", "MY_KEY"), id="default-model-name-refused"),
        pytest.param(("--model-name", "served"), id="no-key-sent"),
    ],
)
def test_server_refusals_are_4xx(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: tuple[str, ...]
) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, api_key=SECRET, model_name="served"))
    emulator.reset()
    monkeypatch.setenv("MY_KEY", SECRET)
    monkeypatch.delenv("BENCHMARK_API_KEY", raising=False)
    code, levels, _ = run(tmp_path, "--target", "openai", "--url", emulator.base_url, *options)
    assert code == 0
    assert emulator.truth() == []  # refused before admission
    assert levels[0]["metrics"]["errors_by_kind"] == {"http_4xx": REQUESTS}  # type: ignore[index]


def test_default_key_variable_is_read(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, api_key=SECRET))
    emulator.reset()
    monkeypatch.setenv("BENCHMARK_API_KEY", SECRET)
    code, _, text = run(tmp_path, "--target", "tgi", "--url", emulator.base_url)
    assert code == 0
    assert [t.outcome for t in emulator.truth()] == ["ok"] * REQUESTS
    assert SECRET not in text


def test_url_credentials_are_sent_but_never_recorded(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY))
    emulator.reset()
    monkeypatch.delenv("BENCHMARK_API_KEY", raising=False)
    url = emulator.base_url.replace("http://", "http://alice:pa55word@")
    code, levels, text = run(tmp_path, "--target", "tgi", "--url", url)
    assert code == 0
    assert len(emulator.truth()) == REQUESTS
    assert "pa55word" not in text and "alice" not in text
    assert levels[0]["load"]["target"] == "tgi:" + emulator.base_url.replace("http://", "http://***@")  # type: ignore[index]


def test_url_credentials_go_out_as_basic_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCHMARK_API_KEY", raising=False)
    exchange = Exchange.load(FIXTURES / "protocol_variants", "tgi-generate-stream")
    with replaying(exchange) as server:
        url = server.base_url.replace("http://", "http://alice:pa55word@")
        code, _, _ = run(tmp_path, "--target", "tgi", "--url", url, "--max-requests", "1")
        heads = list(server.requests)
    assert code == 0
    expected = "Basic " + base64.b64encode(b"alice:pa55word").decode()
    assert len(heads) == 1
    assert f"authorization: {expected}".lower() in heads[0].lower()
    assert heads[0].startswith("POST /generate_stream ")


def test_sagemaker_endpoint_url(emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.configure(EmulatorConfig(latency=LATENCY, endpoint_names=("llama-ep",)))
    emulator.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    code, levels, _ = run(
        tmp_path, "--target", "sagemaker", "--endpoint", "llama-ep", "--endpoint-url", emulator.base_url
    )
    assert code == 0
    assert [t.outcome for t in emulator.truth()] == ["ok"] * REQUESTS
    assert levels[0]["load"]["target"] == f"sagemaker:llama-ep via {emulator.base_url}"  # type: ignore[index]


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        (
            ("--target", "openai", "--url", "http://h:1", "--api-key-env", "UNSET_VAR_XYZ"),
            "api_key_env",
            "UNSET_VAR_XYZ",
        ),
        (("--target", "openai", "--url", "http://h:1", "--api-key-env", "sk-live-123"), "api_key_env", "sk-live-123"),
        (("--target", "openai", "--url", "ftp://h:1"), "url", "ftp://h:1"),
        (("--target", "openai", "--url", "http://h:1", "--model-name", " "), "model_name", " "),
        (("--target", "tgi", "--url", "http://h:1", "--endpoint-url", "http://u:pw@x"), "endpoint_url", "http://***@x"),
        (("--target", "sagemaker", "--endpoint", "e", "--endpoint-url", "localhost:8080"), "endpoint_url", None),
    ],
)
def test_bad_target_options_stop_before_any_request(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    options: tuple[str, ...],
    field: str,
    value: str | None,
) -> None:
    monkeypatch.delenv("UNSET_VAR_XYZ", raising=False)
    code, levels, _ = run(tmp_path, *options)
    err = capsys.readouterr().err
    assert code == 2 and levels == []
    assert f"{field}=" in err
    if value is not None:
        assert repr(value) in err
    assert "pw" not in err


def test_url_with_credentials_and_api_key_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCHMARK_API_KEY", SECRET)
    code, _, _ = run(tmp_path, "--target", "openai", "--url", "http://u:pw@127.0.0.1:9")
    assert code == 2


def test_redaction_and_splitting() -> None:
    assert split_credentials("https://u:p%40ss@host:8443/v1") == ("https://host:8443/v1", ("u", "p%40ss"))
    assert split_credentials("http://host/") == ("http://host/", None)
    assert redact_url("https://u:p@host/x?key=1&b=2") == "https://***@host/x?key=***&b=***"
    assert redact_url("http://host:80/") == "http://host:80/"
    with pytest.raises(ConfigError, match="url='not a url'"):
        split_credentials("not a url")
