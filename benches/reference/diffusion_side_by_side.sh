#!/usr/bin/env bash
# zipp against diffusers on the same Stable Diffusion networks (random weights at real sizes,
# float32, CPU, the same thread count), interleaved so both see the same machine state.
#   bash benches/reference/diffusion_side_by_side.sh [ROUNDS] [PARTS...]
# Needs the throwaway venv of diffusion_speed.py in $DIFFREF_PYTHON (default
# /tmp/diffref/v/bin/python) and builds the Rust example itself. Prints JSON lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-2}"
shift || true
parts=("${@:-unet unet-cfg vae text}")
py="${DIFFREF_PYTHON:-/tmp/diffref/v/bin/python}"
threads="${THREADS:-2}"
cargo build --locked --release -p zipp-benches --example diffusion_speed >&2
bin="${CARGO_TARGET_DIR:-target}/release/examples/diffusion_speed"
grep -o -m1 -w 'avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ' >&2; echo >&2
for r in $(seq "$rounds"); do
  for part in ${parts[@]}; do
    ZIPP_NUM_THREADS="$threads" "$bin" --model sd21 --part "$part" --reps 2
    "$py" benches/reference/diffusion_speed.py --model sd21 --part "$part" --reps 2 --threads "$threads"
  done
done
