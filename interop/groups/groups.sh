#!/usr/bin/env bash
# Consumer groups across implementations: kafka-python members share a topic and commit, then
# Apache Kafka's own kafka-consumer-groups tool (ConsumerGroupCommand, from the Maven Central
# jars) lists, describes (with lag), resets and deletes the group; two Java KafkaConsumers, two
# kafkajs and two aiokafka members each split a topic between them; franz-go members split,
# hand over on LeaveGroup and on SIGKILL, and resume committed offsets (franz_group.sh); and a
# mixed group of librdkafka (kcat), Java and kafka-python members shares one topic with the range
# assignor. Output is checked, not only exit codes. Needs scripts/install-deps.sh (python venv,
# Kafka jars, node modules, Go binaries) and kcat. Takes about 2-3 minutes.
#
#   interop/groups/groups.sh BOOTSTRAP
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/../java/target/lib"
PY="$HERE/../python/.venv/bin/python"
TIMEOUT="${INTEROP_TIMEOUT:-60}"
B="${1:?usage: $0 BOOTSTRAP}"
T="groups-$$-$RANDOM" G="grp-$$-$RANDOM" P=6 N=60

fail() { echo "FAIL: $*" >&2; exit 1; }
kafka() {
  local cls="$1"; shift
  timeout "$TIMEOUT" java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    "-Dlog4j2.configurationFile=$HERE/../java/log4j2-tools.properties" -cp "$LIB/*" "$cls" "$@"
}
groups() { kafka org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$B" "$@"; }
# Sum of the LAG column (6th) of --describe over the topic's rows, and the row count.
lags() { awk -v t="$T" '$2 == t { n++; s += $6 } END { printf "%d/%d", s, n }'; }

kafka org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create --topic "$T" \
  --partitions "$P" >/dev/null || fail "create topic"
seq 1 "$N" | kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic "$T" \
  --property partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner \
  >/dev/null 2>&1 || fail "produce"

timeout $((TIMEOUT * 3)) "$PY" "$HERE/kafka_python_group.py" "$B" "$T" "$G" "$P" "$N" || fail "kafka-python group"

list="$(groups --list)" || fail "--list"
grep -qx "$G" <<<"$list" || fail "--list does not show $G: $list"
desc="$(groups --describe --group "$G" 2>&1)" || fail "--describe: $desc"
got="$(lags <<<"$desc")"
[[ "$got" =~ ^0/[1-9] ]] || fail "lag after consuming everything: '$got' in
$desc"
out="$(groups --reset-offsets --group "$G" --topic "$T" --to-earliest --execute 2>&1)" || fail "--reset-offsets: $out"
desc="$(groups --describe --group "$G" 2>&1)"
got="$(lags <<<"$desc")"
[[ "$got" =~ ^$N/[1-9] ]] || fail "lag after reset to earliest: '$got' in
$desc"
out="$(groups --delete --group "$G" 2>&1)" || fail "--delete: $out"
grep -q "successful" <<<"$out" || fail "--delete said: $out"
groups --list | grep -qx "$G" && fail "$G still listed after --delete"
echo "PASS: kafka-python group, kafka-consumer-groups list/describe/reset-offsets/delete"


# The Java client's KafkaConsumer (classic protocol) in kafka-console-consumer: two members of one
# group get 3 of the 6 partitions each (seen through kafka-consumer-groups --members); together
# they print every record once.
T2="groups-java-$$-$RANDOM" G2="grp-java-$$-$RANDOM" work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
kafka org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create --topic "$T2" \
  --partitions "$P" >/dev/null || fail "create topic $T2"
for i in 1 2; do
  kafka org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$B" --topic "$T2" \
    --group "$G2" --timeout-ms 20000 >"$work/c$i.out" 2>"$work/c$i.err" &
done
deadline=$((SECONDS + TIMEOUT))
# Members holding P/2 partitions each (the #PARTITIONS column of --describe --members).
members() { groups --describe --group "$G2" --members 2>/dev/null | awk -v g="$G2" -v h=$((P / 2)) '$1 == g && $5 == h' | wc -l; }
until [[ "$(members)" -eq 2 ]]; do
  (( SECONDS < deadline )) || fail "two console consumers never got $((P / 2)) partitions each in $G2"
  sleep 1
done
seq 1 "$N" | kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic "$T2" \
  >/dev/null 2>&1 || fail "produce to $T2"
wait
read1="$(grep -c . "$work/c1.out")" read2="$(grep -c . "$work/c2.out")"
got="$(cat "$work/c1.out" "$work/c2.out" | sort -n | uniq | tr '\n' ' ')"
[[ "$got" == "$(seq 1 "$N" | tr '\n' ' ')" ]] || fail "Java members read $read1 + $read2 records, not 1..$N once: $got"
echo "PASS: two Java console consumers split $T2 3+3 and read $read1 + $read2 of $N records"

# kafkajs (non-flexible versions: JoinGroup v5, OffsetCommit v7, …): two members split a topic.
timeout $((TIMEOUT * 2)) node "$HERE/kafkajs_group.js" "$B" "groups-js-$$-$RANDOM" "grp-js-$$-$RANDOM" "$P" "$N" \
  2> >(grep -v '"level":"ERROR".*rebalancing' >&2) || fail "kafkajs group"

# A mixed group: librdkafka (kcat -G), the Java client (kafka-console-consumer) and kafka-python,
# all offering the range assignor, share one group: 2 of 6 partitions each (kafka-consumer-groups
# --members), and every record is read exactly once between them.
T3="groups-mixed-$$-$RANDOM" G3="grp-mixed-$$-$RANDOM" STAY=35
kafka org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create --topic "$T3" \
  --partitions "$P" >/dev/null || fail "create topic $T3"
timeout "$STAY" kcat -b "$B" -G "$G3" -X partition.assignment.strategy=range -o beginning -q \
  -f '%s\n' "$T3" >"$work/kcat.out" 2>"$work/kcat.err" &
kafka org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$B" --topic "$T3" \
  --group "$G3" --consumer-property partition.assignment.strategy=org.apache.kafka.clients.consumer.RangeAssignor \
  --timeout-ms $(( STAY * 1000 )) >"$work/java.out" 2>"$work/java.err" &
"$PY" "$HERE/kafka_python_member.py" "$B" "$T3" "$G3" "$STAY" >"$work/py.out" 2>"$work/py.err" &
members3() { groups --describe --group "$G3" --members 2>/dev/null | awk -v g="$G3" '$1 == g && $5 == 2' | wc -l; }
deadline=$((SECONDS + TIMEOUT))
until [[ "$(members3)" -eq 3 ]]; do
  (( SECONDS < deadline )) || fail "kcat, Java and kafka-python never got 2 partitions each in $G3:
$(groups --describe --group "$G3" --members 2>&1)"
  sleep 1
done
seq 1 "$N" | kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic "$T3" \
  >/dev/null 2>&1 || fail "produce to $T3"
wait
got="$(cat "$work/kcat.out" "$work/java.out" "$work/py.out" | grep -v '^$' | sort -n | tr '\n' ' ')"
[[ "$got" == "$(seq 1 "$N" | tr '\n' ' ')" ]] || fail "mixed group read (kcat $(grep -c . "$work/kcat.out"), java $(grep -c . "$work/java.out"), python $(grep -c . "$work/py.out")): $got"
echo "PASS: mixed group (kcat, Java, kafka-python; range) split $T3 2+2+2 and read every record once"

# aiokafka (asyncio): two members split a topic holding N records and read each once.
T4="groups-aio-$$-$RANDOM"
kafka org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create --topic "$T4" \
  --partitions "$P" >/dev/null || fail "create topic $T4"
seq 1 "$N" | kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic "$T4" \
  >/dev/null 2>&1 || fail "produce to $T4"
timeout $((TIMEOUT * 2)) "$PY" "$HERE/aiokafka_group.py" "$B" "$T4" "grp-aio-$$-$RANDOM" "$P" "$N" \
  2> >(grep -v "because it is rebalancing" >&2) || fail "aiokafka group"
"$HERE/franz_group.sh" "$B" || fail "franz-go group"
