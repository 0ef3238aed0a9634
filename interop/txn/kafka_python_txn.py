#!/usr/bin/env python3
"""The transaction scenario (txnspec.py) on kafka-python's transactional KafkaProducer.

  kafka_python_txn.py --bootstrap B --prefix P
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import txnspec as S  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.errors import ProducerFencedError  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "60"))
CLIENT_ID = "interop-txn-kafka-python"


def create_topics(b, names):
    admin = KafkaAdminClient(bootstrap_servers=b, client_id=CLIENT_ID)
    try:
        admin.create_topics([NewTopic(t, S.PARTITIONS, 1) for t in names])
    finally:
        admin.close()


def producer(b, tid=None):
    if tid is None:
        return KafkaProducer(bootstrap_servers=b, client_id=CLIENT_ID, acks="all")
    p = KafkaProducer(bootstrap_servers=b, client_id=CLIENT_ID, transactional_id=tid)
    p.init_transactions()
    return p


def send_all(p, topic, recs):
    for part, k, v in recs:
        p.send(topic, key=k.encode(), value=v.encode(), partition=part)
    p.flush()


def read_until(b, topic, isolation, last):
    """Reads both partitions from the start until each one's value `last[p]` arrived."""
    c = KafkaConsumer(bootstrap_servers=b, client_id=CLIENT_ID, group_id=None,
                      isolation_level=isolation, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(S.PARTITIONS)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = {p: [] for p in range(S.PARTITIONS)}
    deadline = time.time() + TIMEOUT
    try:
        while time.time() < deadline:
            for tp, msgs in c.poll(timeout_ms=500).items():
                got[tp.partition].extend(m.value.decode() for m in msgs)
            if all(last.get(p) is None or last[p] in got[p] for p in got):
                break
        return got
    finally:
        c.close()


def step_produce(st, b, topic, tid):
    p = producer(b, tid)
    try:
        p.begin_transaction()
        send_all(p, topic, S.TXN1)
        p.commit_transaction()
        p.begin_transaction()
        send_all(p, topic, S.TXN2)
        p.abort_transaction()
        p.begin_transaction()
        send_all(p, topic, S.TXN3)
        p.commit_transaction()
    finally:
        p.close()
    st.ok("produce", "commit 10, abort 5, commit 10")


def step_ctp(st, b, prefix):
    tin, tout, group = prefix + "-in", prefix + "-out", prefix + "-group"
    plain = producer(b)
    send_all(plain, tin, S.ROUND1)
    c = KafkaConsumer(tin, bootstrap_servers=b, client_id=CLIENT_ID, group_id=group,
                      isolation_level="read_committed", enable_auto_commit=False,
                      auto_offset_reset="earliest")
    p = producer(b, prefix + "-ctp")
    try:
        ends = None
        for rnd, recs, commit in ((1, S.ROUND1, True), (2, S.ROUND2, False)):
            if rnd == 2:
                send_all(plain, tin, recs)
            seen, deadline = [], time.time() + TIMEOUT
            p.begin_transaction()
            while len(seen) < len(recs) and time.time() < deadline:
                for tp, msgs in c.poll(timeout_ms=500).items():
                    for m in msgs:
                        seen.append(m.value.decode())
                        p.send(tout, key=m.key, value=S.transform(m.value.decode()).encode(),
                               partition=tp.partition)
            if sorted(seen) != sorted(v for _p, _k, v in recs):
                st.fail("ctp", "round %d consumed %s" % (rnd, seen))
                return
            offsets = {TopicPartition(tin, q): OffsetAndMetadata(c.position(TopicPartition(tin, q)), "", -1)
                       for q in range(S.PARTITIONS)}
            # an abort drops records not sent yet: flush, so the aborted round reaches the log
            p.flush()
            p.send_offsets_to_transaction(offsets, c.group_metadata())
            if commit:
                p.commit_transaction()
                ends = {tp.partition: om.offset for tp, om in offsets.items()}
            else:
                p.abort_transaction()
        # a committed sentinel after the aborted round bounds the reads of the output
        p.begin_transaction()
        send_all(p, tout, [(q, S.SENTINEL, S.SENTINEL) for q in range(S.PARTITIONS)])
        p.commit_transaction()
    finally:
        p.close()
        plain.close()
        c.close()
    check = KafkaConsumer(bootstrap_servers=b, client_id=CLIENT_ID, group_id=group,
                          isolation_level="read_committed", enable_auto_commit=False)
    committed = {q: check.committed(TopicPartition(tin, q)) for q in range(S.PARTITIONS)}
    check.close()
    if committed != ends or ends != {0: 5, 1: 5}:
        st.fail("ctp", "group's committed offsets %s, round 1 ended at %s" % (committed, ends))
        return
    last = S.last_values(S.expect_out_committed())
    got = read_until(b, tout, "read_committed", last)
    if S.compare(got, S.expect_out_committed()):
        st.fail("ctp", "output read_committed: " + S.compare(got, S.expect_out_committed()))
        return
    got = read_until(b, tout, "read_uncommitted", last)
    st.check("ctp", got, S.expect_out_uncommitted(),
             "committed offsets %s; output holds round 1 only (both rounds read_uncommitted)" % committed)


def step_fencing(st, b, prefix):
    topic, tid = prefix + "-fence", prefix + "-fenced"
    p1 = producer(b, tid)
    p1.begin_transaction()
    send_all(p1, topic, [(0, "f1", "f1")])
    p2 = producer(b, tid)
    try:
        p1.commit_transaction()
        st.fail("fencing", "the first producer's commit succeeded after a second one took its id")
        return
    except ProducerFencedError as e:
        fenced = type(e).__name__
    except Exception as e:  # noqa: BLE001 - any other error is reported
        st.fail("fencing", "first producer's commit failed with %r, not ProducerFencedError" % e)
        return
    finally:
        p1.close(timeout=5)
    p2.begin_transaction()
    send_all(p2, topic, [(0, "f2", "f2")])
    p2.commit_transaction()
    p2.close()
    got = read_until(b, topic, "read_committed", {0: "f2"})
    st.check("fencing", got, {0: ["f2"], 1: []}, "first commit raised " + fenced)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", required=True)
    a = ap.parse_args()
    st, b, topic = S.Steps(), a.bootstrap, a.prefix + "-t"
    create_topics(b, [topic, a.prefix + "-in", a.prefix + "-out", a.prefix + "-fence"])
    step_produce(st, b, topic, a.prefix + "-tx")
    got = read_until(b, topic, "read_committed", S.last_values(S.expect_committed()))
    st.check("read-committed", got, S.expect_committed(), "20 committed records, none aborted")
    got = read_until(b, topic, "read_uncommitted", S.last_values(S.expect_uncommitted()))
    st.check("read-uncommitted", got, S.expect_uncommitted(), "all 25")
    step_ctp(st, b, a.prefix)
    step_fencing(st, b, a.prefix)


if __name__ == "__main__":
    main()
