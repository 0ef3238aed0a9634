#!/usr/bin/env bash
# Runs every test Sluice has: formatting and lints, unit and property tests, integration tests
# that start the real `sluice server` and drive it with librdkafka, and the cross-client interop
# suite (kcat, kafka-python, kafkajs, franz-go, sarama, the Java client and Kafka's CLI tools).
# Installs what the tests need first (idempotent). Set SKIP_INTEROP=1 to run only the Rust tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (unit, property, crash, integration with librdkafka)"
cargo test --workspace 2>&1 | tee target/cargo-test.log
grep -E '^test result:' target/cargo-test.log | awk '{p+=$4; f+=$6} END {printf "rust: %d passed, %d failed\n", p, f}'

if [ "${SKIP_INTEROP:-0}" != 1 ] && [ -x scripts/interop.sh ]; then
  step "install interop dependencies"
  scripts/install-deps.sh
  step "interop suite"
  cargo build --release -p sluice
  SLUICE_BIN="$PWD/target/release/sluice" scripts/interop.sh
fi
