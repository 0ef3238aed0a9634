#!/usr/bin/env bash
# Runs librdkafka's own integration tests (quick mode, one at a time) against Sluice.
#
#   compat/librdkafka/run.sh [BOOTSTRAP [NOAUTOCREATE_BOOTSTRAP]]
#
# Tests come from tests.allow beside this script (or $RDK_TESTS). A line there is
#   NNNN [scenario=noautocreate] [full] [version=X.Y.Z] [nolocal] [skipok=NAME[,NAME...]]
#        [initialdelay] [groupprotocol=classic|consumer]
# `scenario=noautocreate` runs the test against a server with auto.create.topics.enable=false
# (librdkafka's "noautocreate" scenario); `full` runs it without -Q (for tests that skip
# themselves in quick mode); `version=` overrides TEST_KAFKA_VERSION for that test (the runner
# turns some sub-tests on or off by broker version); `nolocal` runs the runner with -L, which
# leaves out the test's local sub-tests (TEST_F_LOCAL: those that run against librdkafka's
# in-process mock cluster and never contact the broker), and they do not count; `skipok=` names
# sub-tests (NNNN_name as in the runner's summary) whose SKIPPED does not fail the test (for
# sub-tests of another scenario, which the runner skips; each use is explained in FINDINGS.md).
# `initialdelay` runs the test against a server started with Kafka's default
# group.initial.rebalance.delay.ms (3000) instead of 0 (for tests whose members must land in a
# group's first generation together; see FINDINGS.md, 0089); `groupprotocol=` sets the
# runner's TEST_CONSUMER_GROUP_PROTOCOL (its consumers' group.protocol; default classic).
# The same test may be listed once per scenario; a non-default scenario's log is NNNN.SCENARIO.log,
# and a test listed with a group protocol other than classic logs to NNNN.PROTOCOL.log.
#
# Without BOOTSTRAP a Sluice server is started here (binary from $SLUICE_BIN, else
# target/release/sluice, else target/debug/sluice) on a free port with a temporary data dir,
# auto.create.topics.enable=true, num.partitions=4 and group.initial.rebalance.delay.ms=0 (as
# scripts/kafka-ref.sh; it only speeds up each group's first join), and killed on exit; a second
# one with auto.create.topics.enable=false is started when a noautocreate test is run, and one
# with Kafka's default initial delay when an `initialdelay` test is run. With BOOTSTRAP,
# noautocreate tests use NOAUTOCREATE_BOOTSTRAP (or $RDK_NOAUTOCREATE_BOOTSTRAP) and
# `initialdelay` tests $RDK_INITIALDELAY_BOOTSTRAP, and fail without one.
#
# Env:
#   RDK_TESTS        tests to run, space separated, options as in tests.allow joined by ':'
#                    (e.g. "0012 0107:scenario=noautocreate"); default: the lines of $RDK_LIST
#   RDK_LIST         file of tests (default tests.allow; tests.required is issue 3's full list)
#   RDK_TEST_TIMEOUT seconds before one test is killed (default 300)
#   RDK_BUDGET       seconds for the whole run; tests not started by then fail (default 1200)
#   RDK_LOG_DIR      where each test's output goes (default target/librdkafka-tests/logs)
#   TEST_KAFKA_VERSION  broker version the runner assumes (default 4.1.0)
#   TEST_DEBUG       librdkafka debug contexts for every client (e.g. protocol,broker)
#   SLUICE_LOG       passed on to the servers this script starts
# Prints one line per test and ends with "librdkafka: N passed, N failed"; exits 1 on failure.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

RUNNER="$("$HERE/build.sh" | tail -1)"
TESTS_DIR="$(dirname "$RUNNER")"
RDK_ROOT="$(dirname "$TESTS_DIR")"
LOG_DIR="${RDK_LOG_DIR:-$REPO/target/librdkafka-tests/logs}"
TIMEOUT="${RDK_TEST_TIMEOUT:-300}"
BUDGET="${RDK_BUDGET:-1200}"
mkdir -p "$LOG_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-rdk.XXXXXX")"
SERVER_PIDS=()

cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BIN=""
find_bin() {
  BIN="${SLUICE_BIN:-}"
  if [ -z "$BIN" ]; then
    for b in target/release/sluice target/debug/sluice; do
      if [ -x "$b" ]; then BIN="$REPO/$b"; break; fi
    done
  fi
  [ -n "$BIN" ] && [ -x "$BIN" ] || {
    echo "librdkafka: no sluice binary (set SLUICE_BIN or cargo build -p sluice)" >&2; exit 1; }
}

