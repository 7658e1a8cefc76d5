#!/usr/bin/env bash
# Builds the Python wheel (zipp-persona) and tests the *installed* wheel on a fresh machine:
#   1. provisions the default models (idempotent; fast when they are already there),
#   2. recreates the venv target/py-venv with the pinned tools of zipp-py/requirements-test.txt,
#   3. `maturin build --release --locked` the wheel and pip-installs it into the venv,
#   4. from target/py-run (outside the source tree, so only the installed wheel is importable):
#      mypy.stubtest on zipp_persona._zipp, mypy --strict on the package, pytest on
#      zipp-py/tests, and examples/python/quickstart.ipynb executed headlessly (nbclient).
# Ends with one line "python tests: N passed, M failed": N and M count the pytest tests plus
# one check each for stubtest, mypy and the notebook. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="$ROOT/target/py-venv"
WHEELS="$ROOT/target/py-wheels"
RUN="$ROOT/target/py-run"

# A failed setup (provisioning, venv, build, install) still ends with the summary line.
trap 'echo "scripts/test-python.sh: setup failed (see above)" >&2; echo "python tests: 0 passed, 1 failed"' ERR

bash scripts/provision-models.sh >/dev/null

rm -rf "$VENV" "$WHEELS" "$RUN"
"${PYTHON:-python3}" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --disable-pip-version-check -r zipp-py/requirements-test.txt

"$VENV/bin/maturin" build --release --locked --quiet -m zipp-py/Cargo.toml --out "$WHEELS" -i "$PY"
"$PY" -m pip install --quiet --disable-pip-version-check "$WHEELS"/zipp_persona-*.whl

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
