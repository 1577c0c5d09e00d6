"""Bytes the emulated servers send: TGI and OpenAI JSON shapes, SSE framing, SageMaker error bodies.

Token texts include multi-byte UTF-8 characters on purpose, so clients are exercised on chunks that
split a character.
"""

from __future__ import annotations

import json
import time
from typing import Any

_TOKENS = (" The", " quick", " café", " 世界", " 🙂", " data", ",", " naïve", " flows", ".")
EOS_TEXT = "</s>"


def token_text(index: int) -> str:
    return _TOKENS[index % len(_TOKENS)]


def generated_text(count: int) -> str:
    return "".join(token_text(i) for i in range(count))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse(obj: Any) -> bytes:
    return b"data:" + (obj if isinstance(obj, bytes) else _dumps(obj)) + b"\n\n"


def finish_reason(tokens: int, max_new_tokens: int) -> str:
    return "length" if tokens >= max_new_tokens else "eos_token"


def tgi_token_event(index: int, tokens: int, max_new_tokens: int, input_tokens: int) -> bytes:
    """One ``/generate_stream`` event; the last carries ``generated_text`` and ``details``."""
    last = index == tokens - 1
    eos = last and tokens < max_new_tokens
    event: dict[str, Any] = {
        "index": index,
        "token": {"id": 1000 + index, "text": EOS_TEXT if eos else token_text(index), "logprob": -0.25, "special": eos},
        "generated_text": None,
        "details": None,
        "top_tokens": None,
    }
    if last:
        event["generated_text"] = generated_text(tokens - 1 if eos else tokens)
        event["details"] = {
            "finish_reason": finish_reason(tokens, max_new_tokens),
            "generated_tokens": tokens,
            "seed": None,
            "input_length": input_tokens,
        }
    return sse(event)


def tgi_response(tokens: int, max_new_tokens: int) -> dict[str, Any]:
    eos = tokens < max_new_tokens
    return {
        "generated_text": generated_text(tokens - 1 if eos else tokens),
        "details": {
            "finish_reason": finish_reason(tokens, max_new_tokens),
            "generated_tokens": tokens,
            "seed": None,
            "prefill": [],
            "tokens": [],
        },
    }


def tgi_error(message: str, error_type: str) -> bytes:
    return _dumps({"error": message, "error_type": error_type})


def openai_error(message: str, error_type: str) -> bytes:
    return _dumps({"error": {"message": message, "type": error_type, "code": None}})


def openai_chunk(request_id: str, index: int, tokens: int, max_new_tokens: int) -> bytes:
    last = index == tokens - 1
    eos = last and tokens < max_new_tokens
    delta: dict[str, Any] = {"role": "assistant", "content": "" if eos else token_text(index)}
    reason = ("length" if tokens >= max_new_tokens else "stop") if last else None
    chunk = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "emulator",
        "system_fingerprint": "emulator",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        "usage": None,
    }
    return sse(chunk)


def openai_usage(request_id: str, input_tokens: int, tokens: int) -> dict[str, Any]:
    return {"prompt_tokens": input_tokens, "completion_tokens": tokens, "total_tokens": input_tokens + tokens}


def openai_usage_chunk(request_id: str, input_tokens: int, tokens: int) -> bytes:
    chunk = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "emulator",
        "choices": [],
        "usage": openai_usage(request_id, input_tokens, tokens),
    }
    return sse(chunk)


def openai_response(request_id: str, input_tokens: int, tokens: int, max_new_tokens: int) -> dict[str, Any]:
    eos = tokens < max_new_tokens
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "emulator",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": generated_text(tokens - 1 if eos else tokens)},
                "finish_reason": "stop" if eos else "length",
            }
        ],
        "usage": openai_usage(request_id, input_tokens, tokens),
    }


def dumps(obj: Any) -> bytes:
    return _dumps(obj)
