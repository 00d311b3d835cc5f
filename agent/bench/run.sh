#!/usr/bin/env bash
# Benchmark: cocoon-agent against llama.cpp's own llama-server, same llama.cpp, same model,
# threads, slots, context and prompts, interleaved in one run.
#
#   agent/bench/run.sh [CLIENTS...]        (default: 1 8)
#
# Env: MODEL (default: the bundled Gemma 3 270M, tests/fixtures/gen-model real), THREADS (2),
#      PARALLEL (slots on both servers, 8), CTX (per slot, 512), BATCH (512), MAX_TOKENS (64),
#      REQUESTS (per client, 8), PREFILL_REQUESTS (8), PROMPT_WORDS (300: ~500 tokens),
#      ROUNDS (2), OUT (results dir; default target/bench-results/<UTC time>),
#      LLAMA_SERVER_CMAKE_ARGS (extra cmake -D options for llama-server, e.g. to match the
#      agent's ggml configuration; each distinct value gets its own build),
#      AGENT_FEATURES, LLAMA_LIB_PROFILE (other llama.cpp builds of the agent, see below),
#      LLAMA_SERVER (use this binary instead of building one), ALLOW_ISA_MISMATCH (1: run even
#      if the two llama.cpp builds report different CPU features).
#
# Builds (cached):
# - the agent with RUSTFLAGS="-C target-cpu=native" in target/bench-native (llama-cpp-sys-2 then
#   configures ggml with GGML_NATIVE=ON, as a default cmake build of llama-server does);
# - llama-server from the llama.cpp tree vendored in the agent's own llama-cpp-sys-2 crate
#   (ggml, libllama and common byte-identical to the agent's). The crate leaves out the server's
#   sources (tools/server/*.cpp, tools/ui); only those missing files are taken from the
#   llama-cpp-python $LCP_VERSION sdist (PyPI), nothing the crate has is replaced. The list of
#   added files is written to provenance.txt in the build dir and the results dir.
#
# Each round starts the agent, runs every pass against it, stops it, then does the same with
# llama-server (fresh processes each round: no prompt cache carries over). Passes: one
# generation pass per CLIENTS value, then a prefill pass (long prompt, max_tokens=1,
# sequential). Results: $OUT/results.jsonl, summary.md (summarize.py), both servers' logs,
# system-info.txt (the CPU features of both llama.cpp builds; a mismatch aborts), meta.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$ROOT/agent/bench
COCOON_CACHE=${COCOON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cocoon-worker}
PY=${PYTHON:-python3}
THREADS=${THREADS:-2}; PARALLEL=${PARALLEL:-8}; CTX=${CTX:-512}; BATCH=${BATCH:-512}
MAX_TOKENS=${MAX_TOKENS:-64}; REQUESTS=${REQUESTS:-8}; PREFILL_REQUESTS=${PREFILL_REQUESTS:-8}
PROMPT_WORDS=${PROMPT_WORDS:-300}; ROUNDS=${ROUNDS:-2}
CLIENTS=("${@:-1 8}"); read -r -a CLIENTS <<<"${CLIENTS[*]}"
LCP_VERSION=0.3.36
LLAMA_SERVER_CMAKE_ARGS=${LLAMA_SERVER_CMAKE_ARGS:-}
OUT=${OUT:-$ROOT/target/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
log() { echo "[bench] $*" >&2; }

MODEL=${MODEL:-$("$ROOT/tests/fixtures/gen-model" real)}
SHA=$(sha256sum "$MODEL" | cut -d' ' -f1)
ID=$(basename "$MODEL" .gguf)

# The llama-cpp-sys-2 crate the agent links (its manifest dir holds the vendored llama.cpp).
SYS_MANIFEST=$(cargo metadata --format-version 1 --manifest-path "$ROOT/Cargo.toml" |
  "$PY" -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="llama-cpp-sys-2"))')
