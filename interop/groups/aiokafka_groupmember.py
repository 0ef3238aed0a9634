"""One aiokafka consumer-group member process, driven by interop/groups/client_group.sh.

    aiokafka_groupmember.py --bootstrap B --topic T --group G [--session-timeout-ms MS] [--max N]

AIOKafkaConsumer (aiokafka's default assignor: roundrobin), subscribed to T, autocommit off:
after every getmany it commits the offsets after the records it got. aiokafka rebalances in a
background task, so a rebalance may begin between a getmany and its commit: the rebalance
listener commits what was read and not yet committed before the partitions are given up.
Prints the lines of interop/go/cmd/franzgroup on stdout: config, assigned GEN P,P...,
record P O KEY, committed P O, error WHAT, left (aiokafka logged its LeaveGroup answered without
error), closed. SIGTERM (or --max N records read and committed): stop, which sends LeaveGroup;
exit 0.
"""
import argparse
import asyncio
import logging
import signal
import sys

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--group", required=True)
ap.add_argument("--session-timeout-ms", type=int, default=45000)
ap.add_argument("--max", type=int, default=0)
args = ap.parse_args()


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class LeaveWatch(logging.Handler):
    """aiokafka reports the LeaveGroup answer only in its log (consumer/group_coordinator.py)."""

    def emit(self, record):
        msg = record.getMessage()
        if msg == "LeaveGroup request succeeded":
            say("left")
        elif msg.startswith("LeaveGroup request failed"):
            say(f"error {msg}")


logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.INFO)
logging.getLogger("aiokafka.consumer.group_coordinator").addHandler(LeaveWatch())
stderr_log = logging.StreamHandler(sys.stderr)
stderr_log.setLevel(logging.WARNING)
stderr_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
logging.getLogger().addHandler(stderr_log)

owned = set()
pending = {}    # partition -> offset after the last record read and not yet committed
committed = {}  # partition -> last offset committed
last_shown = None
consumer = None


def show():
    global last_shown
    line = f"assigned {consumer._coordinator.generation} {','.join(str(p) for p in sorted(owned)) or '-'}"
    if line != last_shown:
        last_shown = line
        say(line)


async def commit(partitions=None):
    """Commit the pending offsets (of these partitions); print what the coordinator accepted."""
    offsets = {p: o for p, o in pending.items() if partitions is None or p in partitions}
    if not offsets:
        return
    try:
        await consumer.commit({TopicPartition(args.topic, p): o for p, o in offsets.items()})
    except Exception as e:  # noqa: BLE001 -- reported to the driver
        # the rebalance listener may have committed them meanwhile (then this one failing, as
        # the partitions are no longer assigned, is harmless)
        if any(committed.get(p, -1) < o for p, o in offsets.items()):
            say(f"error OffsetCommit {sorted(offsets.items())}: {e!r}")
        return
    for p, o in sorted(offsets.items()):
        if committed.get(p, -1) < o:
            committed[p] = o
            say(f"committed {p} {o}")
        if pending.get(p) == o:
            del pending[p]


class Listener(ConsumerRebalanceListener):
    async def on_partitions_revoked(self, revoked):
        ps = {tp.partition for tp in revoked if tp.topic == args.topic}
        await commit(ps)
        owned.difference_update(ps)
        show()

    async def on_partitions_assigned(self, assigned):
        owned.update(tp.partition for tp in assigned if tp.topic == args.topic)
        show()


async def main():
    global consumer
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group, client_id="interop-aiokafka-group",
        auto_offset_reset="earliest", enable_auto_commit=False,
        session_timeout_ms=args.session_timeout_ms, heartbeat_interval_ms=500)
    consumer.subscribe([args.topic], listener=Listener())
    await consumer.start()
    assignors = ",".join(a.name for a in consumer._coordinator._assignors)
    say(f"config assignors={assignors} session.timeout={args.session_timeout_ms}")
    read = 0
    while not stopping.is_set() and (args.max == 0 or read < args.max):
        batch = await consumer.getmany(timeout_ms=200, max_records=args.max - read if args.max else None)
        for tp, msgs in batch.items():
            for m in msgs:
                say(f"record {m.partition} {m.offset} {m.key.decode() if m.key else ''}")
                pending[m.partition] = m.offset + 1
                read += 1
        await commit()
    await consumer.stop()
    say("closed")


asyncio.run(main())
