"""The post-deploy smoke test against the emulator's SageMaker runtime (real boto3 client, real sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from benchmark.aws.smoke import (
    SESSION_NAME,
    SmokeTestError,
    check_endpoint,
    generated_text,
    main,
    request_body,
    runtime_client,
)
from benchmark.emulator import EmulatorConfig, EmulatorServer, FaultKind, FaultRule, LatencyModel

ENDPOINT = "llama2-7b-gptq-cost"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(endpoint_names=(ENDPOINT,))) as server:
        yield server


@pytest.fixture
def url(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    emulator.configure(EmulatorConfig(endpoint_names=(ENDPOINT,)))
    emulator.reset()
    return emulator.base_url


def client(url: str) -> Any:
    return runtime_client("us-east-1", endpoint_url=url, timeout_s=10)


def test_a_healthy_endpoint_passes_with_generated_text(url: str, emulator: EmulatorServer) -> None:
    result = check_endpoint(client(url), ENDPOINT, max_new_tokens=4)
    assert result.ok, result.detail
    assert result.detail.startswith("The")
    # One short request, with the small token budget the pipeline asks for.
    (truth,) = emulator.truth()
    assert truth.tokens == 4


def test_a_5xx_fails_the_smoke_test(url: str, emulator: EmulatorServer) -> None:
    emulator.configure(
        EmulatorConfig(endpoint_names=(ENDPOINT,), faults=(FaultRule(FaultKind.SERVER_ERROR, every_nth=1),))
    )
    result = check_endpoint(client(url), ENDPOINT, max_new_tokens=4)
    assert not result.ok
    assert "ModelError" in result.detail


def test_empty_generated_text_fails_the_smoke_test(url: str, emulator: EmulatorServer) -> None:
    # One token that is the end-of-sequence token: TGI answers 200 with generated_text "".
    emulator.configure(EmulatorConfig(endpoint_names=(ENDPOINT,), latency=LatencyModel(tokens=1)))
    result = check_endpoint(client(url), ENDPOINT, max_new_tokens=4)
    assert not result.ok
    assert result.detail == "the model generated no text"


def test_a_missing_endpoint_fails_the_smoke_test(url: str) -> None:
    result = check_endpoint(client(url), "llama2-70b-fp16-latency", max_new_tokens=4)
    assert not result.ok
    assert "ValidationError" in result.detail


def test_main_checks_every_endpoint_and_exits_non_zero_on_any_failure(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--region", "us-east-1", "--endpoint-url", url, "--max-new-tokens", "4"]
    assert main([*args, "--endpoint-name", ENDPOINT]) == 0
    assert main([*args, "--endpoint-name", "missing-endpoint", "--endpoint-name", ENDPOINT]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["ok", "FAILED", "ok"]  # every endpoint reported, not just the first


def test_an_unresolved_endpoint_output_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--region", "us-east-1", "--endpoint-name", ""])


def test_the_stage_role_is_assumed_and_its_credentials_used(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    class FakeSts:
        def assume_role(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return {"Credentials": {"AccessKeyId": "ASIASTAGE", "SecretAccessKey": "s", "SessionToken": "t"}}

    class FakeSession(boto3.Session):
        def client(self, service: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            assert service == "sts"
            return FakeSts()

    role = "arn:aws:iam::444444444444:role/Llama2Promotion-prod-smoke-test"
    runtime = runtime_client("us-west-2", role_arn=role, session=FakeSession(region_name="us-west-2"))
    assert calls == [{"RoleArn": role, "RoleSessionName": SESSION_NAME, "DurationSeconds": 900}]
    assert runtime.meta.region_name == "us-west-2"
    assert runtime._request_signer._credentials.access_key == "ASIASTAGE"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'[{"generated_text":" Hello"}]', " Hello"),  # the container's /invocations
        (b'{"generated_text":"Hi","details":{"generated_tokens":1}}', "Hi"),  # /generate
    ],
)
def test_generated_text_reads_both_tgi_shapes(body: bytes, text: str) -> None:
    assert generated_text(body) == text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"generated_text":"trunc', "not JSON"),
        (b'{"error":"CUDA out of memory","error_type":"generation"}', "CUDA out of memory"),
        (b'[{"generated_text":"   "}]', "no text"),
        (b'{"outputs":"x"}', "no generated_text"),
        (b"[1, 2]", "not a TGI generation"),
    ],
)
def test_generated_text_refuses_what_is_not_an_answer(body: bytes, message: str) -> None:
    with pytest.raises(SmokeTestError, match=message):
        generated_text(body)


def test_request_body_is_a_short_greedy_tgi_request() -> None:
    payload = json.loads(request_body(8))
    assert payload["parameters"] == {"max_new_tokens": 8, "do_sample": False}
    assert payload["inputs"]
    with pytest.raises(ValueError, match="max_new_tokens"):
        request_body(0)
