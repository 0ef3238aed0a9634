#!/usr/bin/env bash
# Exactly-once transactions across client implementations, output checked (interop/README.md,
# "Transactions"). Every client runs the same scenario (txnspec.py) with its own transactional
# API against one broker:
#   produce           a transactional producer commits 10 records over 2 partitions, aborts 5,
#                     commits 10
#   read-committed    a read_committed consumer reads exactly the 20 committed ones, in order
#                     per partition
#   read-uncommitted  a read_uncommitted consumer reads all 25
#   ctp               consume-transform-produce in a consumer group with the group's offsets
#                     sent to the transaction: round 1 committed, round 2 aborted; committed
#                     offsets = round 1's end, the output holds round 1 only
#   fencing           a second producer with the same transactional.id fences the first (its
#                     commit fails with the client's fenced error)
# Clients: kafka-python (txn/kafka_python_txn.py), aiokafka (txn/aiokafka_txn.py), kafkajs
# (txn/kafkajs_txn.js), franz-go (go/bin/franztxn), Java (sluice.interop.TxnClient), and the
# Java client's ctp step once more with group.protocol=consumer (KIP-848; java-kip848).
# Then Kafka's kafka-transactions tool (org.apache.kafka.tools.TransactionsCommand) lists and
# describes transactions, one of them held open by txn/hold_txn.py, and txn/lso_check.py checks
# the last stable offset stays below that open transaction until it is aborted.
#
#   interop/txn/txn.sh [BOOTSTRAP]
#
# Without BOOTSTRAP it starts $SLUICE_BIN (else target/release/sluice) on a free port with a
# temporary data dir and stops it on exit. TXN_ONLY=REGEX runs only the matching clients
# (kafka-python aiokafka kafkajs franz-go java java-kip848 tools). Prints one PASS/FAIL line per
# case and last "N passed, N failed"; exits 1 if any failed. Needs scripts/install-deps.sh.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
I="$HERE/.."
ROOT="$I/.."
PY="$I/python/.venv/bin/python"
LIB="$I/java/target/lib"
JAR="$I/java/target/interop-client.jar"
TIMEOUT="${INTEROP_TIMEOUT:-60}"
export INTEROP_TIMEOUT="$TIMEOUT"
ONLY="${TXN_ONLY:-}"
RUN="txn-$$-$RANDOM"
STEPS=(produce read-committed read-uncommitted ctp fencing)
work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-txn.XXXXXX")"
server_pid="" hold_pid="" keep=0
PASSED=0 FAILED=0

cleanup() {
  [[ -n "$hold_pid" ]] && { kill -KILL "$hold_pid"; wait "$hold_pid"; } 2>/dev/null
  if [[ -n "$server_pid" ]]; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    { kill -KILL "$server_pid"; wait "$server_pid"; } 2>/dev/null
  fi
  if (( keep )); then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASSED=$((PASSED + 1)); printf 'PASS  %-32s %s\n' "$1" "$2"; }
fail() { FAILED=$((FAILED + 1)); keep=1; printf 'FAIL  %-32s %s\n' "$1" "$2"; }
port_open() { (echo >"/dev/tcp/$1/$2") 2>/dev/null; }

if [[ $# -ge 1 ]]; then
  B="$1"
else
  BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
  [[ -x "$BIN" ]] || { echo "no Sluice binary ($BIN): set SLUICE_BIN or pass BOOTSTRAP"; echo "0 passed, 1 failed"; exit 1; }
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # no initial rebalance delay: the consume-transform-produce groups have one member each
  "$BIN" server --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$work/data" \
    --override group.initial.rebalance.delay.ms=0 >"$work/server.log" 2>&1 &
  server_pid=$!
  B="127.0.0.1:$port"
  deadline=$((SECONDS + 60))
  until port_open 127.0.0.1 "$port"; do
    if ! kill -0 "$server_pid" 2>/dev/null || (( SECONDS >= deadline )); then
      keep=1; echo "sluice server did not start:"; tail -n 20 "$work/server.log"; echo "0 passed, 1 failed"; exit 1
    fi
    sleep 0.1
  done
fi
echo "broker under test: $B"

java_cmd() {
  echo java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    "-Dlog4j2.configurationFile=$I/java/log4j2-tools.properties" -cp "$JAR:$LIB/*"
}

client_cmd() {
  case "$1" in
    kafka-python) echo "$PY" "$HERE/kafka_python_txn.py" ;;
    aiokafka) echo "$PY" "$HERE/aiokafka_txn.py" ;;
    kafkajs) echo node "$HERE/kafkajs_txn.js" ;;
    franz-go) echo "$I/go/bin/franztxn" ;;
    java) echo "$(java_cmd) sluice.interop.TxnClient" ;;
    java-kip848) echo "$(java_cmd) sluice.interop.TxnClient --group-protocol consumer" ;;
  esac
}

