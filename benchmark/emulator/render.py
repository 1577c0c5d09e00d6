"""Bytes the emulated servers send: TGI, OpenAI and vLLM JSON shapes, SSE framing, SageMaker error bodies.

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


# --- vLLM (engine "vllm"): the OpenAI shapes as vLLM's OpenAI server writes them --------------------------------
#
# vllm/entrypoints/openai/engine/protocol.py ``ErrorResponse(error=ErrorInfo(message, type, param, code))``, the body
# of every error and, in a stream, the ``data:`` of the error event (``create_streaming_error_response``, followed by
# ``data: [DONE]``); ``code`` is the HTTP status. Chat streams (``serving_chat.py``
# ``chat_completion_stream_generator``): ``data: `` with a space, a first chunk with the role and empty content, one
# chunk per token, ``finish_reason`` on the last, then a chunk with no choices carrying ``usage`` (with
# ``stream_options.include_usage``) and ``data: [DONE]``.

VLLM_DONE = b"data: [DONE]\n\n"


def vllm_sse(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def vllm_error(message: str, error_type: str, code: int, param: str | None = None) -> bytes:
    return _dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}})


def _vllm_chunk(request_id: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
    chunk: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "emulator",
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = usage
    return vllm_sse(chunk)


def vllm_chunk(request_id: str, index: int, tokens: int, max_new_tokens: int) -> bytes:
    """Token ``index``'s chunk; the first token comes after vLLM's role chunk, the last carries ``finish_reason``."""
    last = index == tokens - 1
    eos = last and tokens < max_new_tokens
    out = b""
    if index == 0:
        role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        out += _vllm_chunk(request_id, [role])
    choice: dict[str, Any] = {
        "index": 0,
        "delta": {"content": "" if eos else token_text(index)},
        "logprobs": None,
        "finish_reason": None,
    }
    if last:
        choice["finish_reason"] = "length" if tokens >= max_new_tokens else "stop"
        choice["stop_reason"] = None
    return out + _vllm_chunk(request_id, [choice])


def vllm_usage_chunk(request_id: str, input_tokens: int, tokens: int) -> bytes:
    return _vllm_chunk(request_id, [], openai_usage(request_id, input_tokens, tokens))


def vllm_response(request_id: str, input_tokens: int, tokens: int, max_new_tokens: int) -> dict[str, Any]:
    """A whole chat completion as vLLM's ``ChatCompletionResponse`` writes it (``stop_reason`` beside each choice)."""
    answer = openai_response(request_id, input_tokens, tokens, max_new_tokens)
    for choice in answer["choices"]:
        choice["logprobs"] = None
        choice["stop_reason"] = None
    answer["usage"]["prompt_tokens_details"] = None
    return answer
