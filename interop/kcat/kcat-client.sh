#!/usr/bin/env bash
# Interop client on kcat (librdkafka).
#
#   produce --bootstrap B --topic T --codec C --count N [--partitions P]
#   consume --bootstrap B --topic T --count N --codec-tag C [--no-headers] [--no-timestamps]
#   admin   --bootstrap B --topic T
#
# kcat cannot set per-record headers or timestamps, so its records carry no header and a
# CreateTime set by librdkafka (consumers check them with --no-headers --no-timestamps). kcat has
# no topic admin: produce relies on broker auto-creation (--partitions is ignored), and `admin`
# checks metadata (-L), auto-creation and offset queries (-Q) instead. The consumer uses plain
# partition consumption (-C, no group) and hands the records (-J) to verify_jsonl.py.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERIFY="$HERE/../python/verify_jsonl.py"
TIMEOUT="${INTEROP_TIMEOUT:-60}"
KCAT="${KCAT:-kcat}"

fail() { echo "FAIL: $*" >&2; exit 1; }

cmd="${1:-}"; shift || true
bootstrap="" topic="" codec=none count=0 codec_tag="" vflags=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bootstrap) bootstrap="$2"; shift 2 ;;
    --topic) topic="$2"; shift 2 ;;
    --codec) codec="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --codec-tag) codec_tag="$2"; shift 2 ;;
    --partitions) shift 2 ;;
    --no-headers|--no-timestamps) vflags+=("$1"); shift ;;
    *) fail "unknown argument $1" ;;
  esac
done
[[ -n "$bootstrap" && -n "$topic" ]] || fail "--bootstrap and --topic are required"
common=(-b "$bootstrap" -X client.id=interop-kcat -m 30)
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

# partitions of $topic, one per line (from kcat -L -J)
partitions() {
  timeout "$TIMEOUT" "$KCAT" "${common[@]}" -L -J -t "$topic" 2>"$tmp/l.err" | python3 -c '
import json, sys
md = json.load(sys.stdin)
for t in md["topics"]:
    if t.get("error"):
        sys.exit("topic error: %s" % t["error"])
    for p in t["partitions"]:
        print(p["partition"])'
}

# sum over partitions of (end offset - start offset)
log_records() {
  local q=() q2=() p
  for p in "$@"; do q+=(-t "$topic:$p:-1"); q2+=(-t "$topic:$p:-2"); done
  local ends starts
  ends="$(timeout 30 "$KCAT" "${common[@]}" -Q "${q[@]}" 2>&1)" || fail "kcat -Q (end offsets): $ends"
  starts="$(timeout 30 "$KCAT" "${common[@]}" -Q "${q2[@]}" 2>&1)" || fail "kcat -Q (start offsets): $starts"
  python3 - "$ends" "$starts" <<'PY'
import re, sys
def offs(s):
    d = {}
    for line in s.splitlines():
        m = re.search(r"\[(\d+)\] offset (-?\d+)", line)
        if m:
            d[int(m.group(1))] = int(m.group(2))
    return d
e, s = offs(sys.argv[1]), offs(sys.argv[2])
if not e or set(e) != set(s):
    sys.exit("cannot read offsets: %r / %r" % (sys.argv[1], sys.argv[2]))
print(sum(e[p] - s[p] for p in e))
PY
}

case "$cmd" in
  produce)
    python3 - "$count" > "$tmp/in" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    s = "v-%d-" % i
    print("k-%d\t%s" % (i, s + "x" * (100 - len(s))))
PY
    timeout "$TIMEOUT" "$KCAT" "${common[@]}" -P -t "$topic" -K '\t' -l "$tmp/in" \
      -X compression.codec="$codec" -X acks=all -X linger.ms=5 -X message.timeout.ms=30000 \
      > "$tmp/out" 2> "$tmp/err"
    rc=$?
    if [[ $rc -ne 0 ]] || grep -qiE "error|fail" "$tmp/err"; then
      cat "$tmp/err" >&2; fail "kcat produce exited $rc"
    fi
    echo "OK kcat produced $count records (codec $codec) to $topic"
    ;;
  consume)
    deadline=$((SECONDS + TIMEOUT))
    until parts="$(partitions)" && [[ -n "$parts" ]]; do
      (( SECONDS < deadline )) || fail "no partitions for $topic: $(cat "$tmp/l.err")"
      sleep 0.2
    done
    timeout "$TIMEOUT" "$KCAT" "${common[@]}" -C -t "$topic" -o beginning -e -J -q -c "$count" \
      > "$tmp/recs" 2> "$tmp/err"
    rc=$?
    [[ $rc -eq 0 ]] || { cat "$tmp/err" >&2; fail "kcat consume exited $rc (124 = timeout)"; }
    # shellcheck disable=SC2086
    total="$(log_records $parts)" || exit 1
    python3 "$VERIFY" --count "$count" --log-records "$total" "${vflags[@]}" < "$tmp/recs" || exit 1
    echo "OK kcat consumed $count records from $(echo "$parts" | wc -l) partitions (codec tag $codec_tag)"
    ;;
  admin)
    md="$(timeout "$TIMEOUT" "$KCAT" "${common[@]}" -L -J 2>&1)" || fail "kcat -L: $md"
    python3 -c '
import json, sys
md = json.loads(sys.argv[1])
ids = {b["id"] for b in md["brokers"]}
if not ids: sys.exit("FAIL: no brokers in metadata")
if md.get("controllerid") not in ids: sys.exit("FAIL: controller id %r not a broker" % md.get("controllerid"))' "$md" || exit 1
    # auto-create by producing one record, then metadata and offsets for the new topic
    echo "k-0	auto" | timeout "$TIMEOUT" "$KCAT" "${common[@]}" -P -t "$topic" -K '\t' -X acks=all \
      -p 0 2> "$tmp/err" || { cat "$tmp/err" >&2; fail "produce to auto-created topic"; }
    grep -qiE "error|fail" "$tmp/err" && { cat "$tmp/err" >&2; fail "produce to auto-created topic"; }
    tmd="$(timeout "$TIMEOUT" "$KCAT" "${common[@]}" -L -J -t "$topic" 2>&1)" || fail "kcat -L -t: $tmd"
    python3 -c '
import json, sys
md = json.loads(sys.argv[1]); t = md["topics"][0]
if t.get("error"): sys.exit("FAIL: topic error %s" % t["error"])
ids = {b["id"] for b in md["brokers"]}
ps = t["partitions"]
if len(ps) < 1: sys.exit("FAIL: auto-created topic has no partitions")
for p in ps:
    if p["leader"] not in ids: sys.exit("FAIL: partition %r has no live leader" % p)
print(len(ps))' "$tmd" > "$tmp/np" || exit 1
    q="$(timeout 30 "$KCAT" "${common[@]}" -Q -t "$topic:0:-1" 2>&1)" || fail "kcat -Q: $q"
    [[ "$q" == *"[0] offset 1"* ]] || fail "end offset of $topic[0] after one record: '$q' (want 1)"
    q="$(timeout 30 "$KCAT" "${common[@]}" -Q -t "$topic:0:0" 2>&1)" || fail "kcat -Q by time: $q"
    [[ "$q" == *"[0] offset 0"* ]] || fail "offset for time 0 of $topic[0]: '$q' (want 0)"
    echo "OK kcat admin: metadata, auto-create of $topic ($(cat "$tmp/np") partitions), offsets by time"
    ;;
  *) fail "usage: $0 produce|consume|admin --bootstrap B --topic T ..." ;;
esac
