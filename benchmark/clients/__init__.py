"""Clients for every way of reaching a TGI server; all implement :class:`Client`.

``create_client`` imports lazily: the SageMaker client needs boto3 (it runs in Lambda), the HTTP
clients only the standard library (:mod:`benchmark.wire`).
"""

from __future__ import annotations

from typing import Any

from benchmark.clients.base import Client, RequestFailed
from catalog.errors import unknown

KINDS = ("sagemaker", "sagemaker-stream", "tgi-http", "tgi-http-stream", "openai-chat", "openai-chat-stream")


def create_client(kind: str, target: str, *, concurrency: int = 1, timeout_s: float = 120.0, **options: Any) -> Client:
    """``target`` is the endpoint name (SageMaker) or base URL (HTTP kinds); ``options`` go to the class."""
    streaming = kind.endswith("-stream")
    if kind in ("sagemaker", "sagemaker-stream"):
        from benchmark.clients.sagemaker import SageMakerClient  # noqa: PLC0415 - lazy: boto3 only when used

        return SageMakerClient(target, streaming=streaming, concurrency=concurrency, timeout_s=timeout_s, **options)
    if kind in ("tgi-http", "tgi-http-stream"):
        from benchmark.clients.tgi_http import TgiHttpClient  # noqa: PLC0415 - lazy: boto3 only when used

        return TgiHttpClient(target, streaming=streaming, concurrency=concurrency, timeout_s=timeout_s, **options)
    if kind in ("openai-chat", "openai-chat-stream"):
        from benchmark.clients.openai_chat import OpenAIChatClient  # noqa: PLC0415 - lazy: boto3 only when used

        return OpenAIChatClient(target, streaming=streaming, concurrency=concurrency, timeout_s=timeout_s, **options)
    raise unknown("client", kind, KINDS)


__all__ = ["KINDS", "Client", "RequestFailed", "create_client"]
