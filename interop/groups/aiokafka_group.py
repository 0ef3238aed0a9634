"""Consumer-group check with aiokafka (asyncio, its own protocol code).

    aiokafka_group.py BOOTSTRAP TOPIC GROUP PARTITIONS RECORDS

Two members of one group split TOPIC (already holding RECORDS records) evenly, disjoint and
covering, read every record exactly once between them and commit. Exit status 0 on success.
"""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer

bootstrap, topic, group, partitions, records = sys.argv[1:6]
partitions, records = int(partitions), int(records)


async def main():
    members = [AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=10000, heartbeat_interval_ms=500)
               for _ in range(2)]
    for m in members:
        await m.start()
    seen = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    split = None
    while loop.time() < deadline:
        for m in members:
            batch = await m.getmany(timeout_ms=100)
            for tp, msgs in batch.items():
                for msg in msgs:
                    key = (msg.partition, msg.offset)
                    seen[key] = seen.get(key, 0) + 1
            if batch:
                await m.commit()
        sets = [{tp.partition for tp in m.assignment()} for m in members]
        if all(len(s) == partitions // 2 for s in sets) and set().union(*sets) == set(range(partitions)):
            split = sets
        if split and len(seen) >= records:
            break
    for m in members:
        await m.stop()
    if not split:
        raise SystemExit(f"FAIL: aiokafka members never split the topic: {sets}")
    twice = [k for k, n in seen.items() if n > 1]
    if len(seen) < records or twice:
        raise SystemExit(f"FAIL: read {len(seen)} of {records}, twice: {twice}")
    print(f"PASS: aiokafka members got {sorted(split[0])} | {sorted(split[1])}, read {records} records once")


asyncio.run(main())
