#!/usr/bin/env bash
# The PyTorch Geometric round trip of zipp-graph, checked end to end on MovieLens 100K:
#   1. zipp exports the graph, split and MiniLM features in PyG's layout
#      (`mine-personas --export`, zipp_graph::export) and trains its encoder for EPOCHS
#      epochs, saving the weights (`--checkpoint`, PyG's names);
#   2. PyG (benches/reference/gatv2_pyg.py epoch) trains the same model on the export for
#      EPOCHS epochs and saves its weights (`--save-weights`);
#   3. zipp loads the PyG weights (`mine-personas --weights`), reports held-out AUC / Hit@10
#      and mines a persona for every user (`--out`, JSONL);
#   4. PyG loads zipp's weights (`--load-weights --epochs 0`) and only evaluates them;
#   5. both directions must give the same results for the same weights: the trainer's
#      embeddings z_u, z_s (`--embeddings` / `--save-embeddings`) and the loader's within
#      EMB_TOL of the largest entry, and the same test AUC and Hit@10; the personas file must
#      hold one JSON persona per user. Else it exits 1 saying which check failed and by how
#      much.
# Both sides evaluate with zipp's protocol (gatv2_pyg.py `--eval-protocol zipp`: the same
# SplitMix negatives per test edge, ties half a place), so equal embeddings give equal
# metrics. Float tolerance, and why: zipp's fused f32 kernels and torch sum in different
# orders, so the embeddings differ by ~1e-7..1e-6 of their largest entry (EMB_TOL 1e-5), and
# a pos/neg pair or a 10th place that is a near-exact tie could go the other way: at most
# MAX_FLIPS (2) of the 10,037 test edges may be decided differently (|ΔAUC|, |ΔHit@10| ≤
# MAX_FLIPS / test edges; every run so far: 0, i.e. equal to all printed digits).
#
#   bash benches/reference/pyg_round_trip.sh [EPOCHS]        (default 20)
#   env: SEED (0), LAMBDA (ImageAlign weight, 0.5), THREADS (2), MAX_FLIPS (2),
#        EMB_TOL (1e-5), KEEP_DIR=1 keeps the work folder, PYGREF_PYTHON (a python with
#        torch==2.15.0, torch_geometric==2.8.1, numpy, safetensors), PYGREF_VENV
#        (/tmp/pygref/v), CARGO_TARGET_DIR
# Without a usable $PYGREF_PYTHON it uses, or creates, the throwaway venv $PYGREF_VENV
# (outside the repo; the PyPI torch wheel pulls in the CUDA libraries, ~5.4 GB; CPU only).
# Needs the provisioned MovieLens, MiniLM and CLIP BPE files (scripts/provision-models.sh).
# Never run in CI. Prints progress on stderr and one JSON summary line on stdout.
#
# Result (2026-12-01, AMD EPYC AVX2, 2 cores shared with other jobs, `bash
# benches/reference/pyg_round_trip.sh`, 20 epochs, λ 0.5, torch 2.15.0 / PyG 2.8.1; 4 min 8 s
# with a 1 min build): ok. PyG's weights in zipp: AUC 0.670519079406197, Hit@10
# 0.0010959450034870978 on both sides (10,037 test edges, 0 decisions differ), embeddings
# within 5.4e-7 of their largest entry; zipp's weights in PyG: AUC 0.7097738368038259, Hit@10
# 0.0011955763674404703 on both sides, embeddings within 1.3e-6; 943 personas mined from
# PyG's weights. With 50 epochs (Hit@10 0.053 / 0.016) the metrics also agree to every digit.
# The check can fail (5-epoch runs, a weight file perturbed between saving and loading):
# PyG's l2_c2u.att × 1.01 -> z_u off by 1.7e-5, exit 1 (the metrics did not move: hence the
# embedding check); 0.1% noise on zipp's l2_u2c.bias -> z_s off by 1.7e-4, exit 1; with the
# embedding check off (EMB_TOL=1), 10% noise on PyG's l2_c2u.lin_l.weight -> a net 10 AUC
# decisions differ, exit 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
epochs="${1:-20}"
seed="${SEED:-0}"
lambda="${LAMBDA:-0.5}"
threads="${THREADS:-2}"
max_flips="${MAX_FLIPS:-2}"
emb_tol="${EMB_TOL:-1e-5}"
venv="${PYGREF_VENV:-/tmp/pygref/v}"
say() { echo "pyg_round_trip: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

# --- 1. the Python side: a given interpreter, or the throwaway venv
usable() { [ -n "$1" ] && "$1" -c 'import torch, torch_geometric, numpy, safetensors' 2>/dev/null; }
py="${PYGREF_PYTHON:-}"
if ! usable "$py"; then
  [ -n "$py" ] && say "PYGREF_PYTHON=$py cannot import torch, torch_geometric, numpy, safetensors"
  py="$venv/bin/python"
  if ! usable "$py"; then
    case "$(realpath -m "$venv")/" in
      "$(pwd -P)"/*) fail "PYGREF_VENV=$venv is inside the repository; put it outside" ;;
    esac
    say "creating the throwaway venv $venv (torch is large: ~5.4 GB with its CUDA wheels)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip >&2
    "$venv/bin/pip" install --quiet torch==2.15.0 torch_geometric==2.8.1 numpy safetensors >&2
    usable "$py" || fail "the venv $venv still cannot import torch / torch_geometric"
  fi
fi
say "python: $py ($("$py" -c 'import torch, torch_geometric as g; print("torch", torch.__version__, "pyg", g.__version__)'))"

# --- 2. zipp: build, export, train (EPOCHS), save weights
cargo build --locked --release -p zipp-examples --bin mine-personas >&2
bin="${CARGO_TARGET_DIR:-target}/release/mine-personas"
work="$(mktemp -d "${TMPDIR:-/tmp}/zipp-pyg-round-trip.XXXXXX")"
if [ "${KEEP_DIR:-0}" = 1 ]; then say "work folder: $work"; else trap 'rm -rf "$work"' EXIT; fi
run_zipp() { ZIPP_NUM_THREADS="$threads" "$bin" --seed "$seed" --lambda "$lambda" "$@"; }
first_json() { grep -m1 '^{' "$1" || fail "no JSON line in $1: $(tail -3 "$1")"; }

say "zipp: export to $work/graph and train $epochs epochs"
run_zipp --epochs "$epochs" --users 0 --export "$work/graph" --checkpoint "$work/zipp.safetensors" \
  --embeddings "$work/emb/zipp_train" \
  > "$work/zipp_train.out" 2> "$work/zipp_train.err" || fail "mine-personas (train): $(tail -3 "$work/zipp_train.err")"

# --- 3. PyG: train on the export (EPOCHS), save weights
say "PyG: train $epochs epochs on the export"
"$py" benches/reference/gatv2_pyg.py epoch --graph "$work/graph" --epochs "$epochs" --lambda "$lambda" \
  --seed "$seed" --threads "$threads" --eval-protocol zipp --save-weights "$work/pyg.safetensors" \
  --save-embeddings "$work/emb/pyg_train" \
  > "$work/pyg_train.out" 2> "$work/pyg_train.err" || fail "gatv2_pyg.py (train): $(tail -3 "$work/pyg_train.err")"

# --- 4. zipp: PyG's weights in, metrics and personas out
say "zipp: load PyG's weights, evaluate, mine personas"
run_zipp --weights "$work/pyg.safetensors" --users 1 --out "$work/personas.jsonl" --embeddings "$work/emb/zipp_import" \
  > "$work/zipp_import.out" 2> "$work/zipp_import.err" || fail "mine-personas --weights: $(tail -3 "$work/zipp_import.err")"

# --- 5. PyG: zipp's weights in, evaluation only
say "PyG: load zipp's weights, evaluate"
"$py" benches/reference/gatv2_pyg.py epoch --graph "$work/graph" --epochs 0 --lambda "$lambda" \
  --seed "$seed" --threads "$threads" --eval-protocol zipp --load-weights "$work/zipp.safetensors" \
  --save-embeddings "$work/emb/pyg_import" \
  > "$work/pyg_import.out" 2> "$work/pyg_import.err" || fail "gatv2_pyg.py --load-weights: $(tail -3 "$work/pyg_import.err")"

# --- 6. the checks and the summary line
zipp_train="$(first_json "$work/zipp_train.out")"
pyg_train="$(first_json "$work/pyg_train.out")"
zipp_import="$(first_json "$work/zipp_import.out")"
pyg_import="$(first_json "$work/pyg_import.out")"
"$py" - "$work" "$max_flips" "$emb_tol" "$epochs" "$seed" "$lambda" \
  "$zipp_train" "$pyg_train" "$zipp_import" "$pyg_import" <<'EOF'
import json, os, sys

import numpy as np

work, max_flips, emb_tol = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
epochs, seed, lam = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
zipp_train, pyg_train, zipp_import, pyg_import = (json.loads(a) for a in sys.argv[7:11])
meta = json.load(open(os.path.join(work, "graph", "meta.json")))
errors = []


def compare(direction, trainer, loader, emb_trainer, emb_loader):
    """The trainer's own metrics and embeddings against the loader's for the same
    weights."""
    out = {}
    for name in ["z_u", "z_s"]:
        a = np.load(os.path.join(work, "emb", emb_trainer, name + ".npy")).astype(np.float64)
        b = np.load(os.path.join(work, "emb", emb_loader, name + ".npy")).astype(np.float64)
        if a.shape != b.shape:
            errors.append(f"{direction}: {name} of shape {a.shape} vs {b.shape}")
            continue
        rel = float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))
        out[name + "_max_rel_diff"] = float(f"{rel:.3g}")
        if not rel <= emb_tol:
            errors.append(f"{direction}: {name} differs by {rel:.3g} of its largest entry "
                          f"(more than EMB_TOL={emb_tol:g})")
    n = trainer["test_edges"]
    if loader["test_edges"] != n:
        errors.append(f"{direction}: {n} test edges on one side, {loader['test_edges']} on the other "
                      "(not the same split?)")
        return out
    out["test_edges"] = n
    for key in ["test_auc", "hit10"]:
        a, b = trainer[key], loader[key]
        flips = abs(a - b) * n  # decisions (edges) that differ; ties count 1/2
        out[key + "_flips"] = round(flips, 3)
        if not flips <= max_flips + 1e-9:
            errors.append(f"{direction}: {key} {a!r} (trainer) vs {b!r} (loader): "
                          f"a net {flips:.1f} of {n} test-edge decisions differ, more than MAX_FLIPS={max_flips}")
    return out


pyg_to_zipp = compare("PyG weights -> zipp", pyg_train, zipp_import, "pyg_train", "zipp_import")
zipp_to_pyg = compare("zipp weights -> PyG", zipp_train, pyg_import, "zipp_train", "pyg_import")

path = os.path.join(work, "personas.jsonl")
lines = [l for l in open(path, encoding="utf-8").read().split("\n") if l.strip()]
personas, bad = 0, []
for i, l in enumerate(lines):
    try:
        p = json.loads(l)
        ok = isinstance(p, dict) and bool(p.get("id")) and len(p) > 1
    except ValueError:
        ok = False
    personas += ok
    if not ok:
        bad.append(i + 1)
if personas == 0:
    errors.append(f"persona mining from PyG's weights wrote no persona ({path} is empty)")
if bad:
    errors.append(f"{path}: lines {bad[:5]} are not persona JSON objects")
if len(lines) != meta["num_users"]:
    errors.append(f"{path}: {len(lines)} personas for {meta['num_users']} users")

summary = {
    "check": "pyg_round_trip", "ok": not errors, "epochs": epochs, "seed": seed, "lambda": lam,
    "max_flips": max_flips, "emb_tol": emb_tol, "torch": pyg_train.get("torch"), "pyg": pyg_train.get("pyg"),
    "graph": {k: meta[k] for k in ["num_users", "num_communities", "num_edges", "feature_dim"]},
    "pyg_weights_into_zipp": {"pyg_auc_hit10": [pyg_train["test_auc"], pyg_train["hit10"]],
                              "zipp_auc_hit10": [zipp_import["test_auc"], zipp_import["hit10"]], **pyg_to_zipp},
    "zipp_weights_into_pyg": {"zipp_auc_hit10": [zipp_train["test_auc"], zipp_train["hit10"]],
                              "zipp_best_epoch": zipp_train.get("best_epoch"),
                              "pyg_auc_hit10": [pyg_import["test_auc"], pyg_import["hit10"]], **zipp_to_pyg},
    "personas": personas,
    "errors": errors,
}
print(json.dumps(summary))
for e in errors:
    print(f"pyg_round_trip: FAIL: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
