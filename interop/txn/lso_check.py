#!/usr/bin/env python3
"""The last stable offset around an open transaction, on kafka-python (txn.sh's txn/tools/lso).

  lso_check.py --bootstrap B --topic T --prefix P --phase open|closed

T's partition 0 holds one record of a transaction that hold_txn.py keeps open, at offset 0.
  open    a second transactional producer commits `after` to partition 0. read_committed, the
          end offset (ListOffsets, the LSO) stays at 0, the open transaction's first offset;
          read_uncommitted it is 3 (held, after, the commit marker)
  closed  (after the held transaction was aborted) read_committed reads exactly `after`,
          and the LSO is the high watermark (4: held, after, two markers)
Prints `ok lso DETAIL` or `fail lso WHY`.
"""
import argparse
import os
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "60"))


def end_offset(b, tp, isolation):
    c = KafkaConsumer(bootstrap_servers=b, group_id=None, isolation_level=isolation,
                      client_id="interop-txn-lso")
    try:
        return c.end_offsets([tp])[tp]
    finally:
        c.close()


def read_committed_until(b, tp, value):
    c = KafkaConsumer(bootstrap_servers=b, group_id=None, isolation_level="read_committed",
                      enable_auto_commit=False, client_id="interop-txn-lso")
    c.assign([tp])
    c.seek_to_beginning(tp)
    got, deadline = [], time.time() + TIMEOUT
    try:
        while value not in got and time.time() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                got.extend(m.value.decode() for m in msgs)
        return got
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--phase", choices=("open", "closed"), required=True)
    a = ap.parse_args()
    b, tp = a.bootstrap, TopicPartition(a.topic, 0)
    if a.phase == "open":
        p = KafkaProducer(bootstrap_servers=b, transactional_id=a.prefix + "-lso",
                          client_id="interop-txn-lso")
        p.init_transactions()
        p.begin_transaction()
        p.send(a.topic, key=b"after", value=b"after", partition=0)
        p.commit_transaction()
        p.close()
        lso, hw = end_offset(b, tp, "read_committed"), end_offset(b, tp, "read_uncommitted")
        if (lso, hw) != (0, 3):
            print("fail lso with a transaction open at offset 0 and one committed after it: "
                  "read_committed end offset %s (want 0), read_uncommitted %s (want 3)" % (lso, hw))
            return
        print("ok lso open: LSO 0 below a committed transaction, high watermark 3")
    else:
        got = read_committed_until(b, tp, "after")
        lso = end_offset(b, tp, "read_committed")
        if got != ["after"] or lso != 4:
            print("fail lso after the held transaction aborted: read_committed read %s (want "
                  "['after']), end offset %s (want 4)" % (got, lso))
            return
        print("ok lso closed: read_committed reads only the committed record, LSO 4")


if __name__ == "__main__":
    main()
