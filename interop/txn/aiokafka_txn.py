#!/usr/bin/env python3
"""The transaction scenario (txnspec.py) on aiokafka's transactional AIOKafkaProducer.

aiokafka's send_offsets_to_transaction takes a group id only (no generation or member id), so
its transactional offset commit is not fenced by group generation (KIP-447); see FINDINGS.md.

  aiokafka_txn.py --bootstrap B --prefix P
"""
import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import txnspec as S  # noqa: E402

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.errors import ProducerFenced  # noqa: E402

TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "60"))
CLIENT_ID = "interop-txn-aiokafka"


async def create_topics(b, names):
    admin = AIOKafkaAdminClient(bootstrap_servers=b, client_id=CLIENT_ID)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, S.PARTITIONS, 1) for t in names])
    finally:
        await admin.close()


async def producer(b, tid=None):
    if tid is None:
        p = AIOKafkaProducer(bootstrap_servers=b, client_id=CLIENT_ID, acks="all")
    else:
        # start() sends InitProducerId for the transactional id
        p = AIOKafkaProducer(bootstrap_servers=b, client_id=CLIENT_ID, transactional_id=tid)
    await p.start()
    return p


async def send_all(p, topic, recs):
    futs = [await p.send(topic, key=k.encode(), value=v.encode(), partition=part) for part, k, v in recs]
    await asyncio.gather(*futs)


async def read_until(b, topic, isolation, last):
    """Reads both partitions from the start until each one's value `last[p]` arrived."""
    c = AIOKafkaConsumer(bootstrap_servers=b, client_id=CLIENT_ID, group_id=None,
                         isolation_level=isolation, enable_auto_commit=False)
    await c.start()
    tps = [TopicPartition(topic, p) for p in range(S.PARTITIONS)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    got = {p: [] for p in range(S.PARTITIONS)}
    deadline = time.time() + TIMEOUT
    try:
        while time.time() < deadline:
            for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                got[tp.partition].extend(m.value.decode() for m in msgs)
            if all(last.get(p) is None or last[p] in got[p] for p in got):
                break
        return got
    finally:
        await c.stop()


async def step_produce(st, b, topic, tid):
    p = await producer(b, tid)
    try:
        for recs, commit in ((S.TXN1, True), (S.TXN2, False), (S.TXN3, True)):
            await p.begin_transaction()
            await send_all(p, topic, recs)
            await (p.commit_transaction() if commit else p.abort_transaction())
    finally:
        await p.stop()
    st.ok("produce", "commit 10, abort 5, commit 10")


async def step_ctp(st, b, prefix):
    tin, tout, group = prefix + "-in", prefix + "-out", prefix + "-group"
    plain = await producer(b)
    await send_all(plain, tin, S.ROUND1)
    c = AIOKafkaConsumer(tin, bootstrap_servers=b, client_id=CLIENT_ID, group_id=group,
                         isolation_level="read_committed", enable_auto_commit=False,
                         auto_offset_reset="earliest")
    await c.start()
    p = await producer(b, prefix + "-ctp")
    try:
        ends = None
        for rnd, recs, commit in ((1, S.ROUND1, True), (2, S.ROUND2, False)):
            if rnd == 2:
                await send_all(plain, tin, recs)
            seen, deadline = [], time.time() + TIMEOUT
            await p.begin_transaction()
            while len(seen) < len(recs) and time.time() < deadline:
                for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                    for m in msgs:
                        seen.append(m.value.decode())
                        await p.send(tout, key=m.key, value=S.transform(m.value.decode()).encode(),
                                     partition=tp.partition)
            if sorted(seen) != sorted(v for _p, _k, v in recs):
                st.fail("ctp", "round %d consumed %s" % (rnd, seen))
                return
            offsets = {TopicPartition(tin, q): await c.position(TopicPartition(tin, q))
                       for q in range(S.PARTITIONS)}
            # an abort drops records not sent yet: flush, so the aborted round reaches the log
            await p.flush()
            await p.send_offsets_to_transaction(offsets, group)
            if commit:
                await p.commit_transaction()
                ends = {tp.partition: o for tp, o in offsets.items()}
            else:
                await p.abort_transaction()
        # a committed sentinel after the aborted round bounds the reads of the output
        await p.begin_transaction()
        await send_all(p, tout, [(q, S.SENTINEL, S.SENTINEL) for q in range(S.PARTITIONS)])
        await p.commit_transaction()
    finally:
        await p.stop()
        await plain.stop()
        await c.stop()
    check = AIOKafkaConsumer(bootstrap_servers=b, client_id=CLIENT_ID, group_id=group,
                             isolation_level="read_committed", enable_auto_commit=False)
    await check.start()
    committed = {q: await check.committed(TopicPartition(tin, q)) for q in range(S.PARTITIONS)}
    await check.stop()
    if committed != ends or ends != {0: 5, 1: 5}:
        st.fail("ctp", "group's committed offsets %s, round 1 ended at %s" % (committed, ends))
        return
    last = S.last_values(S.expect_out_committed())
    got = await read_until(b, tout, "read_committed", last)
    why = S.compare(got, S.expect_out_committed())
    if why:
        st.fail("ctp", "output read_committed: " + why)
        return
    got = await read_until(b, tout, "read_uncommitted", last)
    st.check("ctp", got, S.expect_out_uncommitted(),
             "committed offsets %s; output holds round 1 only (both rounds read_uncommitted)" % committed)


async def step_fencing(st, b, prefix):
    topic, tid = prefix + "-fence", prefix + "-fenced"
    p1 = await producer(b, tid)
    await p1.begin_transaction()
    await send_all(p1, topic, [(0, "f1", "f1")])
    p2 = await producer(b, tid)
    try:
        await asyncio.wait_for(p1.commit_transaction(), TIMEOUT)
        st.fail("fencing", "the first producer's commit succeeded after a second one took its id")
        return
    except ProducerFenced as e:
        fenced = type(e).__name__
    except Exception as e:  # noqa: BLE001 - any other error is reported
        st.fail("fencing", "first producer's commit failed with %r, not ProducerFenced" % e)
        return
    finally:
        try:
            await asyncio.wait_for(p1.stop(), 10)
        except Exception:  # noqa: BLE001 - a fenced producer may fail to stop cleanly
            pass
    await p2.begin_transaction()
    await send_all(p2, topic, [(0, "f2", "f2")])
    await p2.commit_transaction()
    await p2.stop()
    got = await read_until(b, topic, "read_committed", {0: "f2"})
    st.check("fencing", got, {0: ["f2"], 1: []}, "first commit raised " + fenced)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", required=True)
    a = ap.parse_args()
    st, b, topic = S.Steps(), a.bootstrap, a.prefix + "-t"
    await create_topics(b, [topic, a.prefix + "-in", a.prefix + "-out", a.prefix + "-fence"])
    await step_produce(st, b, topic, a.prefix + "-tx")
    got = await read_until(b, topic, "read_committed", S.last_values(S.expect_committed()))
    st.check("read-committed", got, S.expect_committed(), "20 committed records, none aborted")
    got = await read_until(b, topic, "read_uncommitted", S.last_values(S.expect_uncommitted()))
    st.check("read-uncommitted", got, S.expect_uncommitted(), "all 25")
    await step_ctp(st, b, a.prefix)
    await step_fencing(st, b, a.prefix)


if __name__ == "__main__":
    asyncio.run(main())
