#!/usr/bin/env bash
# Install everything the interop suite (scripts/interop.sh) needs, from the package registries,
# on a machine that has the toolchains (python3, node/npm, go, java 17 + mvn) and nothing else.
# Idempotent: a step whose inputs did not change since its last success is skipped, so a second
# run takes a few seconds.
#
#   kcat                 Debian package (apt-get)
#   interop/python/.venv kafka-python, aiokafka and codecs, pinned in interop/python/requirements.txt
#   interop/js           kafkajs 2.2.4 and codecs, `npm ci` from the committed package-lock.json
#   interop/go/bin       franz-go (franz, franzgroup, franztxn) and sarama clients, modules pinned
#                        by go.mod/go.sum
#   interop/java/target  kafka-clients, kafka-tools, kafka_2.13 (4.1.x) and all runtime deps in
#                        target/lib; the Java test clients in target/interop-client.jar
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
I="$ROOT/interop"
T0=$SECONDS

say() { printf '[install-deps] %s\n' "$*"; }
die() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }
step() { # step NAME FUNCTION
  local t=$SECONDS
  "$2"
  say "$1: done in $((SECONDS - t)) s"
}
# hash of files (inputs of a step), to skip it when nothing changed
stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

for tool in python3 node npm go java mvn; do
  command -v "$tool" >/dev/null || die "$tool not found on PATH (the toolchains are expected to be installed)"
done

kcat_step() {
  if command -v kcat >/dev/null; then say "kcat: present ($(kcat -V 2>&1 | sed -n 's/.*\(librdkafka [0-9.]*\).*/\1/p' | head -1))"; return; fi
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # the package lists may be missing or stale on a fresh machine
  $sudo apt-get install -y -qq kcat >/dev/null 2>&1 || {
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq kcat >/dev/null
  }
  command -v kcat >/dev/null || die "kcat did not install"
}

python_step() {
  local venv="$I/python/.venv" want
  want="$(stamp_of "$I/python/requirements.txt")"
  if [[ -x "$venv/bin/python" && "$(cat "$venv/.interop-stamp" 2>/dev/null)" == "$want" ]]; then
    say "python: venv up to date"; return
  fi
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$I/python/requirements.txt"
  "$venv/bin/python" -c 'import kafka, aiokafka, lz4, zstandard, cramjam, snappy' || die "python imports failed"
  echo "$want" > "$venv/.interop-stamp"
}

js_step() {
  local want
  want="$(stamp_of "$I/js/package.json" "$I/js/package-lock.json")"
  if [[ -d "$I/js/node_modules/kafkajs" && "$(cat "$I/js/node_modules/.interop-stamp" 2>/dev/null)" == "$want" ]]; then
    say "js: node_modules up to date"; return
  fi
  (cd "$I/js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  (cd "$I/js" && node -e "require('kafkajs'); require('kafkajs-snappy'); require('lz4-napi'); require('zstd-codec')") \
    || die "js modules do not load"
  echo "$want" > "$I/js/node_modules/.interop-stamp"
}

go_step() {
  local want
  want="$(cd "$I/go" && stamp_of go.mod go.sum $(find . -name '*.go' | sort))"
  if [[ -x "$I/go/bin/franz" && -x "$I/go/bin/franzgroup" && -x "$I/go/bin/franztxn" && -x "$I/go/bin/sarama" && "$(cat "$I/go/bin/.interop-stamp" 2>/dev/null)" == "$want" ]]; then
    say "go: binaries up to date"; return
  fi
  (
    cd "$I/go"
    go mod download
    # one build at a time: this machine's cores are shared
    GOFLAGS="${GOFLAGS:-} -p=1" go build -o bin/franz ./cmd/franz
    GOFLAGS="${GOFLAGS:-} -p=1" go build -o bin/franzgroup ./cmd/franzgroup
    GOFLAGS="${GOFLAGS:-} -p=1" go build -o bin/franztxn ./cmd/franztxn
    GOFLAGS="${GOFLAGS:-} -p=1" go build -o bin/sarama ./cmd/sarama
  )
  echo "$want" > "$I/go/bin/.interop-stamp"
}

java_step() {
  local want
  want="$(cd "$I/java" && stamp_of pom.xml $(find src -type f | sort))"
  if [[ -f "$I/java/target/interop-client.jar" ]] && ls "$I/java/target/lib/"kafka_2.13-*.jar >/dev/null 2>&1 \
     && [[ "$(cat "$I/java/target/.interop-stamp" 2>/dev/null)" == "$want" ]]; then
    say "java: jars up to date"; return
  fi
  # package = compile the client + copy every runtime dependency into target/lib
  # (bound to the package phase in pom.xml, the same as `mvn dependency:copy-dependencies`)
  (cd "$I/java" && mvn -q -B -Dstyle.color=never package > target-mvn.log 2>&1) \
    || { cat "$I/java/target-mvn.log" >&2; die "mvn package failed"; }
  rm -f "$I/java/target-mvn.log"
  ls "$I/java/target/lib/"kafka-tools-*.jar >/dev/null 2>&1 || die "kafka-tools jar missing from target/lib"
  echo "$want" > "$I/java/target/.interop-stamp"
}

step kcat kcat_step
step python python_step
step js js_step
step go go_step
step java java_step
say "all done in $((SECONDS - T0)) s"
