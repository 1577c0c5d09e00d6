"""The SageMaker streaming client: boto3 signs, benchmark.wire sends, botocore's parsers read.

What went on the wire is checked by a SigV4 verifier written here from the published algorithm (not
botocore's signer), token times against the server's own clock, errors as boto3 would have raised them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import sys
import time
from typing import Any
from urllib.parse import quote

import pytest

from benchmark.clients.sagemaker import SageMakerClient
from benchmark.emulator.eventstream import event_message, exception_message
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord
from tests.benchmark.test_wire import BLOCK_S, ScriptedServer, answer, block_when_logged

JSON = "Content-Type: application/json\r\n"
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
PROMPT = Prompt(text="hello", id="p1")


def _client(port: int, *, streaming: bool = True) -> SageMakerClient:
    return SageMakerClient(
        "bench-ep",
        streaming=streaming,
        timeout_s=5,
        region_name="eu-west-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        client_kwargs={"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET},
    )


def _send(port: int) -> RequestRecord:
    async def go() -> RequestRecord:
        client = _client(port)
        try:
            return await client.send(PROMPT, GenerationParams(max_new_tokens=3), user=0)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_valid(raw: bytes, secret: str) -> bool:
    """Recompute AWS Signature Version 4 of a raw HTTP/1.1 request (the documented algorithm, step by step)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = " ".join(value.split())
    algorithm, _, fields = headers["authorization"].partition(" ")
    parts = dict(field.strip().split("=", 1) for field in fields.split(","))
    credential = parts["Credential"].split("/")
    signed = parts["SignedHeaders"].split(";")
    path, _, query = target.partition("?")
    canonical_uri = "/".join(quote(segment, safe="-_.~") for segment in path.split("/"))
    canonical = "\n".join(
        [
            method,
            canonical_uri,
            "&".join(sorted(query.split("&"))) if query else "",
            "".join(f"{name}:{headers[name]}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = "/".join(credential[1:])
    to_sign = "\n".join([algorithm, headers["x-amz-date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in credential[1:]:
        key = _sign(key, part)
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), parts["Signature"])


def test_the_verifier_refuses_a_tampered_request() -> None:
    raw = _captured_request()
    assert sigv4_valid(raw, SECRET)
    assert not sigv4_valid(raw.replace(b'"hello"', b'"HELLO"'), SECRET)  # the body is signed
    assert not sigv4_valid(raw, SECRET + "x")


def _captured_request() -> bytes:
    captured: list[bytes] = []

    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        headers = "x-amzn-RequestId: rid-1\r\nx-amzn-ErrorType: ValidationError:http://x/\r\n"
        conn.sendall(answer(400, b'{"message":"endpoint bench-ep not found"}', headers + JSON))

    server = ScriptedServer(script, keep_raw=captured)
    try:
        record = _send(server.port)
    finally:
        server.close()
    assert record.error is ErrorKind.HTTP_4XX
    assert "ValidationError" in record.error_detail and "bench-ep not found" in record.error_detail
    assert record.request_id == "rid-1"
    (raw,) = captured
    return raw


def test_the_request_on_the_wire_is_the_one_boto3_signed() -> None:
    raw = _captured_request()
    head = raw.partition(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /endpoints/bench-ep/invocations-response-stream HTTP/1.1\r\n")
    assert f"Credential={KEY_ID}/" in head and "/eu-west-1/sagemaker/aws4_request" in head
    assert "X-Amzn-SageMaker-Accept: text/event-stream" in head
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["stream"] is True
    assert sigv4_valid(raw, SECRET)


def _two_requests(monkeypatch: pytest.MonkeyPatch, reuse_s: float) -> list[bytes]:
    """The raw bytes of two requests with the same body from one client, signed ones reused for ``reuse_s``."""
    monkeypatch.setattr("benchmark.clients.sagemaker.SIGNED_REUSE_S", reuse_s)
    captured: list[bytes] = []

    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        conn.sendall(answer(400, b'{"message":"no"}', "x-amzn-ErrorType: ValidationError:http://x/\r\n" + JSON))

    async def go() -> None:
        client = _client(server.port)
        try:
            for _ in range(2):
                await client.send(PROMPT, GenerationParams(max_new_tokens=3), user=0)
        finally:
            await client.aclose()

    server = ScriptedServer(script, keep_raw=captured)
    try:
        asyncio.run(go())
    finally:
        server.close()
    assert len(captured) == 2
    return captured


def test_a_body_sent_again_goes_with_the_request_signed_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _two_requests(monkeypatch, 60.0)
    assert first == second and sigv4_valid(second, SECRET)


def test_a_signed_request_is_not_reused_past_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _two_requests(monkeypatch, 0.0)
    assert first != second  # boto3 signed again: a new amz-sdk-invocation-id (and X-Amz-Date once a second passed)
    assert sigv4_valid(first, SECRET) and sigv4_valid(second, SECRET)


@pytest.mark.parametrize(
    ("error_type", "body", "kind"),
    [
        ("ModelError", {"OriginalStatusCode": 429, "OriginalMessage": "Model is overloaded"}, ErrorKind.THROTTLED),
        ("ModelError", {"OriginalStatusCode": 422, "OriginalMessage": "bad input"}, ErrorKind.HTTP_4XX),
        ("ModelError", {"OriginalStatusCode": 500, "Message": "boom"}, ErrorKind.HTTP_5XX),
        ("ThrottlingException", {"message": "slow down"}, ErrorKind.THROTTLED),
        ("ServiceUnavailable", {"message": "later"}, ErrorKind.HTTP_5XX),
    ],
)
def test_service_errors_are_read_as_boto3_reads_them(error_type: str, body: dict[str, Any], kind: ErrorKind) -> None:
    status = 424 if error_type == "ModelError" else 400 if error_type == "ThrottlingException" else 503
    payload = json.dumps(body).encode()

    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        conn.sendall(answer(status, payload, f"x-amzn-ErrorType: {error_type}:http://internal.amazon.com/\r\n{JSON}"))

    server = ScriptedServer(script)
    try:
        record = _send(server.port)
    finally:
        server.close()
    assert record.error is kind, record.error_detail
    assert error_type in record.error_detail


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _event_stream_script(frames: list[bytes], pause_after_first_s: float = 0.0) -> Any:
    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for index, frame in enumerate(frames):
            conn.sendall(b"%x\r\n%s\r\n" % (len(frame), frame))
            log.append((f"frame{index}", time.perf_counter()))
            if index == 0:
                time.sleep(pause_after_first_s)
        conn.sendall(b"0\r\n\r\n")

    return script


def _payload(event: dict[str, Any]) -> bytes:
    return event_message("PayloadPart", b"data: " + json.dumps(event).encode() + b"\n\n")


TOKEN = {"token": {"id": 1, "text": "a"}}
FINAL = {"token": {"id": 2, "text": "b"}, "generated_text": "ab", "details": {"generated_tokens": 2}}


@pytest.mark.skipif(sys.platform != "linux", reason="kernel receive timestamps are Linux's SO_TIMESTAMPNS")
def test_a_payload_part_is_stamped_when_it_arrived() -> None:
    server = ScriptedServer(_event_stream_script([_payload(TOKEN), _payload(FINAL)], pause_after_first_s=0.3))

    async def go() -> tuple[RequestRecord, float]:
        client = _client(server.port)
        try:
            task = asyncio.create_task(client.send(PROMPT, GenerationParams(max_new_tokens=2), user=0))
            unblocked = await block_when_logged(task, server.log, "frame0")
            return task.result(), unblocked
        finally:
            await client.aclose()

    try:
        record, unblocked = asyncio.run(go())
    finally:
        server.close()
    assert record.ok, record.error_detail
    assert record.generated_tokens == 2
    written = dict(server.log)
    assert record.first_token_at is not None
    assert written["frame0"] - 0.002 <= record.first_token_at <= written["frame0"] + 0.001
    assert unblocked - record.first_token_at > BLOCK_S * 0.9
    assert 0 <= written["request"] - record.start < 0.005


@pytest.mark.parametrize(
    ("frames", "kind", "detail"),
    [
        (
            [_payload(TOKEN), exception_message("ModelStreamError", b'{"Message":"oom"}')],
            ErrorKind.DROPPED_STREAM,
            "oom",
        ),
        ([_payload(TOKEN)[:-1] + b"\x00"], ErrorKind.MALFORMED_FRAME, "Checksum"),
        ([_payload(TOKEN)], ErrorKind.DROPPED_STREAM, "without its final event after 1 tokens"),
    ],
)
def test_stream_failures_are_classified(frames: list[bytes], kind: ErrorKind, detail: str) -> None:
    server = ScriptedServer(_event_stream_script(frames))
    try:
        record = _send(server.port)
    finally:
        server.close()
    assert record.error is kind
    assert detail in record.error_detail


def test_behind_a_proxy_boto3_sends_the_request_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmark.wire speaks no proxy protocol: where one applies, the thread path goes through it."""
    proxy = ScriptedServer(_event_stream_script([_payload(FINAL)]))
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # nothing listens here: only the proxy can answer
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        record = _send(port)
    finally:
        proxy.close()
    assert record.ok, record.error_detail
    assert record.generated_tokens == 2
    assert [what for what, _ in proxy.log][:1] == ["request"]


def test_a_non_streamed_request_is_signed_sent_and_read_over_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: list[bytes] = []

    def boto3_sends(*_: object, **__: object) -> None:
        raise AssertionError("went through boto3's own connection, not benchmark.wire")

    monkeypatch.setattr(SageMakerClient, "invoke", boto3_sends)

    def script(conn: socket.socket, log: list[tuple[str, float]]) -> None:
        body = b'[{"generated_text": "abc", "details": {"generated_tokens": 3, "prefill": [{}, {}]}}]'
        conn.sendall(answer(200, body, "x-amzn-RequestId: rid-2\r\n" + JSON))

    server = ScriptedServer(script, keep_raw=captured)

    async def go() -> RequestRecord:
        client = _client(server.port, streaming=False)
        try:
            return await client.send(PROMPT, GenerationParams(max_new_tokens=3), user=0)
        finally:
            await client.aclose()

    try:
        record = asyncio.run(go())
    finally:
        server.close()
    assert record.ok, record.error_detail
    assert (record.generated_tokens, record.input_tokens, record.request_id) == (3, 2, "rid-2")
    (raw,) = captured
    head = raw.partition(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /endpoints/bench-ep/invocations HTTP/1.1\r\n")
    assert "Accept: application/json" in head
    assert "stream" not in json.loads(raw.partition(b"\r\n\r\n")[2])
    assert sigv4_valid(raw, SECRET)
