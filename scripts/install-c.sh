#!/usr/bin/env bash
# Builds libzipp (release) and installs it for C and C++ projects:
#   PREFIX/lib/libzipp.so.0.1.0 (+ libzipp.so.0, libzipp.so links), PREFIX/lib/libzipp.a,
#   PREFIX/include/zipp.h, PREFIX/include/zipp.hpp, PREFIX/lib/pkgconfig/zipp.pc
#
#   bash scripts/install-c.sh "$HOME/.local"
#   bash scripts/install-c.sh --no-build PREFIX   # installs the libzipp target/release holds
#                                                 # (scripts/test.sh builds it with the wheel)
#   PKG_CONFIG_PATH="$HOME/.local/lib/pkgconfig" c++ -std=c++17 app.cpp $(pkg-config --cflags --libs zipp)
set -euo pipefail
cd "$(dirname "$0")/.."
build_it=1
if [ "${1:-}" = --no-build ]; then
  build_it=0
  shift
fi
prefix="${1:?usage: install-c.sh [--no-build] PREFIX}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"

[ "$build_it" = 0 ] || cargo build --locked --release -p zipp-ffi
build="${CARGO_TARGET_DIR:-target}/release"
for f in libzipp.so libzipp.a; do
  [ -f "$build/$f" ] || { echo "install-c.sh: $build/$f is missing (build it: omit --no-build)" >&2; exit 1; }
done
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
major="${version%%.*}"

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$build/libzipp.so" "$prefix/lib/libzipp.so.$version"
ln -sf "libzipp.so.$version" "$prefix/lib/libzipp.so.$major"
ln -sf "libzipp.so.$major" "$prefix/lib/libzipp.so"
install -m 0644 "$build/libzipp.a" "$prefix/lib/libzipp.a"
install -m 0644 include/zipp.h include/zipp.hpp "$prefix/include/"

# The static library needs what Rust's std links on Linux; the rpath lets programs built
# against this prefix find the shared library without LD_LIBRARY_PATH.
cat >"$prefix/lib/pkgconfig/zipp.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: zipp
Description: Zero-shot image personalization from personas (C ABI)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lzipp
Libs.private: -lpthread -ldl -lm -lgcc_s
PC
echo "installed libzipp $version into $prefix" >&2
