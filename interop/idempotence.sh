#!/usr/bin/env bash
# Idempotent producers of several implementations, with their default settings, through a proxy
# that cuts the connection instead of delivering about 1 in 3 Produce responses (chosen at
# random; the proxy prints its seed in proxy.log, SLUICE_PROXY_SEED replays it): each client
# retries, and every record must be in the log exactly once and in order (checked by franz-go's
# consumer, which verifies exact content and that each partition holds exactly the records
# produced). Needs scripts/install-deps.sh and a built sluice + sluice-faulty-proxy.
#
#   interop/idempotence.sh            # prints one line per client, then "N passed, N failed"
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
PROXY="${PROXY_BIN:-$(dirname "$BIN")/sluice-faulty-proxy}"
COUNT="${IDEMPOTENCE_COUNT:-20000}"
# Each lost response costs a client a reconnect and a retry backoff (up to ~1 s for franz-go), so
# give the clients more than the usual 60 s: a run with 20+ drops took 35 s here.
export INTEROP_TIMEOUT="${INTEROP_TIMEOUT:-180}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-idem.XXXXXX")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

passed=0 failed=0
for client in java franz-go kafka-python; do
  broker_port=$(free_port); proxy_port=$(free_port)
  dir="$WORK/$client"; mkdir -p "$dir"
  "$BIN" server --override "listeners=PLAINTEXT://127.0.0.1:$broker_port" \
    --override "advertised.listeners=PLAINTEXT://127.0.0.1:$proxy_port" \
    --override "log.dirs=$dir/data" --override num.partitions=3 >"$dir/server.log" 2>&1 &
  pids+=($!)
  "$PROXY" "$proxy_port" "127.0.0.1:$broker_port" 3 2>"$dir/proxy.log" &
  pids+=($!)
  wait_port "$broker_port" && wait_port "$proxy_port" || { echo "FAIL  idempotence/$client: server did not start"; failed=$((failed+1)); continue; }
  b="127.0.0.1:$proxy_port" t="idem-$client" n="$COUNT"
  # franz-go packs everything it is handed into 1 MB batches: give it enough records for many
  # Produce requests, so that some responses are lost.
  [[ $client == franz-go ]] && n=$((COUNT * 5))
  if "$ROOT/interop/client.sh" "$client" produce --bootstrap "$b" --topic "$t" --codec none --count "$n" --partitions 3 >"$dir/produce.log" 2>&1 \
     && "$ROOT/interop/client.sh" franz-go consume --bootstrap "$b" --topic "$t" --codec-tag none --count "$n" >"$dir/consume.log" 2>&1; then
    drops=$(grep -c 'dropped produce response' "$dir/proxy.log")
    if [[ "$drops" -gt 0 ]]; then
      echo "PASS  idempotence/$client ($n records, $drops responses lost and retried)"; passed=$((passed+1))
    else
      echo "FAIL  idempotence/$client: the proxy dropped no response, nothing was proven"; failed=$((failed+1))
    fi
  else
    echo "FAIL  idempotence/$client"; tail -n 15 "$dir/produce.log" "$dir/consume.log" | sed 's/^/    /'; failed=$((failed+1))
  fi
  kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; pids=()
done
echo "idempotence: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
