#!/usr/bin/env python
"""Where the SageMaker client's extra CPU per token goes: signing per request, event-stream framing per token.

No network: the client signs requests (boto3's whole pipeline up to the send, as ``SageMakerClient`` takes it)
and the stream readers are fed the frames ``scripts/truth_server.py``'s shape of answer would carry (50 TGI
tokens, one ``PayloadPart`` each). Prints CPU microseconds (``time.process_time``), best of ``--repeat``:

- start-up: the first ``SageMakerClient`` of a process (boto3 client) and its first signed request;
- boto3 signing per request, and per request with the client's signed-request reuse (same body);
- per token: the TGI stream reader alone (what the HTTP client pays too), and with the frames decoded by
  botocore's ``EventStreamBuffer`` and by the client's ``FrameDecoder``.

Rerunnable, never asserted: ``python scripts/bench_sagemaker_cpu.py [--requests 300] [--answers 300] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botocore.eventstream import EventStreamBuffer

from benchmark.clients.eventstream import FrameDecoder
from benchmark.clients.protocol import TgiStreamReader
from benchmark.clients.sagemaker import SageMakerClient
from benchmark.emulator.eventstream import event_message
from benchmark.measure.records import RequestRecord

TOKENS = 50


def best_us(action: Callable[[], object], count: int, repeat: int) -> float:
    """Best CPU microseconds per call of ``action`` over ``repeat`` batches of ``count`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(count):
            action()
        best = min(best, (time.process_time() - start) / count * 1e6)
    return best


def sse_events() -> list[bytes]:
    events = []
    for i in range(TOKENS):
        token = {"id": 1000 + i, "text": f" w{i}", "logprob": -0.25, "special": False}
        event = {"index": i, "token": token, "generated_text": None, "details": None}
        events.append(b"data:" + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
    return events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="signed requests per batch")
    parser.add_argument("--answers", type=int, default=300, help="50-token answers per batch")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    def make() -> SageMakerClient:
        return SageMakerClient(
            "bench-endpoint",
            streaming=True,
            concurrency=256,
            endpoint_url="http://127.0.0.1:9",
            region_name="us-east-1",
            client_kwargs={"aws_access_key_id": "x", "aws_secret_access_key": "x"},
        )

    start = time.process_time()
    client = make()  # the first in this process: botocore loads the service model and endpoint rules
    first_client_ms = (time.process_time() - start) * 1000
    start = time.process_time()
    client._sign(b"{}")
    first_sign_ms = (time.process_time() - start) * 1000
    start = time.process_time()
    make()
    second_client_ms = (time.process_time() - start) * 1000
    client._wire = client._pool_for(client._client.meta.endpoint_url)  # as after the first request: no proxy lookup
    body = json.dumps({"inputs": "x" * 1000, "parameters": {"max_new_tokens": TOKENS}, "stream": True}).encode()
    sign = best_us(lambda: client._sign(body), args.requests, args.repeat)
    reuse = best_us(lambda: client._signed_request(body), args.requests, args.repeat)

    events = sse_events()
    frames = [event_message("PayloadPart", e, content_type="application/octet-stream") for e in events]

    def reader_only() -> None:
        reader = TgiStreamReader(RequestRecord(user=0, start=0.0, end=0.0))
        for event in events:
            reader.feed(event, 1.0)

    def with_botocore() -> None:
        reader, buffer = TgiStreamReader(RequestRecord(user=0, start=0.0, end=0.0)), EventStreamBuffer()
        for frame in frames:
            buffer.add_data(frame)
            for message in buffer:
                reader.feed(message.payload, 1.0)

    def with_decoder() -> None:
        reader, decoder = TgiStreamReader(RequestRecord(user=0, start=0.0, end=0.0)), FrameDecoder()
        for frame in frames:
            for _, payload in decoder.feed(frame):
                reader.feed(payload, 1.0)

    per_token = {
        name: best_us(action, args.answers, args.repeat) / TOKENS
        for name, action in (("reader", reader_only), ("botocore", with_botocore), ("decoder", with_decoder))
    }
    print(f"python {sys.version.split()[0]}; best of {args.repeat}")
    print(f"start-up: first client {first_client_ms:.1f} ms CPU, its first signed request {first_sign_ms:.1f} ms,")
    print(f"  another client in the same process {second_client_ms:.1f} ms (each worker process pays the first)")
    print(f"boto3 signing per request:                   {sign:8.1f} us ({sign / TOKENS:.1f} us per token at {TOKENS})")
    print(f"  reused signed request (same body, < 60 s): {reuse:8.1f} us")
    print(f"TGI stream reader per token (HTTP client too): {per_token['reader']:6.1f} us")
    print(f"  + botocore EventStreamBuffer:                {per_token['botocore']:6.1f} us")
    print(f"  + FrameDecoder:                              {per_token['decoder']:6.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
