#!/usr/bin/env bash
# Cross-client interop suite: drives a Kafka-protocol broker with independent client
# implementations and with Apache Kafka's own command-line tools. See interop/README.md.
#
#   scripts/interop.sh [BOOTSTRAP]
#
# With BOOTSTRAP (host:port) it tests that broker. Without, it starts the Sluice server itself
# ($SLUICE_BIN, else target/release/sluice, else target/debug/sluice) on a free port with a
# temporary data dir, and stops it on exit.
#
# Environment:
#   INTEROP_ONLY=REGEX   run only cases whose name matches (extended regex), e.g. python,
#                        'admin/', 'java.*zstd', 'cli/'; a consume case pulls in its produce case
#   INTEROP_SKIP=REGEX   skip cases whose name matches
#   INTEROP_COUNT=N      records per produce (default 300)
#   INTEROP_TIMEOUT=S    bound for one client run's own waits (default 60); a case is killed
#                        after S+60 seconds whatever it does
#   INTEROP_MATRIX=reduced|full  reduced (default, ~210 cases): every producer's topic for every
#                        codec is read by franz-go (which checks the batch codec) and by the
#                        producer itself, and every producer/consumer pair once more with a
#                        codec rotating over the pairs; full (~470 cases, ~3x longer): every
#                        consumer reads every producer's topic for every codec
#   INTEROP_BUDGET=S     time budget for the whole run (default 2400 s): cases not started by
#                        then are reported failed ("not run"), so a hung broker cannot make the
#                        run last hours
#   INTEROP_BREAKER=N    after N consecutive failed runs of one client in one role (produce by X,
#                        consume by Y), its remaining cases in that role are reported failed
#                        without running (default 3; 0 = off)
#   INTEROP_KEEP=1       keep the work dir (logs of every case) even when all pass
#   SLUICE_BIN, SLUICE_ARGS  server binary and extra arguments when the script starts Sluice
# Prints one line per case (failures followed by the tail of their output), then exactly one
# line "N passed, N failed"; exits 1 if any case failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
I="$ROOT/interop"
COUNT="${INTEROP_COUNT:-300}"
ONLY="${INTEROP_ONLY:-}"
SKIP="${INTEROP_SKIP:-}"
MATRIX="${INTEROP_MATRIX:-reduced}"
export INTEROP_TIMEOUT="${INTEROP_TIMEOUT:-60}"
CASE_TIMEOUT=$((${INTEROP_TIMEOUT%.*} + 60))
PY="$I/python/.venv/bin/python"
CODECS=(none gzip snappy lz4 zstd)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-interop.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  # the work dir (every case's log) stays when something failed or INTEROP_KEEP=1
  [[ "${KEEP_WORK:-0}" == 1 || "${INTEROP_KEEP:-0}" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() {
  python3 - "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); sys.exit(0)
except OSError:
    sys.exit(1)
EOF
}

# ---------------------------------------------------------------- the broker under test
if [[ $# -ge 1 ]]; then
  BOOTSTRAP="$1"
  host="${BOOTSTRAP%:*}"; port="${BOOTSTRAP##*:}"
  port_open "$host" "$port" || { echo "nothing answers on $BOOTSTRAP"; echo "0 passed, 1 failed"; exit 1; }
  echo "broker under test: $BOOTSTRAP"
else
  BIN="${SLUICE_BIN:-}"
  if [[ -z "$BIN" ]]; then
    for b in "$ROOT/target/release/sluice" "$ROOT/target/debug/sluice"; do
      [[ -x "$b" ]] && { BIN="$b"; break; }
    done
  fi
  if [[ -z "$BIN" || ! -x "$BIN" ]]; then
    echo "no Sluice binary (set SLUICE_BIN or build target/release/sluice); or pass BOOTSTRAP"
    echo "0 passed, 1 failed"; exit 1
  fi
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  mkdir -p "$WORK/data"
  # shellcheck disable=SC2086
  "$BIN" server --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$WORK/data" \
    --override auto.create.topics.enable=true --override num.partitions=4 \
    --override group.initial.rebalance.delay.ms=0 ${SLUICE_ARGS:-} \
    > "$WORK/sluice.log" 2>&1 &
  SERVER_PID=$!
  BOOTSTRAP="127.0.0.1:$PORT"
  deadline=$((SECONDS + 60))
  until port_open 127.0.0.1 "$PORT"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "sluice server exited during start:"; tail -n 30 "$WORK/sluice.log" | sed 's/^/    /'
      KEEP_WORK=1; echo "logs kept in $WORK"; echo "0 passed, 1 failed"; exit 1
    fi
    if (( SECONDS >= deadline )); then
      echo "sluice server did not open port $PORT within 60 s:"; tail -n 30 "$WORK/sluice.log" | sed 's/^/    /'
      KEEP_WORK=1; echo "logs kept in $WORK"; echo "0 passed, 1 failed"; exit 1
    fi
    sleep 0.2
  done
  echo "broker under test: $BIN (pid $SERVER_PID) on $BOOTSTRAP, data $WORK/data"
fi

# ---------------------------------------------------------------- clients
# client_run CLIENT produce|consume|admin ARGS...  (see interop/client.sh)
client_run() { "$I/client.sh" "$@"; }
CLIENT="$I/client.sh"

# what each client needs installed (scripts/install-deps.sh)
installed() {
  case "$1" in
    kcat) command -v kcat >/dev/null ;;
    kafka-python|aiokafka) [[ -x "$PY" ]] ;;
    kafkajs) [[ -d "$I/js/node_modules/kafkajs" ]] ;;
    franz-go) [[ -x "$I/go/bin/franz" ]] ;;
    sarama*) [[ -x "$I/go/bin/sarama" ]] ;;
    java|cli) [[ -f "$I/java/target/interop-client.jar" ]] && ls "$I/java/target/lib/"kafka-tools-*.jar >/dev/null 2>&1 ;;
  esac
}

