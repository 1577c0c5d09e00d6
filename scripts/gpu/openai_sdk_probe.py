"""An independent client for comparison: the official ``openai`` SDK (httpx, its own SSE parser).

Closed loop at a fixed concurrency for a duration, the same built-in prompts and max_tokens as
``python -m benchmark run``, greedy. Prints one JSON line per level: median TTFT (request start to the first
content chunk), median ms/token (per request, (last chunk - first chunk) / (chunks - 1)) and tokens/s
(``usage.completion_tokens`` of requests that finished inside the level, over its duration).

    python scripts/gpu/openai_sdk_probe.py URL MODEL CONCURRENCY[,..] DURATION_S MAX_TOKENS
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from openai import AsyncOpenAI

from benchmark.measure.prompts import builtin_prompts


async def one(client: AsyncOpenAI, model: str, text: str, max_tokens: int) -> dict[str, Any]:
    start = time.perf_counter()
    times: list[float] = []
    tokens = None
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if any(c.delta and c.delta.content for c in chunk.choices):
            times.append(time.perf_counter())
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return {"start": start, "end": time.perf_counter(), "times": times, "tokens": tokens}


async def level(url: str, model: str, concurrency: int, duration: float, max_tokens: int) -> dict[str, Any]:
    client = AsyncOpenAI(base_url=url.rstrip("/") + "/v1", api_key="unused", max_retries=0, timeout=120)
    prompts = [p.text for p in builtin_prompts()]
    done: list[dict[str, Any]] = []
    errors = 0
    t0 = time.perf_counter()

    async def user(index: int) -> None:
        nonlocal errors
        n = index
        while time.perf_counter() - t0 < duration:
            try:
                result = await one(client, model, prompts[n % len(prompts)], max_tokens)
            except Exception:  # counted; the level goes on
                errors += 1
                continue
            n += concurrency
            if result["end"] - t0 <= duration:
                done.append(result)

    await asyncio.gather(*(user(i) for i in range(concurrency)))
    await client.close()
    ttft = [(r["times"][0] - r["start"]) * 1000 for r in done if r["times"]]
    tpot = [(r["times"][-1] - r["times"][0]) * 1000 / (len(r["times"]) - 1) for r in done if len(r["times"]) > 1]
    return {
        "client": "openai-sdk",
        "concurrency": concurrency,
        "requests_ok": len(done),
        "errors": errors,
        "ttft_ms_median": statistics.median(ttft) if ttft else None,
        "ms_per_token_median": statistics.median(tpot) if tpot else None,
        "tokens_per_s": sum(r["tokens"] or 0 for r in done) / duration,
    }


def main() -> None:
    url, model, levels, duration, max_tokens = sys.argv[1:6]
    for c in levels.split(","):
        print(json.dumps(asyncio.run(level(url, model, int(c), float(duration), int(max_tokens)))), flush=True)


if __name__ == "__main__":
    main()
