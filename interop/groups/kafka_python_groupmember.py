"""One kafka-python consumer-group member process, driven by interop/groups/client_group.sh.

    kafka_python_groupmember.py --bootstrap B --topic T --group G [--session-timeout-ms MS] [--max N]

KafkaConsumer (kafka-python's default assignors: range, roundrobin), subscribed to T, autocommit
off: after every poll it commits the offsets after the records it got, synchronously. Prints the
lines of interop/go/cmd/franzgroup on stdout: config, assigned GEN P,P..., record P O KEY,
committed P O, error WHAT, left (kafka-python logged its LeaveGroup answered without error),
closed. SIGTERM (or --max N records read and committed): close, which sends LeaveGroup; exit 0.

kafka-python 3.x runs the group protocol on an IO thread, but a rebalance starts only inside
poll(), after the commit of the previous poll's records: no record read is left uncommitted
when partitions are revoked.
"""
import argparse
import logging
import signal
import sys
import threading

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--group", required=True)
ap.add_argument("--session-timeout-ms", type=int, default=45000)
ap.add_argument("--max", type=int, default=0)
args = ap.parse_args()

out_lock = threading.Lock()


def say(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class LeaveWatch(logging.Handler):
    """kafka-python reports the LeaveGroup answer only in its log (kafka/coordinator/base.py)."""

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("LeaveGroup request for group"):
            say("left" if "returned successfully" in msg else f"error {msg}")
        elif msg.startswith("LeaveGroup request") and record.levelno >= logging.ERROR:
            say(f"error {msg}")


logging.getLogger("kafka.coordinator").setLevel(logging.INFO)
logging.getLogger("kafka.coordinator").addHandler(LeaveWatch())
stderr_log = logging.StreamHandler(sys.stderr)
stderr_log.setLevel(logging.WARNING)
stderr_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
logging.getLogger().addHandler(stderr_log)

owned = set()
last_shown = None
consumer = None


def show():
    global last_shown
    # (the attribute, not group_metadata(): that takes the coordinator's lock, and this runs
    # on the IO thread)
    gen = consumer._coordinator._generation.generation_id
    line = f"assigned {gen} {','.join(str(p) for p in sorted(owned)) or '-'}"
    if line != last_shown:
        last_shown = line
        say(line)


class Listener(ConsumerRebalanceListener):
    # called on kafka-python's IO thread, inside our poll()
    def on_partitions_revoked(self, revoked):
        owned.difference_update(tp.partition for tp in revoked if tp.topic == args.topic)
        show()

    def on_partitions_assigned(self, assigned):
        owned.update(tp.partition for tp in assigned if tp.topic == args.topic)
        show()

    def on_partitions_lost(self, lost):
        say(f"error partitions lost {sorted(tp.partition for tp in lost)}")
        self.on_partitions_revoked(lost)


stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopping.set())

consumer = KafkaConsumer(
    bootstrap_servers=args.bootstrap, group_id=args.group, client_id="interop-kafka-python-group",
    auto_offset_reset="earliest", enable_auto_commit=False,
    session_timeout_ms=args.session_timeout_ms, heartbeat_interval_ms=500)
assignors = ",".join(a.name for a in consumer.config["partition_assignment_strategy"])
say(f"config assignors={assignors} session.timeout={args.session_timeout_ms}")
consumer.subscribe([args.topic], listener=Listener())

read = 0
while not stopping.is_set() and (args.max == 0 or read < args.max):
    limit = args.max - read if args.max else None
    batch = consumer.poll(timeout_ms=200, max_records=limit)
    offsets = {}
    for tp, msgs in batch.items():
        for m in msgs:
            say(f"record {m.partition} {m.offset} {m.key.decode() if m.key else ''}")
            offsets[tp] = m.offset + 1
            read += 1
    if offsets:
        try:
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except Exception as e:  # noqa: BLE001 -- any failure is reported to the driver
            say(f"error OffsetCommit {sorted((tp.partition, o) for tp, o in offsets.items())}: {e!r}")
        else:
            for tp, o in sorted(offsets.items()):
                say(f"committed {tp.partition} {o}")

consumer.close(autocommit=False)
say("closed")
