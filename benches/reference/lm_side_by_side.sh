#!/usr/bin/env bash
# The local language model's speed, zipp vs llama.cpp on the same GGUF (the embedded
# SmolLM2-135M-Instruct Q4_1), the same 57-token prompt, greedy, 2 threads, interleaved:
# llama.cpp, zipp's criterion bench (benches/lm.rs), llama.cpp again, zipp's single-run
# example. Needs the throwaway llama-cpp-python venv of llama_cpp_reference.py
# ($LLREF, default /tmp/llref/v); never run in CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${LLREF:-/tmp/llref/v}/bin/python"
MODEL="${ZIPP_MODELS_DIR:-$HOME/.cache/zipp/models}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
export ZIPP_NUM_THREADS=2
grep -m1 "model name" /proc/cpuinfo
echo "== llama.cpp (llama-cpp-python), 2 threads, 3 repetitions"
"$PY" benches/reference/llama_cpp_speed.py "$MODEL" 2 3
echo "== zipp (criterion)"
cargo bench --locked -p zipp-benches --bench lm -- --warm-up-time 2 --measurement-time 10
echo "== llama.cpp again"
"$PY" benches/reference/llama_cpp_speed.py "$MODEL" 2 3
echo "== zipp (single runs, target/release/examples/lm_speed)"
cargo build --locked --release -p zipp-lm --examples
target/release/examples/lm_speed 3
