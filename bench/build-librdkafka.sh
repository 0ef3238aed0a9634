#!/usr/bin/env bash
# Build librdkafka's rdkafka_performance (the benchmark's load generator) from the librdkafka
# source tree that the crates.io package rdkafka-sys ships, in a private copy, so it does not
# interfere with any other build of the same tree.
#
#   bench/build-librdkafka.sh            -> prints the path of rdkafka_performance
#
# Idempotent: a finished build (stamp file) is reused. BENCH_TARGET (default /work/target-bench)
# chooses where the copy lives: $BENCH_TARGET/librdkafka.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_TARGET="${BENCH_TARGET:-/work/target-bench}"
RDKV="4.10.0+2.12.1"          # rdkafka-sys version = librdkafka 2.12.1
DEST="$BENCH_TARGET/librdkafka"
BIN="$DEST/examples/rdkafka_performance"
STAMP="$DEST/.bench-build-stamp"

say() { printf '[build-librdkafka] %s\n' "$*" >&2; }

if [[ -x "$BIN" && "$(cat "$STAMP" 2>/dev/null)" == "$RDKV" ]]; then
  echo "$BIN"; exit 0
fi

find_src() {
  ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$RDKV"/librdkafka 2>/dev/null | head -1
}
SRC="$(find_src)"
if [[ -z "$SRC" ]]; then
  say "rdkafka-sys $RDKV not in the cargo registry; running cargo fetch"
  (cd "$ROOT" && cargo fetch -q)
  SRC="$(find_src)"
fi
[[ -n "$SRC" && -f "$SRC/examples/rdkafka_performance.c" ]] || { say "librdkafka source not found"; exit 1; }

say "copying $SRC -> $DEST"
rm -rf "$DEST"; mkdir -p "$DEST"
cp -a "$SRC/." "$DEST/"
# a configure result copied from elsewhere must not leak into this build
rm -f "$DEST/Makefile.config" "$DEST/config.h" "$DEST/config.log" "$DEST/config.cache"
cd "$DEST"
say "configure (no ssl/sasl/gssapi/curl; lz4, zstd, zlib kept)"
./configure --disable-ssl --disable-gssapi --disable-sasl --disable-curl \
  --enable-zlib --enable-zstd --enable-lz4-ext > "$DEST/bench-configure.log" 2>&1 \
  || { tail -30 "$DEST/bench-configure.log" >&2; exit 1; }
say "make libs + rdkafka_performance (log: $DEST/bench-make.log)"
# -j1: the machine's two cores are shared
make -j"${BENCH_MAKE_JOBS:-1}" libs > "$DEST/bench-make.log" 2>&1 || { tail -30 "$DEST/bench-make.log" >&2; exit 1; }
make -C examples rdkafka_performance >> "$DEST/bench-make.log" 2>&1 || { tail -30 "$DEST/bench-make.log" >&2; exit 1; }
[[ -x "$BIN" ]] || { say "rdkafka_performance was not built"; exit 1; }
"$BIN" -h 2>&1 | grep -q "librdkafka version" || true
echo "$RDKV" > "$STAMP"
echo "$BIN"