SYS_DIR=$(dirname "$SYS_MANIFEST")
SYS_VERSION=${SYS_DIR##*-}
[ -f "$SYS_DIR/llama.cpp/include/llama.h" ] || { log "no llama.cpp tree in $SYS_DIR"; exit 1; }

# --- llama-server from the same llama.cpp tree ----------------------------------------------
if [ -z "${LLAMA_SERVER:-}" ]; then
  B=$COCOON_CACHE/bench
  KEY=sys2-$SYS_VERSION-lcp-$LCP_VERSION-$(printf '%s' "$LLAMA_SERVER_CMAKE_ARGS" | sha256sum | cut -c1-8)
  W=$B/$KEY
  LLAMA_SERVER=$W/build/bin/llama-server
  if [ ! -x "$LLAMA_SERVER" ]; then
    mkdir -p "$B"
    SDIST=$B/llama_cpp_python-$LCP_VERSION.tar.gz
    [ -f "$SDIST" ] || "$PY" -m pip download "llama-cpp-python==$LCP_VERSION" --no-deps \
      --no-binary :all: -d "$B" >&2
    [ -d "$B/llama_cpp_python-$LCP_VERSION" ] || tar xzf "$SDIST" -C "$B"
    SD=$B/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp
    S=$W/src
    rm -rf "$W"; mkdir -p "$W"
    cp -r "$SYS_DIR/llama.cpp" "$S"; chmod -R u+w "$S"
    (cd "$S" && find . -type f | sort) >"$W/crate-files.txt"
    # Only what the crate lacks: no-clobber copies.
    cp -rn "$SD/tools/server/." "$S/tools/server/"
    cp -rn "$SD/tools/ui/." "$S/tools/ui/"
    mkdir -p "$S/scripts"; cp -n "$SD/scripts/ui-assets.cmake" "$S/scripts/"
    # One API drift between the two trees, in a path only taken with --mmproj (multimodal
    # projector, unused here): the crate's mtmd_get_memory_usage() returns a struct holding the
    # per-device map that the sdist's server expects directly.
    if grep -q 'struct mtmd_memory_usage {' "$S/tools/mtmd/mtmd.h"; then
      sed -i 's/mtmd_get_memory_usage(mmproj_path.c_str(), mparams);/mtmd_get_memory_usage(mmproj_path.c_str(), mparams).backend_mem_usage;/' \
        "$S/tools/server/server-context.cpp"
      PATCHED="- tools/server/server-context.cpp (from the sdist): mtmd_get_memory_usage(...) -> (...).backend_mem_usage"
    fi
    # The sdist's server reads --mcp-config (unused here) through a common/ helper the crate's
    # common/ lacks; on Linux that helper is a plain std::ifstream.
    if ! grep -q 'fs_open_ifstream' "$S/common/common.h"; then
      sed -i 's/fs_open_ifstream(params.mcp_servers_config, std::ios::in)/std::ifstream(params.mcp_servers_config, std::ios::in)/' \
        "$S/tools/server/server-mcp.cpp"
      PATCHED="${PATCHED:+$PATCHED
}- tools/server/server-mcp.cpp (from the sdist): fs_open_ifstream(...) -> std::ifstream(...)"
    fi
    # The crate's tools/CMakeLists.txt names tools whose sources it does not ship: build only
    # the server and what it links (ui, mtmd).
    cp "$S/tools/CMakeLists.txt" "$W/tools-CMakeLists.crate.txt"
    printf '%s\n' 'find_package(Threads REQUIRED)' 'llama_add_compile_flags()' \
      'add_subdirectory(ui)' 'add_subdirectory(mtmd)' 'add_subdirectory(server)' \
      >"$S/tools/CMakeLists.txt"
    {
      echo "llama.cpp tree: $SYS_DIR/llama.cpp (llama-cpp-sys-2 $SYS_VERSION), unchanged except:"
      echo "- tools/CMakeLists.txt replaced (adds only ui, mtmd, server)"
      [ -z "${PATCHED:-}" ] || echo "$PATCHED"
      echo "- added from llama-cpp-python $LCP_VERSION sdist (vendor/llama.cpp), absent from the crate:"
      (cd "$S" && find . -type f | sort) | comm -13 "$W/crate-files.txt" - | sed 's/^/  /'
    } >"$W/provenance.txt"
    # shellcheck disable=SC2086 # LLAMA_SERVER_CMAKE_ARGS is a list of -D options
    cmake -S "$S" -B "$W/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_COMMON=ON \
      -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF $LLAMA_SERVER_CMAKE_ARGS >"$W/cmake.log" 2>&1 \
      || { tail -30 "$W/cmake.log" >&2; exit 1; }
    log "building llama-server in $W/build (log: $W/build.log)"
    cmake --build "$W/build" --target llama-server -j"$(nproc)" >"$W/build.log" 2>&1 \
      || { tail -30 "$W/build.log" >&2; exit 1; }
  fi
  cp "$W/provenance.txt" "$OUT/llama-server-provenance.txt"
  grep -E '^(CMAKE_BUILD_TYPE|GGML_NATIVE|GGML_OPENMP|GGML_AVX[A-Z0-9_]*|GGML_FMA|GGML_F16C|GGML_BMI2|GGML_CPU_REPACK|GGML_LLAMAFILE|BUILD_SHARED_LIBS):' \
    "$W/build/CMakeCache.txt" >"$OUT/llama-server-cmake.txt" || true
