"""OpenAI-compatible ``/v1/chat/completions`` (TGI's Messages API, vLLM, ...).

Streaming asks for ``stream_options.include_usage`` so the server reports ``usage.completion_tokens``
in its last chunk: the token count comes from the server, never from counting chunks.
"""

from __future__ import annotations

import time

from benchmark.clients.http import HttpTransport
from benchmark.clients.protocol import OpenAIStreamReader, openai_chat_request, read_openai_response
from benchmark.measure.load import DEFAULT_TIMEOUT_S
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import RequestRecord


class OpenAIChatClient:
    def __init__(
        self,
        base_url: str,
        *,
        model: str = "tgi",
        streaming: bool = True,
        concurrency: int = 1,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        api_key: str | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        self.streaming = streaming
        self.model = model
        self.name = f"openai-chat{'-stream' if streaming else ''}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._http = HttpTransport(
            base_url, concurrency=concurrency, timeout_s=timeout_s, headers=headers, connect_timeout_s=connect_timeout_s
        )

    async def send(self, prompt: Prompt, params: GenerationParams, *, user: int) -> RequestRecord:
        record = RequestRecord(user=user, start=time.perf_counter(), end=0.0, prompt_id=prompt.id or None)
        payload = openai_chat_request(prompt, params, model=self.model, stream=self.streaming)
        if self.streaming:
            return await self._http.post("/v1/chat/completions", payload, record, reader=OpenAIStreamReader(record))
        return await self._http.post("/v1/chat/completions", payload, record, read_body=read_openai_response)

    async def aclose(self) -> None:
        await self._http.aclose()
