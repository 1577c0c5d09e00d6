#!/usr/bin/env bash
# The benchmark against `transformers serve` (continuous batching) on one GPU, beside the openai SDK.
# Run from a folder holding benchmark/, catalog/, settings/ and scripts/gpu/; wheels for the serving extras
# (openai, fastapi, uvicorn, pydantic, ...) in $WHEELS when the machine lacks them. Writes to $OUT.
set -euo pipefail
OUT=${OUT:-/tmp/out}; LEVELS=${LEVELS:-1,8,32}; DURATION=${DURATION:-30}; TOKENS=${TOKENS:-50}; ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT"
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_UPDATE_CHECK=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import transformers, torch; print('transformers', transformers.__version__, 'torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
mkdir -p /tmp/m && python3 scripts/gpu/make_random_llama.py /tmp/m/tgi
(cd /tmp/m && exec python3 -m transformers.cli.transformers serve tgi --continuous-batching \
    --host 127.0.0.1 --port 8000 --log-level warning >"$OUT/serve.log" 2>&1) &
for i in $(seq 1 240); do
  if curl -sf -o /dev/null http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \
      -d '{"model":"tgi","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'; then
    echo "server ready after ${i}s"; break; fi
  sleep 1
done
curl -sN -D "$OUT/chat_stream.headers" -o "$OUT/chat_stream.body" http://127.0.0.1:8000/v1/chat/completions \
  -H 'Content-Type: application/json' \
  -d '{"model":"tgi","messages":[{"role":"user","content":"w5 w6 w7"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
# Warm the server up (first batches are slower), then alternate the two clients ROUNDS times so that neither
# always runs on a colder or warmer server.
python3 scripts/gpu/openai_sdk_probe.py http://127.0.0.1:8000 tgi 32 15 "$TOKENS" > "$OUT/warmup.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  python3 -m benchmark run --target openai --url http://127.0.0.1:8000 --model-name tgi \
    --instance ml.p4d.24xlarge --label "h200-transformers-serve-r$round" --concurrency "$LEVELS" \
    --duration "$DURATION" --max-new-tokens "$TOKENS" --warmup 2 --results "$OUT/results.jsonl" 2>&1 | tee -a "$OUT/benchmark.log"
  python3 scripts/gpu/openai_sdk_probe.py http://127.0.0.1:8000 tgi "$LEVELS" "$DURATION" "$TOKENS" \
    | sed "s/^{/{\"round\": $round, /" | tee -a "$OUT/openai_sdk.jsonl"
done
python3 - "$OUT/results.jsonl" <<'PY' | tee "$OUT/ours.jsonl"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line); m = r["metrics"]
    print(json.dumps({"round": r["configuration"]["label"][-1], "client": "benchmark (openai-chat-stream)",
        "concurrency": m["concurrency"], "requests_ok": m["requests_ok"], "errors": m["errors_by_kind"],
        "ttft_ms_median": m["ttft_ms"]["median"], "ms_per_token_median": m["ms_per_token"]["median"],
        "tokens_per_s": m["tokens_per_s"]}))
PY