fi

# --- the agent, native ---------------------------------------------------------------------
NATIVE_TARGET=$ROOT/target/bench-native
log "building cocoon-agent (target-cpu=native) in $NATIVE_TARGET"
# AGENT_FEATURES (e.g. llama-cpp-2/openmp) and LLAMA_LIB_PROFILE (Release: -O3 instead of the
# release profile's RelWithDebInfo) try other llama.cpp builds of the agent; changing them
# rebuilds llama-cpp-sys-2 in the same target dir.
# The build script's messages name the OUT_DIR holding the llama.cpp libraries this binary links.
AGENT_OUT=$(RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=$NATIVE_TARGET \
  cargo build --release -p cocoon-agent --manifest-path "$ROOT/Cargo.toml" \
  ${AGENT_FEATURES:+--features "$AGENT_FEATURES"} --message-format=json-render-diagnostics |
  "$PY" -c 'import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "build-script-executed" and "llama-cpp-sys-2" in m.get("package_id", ""):
        print(m["out_dir"])' | tail -n 1)
AGENT=$NATIVE_TARGET/release/cocoon-agent

# --- CPU features of both builds -----------------------------------------------------------
# llama-server prints llama_print_system_info() at start-up; the agent does not, so a probe is
# linked against the agent's own static llama.cpp libraries (those the binary above contains).
[ -n "$AGENT_OUT" ] && [ -f "$AGENT_OUT/lib/libllama.a" ] ||
  { log "cargo named no llama.cpp build output (got '$AGENT_OUT')"; exit 1; }
grep -E '^(CMAKE_BUILD_TYPE|GGML_NATIVE|GGML_OPENMP|GGML_AVX[A-Z0-9_]*|GGML_FMA|GGML_F16C|GGML_BMI2|GGML_CPU_REPACK|GGML_LLAMAFILE|BUILD_SHARED_LIBS):' \
  "$AGENT_OUT/build/CMakeCache.txt" >"$OUT/agent-llama-cmake.txt" || true
PROBE=$OUT/agent-system-info
cc -c "$BENCH/system_info.c" -I"$AGENT_OUT/include" -o "$PROBE.o"
c++ "$PROBE.o" -o "$PROBE" -Wl,--start-group "$AGENT_OUT"/lib/libllama.a "$AGENT_OUT"/lib/libggml*.a \
  -Wl,--end-group -fopenmp -lpthread -lm -ldl
rm -f "$PROBE.o"

# --- servers -------------------------------------------------------------------------------
AGENT_PORT=18777; SERVER_PORT=18778
PID=""
TD_ROOT=$(mktemp -d) # one simulated TD per agent start: its directory cannot be reused
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TD_ROOT"; }
trap cleanup EXIT

# cocoon-agent answers /healthz, llama-server /health (503 while loading).
wait_ready() {
  for _ in $(seq 1 600); do
    kill -0 "$PID" 2>/dev/null || { log "server (pid $PID) exited; see $OUT"; return 1; }
    if curl -sf "$1/healthz" >/dev/null 2>&1 || curl -sf "$1/health" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  log "server at $1 never became ready"; return 1
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
start_agent() {
  # Agent logs (llama.cpp's own at info) into the results dir.
  RUST_LOG="info,llama_cpp_2=info,llama-cpp-2=info" "$AGENT" serve --model "$MODEL" \
    --model-sha256 "$SHA" --listen 127.0.0.1:$AGENT_PORT --ctx "$CTX" --parallel "$PARALLEL" \
    --threads "$THREADS" --batch "$BATCH" --simulated-td "$TD_ROOT/r$1" >"$OUT/agent-r$1.log" 2>&1 &
  PID=$!
  wait_ready http://127.0.0.1:$AGENT_PORT
}
start_llama_server() {
  "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port $SERVER_PORT -c $((CTX * PARALLEL)) \
    -np "$PARALLEL" -t "$THREADS" -tb "$THREADS" -b "$BATCH" -ub "$BATCH" --alias "$ID" \
    >"$OUT/llama-server-r$1.log" 2>&1 &
  PID=$!
  wait_ready http://127.0.0.1:$SERVER_PORT
}
passes() { # URL LABEL ROUND
  for c in "${CLIENTS[@]}"; do
    "$PY" "$BENCH/load.py" gen --url "$1" --model "$ID" --clients "$c" --requests "$REQUESTS" \
      --max-tokens "$MAX_TOKENS" --label "$2" --round "$3" | tee -a "$OUT/results.jsonl"
  done
  "$PY" "$BENCH/load.py" prefill --url "$1" --model "$ID" --requests "$PREFILL_REQUESTS" \
    --prompt-words "$PROMPT_WORDS" --label "$2" --round "$3" | tee -a "$OUT/results.jsonl"
}

# The ISA part of system_info ("CPU : SSE3 = 1 | ... |"), without the non-ISA build options.
isa() { grep -o 'CPU : [^|]*\(|[^|]*\)*' | tr '|' '\n' | sed 's/^ *CPU : //; s/ //g' |
  grep -E '=1$' | grep -vE '^(OPENMP|LLAMAFILE|REPACK|KLEIDIAI)=' | sort | tr '\n' ' '; }

{
  echo "command: THREADS=$THREADS PARALLEL=$PARALLEL CTX=$CTX BATCH=$BATCH MAX_TOKENS=$MAX_TOKENS REQUESTS=$REQUESTS PREFILL_REQUESTS=$PREFILL_REQUESTS PROMPT_WORDS=$PROMPT_WORDS ROUNDS=$ROUNDS LLAMA_SERVER_CMAKE_ARGS='$LLAMA_SERVER_CMAKE_ARGS' agent/bench/run.sh ${CLIENTS[*]}"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
  echo "model: $MODEL sha256 $SHA"
  echo "llama-cpp-sys-2: $SYS_VERSION ($SYS_DIR)"
  echo "agent: $AGENT (RUSTFLAGS=-C target-cpu=native; features: ${AGENT_FEATURES:-default}; LLAMA_LIB_PROFILE=${LLAMA_LIB_PROFILE:-unset})"
  echo "llama-server: $LLAMA_SERVER"
  echo "loadavg before: $(cat /proc/loadavg)"
} >"$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

AGENT_SI=$("$PROBE")
# llama-server prints its system_info line only at verbosity 4 (trace), which also logs per
# request: one short start at -lv 4 reads it, the measured runs use the default verbosity.
check_isa() {
  "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port $SERVER_PORT -c "$CTX" -np 1 -t "$THREADS" \
    -lv 4 >"$OUT/llama-server-system-info.log" 2>&1 &
  PID=$!
  wait_ready http://127.0.0.1:$SERVER_PORT
  stop_server
  SERVER_SI=$(grep -m1 'system_info' "$OUT/llama-server-system-info.log" || true)
  {
    echo "cocoon-agent (probe linked against $AGENT_OUT/lib): $AGENT_SI"
    echo "llama-server (start-up log at -lv 4): $SERVER_SI"
    echo "agent ISA:        $(isa <<<"$AGENT_SI")"
    echo "llama-server ISA: $(isa <<<"$SERVER_SI")"
  } >"$OUT/system-info.txt"
  cat "$OUT/system-info.txt" >&2
  if [ "$(isa <<<"$AGENT_SI")" != "$(isa <<<"$SERVER_SI")" ] || [ -z "$(isa <<<"$AGENT_SI")" ]; then
    log "the two llama.cpp builds report different (or no) CPU features: the comparison is unfair"
    [ "${ALLOW_ISA_MISMATCH:-0}" = 1 ] || exit 3
  fi
}

check_isa
for r in $(seq 1 "$ROUNDS"); do
  log "round $r: cocoon-agent"
  start_agent "$r"
  passes http://127.0.0.1:$AGENT_PORT cocoon-agent "$r"
  stop_server
  log "round $r: llama-server"
  start_llama_server "$r"
  passes http://127.0.0.1:$SERVER_PORT llama-server "$r"
  stop_server
done
echo "loadavg after: $(cat /proc/loadavg)" >>"$OUT/meta.txt"

"$PY" "$BENCH/summarize.py" "$OUT/results.jsonl" >"$OUT/summary.md" || true
cat "$OUT/summary.md"
log "results in $OUT"
