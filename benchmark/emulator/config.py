"""The emulator's knobs: a latency model shaped like TGI's continuous batching, and fault injection."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from benchmark.serialize import JsonShape
from catalog.engines import ENGINE_NAMES
from catalog.errors import ConfigError, Issue


@dataclass(frozen=True)
class LatencyModel:
    """Time to first token grows with prompt length (prefill); time per token with the batch size.

    ``tpot = tpot_base_ms + tpot_slope_ms * active`` where ``active`` is the number of requests holding a
    batch slot when the token is scheduled. At most ``max_batch`` requests decode at once; later ones
    queue (their TTFT includes the wait). Beyond ``max_concurrent`` in flight, requests are refused with
    429, like TGI's ``MAX_CONCURRENT_REQUESTS``.
    """

    prefill_base_ms: float = 20.0
    prefill_ms_per_token: float = 0.1
    tpot_base_ms: float = 20.0
    tpot_slope_ms: float = 0.1
    max_batch: int = 128
    max_concurrent: int | None = None
    tokens: int = 50  # tokens generated = min(max_new_tokens, tokens)

    def prefill_ms(self, input_tokens: int) -> float:
        return self.prefill_base_ms + self.prefill_ms_per_token * input_tokens

    def tpot_ms(self, active: int) -> float:
        return self.tpot_base_ms + self.tpot_slope_ms * active

    def issues(self) -> list[Issue]:
        out = [
            Issue(name, getattr(self, name), "must be >= 0")
            for name in ("prefill_base_ms", "prefill_ms_per_token", "tpot_base_ms", "tpot_slope_ms")
            if getattr(self, name) < 0
        ]
        if self.max_batch < 1:
            out.append(Issue("max_batch", self.max_batch, "must be >= 1"))
        if self.max_concurrent is not None and self.max_concurrent < 1:
            out.append(Issue("max_concurrent", self.max_concurrent, "must be >= 1 or unset"))
        if self.tokens < 1:
            out.append(Issue("tokens", self.tokens, "must be >= 1"))
        return out


class FaultKind(StrEnum):
    SERVER_ERROR = "server_error"  # HTTP 500 (TGI) / ModelError 424 with OriginalStatusCode 500 (SageMaker)
    THROTTLE = "throttle"  # HTTP 429 (TGI overloaded) / ThrottlingException (SageMaker)
    DROP = "drop"  # connection closed half-way through the stream (before any response when not streaming)
    STREAM_ERROR = "stream_error"  # error event mid-stream: SSE error object / SageMaker ModelStreamError
    STALL = "stall"  # no bytes for stall_s (after the first token when streaming)
    MALFORMED = "malformed"  # bad CRC frame (SageMaker stream), bad JSON event or body (otherwise)
    # The stream ends cleanly (last chunk, end of the event stream) half-way, without its final event;
    # not streamed: a body cut short with a matching Content-Length.
    TRUNCATE = "truncate"


@dataclass(frozen=True)
class FaultRule:
    """Inject ``kind`` on every ``every_nth`` request (1-based count) and/or with probability ``rate``."""

    kind: FaultKind
    every_nth: int | None = None
    rate: float | None = None

    def issues(self, index: int) -> list[Issue]:
        where = f"faults[{index}]"
        out: list[Issue] = []
        if self.every_nth is None and self.rate is None:
            out.append(Issue(where, self, "needs every_nth or rate"))
        if self.every_nth is not None and self.every_nth < 1:
            out.append(Issue(f"{where}.every_nth", self.every_nth, "must be >= 1"))
        if self.rate is not None and not 0 <= self.rate <= 1:
            out.append(Issue(f"{where}.rate", self.rate, "must be within [0, 1]"))
        return out


@dataclass(frozen=True)
class EmulatorConfig:
    latency: LatencyModel = field(default_factory=LatencyModel)
    faults: tuple[FaultRule, ...] = ()
    stall_s: float = 5.0
    seed: int = 0
    payload_split: int = 1  # SageMaker stream: PayloadParts each SSE event is cut into (tests reassembly)
    endpoint_names: tuple[str, ...] | None = None  # SageMaker endpoints that exist; None accepts any name
    # OpenAI streams end with ``data: [DONE]`` (OpenAI, vLLM, SGLang, TGI); False ends them after the
    # ``finish_reason`` chunk, as ``transformers serve`` does.
    openai_done: bool = True
    # Like ``--api-key`` of TGI and vLLM: requests without ``Authorization: Bearer <key>`` get 401.
    api_key: str | None = None
    # Like vLLM's served model name: an OpenAI request naming another model gets 404. None accepts any name.
    model_name: str | None = None
    # The serving engine emulated (catalog.engines): what SageMaker's /invocations takes and how errors look.
    # "tgi": TGI's body and answers (a body with "messages" is served as TGI's Messages API does); "vllm": OpenAI
    # chat completions only, as vLLM's SageMaker route validates them, with vLLM's error shapes everywhere and
    # no TGI routes (/generate, /generate_stream, POST /).
    engine: str = "tgi"
    # JSON (the control endpoint, ``--config``): every field, nested as written; an unknown key is refused.
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(strict=True)

    def __post_init__(self) -> None:
        issues = self.latency.issues()
        for index, rule in enumerate(self.faults):
            issues += rule.issues(index)
        if self.stall_s < 0:
            issues.append(Issue("stall_s", self.stall_s, "must be >= 0"))
        if self.payload_split < 1:
            issues.append(Issue("payload_split", self.payload_split, "must be >= 1"))
        if self.engine not in ENGINE_NAMES:
            issues.append(Issue("engine", self.engine, f"must be one of {', '.join(ENGINE_NAMES)}"))
        elif self.engine == "vllm" and self.latency.max_concurrent is not None:
            allowed = (
                "must be unset for engine vllm: vLLM queues requests beyond max_num_seqs (latency.max_batch here) "
                "and refuses none for load, where TGI answers 429 beyond MAX_CONCURRENT_REQUESTS"
            )
            issues.append(Issue("latency.max_concurrent", self.latency.max_concurrent, allowed))
        if issues:
            raise ConfigError(issues, context="emulator configuration")


class FaultPicker:
    """Decides each request's fault from its 1-based arrival number: deterministic for a given seed."""

    def __init__(self, rules: tuple[FaultRule, ...], seed: int) -> None:
        self._rules = rules
        self._rng = random.Random(seed)

    def pick(self, number: int) -> FaultKind | None:
        for rule in self._rules:
            if rule.every_nth is not None and number % rule.every_nth == 0:
                return rule.kind
            if rule.rate is not None and self._rng.random() < rule.rate:
                return rule.kind
        return None
