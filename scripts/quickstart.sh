#!/usr/bin/env bash
# The README's quick start: provisions the embedded default models (MiniLM, CLIP BPE) on a
# fresh machine, then personalizes the example prompts for the example personas with every
# method, printing each rewritten prompt and its evidence. Extra arguments go to the
# example (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/provision-models.sh >/dev/null
exec cargo run --quiet --release -p zipp-examples --bin quickstart -- "$@"
