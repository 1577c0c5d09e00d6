"""TGI over plain HTTP: ``/generate`` (whole answer) or ``/generate_stream`` (server-sent events)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from benchmark.clients.http import HttpTransport
from benchmark.clients.protocol import TgiStreamReader, read_tgi_response, tgi_request
from benchmark.measure.load import DEFAULT_TIMEOUT_S
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import RequestRecord


class TgiHttpClient:
    def __init__(
        self,
        base_url: str,
        *,
        streaming: bool = False,
        concurrency: int = 1,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        self.streaming = streaming
        self.name = f"tgi-http{'-stream' if streaming else ''}"
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = HttpTransport(
            base_url,
            concurrency=concurrency,
            timeout_s=timeout_s,
            headers={**dict(headers or {}), **auth},
            connect_timeout_s=connect_timeout_s,
        )

    async def send(self, prompt: Prompt, params: GenerationParams, *, user: int) -> RequestRecord:
        record = RequestRecord(user=user, start=time.perf_counter(), end=0.0, prompt_id=prompt.id or None)
        payload = tgi_request(prompt, params)
        if self.streaming:
            return await self._http.post("/generate_stream", payload, record, reader=TgiStreamReader(record))
        return await self._http.post("/generate", payload, record, read_body=read_tgi_response)

    async def aclose(self) -> None:
        await self._http.aclose()
