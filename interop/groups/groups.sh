#!/usr/bin/env bash
# Consumer groups across implementations, output checked (not only exit codes):
#  - a kafka-python member reads a topic in a group and commits; Apache Kafka's own
#    kafka-consumer-groups tool (ConsumerGroupCommand, from the Maven Central jars) then lists,
#    describes (with lag), resets and deletes the group;
#  - the full group scenario for each of kafka-python, aiokafka, kafkajs, the Java client's
#    KafkaConsumer and franz-go (client_group.sh), one process per member:
#    3 members split 6 partitions 2+2+2, one leaves (LeaveGroup) and two take 3+3, one is
#    SIGKILLed and after its 6 s session timeout two take 3+3, a new member resumes committed
#    offsets; every record read exactly once. They run in two lanes at once; each prints its
#    PASS/FAIL lines, shown when both lanes are done;
#  - the Java client's KafkaConsumer (kafka-console-consumer) with group.protocol=consumer
#    (KIP-848) reads and commits, is listed and described, and a second one resumes;
#  - a mixed group of librdkafka (kcat), Java and kafka-python members shares one topic with
#    the range assignor.
# Needs scripts/install-deps.sh (python venv, Kafka jars and interop-client.jar, node modules,
# Go binaries) and kcat. Takes about 2-3 minutes.
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
work="$(mktemp -d)" lanes=() mixed=()
cleanup() {
  local p
  for p in "${lanes[@]}" "${mixed[@]}"; do { kill -KILL "$p"; wait "$p"; } 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

kafka org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create --topic "$T" \
  --partitions "$P" >/dev/null || fail "create topic"
seq 1 "$N" | kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic "$T" \
  --producer-property partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner \
  >/dev/null 2>&1 || fail "produce"

# a kafka-python member (client_group.sh's) reads the N records in group G, commits after every
# poll, and leaves
timeout $((TIMEOUT * 2)) "$PY" "$HERE/kafka_python_groupmember.py" --bootstrap "$B" --topic "$T" \
  --group "$G" --session-timeout-ms 6000 --max "$N" >"$work/kp.out" 2>"$work/kp.err" ||
  fail "kafka-python member in $G exited with status $?: $(tail -n 5 "$work/kp.err")"
read_once="$(awk '$1 == "record" { n++; s[$2 " " $3] = 1 } END { print n + 0 "/" length(s) }' "$work/kp.out")"
[[ "$read_once" == "$N/$N" ]] || fail "kafka-python member read (records/distinct) $read_once, not $N/$N"
grep -qx left "$work/kp.out" || fail "kafka-python member closed without a clean LeaveGroup"

list="$(groups --list)" || fail "--list"
grep -qx "$G" <<<"$list" || fail "--list does not show $G: $list"
desc="$(groups --describe --group "$G" 2>&1)" || fail "--describe: $desc"
got="$(lags <<<"$desc")"
[[ "$got" == "0/$P" ]] || fail "lag/partitions after consuming everything: '$got' in
$desc"
out="$(groups --reset-offsets --group "$G" --topic "$T" --to-earliest --execute 2>&1)" || fail "--reset-offsets: $out"
desc="$(groups --describe --group "$G" 2>&1)"
got="$(lags <<<"$desc")"
[[ "$got" == "$N/$P" ]] || fail "lag/partitions after reset to earliest: '$got' in
$desc"
out="$(groups --delete --group "$G" 2>&1)" || fail "--delete: $out"
grep -q "successful" <<<"$out" || fail "--delete said: $out"
groups --list | grep -qx "$G" && fail "$G still listed after --delete"
echo "PASS: kafka-python group (a member read $N records once and left), kafka-consumer-groups list/describe/reset-offsets/delete"

# The Java client's KafkaConsumer (kafka-console-consumer) with the consumer group protocol
# (KIP-848, group.protocol=consumer: ConsumerGroupHeartbeat, server-side assignor, commits with
# the member epoch): it reads the N records in group G4 and commits; kafka-consumer-groups lists
# G4 with type Consumer and describes it with no lag; after 10 more records a second consumer of
# G4 resumes at the committed offsets and reads exactly those 10.
G4="grp-kip848-$$-$RANDOM"
kip848() {
  kafka org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$B" --topic "$T" \
    --group "$G4" --consumer-property group.protocol=consumer --timeout-ms $((TIMEOUT * 1000)) "$@"
}
kip848 --from-beginning --max-messages "$N" >"$work/kip848-1.out" 2>"$work/kip848-1.err" ||
  fail "group.protocol=consumer console consumer exited with status $?: $(tail -n 5 "$work/kip848-1.err")"
got="$(sort -n "$work/kip848-1.out" | tr '\n' ' ')"
[[ "$got" == "$(seq 1 "$N" | tr '\n' ' ')" ]] || fail "group.protocol=consumer read: $got"
list="$(groups --list --type 2>&1)" || fail "--list --type: $list"
grep -Eq "^$G4 +Consumer *$" <<<"$list" || fail "--list --type does not show $G4 as Consumer: $list"
desc="$(groups --describe --group "$G4" 2>&1)" || fail "--describe $G4: $desc"
got="$(lags <<<"$desc")"
[[ "$got" == "0/$P" ]] || fail "lag/partitions of $G4 after consuming everything: '$got' in
$desc"
seq $((N + 1)) $((N + 10)) | kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" \
  --topic "$T" >/dev/null 2>&1 || fail "produce 10 more"
kip848 --max-messages 10 >"$work/kip848-2.out" 2>"$work/kip848-2.err" ||
  fail "second group.protocol=consumer console consumer exited with status $?: $(tail -n 5 "$work/kip848-2.err")"
got="$(sort -n "$work/kip848-2.out" | tr '\n' ' ')"
[[ "$got" == "$(seq $((N + 1)) $((N + 10)) | tr '\n' ' ')" ]] ||
  fail "group.protocol=consumer did not resume at the committed offsets: read $got"
echo "PASS: Java KafkaConsumer with group.protocol=consumer (KIP-848) read $N records in $G4, listed as type Consumer with no lag, a second consumer resumed at the commits (read only the 10 new ones)"

# The full scenario for each client, in two lanes at once (the members mostly wait: for the
# 3 s initial rebalance delay of a new group and for a killed member's 6 s session timeout).
lane() {
  local n="$1" c st=0; shift
  for c; do
    "$HERE/client_group.sh" "$B" "$c" || st=1
  done >"$work/lane$n.out" 2>&1
  return "$st"
}
lane 1 java aiokafka &
lanes+=($!)
lane 2 kafka-python kafkajs franz-go &
lanes+=($!)
lane_failed=0
for p in "${lanes[@]}"; do wait "$p" || lane_failed=1; done
lanes=()
cat "$work/lane1.out" "$work/lane2.out"

# A mixed group: librdkafka (kcat -G), the Java client (kafka-console-consumer) and kafka-python,
# all offering the range assignor, share one group: 2 of 6 partitions each (kafka-consumer-groups
# --members), and every record is read exactly once between them. Once all are read, the three
# are SIGKILLed together (no member leaves, so no rebalance can hand a partition to another
# member that would read its uncommitted records again; kcat -u writes each record unbuffered,
# so its output is complete when it is killed). Records go round robin to all 6 partitions.
T3="groups-mixed-$$-$RANDOM" G3="grp-mixed-$$-$RANDOM" STAY=$((TIMEOUT * 2))
kafka org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create --topic "$T3" \
  --partitions "$P" >/dev/null || fail "create topic $T3"
kcat -b "$B" -G "$G3" -X partition.assignment.strategy=range -o beginning -q -u \
  -f '%s\n' "$T3" >"$work/kcat.out" 2>"$work/kcat.err" &
mixed+=($!)
java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
  "-Dlog4j2.configurationFile=$HERE/../java/log4j2-tools.properties" -cp "$LIB/*" \
  org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$B" --topic "$T3" \
  --group "$G3" --consumer-property partition.assignment.strategy=org.apache.kafka.clients.consumer.RangeAssignor \
  --timeout-ms $(( STAY * 1000 )) >"$work/java.out" 2>"$work/java.err" &
mixed+=($!)
"$PY" "$HERE/kafka_python_member.py" "$B" "$T3" "$G3" "$STAY" >"$work/py.out" 2>"$work/py.err" &
mixed+=($!)
members3() { groups --describe --group "$G3" --members 2>/dev/null | awk -v g="$G3" '$1 == g && $5 == 2' | wc -l; }
deadline=$((SECONDS + TIMEOUT))
until [[ "$(members3)" -eq 3 ]]; do
  (( SECONDS < deadline )) || fail "kcat, Java and kafka-python never got 2 partitions each in $G3:
$(groups --describe --group "$G3" --members 2>&1)"
  sleep 1
done
seq 1 "$N" | kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic "$T3" \
  --producer-property partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner \
  >/dev/null 2>&1 || fail "produce to $T3"
mixed_read() { cat "$work/kcat.out" "$work/java.out" "$work/py.out" | grep -v '^$' | sort -un | wc -l; }
deadline=$((SECONDS + TIMEOUT))
while (( $(mixed_read) < N && SECONDS < deadline )); do sleep 0.2; done
# (braces: no "Killed" job notices from bash)
{
  for p in "${mixed[@]}"; do kill -KILL "$p"; done
  for p in "${mixed[@]}"; do wait "$p"; done
} 2>/dev/null
mixed=()
got="$(cat "$work/kcat.out" "$work/java.out" "$work/py.out" | grep -v '^$' | sort -n | tr '\n' ' ')"
[[ "$got" == "$(seq 1 "$N" | tr '\n' ' ')" ]] || fail "mixed group read (kcat $(grep -c . "$work/kcat.out"), java $(grep -c . "$work/java.out"), python $(grep -c . "$work/py.out")): $got"
for m in kcat java py; do
  [[ -s "$work/$m.out" ]] || fail "mixed group: $m read nothing of the records spread over all partitions"
done
echo "PASS: mixed group (kcat, Java, kafka-python; range) split $T3 2+2+2 and read every record once (kcat $(grep -c . "$work/kcat.out"), Java $(grep -c . "$work/java.out"), kafka-python $(grep -c . "$work/py.out"))"
(( lane_failed == 0 )) || fail "a client group scenario failed (above)"
