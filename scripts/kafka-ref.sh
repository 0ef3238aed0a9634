#!/usr/bin/env bash
# Reference Apache Kafka broker for the interop suite: one KRaft node with both roles, run from the
# Maven Central jars that scripts/install-deps.sh copies to interop/java/target/lib.
#
#   scripts/kafka-ref.sh start PORT DIR   format DIR (first time), start, wait until it serves
#   scripts/kafka-ref.sh stop  PORT DIR   stop it (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka-ref.sh status PORT DIR
#
# Client listener: PLAINTEXT://127.0.0.1:PORT. The controller listener takes a free port chosen at
# start. Logs: DIR/server.log, and DIR/request.log (kafka.request.logger at DEBUG: one line per
# request with api key, api version and client id; set KAFKA_REQUEST_LOG=0 to turn it off).
# Heap as in Kafka's kafka-server-start.sh: -Xmx1G -Xms1G (KAFKA_HEAP_OPTS overrides).
# Broker settings for the suite: auto.create.topics.enable=true, num.partitions=4 (as the Sluice
# server is started by scripts/interop.sh). Extra properties: KAFKA_REF_EXTRA="k=v k2=v2".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$ROOT/interop/java/target/lib"

usage() { echo "usage: $0 start|stop|status PORT DIR" >&2; exit 2; }
[[ $# -eq 3 ]] || usage
CMD="$1"; PORT="$2"; DIR="$3"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PIDFILE="$DIR/kafka.pid"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_open() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); sys.exit(0)
except OSError:
    sys.exit(1)
EOF
}

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  if running; then echo "kafka-ref: already running (pid $(cat "$PIDFILE")) on port $PORT"; return 0; fi
  if ! ls "$LIB"/kafka_2.13-*.jar >/dev/null 2>&1; then
    echo "kafka-ref: $LIB has no kafka_2.13 jar; run scripts/install-deps.sh first" >&2; exit 1
  fi
  if port_open "$PORT"; then echo "kafka-ref: port $PORT is already in use" >&2; exit 1; fi
  local cport; cport="$(free_port)"
  while [[ "$cport" == "$PORT" ]]; do cport="$(free_port)"; done
  cat > "$DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  for kv in ${KAFKA_REF_EXTRA:-}; do echo "$kv" >> "$DIR/server.properties"; done
  local reqlevel=DEBUG; [[ "${KAFKA_REQUEST_LOG:-1}" == 0 ]] && reqlevel=WARN
  cat > "$DIR/log4j2.properties" <<EOF
status = warn
appender.server.type = File
appender.server.name = server
appender.server.fileName = $DIR/server.log
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.req.type = File
appender.req.name = req
appender.req.fileName = $DIR/request.log
appender.req.layout.type = PatternLayout
appender.req.layout.pattern = [%d] %m%n
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = server
logger.req.name = kafka.request.logger
logger.req.level = $reqlevel
logger.req.additivity = false
logger.req.appenderRef.req.ref = req
EOF
  local heap="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
  local jvm=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
             -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
             "-Dlog4j2.configurationFile=$DIR/log4j2.properties")
  if [[ ! -f "$DIR/data/meta.properties" ]]; then
    local cid
    # (an id starting with '-' would be read by StorageTool as an option)
    cid="$(python3 -c 'import uuid,base64
while True:
    c = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not c.startswith("-"):
        print(c); break')"
    java -Xmx256m "-Dlog4j2.configurationFile=$DIR/log4j2.properties" -cp "$LIB/*" \
      kafka.tools.StorageTool format -t "$cid" -c "$DIR/server.properties" > "$DIR/format.log" 2>&1 \
      || { echo "kafka-ref: storage format failed:" >&2; cat "$DIR/format.log" >&2; exit 1; }
  fi
  # shellcheck disable=SC2086
  nohup java $heap "${jvm[@]}" -cp "$LIB/*" kafka.Kafka "$DIR/server.properties" \
    > "$DIR/stdout.log" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  local deadline=$((SECONDS + ${KAFKA_REF_START_TIMEOUT:-120}))
  while (( SECONDS < deadline )); do
    if ! running; then
      echo "kafka-ref: broker exited during start; tail of logs:" >&2
      tail -n 30 "$DIR/stdout.log" "$DIR/server.log" >&2 2>/dev/null || true
      exit 1
    fi
    if grep -q "Kafka Server started" "$DIR/server.log" 2>/dev/null && port_open "$PORT"; then
      echo "kafka-ref: Apache Kafka ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), dir $DIR)"
      return 0
    fi
    sleep 0.5
  done
  echo "kafka-ref: not ready within timeout; tail of server.log:" >&2
  tail -n 30 "$DIR/server.log" >&2 2>/dev/null || true
  stop; exit 1
}

stop() {
  if ! running; then echo "kafka-ref: not running"; rm -f "$PIDFILE"; return 0; fi
  local pid; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.3; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
  echo "kafka-ref: stopped (pid $pid)"
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running pid $(cat "$PIDFILE")"; else echo "stopped"; exit 1; fi ;;
  *) usage ;;
esac
