#!/usr/bin/env bash
# Control-plane benchmark of the metadata quorum (issue "Cluster 1/3"), on this machine:
#  1. CreateTopics throughput: TOPICS topics of 10 partitions in one CreateTopics request from
#     Kafka's admin client (bench/CreateTopics.java), on one node and on a 3-node cluster;
#  2. start time of a node holding 10,000 partitions (1,000 topics x 10): SIGTERM, start again,
#     time until Metadata lists every topic;
#  3. controller failover: KILLS times, SIGKILL of the active controller of a 3-node cluster,
#     time until the next CreateTopics commits (through a surviving node), then the node is
#     restarted and the cluster waits for it.
# Prints a markdown section. Needs the Kafka jars (scripts/install-deps.sh) and a JDK.
#
#   SLUICE_BIN=target/release/sluice bench/cluster.sh
#
# Knobs: TOPICS (default 200), KILLS (default 10), BENCH_TARGET (default /work/target-bench).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SLUICE="${SLUICE_BIN:?set SLUICE_BIN to a release sluice binary}"
BENCH_TARGET="${BENCH_TARGET:-/work/target-bench}"
TOPICS="${TOPICS:-200}"
KILLS="${KILLS:-10}"
LIB="$ROOT/interop/java/target/lib"
work="$(mktemp -d)"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$BENCH_TARGET/java"
javac -cp "$LIB/*" -d "$BENCH_TARGET/java" "$ROOT/bench/CreateTopics.java"
create_topics() { # BOOTSTRAP PARTITIONS TOPIC... -> prints "created in N ms"
  java -Xmx512m -cp "$BENCH_TARGET/java:$LIB/*" CreateTopics "$@" 2>&1 >/dev/null | grep -m1 'created in'
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
wait_port() { for _ in $(seq 600); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
names() { local p="$1" n="$2" i; for ((i = 0; i < n; i++)); do echo "$p-$i"; done; }

# ---------------------------------------------------------------- one node
port="$(free_port)"
start_single() {
  "$SLUICE" server --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$work/single" --override auto.create.topics.enable=false \
    >>"$work/single.log" 2>&1 &
  single_pid=$!
  pids+=("$single_pid")
}
start_single
wait_port "$port"
# shellcheck disable=SC2046
single_create="$(create_topics "127.0.0.1:$port" 10 $(names one "$TOPICS"))"
# 10,000 partitions for the start-time run
# shellcheck disable=SC2046
create_topics "127.0.0.1:$port" 10 $(names big 1000) >/dev/null
kill -TERM "$single_pid"; wait "$single_pid" 2>/dev/null || true
t_start="$(now_ms)"
start_single
wait_port "$port"
t_port="$(now_ms)"
until [[ "$("$SLUICE" topic list --bootstrap-server "127.0.0.1:$port" 2>/dev/null | grep -c '^big-')" == 1000 ]]; do sleep 0.05; done
t_ready="$(now_ms)"
kill -TERM "$single_pid"; wait "$single_pid" 2>/dev/null || true
rss_note="$(grep 'opened log dir' "$work/single.log" | tail -n 1 | sed 's/.*partitions=\([0-9]*\).*/\1 partitions opened/' || true)"

# ---------------------------------------------------------------- three nodes
declare -a cport bport cpid
for i in 1 2 3; do bport[$i]="$(free_port)"; cport[$i]="$(free_port)"; done
voters="1@127.0.0.1:${cport[1]},2@127.0.0.1:${cport[2]},3@127.0.0.1:${cport[3]}"
cid="$("$SLUICE" storage random-uuid)"
start_node() {
  local i="$1"
  "$SLUICE" server --config "$work/n$i.properties" >>"$work/n$i.log" 2>&1 &
  cpid[$i]=$!
  pids+=("${cpid[$i]}")
}
for i in 1 2 3; do
  cat >"$work/n$i.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${bport[$i]},CONTROLLER://127.0.0.1:${cport[$i]}
controller.listener.names=CONTROLLER
log.dirs=$work/n$i
auto.create.topics.enable=false
EOF
  "$SLUICE" storage format -t "$cid" -c "$work/n$i.properties" >/dev/null
  start_node "$i"
done
for i in 1 2 3; do wait_port "${bport[$i]}"; done
all="127.0.0.1:${bport[1]},127.0.0.1:${bport[2]},127.0.0.1:${bport[3]}"
active() { "$SLUICE" cluster status --bootstrap-server "127.0.0.1:${bport[$1]}" 2>/dev/null | grep -c 'active$' || true; }
until [[ "$(active 1)" == 3 ]]; do sleep 0.1; done
# shellcheck disable=SC2046
cluster_create="$(create_topics "$all" 10 $(names three "$TOPICS"))"

failovers=()
for ((k = 0; k < KILLS; k++)); do
  leader="$("$SLUICE" cluster status --bootstrap-server "127.0.0.1:${bport[1]}" | sed -n 's/^LeaderId: //p')"
  survivor=$((leader % 3 + 1))
  kill -KILL "${cpid[$leader]}"; wait "${cpid[$leader]}" 2>/dev/null || true
  t0="$(now_ms)"
  until "$SLUICE" topic create "failover-$k" --partitions 1 --bootstrap-server "127.0.0.1:${bport[$survivor]}" >/dev/null 2>&1; do
    sleep 0.02
  done
  failovers+=("$(($(now_ms) - t0))")
  start_node "$leader"
  wait_port "${bport[$leader]}"
  until [[ "$(active "$survivor")" == 3 ]]; do sleep 0.1; done
done
sorted="$(printf '%s\n' "${failovers[@]}" | sort -n | tr '\n' ' ')"
median="$(printf '%s\n' "${failovers[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"

ms() { sed -n 's/.*created in \([0-9]*\) ms.*/\1/p' <<<"$1"; }
rate() { awk -v n="$TOPICS" -v ms="$1" 'BEGIN { printf "%.0f", n * 1000 / ms }'; }
cat <<EOF
### Control plane, $(date -u '+%Y-%m-%d %H:%M') UTC, commit $(git -C "$ROOT" rev-parse --short HEAD)

- Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; data dirs under $(dirname "$work") ($(df -h "$work" | awk 'NR==2 {print $1}')).
- Binary: \`$SLUICE\` ($("$SLUICE" --version)); command: \`SLUICE_BIN=$SLUICE TOPICS=$TOPICS KILLS=$KILLS bench/cluster.sh\`

| measure | one node | three nodes (Raft quorum) |
| --- | --- | --- |
| CreateTopics, $TOPICS topics x 10 partitions in one request (Kafka admin client) | $(ms "$single_create") ms ($(rate "$(ms "$single_create")") topics/s) | $(ms "$cluster_create") ms ($(rate "$(ms "$cluster_create")") topics/s) |
| start with 12,000 partitions (1,000 topics x 10 and the 200 x 10 above): listening / Metadata lists all | $((t_port - t_start)) ms / $((t_ready - t_start)) ms ($rss_note) | |
| controller failover: SIGKILL of the active controller -> next CreateTopics committed ($KILLS kills) | | median $median ms; all: $sorted |
EOF
