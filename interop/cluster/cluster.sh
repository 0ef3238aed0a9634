#!/usr/bin/env bash
# A three-node Sluice cluster on loopback seen through Apache Kafka's own tools (from the Maven
# Central jars), output checked, not only exit codes:
#  - every node formatted with one cluster id (sluice storage format), started with a KRaft
#    server.properties (process.roles=broker,controller, controller.quorum.voters, racks);
#  - kafka-topics --create RF=3 and --describe: ReplicationFactor 3, three distinct replicas
#    per partition, ISR = replicas, leaders on every broker, asked through each node in turn;
#  - kafka-metadata-quorum describe --status (3 voters, one leader) and --replication;
#  - kafka-features describe;
#  - kafka-console-producer / -consumer through a bootstrap list, on an RF=1 topic whose
#    partitions are led by different brokers.
# Needs scripts/install-deps.sh (Kafka jars) and SLUICE_BIN. Takes about 30-60 s.
#
#   interop/cluster/cluster.sh
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/../java/target/lib"
TIMEOUT="${INTEROP_TIMEOUT:-60}"
SLUICE="${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}"
passed=0 failed=0

kafka() {
  local cls="$1"; shift
  timeout "$TIMEOUT" java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    "-Dlog4j2.configurationFile=$HERE/../java/log4j2-tools.properties" -cp "$LIB/*" "$cls" "$@"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work="$(mktemp -d)" pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do { kill -KILL "$p"; wait "$p"; } 2>/dev/null; done
  [[ "${KEEP_WORK:-0}" == 1 ]] && echo "cluster logs kept in $work" || rm -rf "$work"
}
trap cleanup EXIT

# case NAME COMMAND...: runs one check, which prints its evidence and fails with a reason.
case_() {
  local name="$1"; shift
  local out rc
  out="$("$@" 2>&1)"; rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "PASS  cluster/$name"; passed=$((passed + 1))
  else
    echo "FAIL  cluster/$name"; failed=$((failed + 1)); KEEP_WORK=1
  fi
  sed 's/^/      | /' <<<"$out" | head -40
}

# ---------------------------------------------------------------- three nodes
declare -a port cport
for i in 1 2 3; do port[$i]="$(free_port)"; cport[$i]="$(free_port)"; done
voters="1@127.0.0.1:${cport[1]},2@127.0.0.1:${cport[2]},3@127.0.0.1:${cport[3]}"
cid="$("$SLUICE" storage random-uuid)"
for i in 1 2 3; do
  mkdir -p "$work/node$i"
  cat >"$work/node$i/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${port[$i]},CONTROLLER://127.0.0.1:${cport[$i]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
broker.rack=rack-$i
log.dirs=$work/node$i/data
EOF
  "$SLUICE" storage format -t "$cid" -c "$work/node$i/server.properties" >/dev/null
  "$SLUICE" server --config "$work/node$i/server.properties" >"$work/node$i/server.log" 2>&1 &
  pids+=($!)
done
B="127.0.0.1:${port[1]},127.0.0.1:${port[2]},127.0.0.1:${port[3]}"
for i in 1 2 3; do
  for _ in $(seq 300); do (echo >"/dev/tcp/127.0.0.1/${port[$i]}") 2>/dev/null && break; sleep 0.1; done
done
topics() { kafka org.apache.kafka.tools.TopicCommand "$@"; }

registered() { # every node lists the 3 brokers
  local i deadline=$((SECONDS + 30)) out
  for i in 1 2 3; do
    while :; do
      out="$(kafka org.apache.kafka.tools.ClusterTool list-endpoints --bootstrap-server "127.0.0.1:${port[$i]}" 2>/dev/null)"
      [[ "$(grep -cE '^[123][[:space:]]' <<<"$out")" == 3 ]] && break
      (( SECONDS < deadline )) || { echo "$out"; echo "node $i does not list 3 brokers"; return 1; }
      sleep 0.3
    done
  done
  echo "$out"
}
case_ brokers-registered registered