# start_sluice NAME AUTOCREATE INITIAL_DELAY_MS -> sets STARTED to host:port once it accepts
# connections.
STARTED=""; STARTED_PID=""
start_sluice() {
  local name="$1" autocreate="$2" delay_ms="$3" port pid deadline
  [ -n "$BIN" ] || find_bin
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  mkdir -p "$WORK/$name"
  "$BIN" server \
    --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$WORK/$name" \
    --override "auto.create.topics.enable=$autocreate" \
    --override num.partitions=4 \
    --override "group.initial.rebalance.delay.ms=$delay_ms" \
    >"$LOG_DIR/sluice-$name.log" 2>&1 &
  pid=$!
  disown "$pid"   # no "Killed" job notice if it dies; still reaped, still killed on exit
  SERVER_PIDS+=("$pid")
  deadline=$(( $(date +%s) + 30 ))
  until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "librdkafka: sluice exited at start:" >&2; tail -20 "$LOG_DIR/sluice-$name.log" >&2; exit 1
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { echo "librdkafka: sluice did not listen on port $port" >&2; exit 1; }
    sleep 0.1
  done
  STARTED="127.0.0.1:$port"; STARTED_PID="$pid"
  echo "librdkafka: sluice ($name, auto.create.topics.enable=$autocreate," \
    "group.initial.rebalance.delay.ms=$delay_ms) on $STARTED, log $LOG_DIR/sluice-$name.log"
}

declare -A BOOTSTRAP=()
if [ $# -ge 1 ]; then BOOTSTRAP[default]="$1"; fi
if [ $# -ge 2 ]; then BOOTSTRAP[noautocreate]="$2"
elif [ -n "${RDK_NOAUTOCREATE_BOOTSTRAP:-}" ]; then BOOTSTRAP[noautocreate]="$RDK_NOAUTOCREATE_BOOTSTRAP"; fi
if [ -n "${RDK_INITIALDELAY_BOOTSTRAP:-}" ]; then BOOTSTRAP[initialdelay]="$RDK_INITIALDELAY_BOOTSTRAP"; fi
EXTERNAL=$(( $# >= 1 ))

# bootstrap_for SERVER -> sets BS (starting that server if needed and allowed). SERVER is the
# scenario, or `initialdelay` (default scenario, Kafka's default initial rebalance delay).
declare -A SERVER_OF=()
bootstrap_for() {
  local sc="$1" pid
  if [ -z "${BOOTSTRAP[$sc]:-}" ]; then
    if [ "$EXTERNAL" = 1 ]; then BS=""; WHY="no broker for scenario $sc"; return; fi
    case "$sc" in
      default) start_sluice default true 0 ;;
      noautocreate) start_sluice noautocreate false 0 ;;
      initialdelay) start_sluice initialdelay true 3000 ;;
      *) BS=""; WHY="unknown scenario $sc"; return ;;
    esac
    BOOTSTRAP[$sc]="$STARTED"; SERVER_OF[$sc]="$STARTED_PID"
  fi
  pid="${SERVER_OF[$sc]:-}"
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    # The server this scenario runs on has died: say so once, fail the rest without waiting.
    if [ "$pid" != dead ]; then
      echo "librdkafka: the $sc sluice server exited; last log lines:"
      tail -20 "$LOG_DIR/sluice-$sc.log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /'
      SERVER_OF[$sc]=dead
    fi
    BS=""; WHY="sluice server ($sc) not running"; return
  fi
  BS="${BOOTSTRAP[$sc]}"
}

if [ -n "${RDK_TESTS:-}" ]; then
  read -r -a SPECS <<<"$RDK_TESTS"
else
  mapfile -t SPECS < <(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
    -e 's/[[:space:]]\+/:/g' "${RDK_LIST:-$HERE/tests.allow}" | grep -v '^$')
fi

export TEST_KAFKA_VERSION="${TEST_KAFKA_VERSION:-4.1.0}"
export LD_LIBRARY_PATH="$RDK_ROOT/src:$RDK_ROOT/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RDKAFKA_GITVER="v2.12.1"

