#!/usr/bin/env bash
# Benchmark: cocoon-agent vs llama.cpp's own llama-server on the same model, same settings.
#
#   agent/bench/run.sh [CLIENTS...]        (default: 1 4)
#
# Env: MODEL (default: the bundled Gemma 3 270M from tests/fixtures/gen-model real),
#      THREADS (1: on a shared 2-core machine more threads oversubscribe and results swing 10x), PARALLEL (4), CTX (per sequence, 512), MAX_TOKENS (64), REQUESTS (per client, 3),
#      LLAMA_SERVER (path to a llama-server binary; default: built once from the llama.cpp sources
#      vendored in the llama-cpp-python sdist from PyPI, under $COCOON_CACHE/bench).
# Both servers get the same model, threads, parallel slots and per-slot context; the load
# generator (load.py) sends the same greedy streaming requests to each in turn.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COCOON_CACHE=${COCOON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cocoon-worker}
PY=${PYTHON:-python3}
THREADS=${THREADS:-1}; PARALLEL=${PARALLEL:-4}; CTX=${CTX:-512}
MAX_TOKENS=${MAX_TOKENS:-64}; REQUESTS=${REQUESTS:-3}
CLIENTS=("${@:-1 4}"); read -r -a CLIENTS <<<"${CLIENTS[*]}"
LCP_VERSION=0.3.36

MODEL=${MODEL:-$("$ROOT/tests/fixtures/gen-model" real)}
SHA=$(sha256sum "$MODEL" | cut -d' ' -f1)
ID=$(basename "$MODEL" .gguf)

if [ -z "${LLAMA_SERVER:-}" ]; then
  B=$COCOON_CACHE/bench; LLAMA_SERVER=$B/llama-server-$LCP_VERSION
  if [ ! -x "$LLAMA_SERVER" ]; then
    mkdir -p "$B" && cd "$B"
    [ -f llama_cpp_python-$LCP_VERSION.tar.gz ] || \
      "$PY" -m pip download "llama-cpp-python==$LCP_VERSION" --no-deps --no-binary :all: -d "$B"
    tar xzf llama_cpp_python-$LCP_VERSION.tar.gz
    S=$B/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp
    cmake -S "$S" -B "$S/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF >&2
    cmake --build "$S/build" --target llama-server -j"$(nproc)" >&2
    cp "$S/build/bin/llama-server" "$LLAMA_SERVER"
  fi
fi

cargo build --release -p cocoon-agent --manifest-path "$ROOT/Cargo.toml" >&2
AGENT=$ROOT/target/release/cocoon-agent

# cocoon-agent answers /healthz, llama-server /health.
wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "$1/healthz" >/dev/null 2>&1 || curl -sf "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server at $1 never became ready" >&2; return 1
}
run_load() {
  for c in "${CLIENTS[@]}"; do
    "$PY" "$ROOT/agent/bench/load.py" --url "$1" --model "$ID" --clients "$c" --requests "$REQUESTS" \
      --max-tokens "$MAX_TOKENS" --label "$2"
  done
}

PORT=18777
# No TDX here: the agent attests through a simulated TD; both servers are then compared over
# plain HTTP on loopback (RA-TLS handshakes have their own benchmark in measurements/benches).
TD_DIR=$(mktemp -d)
"$AGENT" serve --model "$MODEL" --model-sha256 "$SHA" --listen 127.0.0.1:$PORT --ctx "$CTX" \
  --parallel "$PARALLEL" --threads "$THREADS" --simulated-td "$TD_DIR" 2>/dev/null >/dev/null & PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$TD_DIR"' EXIT
wait_ready http://127.0.0.1:$PORT
run_load http://127.0.0.1:$PORT cocoon-agent
kill $PID; wait $PID 2>/dev/null || true

"$LLAMA_SERVER" -m "$MODEL" --port $PORT -c $((CTX * PARALLEL)) -np "$PARALLEL" -t "$THREADS" -tb "$THREADS" \
  --alias "$ID" >/dev/null 2>&1 & PID=$!
wait_ready http://127.0.0.1:$PORT
run_load http://127.0.0.1:$PORT llama-server
