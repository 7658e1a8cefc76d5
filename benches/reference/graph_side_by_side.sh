#!/usr/bin/env bash
# zipp's GATv2 encoder against PyTorch Geometric's GATv2Conv on MovieLens 100K: the same
# graph, split, MiniLM features and model (64×2 → 64, full batch, AdamW, link prediction,
# optionally ImageAlign), the same thread count, interleaved seed by seed so both see the
# same machine state.
#   bash benches/reference/graph_side_by_side.sh [SEEDS] [LAMBDA] [EPOCHS]
# Needs the throwaway venv of gatv2_pyg.py in $PYGREF_PYTHON (default /tmp/pygref/v/bin/python)
# and the provisioned MovieLens and MiniLM files. Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds="${1:-3}"
lambda="${2:-0}"
epochs="${3:-100}"
py="${PYGREF_PYTHON:-/tmp/pygref/v/bin/python}"
threads="${THREADS:-2}"
dir="${GRAPH_DIR:-$(mktemp -d)/ml100k}"
cargo build --locked --release -p zipp-examples --bin mine-personas >&2
bin="${CARGO_TARGET_DIR:-target}/release/mine-personas"
grep -o -m1 -w 'avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ' >&2; echo >&2
# The graph, the seed-0 split and the features, exported once in PyG's layout.
ZIPP_NUM_THREADS="$threads" "$bin" --epochs 1 --users 0 --export "$dir" > /dev/null
for seed in $(seq 0 $((seeds - 1))); do
  ZIPP_NUM_THREADS="$threads" "$bin" --epochs "$epochs" --lambda "$lambda" --seed "$seed" --users 0 2>/dev/null
  "$py" benches/reference/gatv2_pyg.py epoch --graph "$dir" --epochs "$epochs" --lambda "$lambda" \
    --seed "$seed" --threads "$threads" 2>/dev/null
done