passed=0; failed=0; failed_list=()
total_start=$(date +%s)
for spec in "${SPECS[@]}"; do
  IFS=: read -r -a parts <<<"$spec"
  t="${parts[0]}"; scenario=default; quick=-Q; version="$TEST_KAFKA_VERSION"; local_flag=""
  skipok=""; server=""; protocol=classic
  for opt in "${parts[@]:1}"; do
    case "$opt" in
      scenario=*) scenario="${opt#scenario=}" ;;
      full) quick="" ;;
      version=*) version="${opt#version=}" ;;
      nolocal) local_flag=-L ;;
      skipok=*) skipok="${opt#skipok=}" ;;
      initialdelay) server=initialdelay ;;
      groupprotocol=*) protocol="${opt#groupprotocol=}" ;;
      *) echo "librdkafka: unknown option '$opt' for test $t" >&2; exit 2 ;;
    esac
  done
  log="$LOG_DIR/$t.log"
  [ "$scenario" = default ] || log="$LOG_DIR/$t.$scenario.log"
  [ "$protocol" = classic ] || log="${log%.log}.$protocol.log"
  if [ -n "$server" ] && [ "$scenario" != default ]; then
    echo "librdkafka: test $t: initialdelay only with the default scenario" >&2; exit 2
  fi
  bootstrap_for "${server:-$scenario}"
  if [ -z "$BS" ]; then
    failed=$((failed + 1)); failed_list+=("$t"); printf 'FAIL %s (%s)\n' "$t" "$WHY"; continue
  fi
  if [ $(( $(date +%s) - total_start )) -ge "$BUDGET" ]; then
    failed=$((failed + 1)); failed_list+=("$t")
    printf 'FAIL %s (not run: the run used up its %ss budget)\n' "$t" "$BUDGET"; continue
  fi
  conf="$WORK/test-$scenario.conf"
  printf 'bootstrap.servers=%s\n' "$BS" >"$conf"
  start=$(date +%s.%N)
  set +e
  # The outer subshell keeps bash's "Killed"/"Aborted" job notices out of our output.
  ( (cd "$TESTS_DIR" && exec env TESTS="$t" TEST_SCENARIO="$scenario" TEST_KAFKA_VERSION="$version" \
      RDKAFKA_TEST_CONF="$conf" TEST_CONSUMER_GROUP_PROTOCOL="$protocol" \
      timeout -k 10 "$TIMEOUT" ./test-runner -p1 $quick $local_flag -E) >"$log" 2>&1; exit $? ) 2>/dev/null
  rc=$?
  set -e
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
  rm -f "$TESTS_DIR"/stats_*.json
  # The runner's summary table, colours stripped: "| 0012_produce_consume | PASSED | 1.2s |".
  # Not counted: local sub-tests left out by `nolocal` (skipped "due to negative test flags")
  # and SKIPPED sub-tests named by `skipok`.
  states="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk -F'|' -v t="$t" -v skipok=",$skipok," \
    -v nolocal="$local_flag" '
    $2 ~ "^ *"t"_" {
      name = $2; gsub(/ /, "", name); state = $3; gsub(/ /, "", state)
      if (state == "SKIPPED" && nolocal != "" && $5 ~ /negative test flags/) next
      if (state == "SKIPPED" && index(skipok, "," name ",")) next
      print state
    }' | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')"
  reason="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -m1 -A1 '^### Test ' | tail -1 | cut -c1-160 || true)"
  why=""
  if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && awk -v s="$secs" -v t="$TIMEOUT" 'BEGIN{exit !(s>=t)}'; }; then
    why="killed after ${TIMEOUT}s"
  elif [ "$rc" -ne 0 ]; then why="exit $rc; ${states:-no summary}; $reason"
  elif ! grep -q PASSED <<<"$states" || grep -qE 'SKIPPED|FAILED|DNS' <<<"$states"; then
    # A test the runner skipped (or did not find) has not passed.
    rc=1; why="${states:-no summary}"
  fi
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); printf 'PASS %s %6ss\n' "$t" "$secs"
  else
    failed=$((failed + 1)); failed_list+=("$t")
    printf 'FAIL %s %6ss (%s) log: %s\n' "$t" "$secs" "$why" "${log#"$REPO"/}"
  fi
done
echo "librdkafka: ran ${#SPECS[@]} tests in $(( $(date +%s) - total_start ))s${failed_list:+; failed: ${failed_list[*]}}"
echo "librdkafka: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