ADMINS=(kcat kafka-python aiokafka kafkajs franz-go sarama sarama-2.1 sarama-3.6 java)
PRODUCERS=(kcat kafka-python aiokafka kafkajs franz-go sarama sarama-2.1 sarama-3.6 java)
# kafkajs consumes through a consumer group of its own (it has no group-less consumer); it comes
# last so that the reduced matrix's codec rotation for the other pairs stays as it was before it
CONSUMERS=(kcat kafka-python aiokafka franz-go sarama sarama-2.1 sarama-3.6 java kafkajs)

# codecs a client supports (every client here supports all five)
codecs_of() { echo "${CODECS[@]}"; }
# consumer flags for what a producer cannot write
producer_flags() {
  case "$1" in
    kcat) echo "--no-headers --no-timestamps" ;;  # kcat -P: no per-record headers or timestamps
    *) echo "" ;;
  esac
}
supports() { local c; for c in $(codecs_of "$1"); do [[ "$c" == "$2" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- case runner
PASSED=0 FAILED=0
declare -A STATUS STREAK
BUDGET="${INTEROP_BUDGET:-2400}"
BREAKER="${INTEROP_BREAKER:-3}"
T_START=$SECONDS
RUN_ID="$(date +%H%M%S)$$"

selected() {
  local name="$1"
  [[ -n "$ONLY" ]] && ! grep -qE -- "$ONLY" <<<"$name" && return 1
  [[ -n "$SKIP" ]] && grep -qE -- "$SKIP" <<<"$name" && return 1
  return 0
}

# run_case NAME COMMAND...: run, print PASS/FAIL with the output tail on failure
run_case() {
  local name="$1"; shift
  local log="$WORK/cases/${name//\//_}.log"
  mkdir -p "$WORK/cases"
  local t0=$SECONDS start; start="$(date +%s.%N)"
  timeout -k 5 "$CASE_TIMEOUT" "$@" > "$log" 2>&1 < /dev/null
  local rc=$?
  local secs; secs="$(python3 -c "import sys,time; print('%.1f' % (time.time()-float(sys.argv[1])))" "$start")"
  : "$t0"
  if [[ $rc -eq 0 ]]; then
    PASSED=$((PASSED + 1)); STATUS[$name]=pass
    printf 'PASS  %-44s %6ss\n' "$name" "$secs"
  else
    FAILED=$((FAILED + 1)); STATUS[$name]=fail; KEEP_WORK=1
    [[ $rc -eq 124 || $rc -eq 137 ]] && echo "(killed after ${CASE_TIMEOUT}s)" >> "$log"
    printf 'FAIL  %-44s %6ss  (exit %d)\n' "$name" "$secs" "$rc"
    tail -n "${INTEROP_TAIL:-15}" "$log" | cut -c1-400 | sed 's/^/      | /'
  fi
}

# guarded_case NAME KEY COMMAND...: run_case unless the time budget is spent or client role KEY
# failed BREAKER times in a row
guarded_case() {
  local name="$1" key="$2"; shift 2
  if (( SECONDS - T_START > BUDGET )); then
    fail_case "$name" "not run: time budget of ${BUDGET}s used up"; return
  fi
  if (( BREAKER > 0 && ${STREAK[$key]:-0} >= BREAKER )); then
    fail_case "$name" "not run: $key failed $BREAKER times in a row"; return
  fi
  run_case "$name" "$@"
  if [[ "${STATUS[$name]}" == pass ]]; then STREAK[$key]=0; else STREAK[$key]=$((${STREAK[$key]:-0} + 1)); fi
}

# a case that cannot run counts as failed
fail_case() {
  local name="$1" why="$2"
  FAILED=$((FAILED + 1)); STATUS[$name]=fail
  printf 'FAIL  %-44s %6s   (%s)\n' "$name" "-" "$why"
}

check_installed() { # $1 case name, rest: clients
  local name="$1"; shift
  local c
  for c in "$@"; do
    installed "$c" || { fail_case "$name" "$c not installed: run scripts/install-deps.sh"; return 1; }
  done
}

topic_for() { echo "interop-$RUN_ID-$1-$2"; }   # producer codec

echo "records per produce: $COUNT; matrix: $MATRIX; work dir: $WORK"

# ---------------------------------------------------------------- admin, per client
for c in "${ADMINS[@]}"; do
  name="admin/$c"
  selected "$name" || continue
  check_installed "$name" "$c" || continue
  guarded_case "$name" "admin by $c" "$CLIENT" "$c" admin --bootstrap "$BOOTSTRAP" --topic "interop-$RUN_ID-admin-$c"
done

# ---------------------------------------------------------------- produce, then consume by all
consumers_for() { # producer codec -> consumer list for this matrix
  local p="$1" codec="$2" q
  if [[ "$MATRIX" == full ]]; then
    for q in "${CONSUMERS[@]}"; do supports "$q" "$codec" && echo "$q"; done
    return
  fi
  # reduced: franz-go (checks the batch codec) always, the producer itself, and the pair
  # (p, q) for one codec per q, rotating through the codecs
  local ci pi qi
  for ci in "${!CODECS[@]}"; do [[ "${CODECS[$ci]}" == "$codec" ]] && break; done
  for pi in "${!PRODUCERS[@]}"; do [[ "${PRODUCERS[$pi]}" == "$p" ]] && break; done
  for qi in "${!CONSUMERS[@]}"; do
    q="${CONSUMERS[$qi]}"
    supports "$q" "$codec" || continue
    if [[ "$q" == franz-go || "$q" == "$p" ]] || (( (pi + qi) % ${#CODECS[@]} == ci )); then echo "$q"; fi
  done
}

for p in "${PRODUCERS[@]}"; do
  for codec in $(codecs_of "$p"); do
    pname="produce/$p/$codec"
    mapfile -t qs < <(consumers_for "$p" "$codec")
    want=()
    for q in "${qs[@]}"; do selected "consume/$p->$q/$codec" && want+=("$q"); done
    selected "$pname" || [[ ${#want[@]} -gt 0 ]] || continue
    topic="$(topic_for "$p" "$codec")"
    if check_installed "$pname" "$p"; then
      guarded_case "$pname" "produce by $p" "$CLIENT" "$p" produce --bootstrap "$BOOTSTRAP" --topic "$topic" \
        --codec "$codec" --count "$COUNT" --partitions 3
    fi
    for q in "${want[@]}"; do
      cname="consume/$p->$q/$codec"
      if [[ "${STATUS[$pname]}" != pass ]]; then fail_case "$cname" "not run: $pname failed"; continue; fi
      check_installed "$cname" "$q" || continue
      # shellcheck disable=SC2046
      guarded_case "$cname" "consume by $q" "$CLIENT" "$q" consume --bootstrap "$BOOTSTRAP" --topic "$topic" \
        --count "$COUNT" --codec-tag "$codec" $(producer_flags "$p")
    done
  done
done

# ---------------------------------------------------------------- Kafka's command-line tools
cli_topic="interop-$RUN_ID-cli-topics"
for check in topics-create topics-list topics-describe topics-alter topics-delete \
             console configs-topic configs-broker perf-test get-offsets \
             features-describe quorum-describe; do
  name="cli/$check"
  selected "$name" || continue
  check_installed "$name" cli || continue
  t="$cli_topic"; [[ "$check" == topics-* ]] || t="interop-$RUN_ID-cli-$check"
  guarded_case "$name" "cli/$check" "$I/cli/kafka-cli.sh" "$check" "$BOOTSTRAP" "$t"
done

# ---------------------------------------------------------------- summary
if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "FAIL  the sluice server died during the run; tail of its log:"
  tail -n 20 "$WORK/sluice.log" | sed 's/^/      | /'
  FAILED=$((FAILED + 1)); KEEP_WORK=1
fi
[[ "${KEEP_WORK:-0}" == 1 || "${INTEROP_KEEP:-0}" == 1 ]] && echo "logs of every case kept in $WORK/cases"
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
