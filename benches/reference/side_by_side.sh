#!/usr/bin/env bash
# MiniLM throughput, zipp vs sentence-transformers, measured back to back on the same
# machine and the same inputs (benches/data/st_sentences_{short,long}.json).
# Needs the throwaway reference venv (see README.md here); never run in CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${REFVENV:-/tmp/refvenv}/bin/python"
export HF_HUB_OFFLINE=1
echo "== sentence-transformers, 2 threads, short batch of 64 + one query"
"$PY" benches/reference/st_throughput.py --threads 2 --sentences-in benches/data/st_sentences_short.json
echo "== sentence-transformers, 2 threads, long (256-token) batch of 64"
"$PY" benches/reference/st_throughput.py --long --threads 2 --reps 10 --single-reps 5 \
  --sentences-in benches/data/st_sentences_long.json
echo "== zipp (criterion)"
cargo bench -p zipp-benches --bench embed -- --warm-up-time 2 --measurement-time 8
