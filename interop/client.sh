#!/usr/bin/env bash
# Run one interop client: interop/client.sh CLIENT produce|consume|admin ARGS...
# CLIENT: kcat kafka-python aiokafka kafkajs franz-go sarama sarama-2.1 sarama-3.6 java
# (sarama = sarama's DefaultVersion). Handy by hand, e.g.
#   interop/client.sh java produce --bootstrap 127.0.0.1:9092 --topic t --codec zstd --count 10
set -uo pipefail
I="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 2 ]] || { echo "usage: $0 CLIENT produce|consume|admin ARGS..." >&2; exit 2; }
c="$1" sub="$2"; shift 2
case "$c" in
  kcat)         exec "$I/kcat/kcat-client.sh" "$sub" "$@" ;;
  kafka-python) exec "$I/python/.venv/bin/python" "$I/python/kafka_python_client.py" "$sub" "$@" ;;
  aiokafka)     exec "$I/python/.venv/bin/python" "$I/python/aiokafka_client.py" "$sub" "$@" ;;
  kafkajs)      exec node "$I/js/client.js" "$sub" "$@" ;;
  franz-go)     exec "$I/go/bin/franz" "$sub" "$@" ;;
  sarama)       exec "$I/go/bin/sarama" "$sub" --version default "$@" ;;
  sarama-2.1)   exec "$I/go/bin/sarama" "$sub" --version 2.1.0 "$@" ;;
  sarama-3.6)   exec "$I/go/bin/sarama" "$sub" --version 3.6.0 "$@" ;;
  java)         exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
                  "-Dlog4j2.configurationFile=$I/java/log4j2-tools.properties" \
                  -cp "$I/java/target/interop-client.jar:$I/java/target/lib/*" sluice.interop.InteropClient "$sub" "$@" ;;
  *) echo "FAIL: unknown client $c" >&2; exit 2 ;;
esac
