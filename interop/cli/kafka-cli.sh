#!/usr/bin/env bash
# Apache Kafka's own command-line tools, run from their classes in the Maven Central jars
# (interop/java/target/lib) with `java -cp`, exactly as a Kafka user runs kafka-topics.sh & co.
# Each check looks at the tool's OUTPUT, not only its exit code.
#
#   kafka-cli.sh CHECK BOOTSTRAP TOPIC
#
# CHECK: topics-create topics-list topics-describe topics-alter topics-delete
#        console | configs-topic | configs-broker | perf-test | get-offsets |
#        features-describe | quorum-describe
# (kafka-topics, kafka-console-producer/-consumer, kafka-configs, kafka-producer-perf-test,
#  kafka-get-offsets, kafka-features, kafka-metadata-quorum)
# topics-* run in that order on the same TOPIC (created with 3 partitions and retention.ms).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/../java/target/lib"
TIMEOUT="${INTEROP_TIMEOUT:-60}"

fail() { echo "FAIL: $*" >&2; exit 1; }

[[ $# -eq 3 ]] || fail "usage: $0 CHECK BOOTSTRAP TOPIC"
check="$1" B="$2" T="$3"

# Same JVM flags for every tool: small heap, fast start; log4j warnings to stderr.
kafka() {
  local cls="$1"; shift
  timeout "$TIMEOUT" java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    "-Dlog4j2.configurationFile=$HERE/../java/log4j2-tools.properties" \
    -cp "$LIB/*" "$cls" "$@"
}
topics() { kafka org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" "$@"; }
configs() { kafka kafka.admin.ConfigCommand --bootstrap-server "$B" "$@"; }

# show the command's output and fail unless it exited 0
run() {
  out="$("$@" 2>"$errf")"; local rc=$?
  echo "\$ ${*##*/}" | cut -c1-200
  echo "$out" | head -40
  if [[ $rc -ne 0 ]]; then cat "$errf" >&2; fail "exit code $rc"; fi
}
errf="$(mktemp)"; trap 'rm -f "$errf"' EXIT

# poll a command until its output matches a regex (for metadata propagating)
eventually() {
  local what="$1" re="$2"; shift 2
  local deadline=$((SECONDS + 30))
  while :; do
    out="$("$@" 2>"$errf")"
    if grep -qE "$re" <<<"$out"; then return 0; fi
    (( SECONDS < deadline )) || { echo "$out"; cat "$errf" >&2; fail "$what: output never matched /$re/"; }
    sleep 0.3
  done
}

describe_ok() { # $1 = partition count expected
  local n="$1"
  grep -qE "^Topic: $T[[:space:]]+TopicId: [A-Za-z0-9_-]{22}[[:space:]]+PartitionCount: $n[[:space:]]+ReplicationFactor: 1" <<<"$out" \
    || fail "describe: no 'Topic: $T TopicId: … PartitionCount: $n ReplicationFactor: 1' line"
  grep -q "TopicId: AAAAAAAAAAAAAAAAAAAAAA" <<<"$out" && fail "describe: zero topic id"
  local p
  for ((p = 0; p < n; p++)); do
    grep -qE "^[[:space:]]+Topic: $T[[:space:]]+Partition: $p[[:space:]]+Leader: ([0-9]+)[[:space:]]+Replicas: [0-9]+[[:space:]]+Isr: [0-9]+" <<<"$out" \
      || fail "describe: no 'Partition: $p Leader: <id> Replicas: <id> Isr: <id>' line"
  done
  [[ "$(grep -cE "^[[:space:]]+Topic: $T[[:space:]]+Partition:" <<<"$out")" == "$n" ]] || fail "describe: not exactly $n partition lines"
  grep -qE "Leader: (none|-1)" <<<"$out" && fail "describe: a partition has no leader"
  return 0
}

case "$check" in
  topics-create)
    run topics --create --topic "$T" --partitions 3 --replication-factor 1 --config retention.ms=3600000
    grep -qx "Created topic $T." <<<"$out" || fail "expected 'Created topic $T.'"
    ;;
  topics-list)
    eventually "list shows $T" "^$T\$" topics --list
    grep -qx "$T" <<<"$out" || fail "list does not show $T"
    echo "list shows $T among $(wc -l <<<"$out") topics"
    ;;
  topics-describe)
    eventually "describe of $T" "PartitionCount: 3" topics --describe --topic "$T"
    echo "$out"
    describe_ok 3
    grep -q "retention.ms=3600000" <<<"$out" || fail "describe: Configs does not show retention.ms=3600000"
    ;;
  topics-alter)
    run topics --alter --topic "$T" --partitions 4
    eventually "describe after alter" "PartitionCount: 4" topics --describe --topic "$T"
    echo "$out"
    describe_ok 4
    ;;
  topics-delete)
    run topics --delete --topic "$T"
    deadline=$((SECONDS + 30))
    while out="$(topics --list 2>"$errf")"; grep -qx "$T" <<<"$out"; do
      (( SECONDS < deadline )) || fail "$T still listed 30 s after delete"
      sleep 0.3
    done
    echo "$T no longer listed"
    ;;
  console)
    # one partition, so the consumer can read it by --partition 0 without a group
    run topics --create --topic "$T" --partitions 1 --replication-factor 1
    input="$(for i in 0 1 2 3 4; do printf 'h:%d\tk-%d\tv-%d console\n' "$i" "$i" "$i"; done)"
    out="$(kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic "$T" \
      --property parse.key=true --property parse.headers=true \
      --property key.separator=$'\t' <<<"$input" 2>"$errf")" \
      || { cat "$errf" >&2; fail "console producer exited non-zero"; }
    out="$(kafka org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$B" --topic "$T" \
      --partition 0 --offset earliest --max-messages 5 \
      --property print.key=true --property print.headers=true \
      --property print.offset=true --property print.partition=true 2>"$errf")" \
      || { cat "$errf" >&2; fail "console consumer exited non-zero"; }
    echo "$out"
    want="$(for i in 0 1 2 3 4; do printf 'Partition:0\tOffset:%d\th:%d\tk-%d\tv-%d console\n' "$i" "$i" "$i" "$i"; done)"
    [[ "$out" == "$want" ]] || { echo "expected:"; echo "$want"; fail "console consumer output differs"; }
    grep -q "Processed a total of 5 messages" "$errf" || { cat "$errf" >&2; fail "consumer did not report 5 messages"; }
    ;;
  configs-topic)
    run topics --create --topic "$T" --partitions 1 --replication-factor 1 --config retention.ms=3600000 --config cleanup.policy=delete
    eventually "configs of $T" "retention.ms=3600000" configs --describe --entity-type topics --entity-name "$T"
    echo "$out"
    grep -qx "Dynamic configs for topic $T are:" <<<"$out" || fail "no 'Dynamic configs for topic $T are:' header"
    grep -qE "^  retention.ms=3600000 sensitive=false synonyms=\{DYNAMIC_TOPIC_CONFIG:retention.ms=3600000" <<<"$out" \
      || fail "retention.ms not shown as a DYNAMIC_TOPIC_CONFIG"
    run configs --describe --entity-type topics --entity-name "$T" --all
    grep -qx "All configs for topic $T are:" <<<"$out" || fail "no 'All configs for topic $T are:' header"
    grep -qE "^  cleanup.policy=delete sensitive=false" <<<"$out" || fail "--all: no cleanup.policy=delete"
    grep -qE "^  segment.bytes=[0-9]+ sensitive=false synonyms=\{.*DEFAULT_CONFIG:log.segment.bytes=" <<<"$out" \
      || fail "--all: segment.bytes missing or without its broker default synonym"
    ;;
  configs-broker)
    # without --entity-name: every broker's dynamic configs and the cluster-wide defaults
    # (DescribeConfigs of BROKER "<id>" and of BROKER "" ); the broker id is taken from there
    run configs --describe --entity-type brokers
    id="$(sed -n 's/^Dynamic configs for broker \([0-9][0-9]*\) are:$/\1/p' <<<"$out" | head -1)"
    [[ -n "$id" ]] || fail "no 'Dynamic configs for broker N are:' line"
    grep -qx "Default configs for brokers in the cluster are:" <<<"$out" || fail "no 'Default configs for brokers in the cluster are:' line"
    run configs --describe --entity-type brokers --all --entity-name "$id"
    grep -qx "All configs for broker $id are:" <<<"$out" || fail "no 'All configs for broker $id are:' header"
    grep -qE "^  num.partitions=4 sensitive=false synonyms=\{STATIC_BROKER_CONFIG:num.partitions=4" <<<"$out" \
      || fail "num.partitions=4 not shown as a STATIC_BROKER_CONFIG"
    grep -qE "^  auto.create.topics.enable=true sensitive=false" <<<"$out" || fail "auto.create.topics.enable=true missing"
    grep -qE "^  message.max.bytes=[0-9]+ sensitive=false synonyms=\{DEFAULT_CONFIG:message.max.bytes=" <<<"$out" \
      || fail "message.max.bytes missing or not a DEFAULT_CONFIG"
    ;;
  perf-test)
    # kafka-producer-perf-test with the producer's defaults (idempotent, acks=all)
    run kafka org.apache.kafka.tools.ProducerPerformance --topic "$T" --num-records 5000 --record-size 100 \
      --throughput -1 --producer-props "bootstrap.servers=$B" linger.ms=5 compression.type=lz4
    grep -qE "^5000 records sent, [0-9.]+ records/sec" <<<"$out" || fail "no '5000 records sent' summary"
    out="$(kafka org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$B" --topic "$T" 2>"$errf")"
    echo "$out"
    total="$(awk -F: '{s += $3} END {print s}' <<<"$out")"
    [[ "$total" == 5000 ]] || fail "end offsets sum to '$total', expected 5000 (no duplicates with idempotence)"
    ;;
  get-offsets)
    # kafka-get-offsets (ListOffsets): earliest, latest and max-timestamp on a 1-partition topic
    # holding 3 records with increasing explicit timestamps (written by the Java interop client)
    out="$(timeout "$TIMEOUT" java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      "-Dlog4j2.configurationFile=$HERE/../java/log4j2-tools.properties" \
      -cp "$HERE/../java/target/interop-client.jar:$LIB/*" sluice.interop.InteropClient \
      produce --bootstrap "$B" --topic "$T" --codec none --count 3 --partitions 1 2>&1)" \
      || { echo "$out"; fail "producing 3 records failed"; }
    for spec in "earliest:$T:0:0" "latest:$T:0:3" "max-timestamp:$T:0:2"; do
      t="${spec%%:*}"; want="${spec#*:}"
      run kafka org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$B" --topic "$T" --time "$t"
      [[ "$out" == "$want" ]] || fail "get-offsets --time $t: '$out', expected '$want'"
    done
    ;;
  features-describe)
    # kafka-features describe (ApiVersions v3+ features): every supported feature with its
    # range, the finalized levels and their epoch
    run kafka org.apache.kafka.tools.FeatureCommand --bootstrap-server "$B" describe
    grep -qE "^Feature: metadata.version[[:space:]]+SupportedMinVersion: 3.3-IV3[[:space:]]+SupportedMaxVersion: 4.1-IV1[[:space:]]+FinalizedVersionLevel: 4.1-IV1[[:space:]]+Epoch: [0-9]+" <<<"$out" \
      || fail "no metadata.version line finalized at 4.1-IV1"
    grep -qE "^Feature: group.version[[:space:]]+SupportedMinVersion: 0[[:space:]]+SupportedMaxVersion: 1[[:space:]]+FinalizedVersionLevel: 1[[:space:]]" <<<"$out" \
      || fail "no group.version line finalized at 1"
    grep -qE "^Feature: transaction.version[[:space:]]+SupportedMinVersion: 0[[:space:]]+SupportedMaxVersion: 0[[:space:]]+FinalizedVersionLevel: 0[[:space:]]" <<<"$out" \
      || fail "transaction.version not shown as unsupported beyond 0"
    ;;
  quorum-describe)
    # kafka-metadata-quorum describe --status and --replication (DescribeQuorum, DescribeCluster)
    run kafka org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$B" describe --status
    grep -qE "^ClusterId:[[:space:]]+[A-Za-z0-9_-]{22}$" <<<"$out" || fail "no 22-character ClusterId"
    leader="$(sed -n 's/^LeaderId:[[:space:]]*\([0-9][0-9]*\)$/\1/p' <<<"$out")"
    [[ -n "$leader" ]] || fail "no LeaderId"
    grep -qE "^LeaderEpoch:[[:space:]]+[1-9][0-9]*$" <<<"$out" || fail "no LeaderEpoch >= 1"
    grep -qE "^HighWatermark:[[:space:]]+[1-9][0-9]*$" <<<"$out" || fail "no HighWatermark >= 1"
    grep -qE "^MaxFollowerLag:[[:space:]]+0$" <<<"$out" || fail "a lone voter lags"
    grep -qE "^CurrentVoters:[[:space:]]+\[\{\"id\": $leader[,}]" <<<"$out" || fail "the leader is not among CurrentVoters"
    run kafka org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$B" describe --replication
    grep -qE "^$leader[[:space:]].*[[:space:]]0[[:space:]].*Leader[[:space:]]*$" <<<"$out" || fail "no replication row for leader $leader with lag 0"
    ;;
  *) fail "unknown check $check" ;;
esac
echo "OK kafka-cli $check"
