#!/usr/bin/env bash
# Provisions llama.cpp's OpenAI-compatible server (llama-cpp-python's `llama_cpp.server`) for
# zipp-lm's real-server test (zipp-lm/tests/openai_llama_server.rs), outside the repository:
#   ~/.cache/zipp/wheels/llama-cpp-python-0.3.36-<flags hash>/  the llama-cpp-python wheel, built from source once
#                                      (~6-9 minutes on 2 cores) and reused on later runs;
#   ~/.cache/zipp/llama-server-venv/   a venv with that wheel and the `[server]` extras.
# Idempotent: when the venv already imports llama_cpp.server from the cached wheel's version,
# it does nothing (a second or so). The last line on stdout is the venv's python, so
#   ZIPP_LLAMA_SERVER_PYTHON="$(bash scripts/llama-server.sh | tail -n1)"
# is what the test needs. Needs the network (PyPI) only the first time.
#
# Build flags: a native build (-march=native) of ggml crashes with SIGILL on some machines
# (AMX detection), and a wheel built with AVX-512 would not run on AVX2-only machines that
# share the cache; so the CPU features are spelled out: AVX2 + FMA + F16C, no native.
set -euo pipefail

VERSION=0.3.36
CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
CACHE="${ZIPP_CACHE:-$HOME/.cache/zipp}"
# The cached wheel is keyed on the version and the build flags: a wheel built otherwise
# (pip's own cache may hold a native build) is never picked up.
WHEELS="$CACHE/wheels/llama-cpp-python-$VERSION-$(echo "$CMAKE_FLAGS" | sha256sum | cut -c1-12)"
VENV="$CACHE/llama-server-venv"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"
log() { echo "scripts/llama-server.sh: $*" >&2; }

ready() {
  [ -x "$PY" ] &&
    [ "$(cat "$VENV/.zipp-wheel" 2>/dev/null)" = "$WHEELS" ] &&
    "$PY" -c "import llama_cpp, llama_cpp.server.app, uvicorn; assert llama_cpp.__version__ == '$VERSION'" >/dev/null 2>&1
}

if ready; then
  log "reusing $VENV (llama-cpp-python $VERSION)"
  echo "$PY"
  exit 0
fi

mkdir -p "$WHEELS"
wheel="$(find "$WHEELS" -maxdepth 1 -name "llama_cpp_python-$VERSION-*.whl" | head -n1)"
if [ -z "$wheel" ]; then
  log "building llama-cpp-python $VERSION from source (takes minutes; once per machine)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # --no-cache-dir: pip's wheel cache is keyed on the sdist, not on CMAKE_ARGS, and may hold
  # a native build of the same version.
  CMAKE_ARGS="$CMAKE_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PYTHON" -m pip wheel --no-deps --no-binary llama-cpp-python --no-cache-dir --disable-pip-version-check \
    --wheel-dir "$tmp" "llama-cpp-python==$VERSION" >&2
  built="$(find "$tmp" -maxdepth 1 -name "llama_cpp_python-$VERSION-*.whl" | head -n1)"
  [ -n "$built" ] || { log "pip wheel produced no wheel"; exit 1; }
  # Moved in only once complete: an interrupted build leaves no half wheel in the cache.
  mv "$built" "$WHEELS/"
  wheel="$WHEELS/$(basename "$built")"
  log "cached $wheel"
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# The wheel itself, then the server extras' dependencies from PyPI.
"$PY" -m pip install --quiet --disable-pip-version-check "${wheel}[server]" >&2
echo "$WHEELS" >"$VENV/.zipp-wheel"
ready || { log "the venv at $VENV does not import llama_cpp.server"; exit 1; }
log "ready: $VENV"
echo "$PY"