# run_client CLIENT: the scenario, then one case per step from its ok/fail lines
run_client() {
  local c="$1" out="$work/$1.out" err="$work/$1.err" t0=$SECONDS st line steps=("${STEPS[@]}")
  # the KIP-848 consumer changes only the consume-transform-produce step
  [[ "$c" == java-kip848 ]] && steps=(ctp)
  # shellcheck disable=SC2046
  timeout -k 5 $((TIMEOUT * 4)) $(client_cmd "$c") --bootstrap "$B" --prefix "$RUN-$c" \
    >"$out" 2>"$err" </dev/null
  st=$?
  for s in "${steps[@]}"; do
    line="$(grep -m1 -E "^(ok|fail) $s( |$)" "$out")"
    case "$line" in
      ok*) pass "txn/$c/$s" "${line#ok "$s" }" ;;
      fail*) fail "txn/$c/$s" "${line#fail "$s" }" ;;
      *) fail "txn/$c/$s" "not reached (exit $st): $(tail -n 3 "$err" | tr '\n' ' ' | cut -c1-400)" ;;
    esac
  done
  echo "      ($c: $((SECONDS - t0)) s)"
}

selected() { [[ -z "$ONLY" ]] || grep -qE -- "$ONLY" <<<"$1"; }

for c in kafka-python aiokafka kafkajs franz-go java java-kip848; do
  selected "$c" && run_client "$c"
done

# ---------------------------------------------------------------- kafka-transactions
transactions() {
  # shellcheck disable=SC2046
  timeout "$TIMEOUT" $(java_cmd) org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$B" "$@"
}
# row ID STATE: the line of `list` output for transactional id ID has state STATE
row_state() { awk -v id="$1" '$1 == id { print $4 }'; }

