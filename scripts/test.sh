#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: provisions the real default models
# (sha256-verified, cached outside the repo), then the Rust tests, a compile check of the
# Python extension crate, and a smoke run of the quick start.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision-models.sh >/dev/null

# Every crate but the Python extension module (built by maturin, checked below).
cargo fmt --all --check
cargo test --workspace --exclude zipp-py --all-targets
cargo test --workspace --exclude zipp-py --doc
cargo check -p zipp-py

# The main job must keep running end to end.
cargo run --quiet -p zipp-examples --bin quickstart -- --limit-personas 1 --limit-prompts 1 >/dev/null
echo "scripts/test.sh: all tests passed"