describe_rf3() {
  topics --bootstrap-server "$B" --create --topic rf3 --partitions 6 --replication-factor 3 || return 1
  local i out deadline leaders
  for i in 1 2 3; do
    deadline=$((SECONDS + 30))
    while out="$(topics --bootstrap-server "127.0.0.1:${port[$i]}" --describe --topic rf3 2>/dev/null)";
          [[ "$(grep -cE 'Partition: [0-5]' <<<"$out")" != 6 ]]; do
      (( SECONDS < deadline )) || { echo "$out"; echo "node $i: rf3 not described"; return 1; }
      sleep 0.3
    done
    echo "via node $i:"; echo "$out"
    grep -qE "^Topic: rf3[[:space:]]+TopicId: [A-Za-z0-9_-]{22}[[:space:]]+PartitionCount: 6[[:space:]]+ReplicationFactor: 3" <<<"$out" \
      || { echo "no 'PartitionCount: 6 ReplicationFactor: 3' header"; return 1; }
    awk '/Partition: [0-9]/ {
           for (f = 1; f <= NF; f++) { if ($f == "Replicas:") r = $(f+1); if ($f == "Isr:") s = $(f+1); if ($f == "Leader:") l = $(f+1) }
           n = split(r, ids, ","); delete seen; d = 0
           for (k = 1; k <= n; k++) if (!(ids[k] in seen)) { seen[ids[k]] = 1; d++ }
           if (d != 3 || r != s || l != ids[1]) { print "bad partition line: " $0; bad = 1 }
         } END { exit bad }' <<<"$out" || return 1
    leaders="$(grep -oE 'Leader: [0-9]+' <<<"$out" | sort -u | wc -l)"
    [[ "$leaders" == 3 ]] || { echo "leaders on $leaders brokers, expected 3"; return 1; }
  done
}
case_ topics-rf3-describe describe_rf3

quorum() {
  local out
  out="$(kafka org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$B" describe --status)" || return 1
  echo "$out"
  grep -qE "^ClusterId:[[:space:]]+$cid$" <<<"$out" || { echo "ClusterId is not $cid"; return 1; }
  grep -qE "^LeaderId:[[:space:]]+[123]$" <<<"$out" || { echo "no LeaderId among 1-3"; return 1; }
  [[ "$(grep -oE '"id": [0-9]+' <<<"$(grep '^CurrentVoters:' <<<"$out")" | sort -u | wc -l)" == 3 ]] \
    || { echo "CurrentVoters does not list 3 voters"; return 1; }
  out="$(kafka org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$B" describe --replication)" || return 1
  echo "$out"
  [[ "$(grep -cE 'Leader|Follower' <<<"$out")" == 3 ]] || { echo "not 3 replication rows"; return 1; }
  # The active controller answers (forwarded to it): every voter's log end is known.
  awk '/Leader|Follower/ && $3 < 0 { bad = 1 } END { exit bad }' <<<"$out" \
    || { echo "a voter's LogEndOffset is unknown: not answered by the active controller"; return 1; }
}
case_ metadata-quorum quorum

features() {
  local out
  out="$(kafka org.apache.kafka.tools.FeatureCommand --bootstrap-server "$B" describe)" || return 1
  echo "$out"
  grep -qE "^Feature: metadata.version.*FinalizedVersionLevel: 4.1-IV1" <<<"$out" || { echo "metadata.version not finalized"; return 1; }
}
case_ features features

console() {
  topics --bootstrap-server "$B" --create --topic spread --partitions 6 --replication-factor 1 || return 1
  seq 1 60 | awk '{print "k" ($1 % 7) "\t" $1}' >"$work/input"
  kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic spread \
    --property parse.key=true --property key.separator=$'\t' <"$work/input" || return 1
  local out
  out="$(kafka org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$B" --topic spread \
    --from-beginning --max-messages 60 --timeout-ms 30000 --property print.key=true 2>/dev/null)"
  [[ "$(wc -l <<<"$out")" == 60 ]] || { echo "$out"; echo "read $(wc -l <<<"$out") of 60 records"; return 1; }
  diff <(sort "$work/input") <(sort <<<"$out") || { echo "records differ"; return 1; }
  echo "60 records produced and read back through $B"
  topics --bootstrap-server "$B" --describe --topic spread | grep -oE 'Leader: [0-9]+' | sort | uniq -c
}
case_ console-spread console

for i in 1 2 3; do
  if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
    echo "FAIL  node $i died; tail of its log:"; tail -n 20 "$work/node$i/server.log" | sed 's/^/      | /'
    failed=$((failed + 1)); KEEP_WORK=1
  fi
done
echo "cluster: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
