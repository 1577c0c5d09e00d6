"""Clients for every way of reaching a TGI server; all implement :class:`Client`.

:class:`ClientSpec` is the one client factory the level runner uses: it builds a client for each level (its
concurrency, timeout and streaming come from the level's ``LoadSpec``) and, being plain data, can be sent to
worker processes, which build their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchmark.clients.base import Client, RequestFailed
from benchmark.clients.openai_chat import OpenAIChatClient
from benchmark.clients.tgi_http import TgiHttpClient
from benchmark.measure.load import DEFAULT_TIMEOUT_S, LoadSpec
from catalog.errors import unknown

PROTOCOLS = ("sagemaker", "tgi-http", "openai-chat")
KINDS = tuple(kind for protocol in PROTOCOLS for kind in (protocol, f"{protocol}-stream"))


def create_client(
    kind: str, target: str, *, concurrency: int = 1, timeout_s: float = DEFAULT_TIMEOUT_S, **options: Any
) -> Client:
    """``target`` is the endpoint name (SageMaker) or base URL (HTTP kinds); ``options`` go to the class."""
    streaming = kind.endswith("-stream")
    common: dict[str, Any] = {"streaming": streaming, "concurrency": concurrency, "timeout_s": timeout_s}
    if kind in ("sagemaker", "sagemaker-stream"):
        # Imported here: the SageMaker client needs boto3 and botocore's event stream, the HTTP clients only the
        # standard library; a run against an HTTP target (or the emulator) does not load them.
        from benchmark.clients.sagemaker import SageMakerClient  # noqa: PLC0415

        return SageMakerClient(target, **common, **options)
    if kind in ("tgi-http", "tgi-http-stream"):
        return TgiHttpClient(target, **common, **options)
    if kind in ("openai-chat", "openai-chat-stream"):
        return OpenAIChatClient(target, **common, **options)
    raise unknown("client", kind, KINDS)


class ClientFactory(Protocol):
    """Builds the client of one level; the level runner closes it when the level ends."""

    def create(self, spec: LoadSpec) -> Client: ...


@dataclass(frozen=True)
class ClientSpec:
    """A target as plain data: ``protocol`` (``tgi-http``, ``openai-chat``, ``sagemaker``), address, options.

    ``create(spec)`` builds the level's client: ``-stream`` when the level streams, its concurrency and timeout.
    """

    protocol: str
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise unknown("client", self.protocol, PROTOCOLS)

    def create(self, spec: LoadSpec) -> Client:
        kind = f"{self.protocol}-stream" if spec.streaming else self.protocol
        return create_client(
            kind, self.target, concurrency=spec.concurrency, timeout_s=spec.timeout_s, **dict(self.options)
        )


__all__ = ["KINDS", "PROTOCOLS", "Client", "ClientFactory", "ClientSpec", "RequestFailed", "create_client"]
