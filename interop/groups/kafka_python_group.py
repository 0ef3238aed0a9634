"""Consumer-group check with kafka-python (pure-Python protocol code).

    kafka_python_group.py BOOTSTRAP TOPIC GROUP PARTITIONS RECORDS

Three members subscribe to TOPIC (PARTITIONS partitions holding RECORDS records in all): they
must split the partitions evenly, disjoint and covering; one closes (LeaveGroup) and the other
two must cover every partition; they read everything and commit. Exit status 0 on success.
"""
import sys
import threading
import time

from kafka import KafkaConsumer

bootstrap, topic, group, partitions, records = sys.argv[1:6]
partitions, records = int(partitions), int(records)
DEADLINE_S = 60


class Member(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.assigned = set()
        self.seen = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          session_timeout_ms=10000, heartbeat_interval_ms=500)
        while not self.stop.is_set():
            batch = c.poll(timeout_ms=100)
            for tp, msgs in batch.items():
                for m in msgs:
                    with self.lock:
                        self.seen.add((m.partition, m.offset))
            if batch:
                c.commit()
            with self.lock:
                self.assigned = {tp.partition for tp in c.assignment()}
        c.close()

    def snapshot(self):
        with self.lock:
            return set(self.assigned)


def wait_balanced(members, each):
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        sets = [m.snapshot() for m in members]
        union = set().union(*sets)
        if sum(len(s) for s in sets) == partitions and union == set(range(partitions)) \
                and all(len(s) == each for s in sets):
            return sets
        time.sleep(0.1)
    raise SystemExit(f"FAIL: never balanced at {each} each: {[m.snapshot() for m in members]}")


members = [Member() for _ in range(3)]
for m in members:
    m.start()
print("3 members:", wait_balanced(members, partitions // 3))
members[2].stop.set()
members[2].join()
print("2 members:", wait_balanced(members[:2], partitions // 2))
deadline = time.time() + DEADLINE_S
while time.time() < deadline:
    seen = set().union(*(m.seen for m in members))
    if len(seen) >= records:
        break
    time.sleep(0.1)
seen = set().union(*(m.seen for m in members))
if len(seen) < records:
    raise SystemExit(f"FAIL: read {len(seen)} of {records} records")
time.sleep(1)  # let the last commits go out
for m in members[:2]:
    m.stop.set()
    m.join()
print(f"PASS: read {len(seen)} records, committed")