if selected tools; then
  held="$RUN-held" held_topic="$RUN-held-t"
  mkfifo "$work/hold.in"
  "$PY" "$HERE/hold_txn.py" --bootstrap "$B" --topic "$held_topic" --transactional-id "$held" \
    <"$work/hold.in" >"$work/hold.out" 2>"$work/hold.err" &
  hold_pid=$!
  exec 7>"$work/hold.in"
  deadline=$((SECONDS + TIMEOUT))
  until grep -qx holding "$work/hold.out" || ! kill -0 "$hold_pid" 2>/dev/null || (( SECONDS >= deadline )); do
    sleep 0.1
  done
  if ! grep -qx holding "$work/hold.out"; then
    fail "txn/tools/list" "the held transaction did not start: $(tail -n 3 "$work/hold.err" | tr '\n' ' ')"
    fail "txn/tools/describe" "not run"
    fail "txn/tools/describe-producers" "not run"
    fail "txn/lso" "not run"
  else
    # list: the held transaction is Ongoing; each client's first producer completed its commit;
    # a duration filter longer than this run leaves no rows (ListTransactions v1); an id pattern
    # keeps only the ids it matches whole (v2: "-fence" alone matches none of the "-fenced" ids)
    out="$(transactions list 2>&1)"
    echo "$out" >"$work/list.out"
    why=""
    head -n 1 <<<"$out" | grep -qE '^TransactionalId\s+Coordinator\s+ProducerId\s+TransactionState' ||
      why="header: $(head -n 1 <<<"$out")"
    [[ -z "$why" && "$(row_state "$held" <<<"$out")" != Ongoing ]] && why="$held is '$(row_state "$held" <<<"$out")', not Ongoing"
    for c in kafka-python aiokafka kafkajs franz-go java; do
      [[ -n "$why" ]] && break
      selected "$c" && grep -q '^ok produce' "$work/$c.out" 2>/dev/null || continue
      s="$(row_state "$RUN-$c-tx" <<<"$out")"
      [[ "$s" == CompleteCommit ]] || why="$RUN-$c-tx is '$s', not CompleteCommit"
    done
    if [[ -z "$why" ]]; then
      # (this run's ids only: a broker that ran other tests may hold ids in state Empty, which
      # Kafka lists under any duration filter)
      long="$(transactions list --duration-filter 86400000 2>&1)"
      [[ "$(head -n 1 <<<"$long" | awk '{ print $1 }')" == TransactionalId &&
        -z "$(awk -v r="$RUN-" 'NR > 1 && index($1, r) == 1' <<<"$long")" ]] ||
        why="--duration-filter 86400000 listed: $long"
    fi
    # ListTransactions v2 (KIP-1152): the pattern must match the whole id
    if [[ -z "$why" ]]; then
      ids="$(transactions list --transactional-id-pattern "$RUN-h.ld|$RUN-[a-z-]+-fence" 2>&1 | awk 'NR > 1 { print $1 }' | sort | xargs)"
      [[ "$ids" == "$held" ]] || why="--transactional-id-pattern '$RUN-h.ld|$RUN-[a-z-]+-fence' listed '$ids', not only $held"
    fi
    if [[ -z "$why" ]]; then pass "txn/tools/list" "$(($(wc -l <<<"$out") - 1)) transactions, $held Ongoing, clients' CompleteCommit; duration and id pattern filters"
    else fail "txn/tools/list" "$why"; fi

    # the last stable offset stays below the held transaction (lso_check.py)
    lso_open="$(timeout "$TIMEOUT" "$PY" "$HERE/lso_check.py" --bootstrap "$B" --topic "$held_topic" \
      --prefix "$RUN" --phase open 2>"$work/lso.err")"

    # describe-producers (DescribeProducers): partition 0 of the held topic has the held producer,
    # its open transaction starting at offset 0, and lso_check.py's, whose transaction is over
    out="$(transactions describe-producers --topic "$held_topic" --partition 0 2>&1)"
    echo "$out" >"$work/producers.out"
    held_producer="$(awk -v id="$held" '$1 == id { print $3 }' "$work/list.out")"
    cols="$(head -n 1 <<<"$out" | xargs)"
    if [[ "$cols" != "ProducerId ProducerEpoch LatestCoordinatorEpoch LastSequence LastTimestamp CurrentTransactionStartOffset" ]]; then
      fail "txn/tools/describe-producers" "$(head -n 3 <<<"$out" | tr '\n' ' ')"
    elif [[ "$(awk -v p="$held_producer" '$1 == p { print $3, $4, $6 }' <<<"$out")" != "-1 0 0" ]] ||
      [[ "$(awk 'NR > 1 && $6 == "None"' <<<"$out" | wc -l)" -ne 1 || "$(wc -l <<<"$out")" -ne 3 ]]; then
      fail "txn/tools/describe-producers" "held producer $held_producer (want coordinator epoch -1, last sequence 0, transaction start 0) and one more with no open transaction: $(tr '\n' ';' <<<"$out")"
    else
      pass "txn/tools/describe-producers" "held producer's transaction starts at 0, the other's is over"
    fi

    # describe: the held one Ongoing on both partitions with its timeout; after its producer
    # aborts, CompleteAbort without partitions; an unknown id fails
    out="$(transactions describe --transactional-id "$held" 2>&1)"
    echo "$out" >"$work/describe.out"
    why=""
    cols="$(head -n 1 <<<"$out" | xargs)"
    [[ "$cols" == "CoordinatorId TransactionalId ProducerId ProducerEpoch TransactionState TransactionTimeoutMs CurrentTransactionStartTimeMs TransactionDurationMs TopicPartitions" ]] ||
      why="header: $cols"
    read -r _coord id _pid epoch state tmo start _dur parts <<<"$(sed -n 2p <<<"$out")"
    [[ -z "$why" && ( "$id" != "$held" || "$epoch" -lt 0 || "$state" != Ongoing || "$tmo" != 120000 || "$start" -le 0 ||
      "$(tr ',' '\n' <<<"$parts" | sort | xargs)" != "$held_topic-0 $held_topic-1" ) ]] &&
      why="describe: $(sed -n 2p <<<"$out" | xargs)"
    if [[ -z "$why" ]]; then
      exec 7>&-
      wait "$hold_pid"
      hold_pid=""
      deadline=$((SECONDS + TIMEOUT))
      until out="$(transactions describe --transactional-id "$held" 2>&1)"
        read -r _ _ _ _ state _ _ _ parts <<<"$(sed -n 2p <<<"$out")"
        [[ "$state" == CompleteAbort ]] || (( SECONDS >= deadline )); do sleep 0.2; done
      [[ "$state" == CompleteAbort && -z "$parts" ]] || why="after the abort: $(sed -n 2p <<<"$out" | xargs)"
    fi
    if [[ -z "$why" ]]; then
      out="$(transactions describe --transactional-id "$RUN-no-such-id" 2>&1)" && why="unknown id described: $out"
      [[ -z "$why" ]] && ! grep -q "could not be found" <<<"$out" && why="unknown id: $out"
    fi
    if [[ -z "$why" ]]; then pass "txn/tools/describe" "Ongoing on 2 partitions, then CompleteAbort; unknown id not found"
    else fail "txn/tools/describe" "$why"; fi

    if [[ -n "$hold_pid" ]]; then exec 7>&-; wait "$hold_pid"; hold_pid=""; fi
    if [[ "$lso_open" != ok* ]]; then
      fail "txn/lso" "${lso_open#fail lso }$(tail -n 3 "$work/lso.err" | tr '\n' ' ')"
    else
      out="$(timeout "$TIMEOUT" "$PY" "$HERE/lso_check.py" --bootstrap "$B" --topic "$held_topic" \
        --prefix "$RUN" --phase closed 2>>"$work/lso.err")"
      if [[ "$out" == ok* ]]; then pass "txn/lso" "${lso_open#ok lso }; ${out#ok lso }"
      else fail "txn/lso" "${out#fail lso }$(tail -n 3 "$work/lso.err" | tr '\n' ' ')"; fi
    fi
  fi
fi

if [[ -n "$server_pid" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
  fail "txn/server" "the sluice server died: $(tail -n 5 "$work/server.log" | tr '\n' ' ')"
fi
echo "$PASSED passed, $FAILED failed"
(( FAILED == 0 ))
