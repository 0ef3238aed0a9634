#!/usr/bin/env python3
"""Interop client on kafka-python (pure Python protocol code).

  produce --bootstrap B --topic T --codec C --count N [--partitions P]
  consume --bootstrap B --topic T --count N --codec-tag C [--no-headers] [--no-timestamps]
  admin   --bootstrap B --topic T

Consumes by partition assignment (no consumer group). See interop/README.md.
"""
import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spec  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic  # noqa: E402

TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "60"))
CLIENT_ID = "interop-kafka-python"


def wait_for(what, fn, timeout=30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            ok, last = fn()
            if ok:
                return last
        except Exception as e:  # noqa: BLE001 - report the last error on timeout
            last = repr(e)
        time.sleep(0.2)
    spec.fail("timed out waiting for %s (last: %s)" % (what, last))


def create_topic(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=CLIENT_ID)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
        wait_for("topic %s in metadata" % topic, lambda: _has_partitions(admin, topic, partitions))
    finally:
        admin.close()


def _has_partitions(admin, topic, n):
    t = admin.describe_topics([topic])
    parts = t[0].get("partitions") or []
    return (t[0].get("error_code", 0) == 0 and len(parts) == n
            and all(p["leader_id"] >= 0 for p in parts)), t


def produce(a):
    if a.partitions:
        create_topic(a.bootstrap, a.topic, a.partitions)
    codec = None if a.codec == "none" else a.codec
    p = KafkaProducer(bootstrap_servers=a.bootstrap, client_id=CLIENT_ID, compression_type=codec,
                      acks="all", linger_ms=5, request_timeout_ms=30000)
    base = spec.ts_base()
    futures = []
    for i in range(a.count):
        futures.append(p.send(a.topic, key=spec.key(i).encode(), value=spec.value(i).encode(),
                              headers=[("h", str(i).encode())], timestamp_ms=base + i))
    p.flush(timeout=TIMEOUT)
    parts = set()
    for i, f in enumerate(futures):
        try:
            md = f.get(timeout=TIMEOUT)
        except Exception as e:  # noqa: BLE001
            spec.fail("record %d not acknowledged: %r" % (i, e))
        parts.add(md.partition)
    p.close(timeout=10)
    print("OK kafka-python produced %d records (codec %s) to %s, partitions used %s"
          % (a.count, a.codec, a.topic, sorted(parts)))


def consume(a):
    v = spec.Verifier(a.count, expect_headers=not a.no_headers, expect_ts=not a.no_timestamps)
    c = KafkaConsumer(bootstrap_servers=a.bootstrap, client_id=CLIENT_ID, group_id=None,
                      enable_auto_commit=False, auto_offset_reset="earliest")
    deadline = time.time() + TIMEOUT
    parts = wait_for("partitions of %s" % a.topic,
                     lambda: (bool(c.partitions_for_topic(a.topic)), c.partitions_for_topic(a.topic)))
    tps = [TopicPartition(a.topic, p) for p in sorted(parts)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    while not v.done() and time.time() < deadline:
        batch = c.poll(timeout_ms=500)
        for tp, recs in batch.items():
            for r in recs:
                v.add(tp.partition, r.offset, r.key, r.value, list(r.headers or []), r.timestamp)
    begin = c.beginning_offsets(tps)
    end = c.end_offsets(tps)
    c.close()
    v.finish(sum(end[tp] - begin[tp] for tp in tps))
    print("OK kafka-python consumed %d records from %d partitions (codec tag %s)"
          % (a.count, len(tps), a.codec_tag))


def admin(a):
    t = a.topic
    adm = KafkaAdminClient(bootstrap_servers=a.bootstrap, client_id=CLIENT_ID)
    cluster = adm.describe_cluster()
    broker_ids = {b["broker_id"] for b in cluster["brokers"]}
    if not broker_ids:
        spec.fail("describe_cluster returned no brokers: %r" % cluster)
    if cluster.get("controller_id", -1) not in broker_ids:
        spec.fail("controller_id %r is not one of the brokers %r" % (cluster.get("controller_id"), broker_ids))

    adm.create_topics([NewTopic(t, 3, 1, topic_configs={"retention.ms": "3600000"})])
    wait_for("%s listed" % t, lambda: (t in adm.list_topics(), None))
    desc = wait_for("%s described with 3 led partitions" % t, lambda: _has_partitions(adm, t, 3))
    for p in desc[0]["partitions"]:
        if p["leader_id"] not in broker_ids or p["replica_nodes"] != [p["leader_id"]]:
            spec.fail("partition %r: leader not a broker or replicas != [leader]" % p)
    if sorted(p["partition_index"] for p in desc[0]["partitions"]) != [0, 1, 2]:
        spec.fail("partition indexes wrong: %r" % desc)

    cfg = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)], config_filter="all")
    tcfg = cfg["topic"][t]
    if tcfg.get("retention.ms", {}).get("value") != "3600000":
        spec.fail("describe_configs retention.ms = %r, expected 3600000" % tcfg.get("retention.ms"))
    if tcfg.get("cleanup.policy", {}).get("value") != "delete":
        spec.fail("describe_configs cleanup.policy = %r, expected delete" % tcfg.get("cleanup.policy"))

    adm.create_partitions({t: NewPartitions(total_count=4)})
    wait_for("%s with 4 partitions" % t, lambda: _has_partitions(adm, t, 4))

    adm.delete_topics([t])
    wait_for("%s gone from list" % t, lambda: (t not in adm.list_topics(), None))
    adm.close()
    print("OK kafka-python admin: create(3) list describe configs create_partitions(4) delete on %s" % t)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("produce")
    pp.add_argument("--codec", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    pp.add_argument("--partitions", type=int, default=0)
    pc = sub.add_parser("consume")
    pc.add_argument("--codec-tag", default="")
    pc.add_argument("--no-headers", action="store_true")
    pc.add_argument("--no-timestamps", action="store_true")
    pa = sub.add_parser("admin")
    for x in (pp, pc, pa):
        x.add_argument("--bootstrap", required=True)
        x.add_argument("--topic", required=True)
    for x in (pp, pc):
        x.add_argument("--count", type=int, required=True)
    a = ap.parse_args()
    logging.basicConfig(level=os.environ.get("INTEROP_LOG", "ERROR"), stream=sys.stderr)
    {"produce": produce, "consume": consume, "admin": admin}[a.cmd](a)


if __name__ == "__main__":
    main()
