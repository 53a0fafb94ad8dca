#!/usr/bin/env bash
# Profile the gateway's production path (master key, a virtual key with limits, SQLite spend
# log) under closed-loop load with `perf record` (docs/benchmarks.md, "Where the time goes").
#   cargo build --release -p llmux -p llmux-bench && xtask/profile-gateway.sh
#   perf report -i target/profile/perf.data --no-children
# Env: C (concurrency, 32), DUR (load seconds, 14), PDUR (recorded seconds, 8), STREAM=--stream.
# Everything listens on 127.0.0.1 and stops at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
out="${CARGO_TARGET_DIR:-$root/target}/profile"
rm -rf "$out"; mkdir -p "$out"; cd "$out"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(port); gw=$(port)
"$bin/llmux-bench" upstream --host 127.0.0.1 --port "$up" --threads 1 > upstream.log 2>&1 &
upid=$!
cat > llmux.yaml <<YAML
router:
  num_retries: 0
models:
  - name: bench-model
    model: openai/gpt-4o-mini
    api_base: http://127.0.0.1:$up/v1
    api_key: sk-bench-upstream
YAML
key=$("$bin/llmux" keys create --alias profile --rpm 100000000 --tpm 100000000000 --config llmux.yaml | head -1)
LLMUX_MASTER_KEY="sk-profile-$$" RUST_LOG=warn "$bin/llmux" serve --config llmux.yaml \
  --host 127.0.0.1 --port "$gw" --workers 1 --log-format json > gateway.log 2>&1 &
gpid=$!
trap 'kill $gpid $upid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$gw/health/readiness" && break; sleep 0.1; done
load() { "$bin/llmux-bench" load --url "http://127.0.0.1:$gw/v1/chat/completions" --model bench-model \
  --api-key "$key" ${STREAM:-} "$@"; }
load --duration 2 --concurrency 8 > warm.json
load --duration "${DUR:-14}" --concurrency "${C:-32}" > load.json &
lpid=$!
sleep 1
perf record -F 999 -g --call-graph dwarf,16384 -p "$gpid" -o perf.data -- sleep "${PDUR:-8}"
wait $lpid
python3 -c 'import json; d=json.load(open("load.json")); print("calls/s", d["rps"], "latency ms", d["latency_ms"])'
echo "perf report -i $out/perf.data --no-children"
