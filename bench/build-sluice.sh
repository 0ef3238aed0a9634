#!/usr/bin/env bash
# Build the sluice binary for the benchmark, from a clean export of a commit (default HEAD), so
# the figures belong to that commit and not to whatever is uncommitted in the work tree.
#
#   bench/build-sluice.sh [REV]        -> prints the path of the release binary
#
# BENCH_TARGET (default /work/target-bench) holds the export ($BENCH_TARGET/src) and the cargo
# target dir, apart from the repository's own target/ so no build lock is shared.
# SLUICE_FROM_WORKTREE=1 builds the work tree as it is instead (uncommitted changes included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_TARGET="${BENCH_TARGET:-/work/target-bench}"
REV="${1:-HEAD}"
say() { printf '[build-sluice] %s\n' "$*" >&2; }

if [[ "${SLUICE_FROM_WORKTREE:-0}" == 1 ]]; then
  SRC="$ROOT"
else
  SHA="$(git -C "$ROOT" rev-parse "$REV^{commit}")"
  SRC="$BENCH_TARGET/src"
  # what the build depends on: the crates tree, the manifests, the lock file (committed or not)
  KEY="$( { git -C "$ROOT" rev-parse "$SHA:crates" "$SHA:Cargo.toml"
            git -C "$ROOT" rev-parse -q --verify "$SHA:Cargo.lock" || cat "$ROOT/Cargo.lock" 2>/dev/null
          } | sha256sum | cut -d' ' -f1)"
  if [[ "$(cat "$SRC/.bench-key" 2>/dev/null)" != "$KEY" ]]; then
    say "exporting $(git -C "$ROOT" rev-parse --short "$SHA") to $SRC"
    rm -rf "$SRC"; mkdir -p "$SRC"
    # -m: files get the current time, so cargo always sees a changed source as newer than its build
    git -C "$ROOT" archive "$SHA" Cargo.toml crates $(git -C "$ROOT" ls-tree --name-only "$SHA" Cargo.lock) \
      | tar -x -m -C "$SRC"
    # a lock file that is not committed yet: reuse the work tree's, for the same dependency versions
    if [[ ! -f "$SRC/Cargo.lock" && -f "$ROOT/Cargo.lock" ]]; then cp "$ROOT/Cargo.lock" "$SRC/"; fi
    echo "$KEY" > "$SRC/.bench-key"
  fi
  echo "$SHA" > "$SRC/.bench-rev"
fi
say "cargo build --release -p sluice in $SRC (target $BENCH_TARGET)"
(cd "$SRC" && CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release -q -p sluice >&2)
# the fixed-rate latency generator (crates/sluice/examples/latency_bench.rs), used by run.sh
(cd "$SRC" && CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release -q -p sluice --example latency_bench >&2)
echo "$BENCH_TARGET/release/sluice"
