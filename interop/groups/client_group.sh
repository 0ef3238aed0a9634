#!/usr/bin/env bash
# The consumer-group scenario, for one client: kafka-python, aiokafka, kafkajs, franz-go (kgo,
# cooperative-sticky by default) or java (the Java client's KafkaConsumer, classic protocol).
# Each member is its own process (kafka_python_groupmember.py, aiokafka_groupmember.py,
# kafkajs_groupmember.js, interop/go/cmd/franzgroup, sluice.interop.GroupMember) printing:
#   config ...            what it offers in JoinGroup (assignors, session timeout)
#   assigned GEN P,P,...  its whole assignment after every change ("-" when empty)
#   record P O KEY        a record it read
#   committed P O         an offset commit the coordinator accepted
#   error WHAT            a commit, fetch, rebalance or leave error (fails the check)
#   left                  the client reported its LeaveGroup answered without error
#   closed                closed; the process exits 0 right after
# Members commit synchronously after each poll (and, on a rebalance, before giving their
# partitions up), so no record may be read twice in the group.
#  1. 3 members get 2 partitions each, disjoint and covering all 6;
#  2. one closes (LeaveGroup): the other two cover all 6, 3 each, well before the 45 s session
#     timeout of the member that left could have expired;
#  3. a third member joins (2+2+2 again), then one is SIGKILLed: after its 6 s session timeout
#     the two survivors cover all 6, 3 each;
#  4. in a fresh group one member reads and commits 50 records and leaves; after more records
#     are produced a new member starts exactly at the committed offsets (none of the 50 read
#     again, every record after them read).
# Throughout: a member only reads records of partitions it holds, no record is read twice in
# the group, and after each step every record of the topic has been read exactly once (per
# partition: offsets 0..end, no gap). Records are produced by interop/go/bin/franz (keys k-i).
# Prints one PASS line per step, or FAIL and exits 1.
#
#   interop/groups/client_group.sh BOOTSTRAP CLIENT
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="$HERE/../go/bin"
PY="$HERE/../python/.venv/bin/python"
LIB="$HERE/../java/target/lib"
JAR="$HERE/../java/target/interop-client.jar"
TIMEOUT="${INTEROP_TIMEOUT:-60}"
B="${1:?usage: $0 BOOTSTRAP kafka-python|aiokafka|kafkajs|franz-go|java}"
C="${2:?usage: $0 BOOTSTRAP kafka-python|aiokafka|kafkajs|franz-go|java}"
T="groups-$C-$$-$RANDOM" G="grp-$C-$$-$RANDOM" P=6 N=60
work="$(mktemp -d)"
declare -A pid=()
produced=0

case "$C" in
  kafka-python) NAME="kafka-python (KafkaConsumer)" ;;
  aiokafka) NAME="aiokafka (AIOKafkaConsumer)" ;;
  kafkajs) NAME="kafkajs (consumer.run eachBatch)" ;;
  franz-go) NAME="franz-go (kgo)" ;;
  java) NAME="Java KafkaConsumer (classic)" ;;
  *) echo "FAIL: unknown client $C" >&2; exit 1 ;;
esac

