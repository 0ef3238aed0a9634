"""One kafka-python member of a consumer group, for mixed-client groups.

    kafka_python_member.py BOOTSTRAP TOPIC GROUP SECONDS

Subscribes with the range assignor, prints each record's value on its own line, and leaves the
group after SECONDS.
"""
import sys
import time

from kafka import KafkaConsumer
from kafka.coordinator.assignors.range import RangePartitionAssignor

bootstrap, topic, group, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                  partition_assignment_strategy=[RangePartitionAssignor],
                  session_timeout_ms=10000, heartbeat_interval_ms=500)
end = time.time() + seconds
while time.time() < end:
    for msgs in c.poll(timeout_ms=200).values():
        for m in msgs:
            print(m.value.decode(), flush=True)
c.close()
