#!/usr/bin/env bash
# Builds librdkafka's own integration-test runner (tests/test-runner) from the librdkafka source
# tree that the rdkafka-sys crate carries, into target/librdkafka-tests/. Idempotent: does nothing
# when the runner is already built from the current flags and patches. Prints the runner's path
# on the last line of stdout; progress goes to stderr.
#
# Two stages, each cached by a stamp file:
#   1. copy the source, ./configure, make the C and C++ libraries (redone when LIB_STAMP changes);
#   2. bring tests/ back to the pristine sources, apply patches/*.patch, make tests/test-runner
#      (redone when a patch changes; make recompiles only the files that changed).
#
# Env: RDK_BUILD_DIR (default <repo>/target/librdkafka-tests), RDK_JOBS (default 2).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE/../.."
REPO="$PWD"

RDKSYS_VERSION="4.10.0+2.12.1"          # librdkafka 2.12.1
BUILD_DIR="${RDK_BUILD_DIR:-$REPO/target/librdkafka-tests}"
SRC="$BUILD_DIR/librdkafka-2.12.1"
RUNNER="$SRC/tests/test-runner"
JOBS="${RDK_JOBS:-2}"
# Bump when the configure flags or the packages below change.
LIB_STAMP="v3 ssl; no gssapi/curl; zlib zstd lz4-ext snappy rapidjson"
TESTS_STAMP="$LIB_STAMP; patches $(cat "$HERE"/patches/*.patch 2>/dev/null | cksum | cut -d' ' -f1)"

log() { printf 'librdkafka-build: %s\n' "$*" >&2; }

if [ -x "$RUNNER" ] && [ "$(cat "$SRC/.sluice-tests-ok" 2>/dev/null)" = "$TESTS_STAMP" ]; then
  echo "$RUNNER"
  exit 0
fi

find_src() {
  local d
  for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$RDKSYS_VERSION"/librdkafka; do
    if [ -f "$d/tests/test.c" ]; then echo "$d"; return 0; fi
  done
  return 1
}

ORIG="$(find_src || true)"
if [ -z "$ORIG" ]; then
  log "rdkafka-sys $RDKSYS_VERSION not in the cargo registry; running cargo fetch"
  cargo fetch >&2
  ORIG="$(find_src)" || { log "rdkafka-sys $RDKSYS_VERSION still missing after cargo fetch"; exit 1; }
fi

start=$(date +%s)
mkdir -p "$BUILD_DIR"

if [ "$(cat "$SRC/.sluice-lib-ok" 2>/dev/null)" != "$LIB_STAMP" ]; then
  # Build tools, compression libraries (zstd; zlib; lz4 external; snappy is built in),
  # rapidjson (0110 reads the statistics JSON with it, and is skipped without it) and OpenSSL
  # (librdkafka's SASL OAUTHBEARER needs it; 0022_consume_batch_local is skipped without it).
  need_pkgs=()
  command -v cc >/dev/null || need_pkgs+=(gcc)
  command -v c++ >/dev/null || need_pkgs+=(g++)
  command -v make >/dev/null || need_pkgs+=(make)
  command -v patch >/dev/null || need_pkgs+=(patch)
  command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
  command -v python3 >/dev/null || need_pkgs+=(python3)
  for p in zlib1g-dev libzstd-dev liblz4-dev rapidjson-dev libssl-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
  done
  if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null; then
      log "installing ${need_pkgs[*]}"
      SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
      { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
          "${need_pkgs[@]}"; } >"$BUILD_DIR/apt.log" 2>&1 || { tail -20 "$BUILD_DIR/apt.log" >&2; exit 1; }
    else
      log "missing ${need_pkgs[*]} and no apt-get; trying anyway"
    fi
  fi

  log "copying $ORIG -> $SRC"
  rm -rf "$SRC"
  cp -a "$ORIG" "$SRC"
  chmod -R u+w "$SRC"
  cd "$SRC"
  log "configure"
  # TLS and the SASL mechanisms built on it; no Kerberos (GSSAPI) or HTTP (OIDC); every
  # compression codec on.
  ./configure --no-download --enable-ssl --disable-gssapi --disable-curl \
    --enable-zlib --enable-zstd --enable-lz4-ext >"$BUILD_DIR/configure.log" 2>&1 \
    || { tail -40 "$BUILD_DIR/configure.log" >&2; exit 1; }
  for f in WITH_ZLIB WITH_ZSTD WITH_SNAPPY WITH_LZ4_EXT WITH_RAPIDJSON WITH_SSL WITH_SASL_OAUTHBEARER; do
    grep -q "define $f 1" config.h || { log "configure did not enable $f (see $BUILD_DIR/configure.log)"; exit 1; }
  done
  log "make libs (-j$JOBS)"
  make -j"$JOBS" libs >"$BUILD_DIR/make-libs.log" 2>&1 || { tail -40 "$BUILD_DIR/make-libs.log" >&2; exit 1; }
  echo "$LIB_STAMP" >"$SRC/.sluice-lib-ok"
fi

cd "$SRC"
rm -f "$SRC/.sluice-tests-ok"
# Pristine test sources: copy back (with a new mtime, so make rebuilds them) every file that a
# patch changed before, then apply the current patches.
for f in "$ORIG"/tests/*.c "$ORIG"/tests/*.cpp "$ORIG"/tests/*.h; do
  cmp -s "$f" "tests/$(basename "$f")" || cp "$f" "tests/$(basename "$f")"
done
for p in "$HERE"/patches/*.patch; do
  [ -f "$p" ] || continue
  log "patch $(basename "$p")"
  patch -s -p1 --no-backup-if-mismatch <"$p" >&2
done
log "make test-runner (-j$JOBS)"
make -j"$JOBS" -C tests build >"$BUILD_DIR/make-tests.log" 2>&1 || { tail -40 "$BUILD_DIR/make-tests.log" >&2; exit 1; }
[ -x "$RUNNER" ] || { log "no $RUNNER after make"; exit 1; }
echo "$TESTS_STAMP" >"$SRC/.sluice-tests-ok"
log "built in $(( $(date +%s) - start ))s"
echo "$RUNNER"