cleanup() {
  local m
  for m in "${!pid[@]}"; do { kill -KILL "${pid[$m]}"; wait "${pid[$m]}"; } 2>/dev/null; done
  [[ -n "${GROUPS_KEEP:-}" ]] && { echo "kept $work" >&2; return; }
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  local f
  echo "FAIL: $C group: $*" >&2
  for f in "$work"/*.out; do
    [[ -e "$f" ]] || continue
    echo "--- $(basename "$f" .out): $(grep -v '^record' "$f" | tail -n 12 | tr '\n' ';')" >&2
    tail -n 5 "${f%.out}.err" >&2
  done
  exit 1
}
[[ -x "$GO/franz" && -x "$GO/franzgroup" ]] || fail "$GO/franz and franzgroup not built (scripts/install-deps.sh)"

# member_cmd NAME ARGS...: the command line of a member of client $C
member_cmd() {
  local m="$1"; shift
  case "$C" in
    kafka-python) echo "$PY" "$HERE/kafka_python_groupmember.py" ;;
    aiokafka) echo "$PY" "$HERE/aiokafka_groupmember.py" ;;
    kafkajs) echo node "$HERE/kafkajs_groupmember.js" ;;
    franz-go) echo "$GO/franzgroup" ;;
    java) echo java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
      "-Dlog4j2.configurationFile=$HERE/log4j2-member.properties" "-Dmember.coordlog=$work/$m.coord" \
      -cp "$JAR:$LIB/*" sluice.interop.GroupMember ;;
  esac
}
# member NAME ARGS...: start a group member in the background, its lines in $work/NAME.out
member() {
  local m="$1"; shift
  : >"$work/$m.out"  # exists before the first poll reads it
  # (word splitting of member_cmd is intended: no path here contains a space)
  $(member_cmd "$m") --bootstrap "$B" --topic "$T" "$@" >"$work/$m.out" 2>"$work/$m.err" &
  pid[$m]=$!
}
# stop NAME: SIGTERM, then it must leave the group cleanly and exit 0
stop() {
  local m="$1" deadline=$((SECONDS + TIMEOUT))
  kill -TERM "${pid[$m]}"
  until grep -qx closed "$work/$m.out"; do
    (( SECONDS < deadline )) || fail "$m did not close within ${TIMEOUT}s of SIGTERM"
    sleep 0.2
  done
  wait "${pid[$m]}" || fail "$m exited with status $?"
  unset "pid[$m]"
  grep -qx left "$work/$m.out" || fail "$m closed without a clean LeaveGroup"
}
produce() {
  "$GO/franz" produce --bootstrap "$B" --topic "$T" --codec none --count "$N" "$@" >/dev/null ||
    fail "franz produce $N records to $T"
  produced=$((produced + N))
}
# until_ok SECS DESC CMD...: poll CMD every 0.2 s for up to SECS seconds, else fail with DESC
# (expanded only then, so that $(...) in it shows the state at the deadline)
until_ok() {
  local secs="$1" desc="$2" deadline=$((SECONDS + $1)); shift 2
  until "$@"; do
    (( SECONDS < deadline )) || fail "$(eval "echo \"$desc\"") (not within ${secs}s)"
    sleep 0.2
  done
}

# The last assignment a member printed: "0,3", or "-".
assignment() { awk '$1 == "assigned" { a = $3 } END { print a }' "$work/$1.out"; }
# split WANT NAME...: each member holds WANT partitions; together all P, each once.
split() {
  local want="$1" m a all=""; shift
  for m; do
    a="$(assignment "$m")"
    [[ "$a" != - && -n "$a" ]] || return 1
    [[ "$(tr ',' '\n' <<<"$a" | wc -l)" -eq "$want" ]] || return 1
    all+="$a,"
  done
  [[ "$(tr ',' '\n' <<<"${all%,}" | sort -n | tr '\n' ' ')" == "$(seq 0 $((P - 1)) | tr '\n' ' ')" ]]
}
shown() { local m s=""; for m; do s+="$(assignment "$m") | "; done; echo "${s% | }"; }
# Problems with the records read by these members: a record read twice, a partition whose
# offsets read are not 0..max, or a total other than $produced. Empty output: all read once.
records_problem() {
  local m files=()
  for m; do files+=("$work/$m.out"); done
  awk -v want="$produced" '
    $1 == "record" {
      k = $2 " " $3
      if (k in seen) { if (ndup++ < 10) dup = dup " " $2 ":" $3 } else { seen[k] = 1; n++; d[$2]++ }
      if (!($2 in max) || $3 + 0 > max[$2]) max[$2] = $3 + 0
    }
    END {
      for (p in d) if (d[p] != max[p] + 1) gap = gap " partition " p " (" d[p] " offsets up to " max[p] ")"
      if (ndup) print ndup " records read twice, first:" dup
      if (gap != "") print "offsets missing:" gap
      if (n != want) print "read " n " distinct records of " want
    }' "${files[@]}"
}
all_read() { [[ -z "$(records_problem "$@")" ]]; }
# Records a member read from a partition it did not hold at that point, and error lines.
member_problem() {
  local m
  for m; do
    awk -v m="$m" '
      $1 == "assigned" { delete cur; n = split($3, a, ","); for (i = 1; i <= n; i++) cur[a[i]] = 1 }
      $1 == "record" && !($2 in cur) { bad = bad " " $2 ":" $3 }
      $1 == "error" { print m ": " $0 }
      END { if (bad != "") print m " read records of partitions it did not hold:" bad }' "$work/$m.out"
  done
}
count() { grep -c '^record' "$work/$1.out"; }
check_step() {
  local p
  p="$(member_problem "${all[@]}")"
  [[ -z "$p" ]] || fail "$1: $p"
}
all=()

# 1. three members, 2 partitions each
produce --partitions "$P"
for m in m1 m2 m3; do
  # m3 has a 45 s session timeout, so step 2 can only pass through LeaveGroup
  if [[ $m == m3 ]]; then member m3 --group "$G" --session-timeout-ms 45000; else member "$m" --group "$G" --session-timeout-ms 6000; fi
  all+=("$m")
done
until_ok "$TIMEOUT" '3 members never held 2 partitions each, disjoint: $(shown m1 m2 m3)' split 2 m1 m2 m3
config="$(grep -m1 '^config' "$work/m1.out")"
[[ "$config" == *"session.timeout=6000"* ]] || fail "m1 did not offer a 6 s session: $config"
declare -A before=()
for m in m1 m2 m3; do before[$m]=$(count "$m"); done
produce
until_ok "$TIMEOUT" 'step 1 records: $(records_problem m1 m2 m3)' all_read m1 m2 m3
check_step "step 1"
for m in m1 m2 m3; do
  (( $(count "$m") > before[$m] )) || fail "$m read nothing of the records produced after the split"
done
echo "PASS: $C group, $NAME ${config#config }: 3 member processes split $T 2+2+2 ($(shown m1 m2 m3)), each read only its own partitions, $produced records read once"

# 2. one member closes: LeaveGroup, the other two take over
t0=$SECONDS
stop m3
bound=$(( TIMEOUT < 30 ? TIMEOUT : 30 ))
until_ok "$bound" 'after m3 left, m1 and m2 never held 3 partitions each: $(shown m1 m2)' split 3 m1 m2
took=$((SECONDS - t0))
produce
until_ok "$TIMEOUT" 'step 2 records: $(records_problem m1 m2 m3)' all_read m1 m2 m3
check_step "step 2"
echo "PASS: $C member closed (LeaveGroup without error): the other two took over $T 3+3 ($(shown m1 m2)) in ${took}s (its session timeout is 45 s), $produced records read once"

# 3. a third member joins, then one member is killed without leaving
member m4 --group "$G" --session-timeout-ms 6000
all+=(m4)
until_ok "$TIMEOUT" 'after m4 joined, m1, m2, m4 never held 2 partitions each: $(shown m1 m2 m4)' split 2 m1 m2 m4
# m2 must have committed everything it read, or the survivors would rightly read it again
committed_all() {
  awk '$1 == "record" { r[$2] = $3 + 0 } $1 == "committed" { c[$2] = $3 + 0 }
       END { for (p in r) if (!(p in c) || c[p] <= r[p]) exit 1 }' "$work/m2.out"
}
until_ok "$TIMEOUT" 'm2 never committed all it read' committed_all
t0=$SECONDS
# (braces: no "Killed" job notice from bash)
{ kill -KILL "${pid[m2]}"; wait "${pid[m2]}"; } 2>/dev/null
unset "pid[m2]"
until_ok "$TIMEOUT" 'after m2 was killed, m1 and m4 never held 3 partitions each: $(shown m1 m4)' split 3 m1 m4
took=$((SECONDS - t0))
grep -qx left "$work/m2.out" && fail "killed m2 printed 'left'"
# (whole seconds: 6 s or more show as at least 5)
(( took >= 5 )) || fail "the survivors took over ${took}s after m2 was killed, before its 6 s session timeout"
produce
until_ok "$TIMEOUT" 'step 3 records: $(records_problem "${all[@]}")' all_read "${all[@]}"
check_step "step 3"
echo "PASS: $C member SIGKILLed (6 s session): after ${took}s the survivors held $T 3+3 ($(shown m1 m4)), $produced records read once"
stop m1
stop m4

# 4. committed offsets are where a new member starts
G4="$G-resume" M=50
timeout "$TIMEOUT" $(member_cmd m5) --bootstrap "$B" --topic "$T" --group "$G4" --session-timeout-ms 6000 \
  --max "$M" >"$work/m5.out" 2>"$work/m5.err" || fail "m5 (--max $M) exited with status $?"
[[ "$(count m5)" -eq "$M" ]] || fail "m5 read $(count m5) records, not $M"
grep -qx left "$work/m5.out" || fail "m5 closed without a clean LeaveGroup"
# the commit point of each partition: its last commit, which must be just after the last read
points="$(awk '$1 == "record" { r[$2] = $3 + 0 } $1 == "committed" { c[$2] = $3 + 0 }
  END { for (p in r) { if (c[p] != r[p] + 1) { print "bad " p; exit } printf "%s:%d ", p, c[p] } }' "$work/m5.out" |
  tr ' ' '\n' | sort -n | tr '\n' ' ')"
[[ -n "$points" && "$points" != *bad* ]] || fail "m5's commits do not follow its reads: $points"
produce
total=$produced
member m6 --group "$G4" --session-timeout-ms 6000
enough() { (( $(awk '$1 == "record" { s[$2 " " $3] = 1 } END { print length(s) }' "$work/m6.out") >= total - M )); }
until_ok "$TIMEOUT" 'm6 read $(count m6) records, $((total - M)) expected after the commit point' enough
stop m6
all=(m5 m6)
check_step "step 4"
p="$(records_problem m5 m6)"
[[ -z "$p" ]] || fail "step 4, m5 and m6 together: $p"
# where m6 started on each partition: the commit point, or 0 where m5 committed nothing
starts="$(awk -v pts="$points" '
  BEGIN { n = split(pts, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, ":"); cp[kv[1]] = kv[2] } }
  $1 == "record" && !($2 in first) { first[$2] = $3 + 0 }
  END { for (p in first) if (first[p] != (p in cp ? cp[p] : 0)) printf "partition %s from %d, committed %d; ", p, first[p], cp[p] }' "$work/m6.out")"
[[ -z "$starts" ]] || fail "m6 did not start at the committed offsets: $starts"
echo "PASS: $C new member resumed the committed offsets (${points% }; 0 elsewhere): read the $((total - M)) records after them, none of the $M before"
