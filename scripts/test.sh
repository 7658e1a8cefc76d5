#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: provisions the real default models
# (sha256-verified, cached outside the repo), then the Rust tests (the quick start and the
# cbindgen header drift check are among them), the Python wheel built and tested installed
# in a fresh venv (scripts/test-python.sh), and the C ABI from C and C++ programs, statically
# and dynamically linked and under valgrind (scripts/test-c.sh). Ends with one summary line
# "tests: N passed, M failed" summed over every cargo test binary, pytest and the C checks.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision-models.sh >/dev/null

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check
else
  echo "scripts/test.sh: rustfmt is not installed; skipping the format check" >&2
fi
# Every crate but the Python extension module (built by maturin in scripts/test-python.sh).
cargo test --locked --workspace --exclude zipp-py --all-targets 2>&1 | tee -a "$log"
cargo test --locked --workspace --exclude zipp-py --doc 2>&1 | tee -a "$log"
# The main job runs end to end in examples/tests/quickstart.rs (built with the test
# build's features, so no second compile of candle for `cargo run`).

# A failing Rust test stops the run above (set -e). Each binding script ends with
# "python tests: …" / "c tests: …" even when it fails, and `|| true` lets the summary below
# count it instead of stopping here; a script that printed no line counts as a failure.
bash scripts/test-python.sh 2>&1 | tee -a "$log" || true
bash scripts/test-c.sh 2>&1 | tee -a "$log" || true

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^(python|c) tests:/ { p += $3; f += $5; seen[$1] = 1 }
     END { if (!seen["python"] || !seen["c"]) { print "scripts/test.sh: a binding test script printed no summary"; f += 1 }
           printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' "$log"
