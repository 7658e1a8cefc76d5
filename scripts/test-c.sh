#!/usr/bin/env bash
# Tests the C ABI as C and C++ users use it: installs libzipp into a temporary prefix, checks
# the header compiles standalone as C11 and C++17, builds the C test program and the C++
# example through pkg-config, runs them, runs the C test again linked statically, and under
# valgrind (no leaks, no invalid accesses).
#   bash scripts/test-c.sh [deps|build|test|valgrind|all] [--prebuilt]
#     deps:     installs pkg-config, valgrind, gcc, g++ when missing (Debian; the network)
#     build:    builds and installs libzipp (release; --prebuilt: install the libzipp that
#               target/release already holds, built by scripts/test.sh together with the wheel)
#               and compiles the headers and programs
#     test:     runs the C test (shared and static) and the C++ example
#     valgrind: runs the C test (--quick) under valgrind
#     all:      all of them (the default; scripts/test.sh runs the steps in its phases)
# The only stdout line is the total of the steps run, "c tests: N passed, M failed" (checks
# of the C runs plus one for the C++ example; a step that stops counts one failure).
set -euo pipefail
cd "$(dirname "$0")/.."
out="target/c-tests"
prefix="$out/prefix"
step="${1:-all}"
case "$step" in deps | build | test | valgrind | all) ;; *)
  echo "usage: $0 [deps|build|test|valgrind|all] [--prebuilt]" >&2
  exit 2
  ;;
esac
install_args=()
[ "${2:-}" = --prebuilt ] && install_args=(--no-build)
runs() { [ "$step" = all ] || [ "$step" = "$1" ]; }
runs build && rm -rf "$out"
mkdir -p "$out"

# A failure anywhere still ends with the summary line (test.sh adds it up): the checks
# counted so far, plus one failure for the step that stopped the script.
summary="$out/summary-$step.txt"
: >"$summary"
report_failure() {
  awk '/^c tests:/ { p += $3; f += $5 } END { printf "c tests: %d passed, %d failed\n", p, f + 1 }' "$summary" 2>/dev/null ||
    echo "c tests: 0 passed, 1 failed"
}
trap 'echo "test-c: a step failed (see above)" >&2; report_failure' ERR

need() { command -v "$1" >/dev/null 2>&1; }
if runs deps && { ! need pkg-config || ! need valgrind || ! need gcc || ! need g++; }; then
  echo "test-c: installing pkg-config, valgrind, gcc, g++ (Debian packages)" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2 && $sudo_cmd apt-get install -y -qq pkg-config valgrind gcc g++ >&2
fi

export PKG_CONFIG_PATH="$PWD/$prefix/lib/pkgconfig"
if runs build; then
  bash scripts/provision-models.sh >/dev/null
  bash scripts/install-c.sh "${install_args[@]}" "$prefix"

  cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -O2)
  cxxflags=(-std=c++17 -Wall -Wextra -Werror -pedantic -O2)

  # The headers alone, in both languages.
  printf '#include "zipp.h"\n' | gcc "${cflags[@]}" $(pkg-config --cflags zipp) -x c -fsyntax-only -
  printf '#include "zipp.h"\n' | g++ "${cxxflags[@]}" $(pkg-config --cflags zipp) -x c++ -fsyntax-only -
  printf '#include "zipp.hpp"\n' | g++ "${cxxflags[@]}" $(pkg-config --cflags zipp) -x c++ -fsyntax-only -
  echo "test-c: headers compile standalone (C11, C++17)" >&2

  gcc "${cflags[@]}" zipp-ffi/tests/c/test_zipp.c $(pkg-config --cflags --libs zipp) -pthread -lm -o "$out/test_zipp"
  gcc "${cflags[@]}" zipp-ffi/tests/c/test_zipp.c $(pkg-config --cflags zipp) "$prefix/lib/libzipp.a" \
    $(pkg-config --static --libs-only-l zipp | sed 's/-lzipp//') -pthread -lm -o "$out/test_zipp_static"
  g++ "${cxxflags[@]}" examples/cpp/personalize.cpp $(pkg-config --cflags --libs zipp) -pthread -o "$out/personalize_cpp"
  gcc "${cflags[@]}" zipp-ffi/tests/c/test_error_kinds.c $(pkg-config --cflags --libs zipp) -lm -o "$out/test_error_kinds"
fi

personas="examples/data/personas.jsonl"
if runs test; then
  "$out/test_zipp" "$personas" | tee -a "$summary" | sed "s/^/test-c: /" >&2
  "$out/test_zipp_static" "$personas" --quick | tee -a "$summary" | sed "s/^/test-c: /" >&2
  "$out/personalize_cpp" "$personas" "a cozy reading corner" >"$out/cpp.log"
  tail -n 1 "$out/cpp.log" >&2
  echo "c tests: 1 passed, 0 failed" >>"$summary" # the C++ example ran and checked its results
  # Every error kind from real bad input: broken copies of the models folder (truncated
  # weights, a one-merge CLIP vocabulary, no post-processor, NaN weights) in a temporary
  # folder. Not under valgrind: it exercises no export the valgrind run misses, and valgrind
  # would spend ~4 minutes embedding with the real model.
  "$out/test_error_kinds" | tee -a "$summary" | sed "s/^/test-c: /" >&2
fi

if runs valgrind; then
  # One zipp thread: valgrind runs threads one at a time, and idle rayon workers spinning
  # would dominate. The forked child is not leak-checked: it inherits the parent's thread pool,
  # which it cannot free (leaked on purpose, see zipp-core/src/runtime.rs).
  ZIPP_NUM_THREADS=1 valgrind --quiet --child-silent-after-fork=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect "$out/test_zipp" "$personas" --quick 2>"$out/valgrind.log" | tee -a "$summary" | sed "s/^/test-c: /" >&2 || {
    echo "test-c: valgrind reported errors:" >&2; cat "$out/valgrind.log" >&2; false; }
  if [ -s "$out/valgrind.log" ]; then
    echo "test-c: valgrind output:" >&2; cat "$out/valgrind.log" >&2; false
  fi
  echo "test-c: valgrind: no leaks, no invalid accesses" >&2
fi

trap - ERR
case "$step" in deps | build) exit 0 ;; esac # nothing counted: only a failure prints a line
awk '/^c tests:/ { p += $3; f += $5 } END { printf "c tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' "$summary"
