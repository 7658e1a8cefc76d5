#!/usr/bin/env bash
# Builds the Python wheel (zipp-persona) and tests the *installed* wheel on a fresh machine:
#   venv:  provisions the default models (idempotent; fast when they are already there) and
#          makes the venv target/py-venv with the pinned tools of zipp-py/requirements-test.txt
#          (kept while that file and the Python version are unchanged: the only step here
#          that needs the network),
#   build: `maturin build --release --locked` the wheel (the release build scripts/test.sh
#          shares with libzipp) and pip-installs it into the venv, replacing the last one,
#   test:  from target/py-run (outside the source tree, so only the installed wheel is
#          importable), offline: mypy.stubtest on zipp_persona._zipp, mypy --strict on the
#          package, pytest on zipp-py/tests, and examples/python/quickstart.ipynb executed
#          headlessly (nbclient).
#   bash scripts/test-python.sh [venv|build|test|all]     (default all; scripts/test.sh runs
#                                                           the steps in its phases)
# test (and a failed venv or build step) ends with one line "python tests: N passed, M failed":
# N and M count the pytest tests plus one check each for stubtest, mypy and the notebook.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="$ROOT/target/py-venv"
WHEELS="$ROOT/target/py-wheels"
RUN="$ROOT/target/py-run"

step="${1:-all}"
case "$step" in venv | build | test | all) ;; *) echo "usage: $0 [venv|build|test|all]" >&2; exit 2 ;; esac
PY="$VENV/bin/python"

# A failed setup (provisioning, venv, build, install) still ends with the summary line.
trap 'echo "scripts/test-python.sh: setup failed (see above)" >&2; echo "python tests: 0 passed, 1 failed"' ERR

if [ "$step" = venv ] || [ "$step" = all ]; then
  bash scripts/provision-models.sh >/dev/null
  # The venv is keyed on the pinned requirements and the interpreter: rebuilt only when
  # either changed (or the venv is broken); the freshly built wheel is reinstalled each run.
  key="$({ cat zipp-py/requirements-test.txt; "${PYTHON:-python3}" -c 'import sys; print(sys.executable, sys.version)'; } |
    sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$VENV/.zipp-venv-key" 2>/dev/null)" != "$key" ] || ! "$PY" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check -r zipp-py/requirements-test.txt
    echo "$key" >"$VENV/.zipp-venv-key"
  else
    echo "scripts/test-python.sh: reusing $VENV (requirements unchanged)" >&2
  fi
fi
if [ "$step" = venv ]; then
  trap - ERR
  exit 0
fi

if [ "$step" = build ] || [ "$step" = all ]; then
  [ -x "$PY" ] || { echo "scripts/test-python.sh: no venv; run \`$0 venv\` first" >&2; false; }
  rm -rf "$WHEELS"
  # Out with the last run's wheel first: a failed build must not leave it to be tested.
  "$PY" -m pip uninstall --quiet --disable-pip-version-check -y zipp-persona
  "$VENV/bin/maturin" build --release --locked --quiet -m zipp-py/Cargo.toml --out "$WHEELS" -i "$PY"
  # Same version every build: --force-reinstall replaces the last run's wheel; --no-deps and
  # --no-index keep it offline (numpy is pinned in the venv), and `pip check` verifies that
  # the wheel's requirements are met.
  "$PY" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --force-reinstall "$WHEELS"/zipp_persona-*.whl
  "$PY" -m pip check --disable-pip-version-check >/dev/null
fi
if [ "$step" = build ]; then
  trap - ERR
  exit 0
fi

rm -rf "$RUN"
mkdir -p "$RUN"
cd "$RUN"
trap - ERR
passed=0
failed=0
check() { # name command...: one pass/fail check
  local name="$1"
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "scripts/test-python.sh: $name FAILED" >&2
    failed=$((failed + 1))
  fi
}

check stubtest "$PY" -m mypy.stubtest zipp_persona._zipp
check "mypy --strict" "$PY" -m mypy --strict --no-error-summary -p zipp_persona
# --import-mode=importlib: pytest puts no test folder on sys.path; the tests also assert that
# zipp_persona comes from the venv.
"$PY" -m pytest "$ROOT/zipp-py/tests" -q -p no:cacheprovider --import-mode=importlib --junitxml="$RUN/pytest.xml" || true
check notebook "$PY" "$ROOT/zipp-py/tests/run_notebook.py" "$ROOT/examples/python/quickstart.ipynb" "$VENV"

# pytest's own counts (a crash before the report counts as one failure).
read -r p f skipped < <("$PY" - "$RUN/pytest.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1, 0)
    raise SystemExit
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = lambda key: sum(int(s.get(key, 0)) for s in suites)
bad = n("failures") + n("errors")
print(n("tests") - bad - n("skipped"), bad, n("skipped"))
PY
)
if [ "$skipped" -gt 0 ]; then
  echo "scripts/test-python.sh: $skipped pytest tests skipped (not counted)" >&2
fi
passed=$((passed + p))
failed=$((failed + f))
echo "python tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
