#!/usr/bin/env bash
# Checks that workspace-hack/Cargo.toml pins every feature difference between the test
# build of scripts/test.sh (`cargo test --release --workspace --exclude zipp-py`: the
# dev-dependencies' features count) and the builds run next to it: the quick start
# (zipp-examples alone), the wheel (zipp-py alone, built by maturin) and the library build
# that copies libzipp out (`cargo build --workspace --exclude zipp-py --lib`). A dependency
# both builds compile with different features is compiled twice, and with it everything
# above it (candle & co.).
# Prints the differences and "build tests: N passed, M failed" (one check per build).
set -uo pipefail
cd "$(dirname "$0")/.."
# "name version (source) features" per compiled package, one line each; a package built with
# two feature sets (a proc-macro's dependency on the host side and the same package on the
# target side) has two lines.
features() {
  cargo tree --locked --offline -e normal,build "$@" -f '{p} {f}' --prefix none |
    sed 's/ (\*)$//; s/ (proc-macro)$//' | sort -u
}
tests="$(mktemp)"
trap 'rm -f "$tests"' EXIT
features --workspace --exclude zipp-py -e dev >"$tests" || { echo "build tests: 0 passed, 1 failed"; exit 1; }
passed=0
failed=0
for args in "-p zipp-examples" "-p zipp-py --features pyo3/extension-module" "--workspace --exclude zipp-py"; do
  # Lines of this build whose package (name and version) the test build compiles too, but
  # not with these features. (Packages only this build has, e.g. pyo3, are compiled once.)
  # shellcheck disable=SC2086 # word splitting of $args is intended
  diff="$(features $args | awk 'NR == FNR { seen[$0] = 1; pkg[$1 " " $2] = 1; next }
                                pkg[$1 " " $2] && !seen[$0] { print "  " $0 }' "$tests" -)"
  if [ -z "$diff" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "check-pins: \`cargo build $args\` compiles these with other features than the test" >&2
    echo "check-pins: build; pin the test build's features in workspace-hack/Cargo.toml:" >&2
    echo "$diff" >&2
  fi
done
echo "build tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
