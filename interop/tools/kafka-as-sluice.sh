#!/usr/bin/env bash
# Test-of-the-test shim: behaves like `sluice server --override k=v ...` but runs Apache Kafka
# (single KRaft node, jars from interop/java/target/lib) in the foreground. It lets the part of
# scripts/interop.sh that starts the server itself be checked before the Sluice binary exists:
#   SLUICE_BIN=interop/tools/kafka-as-sluice.sh INTEROP_ONLY=admin/ scripts/interop.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/../java/target/lib"
[[ "${1:-}" == server ]] || { echo "usage: $0 server [--override k=v]..." >&2; exit 2; }
shift
declare -A P=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --override) P["${2%%=*}"]="${2#*=}"; shift 2 ;;
    *) echo "kafka-as-sluice: unsupported argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "${P[listeners]:-}" && -n "${P[log.dirs]:-}" ]] || { echo "need listeners and log.dirs overrides" >&2; exit 2; }
cport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
dir="${P[log.dirs]}"; mkdir -p "$dir"
props="$dir/../kafka-as-sluice.properties"
{
  echo "process.roles=broker,controller"
  echo "node.id=1"
  echo "controller.quorum.voters=1@127.0.0.1:$cport"
  echo "controller.listener.names=CONTROLLER"
  echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  echo "offsets.topic.replication.factor=1"
  echo "transaction.state.log.replication.factor=1"
  echo "transaction.state.log.min.isr=1"
  echo "share.coordinator.state.topic.replication.factor=1"
  echo "share.coordinator.state.topic.min.isr=1"
  for k in "${!P[@]}"; do
    if [[ "$k" == listeners ]]; then echo "listeners=${P[$k]},CONTROLLER://127.0.0.1:$cport"; else echo "$k=${P[$k]}"; fi
  done
} > "$props"
cid="$(python3 -c 'import uuid,base64; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
java -Xmx256m -cp "$LIB/*" kafka.tools.StorageTool format -t "$cid" -c "$props" >/dev/null
exec java -Xmx1G -Xms1G -XX:+UseG1GC -cp "$LIB/*" kafka.Kafka "$props"
