#!/usr/bin/env python3
"""Interop client on aiokafka (asyncio; its own protocol layer, forked from kafka-python 1.x).

  produce --bootstrap B --topic T --codec C --count N [--partitions P]
  consume --bootstrap B --topic T --count N --codec-tag C [--no-headers] [--no-timestamps]
  admin   --bootstrap B --topic T

Consumes by partition assignment (group_id=None). The producer runs with enable_idempotence=True
(aiokafka's default is off) so InitProducerId and sequence numbers are exercised from Python too.
"""
import argparse
import asyncio
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spec  # noqa: E402

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic  # noqa: E402
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: E402

TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "60"))
CLIENT_ID = "interop-aiokafka"


async def wait_for(what, fn, timeout=30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            ok, last = await fn()
            if ok:
                return last
        except Exception as e:  # noqa: BLE001
            last = repr(e)
        await asyncio.sleep(0.2)
    spec.fail("timed out waiting for %s (last: %s)" % (what, last))


def check_errors(resp, what):
    obj = resp.to_object()
    for key in ("topic_errors", "topics", "results"):
        for t in obj.get(key, []) or []:
            code = t.get("error_code", 0)
            if code:
                spec.fail("%s: error %s (%s)" % (what, code, t))
    return obj


async def partitions_led(adm, topic, n):
    ts = await adm.describe_topics([topic])
    t = ts[0]
    parts = t.get("partitions") or []
    ok = t.get("error_code", 0) == 0 and len(parts) == n and all(p["leader"] >= 0 for p in parts)
    return ok, t


async def produce(a):
    if a.partitions:
        adm = AIOKafkaAdminClient(bootstrap_servers=a.bootstrap, client_id=CLIENT_ID)
        await adm.start()
        try:
            check_errors(await adm.create_topics([NewTopic(a.topic, a.partitions, 1)]), "create_topics")
            await wait_for("%s with %d led partitions" % (a.topic, a.partitions),
                           lambda: partitions_led(adm, a.topic, a.partitions))
        finally:
            await adm.close()
    codec = None if a.codec == "none" else a.codec
    p = AIOKafkaProducer(bootstrap_servers=a.bootstrap, client_id=CLIENT_ID, compression_type=codec,
                         acks="all", enable_idempotence=True, linger_ms=5, request_timeout_ms=30000)
    await p.start()
    base = spec.ts_base()
    futs = []
    try:
        for i in range(a.count):
            futs.append(await p.send(a.topic, key=spec.key(i).encode(), value=spec.value(i).encode(),
                                     headers=[("h", str(i).encode())], timestamp_ms=base + i))
        await p.flush()
        parts = set()
        for i, f in enumerate(futs):
            try:
                md = await asyncio.wait_for(f, TIMEOUT)
            except Exception as e:  # noqa: BLE001
                spec.fail("record %d not acknowledged: %r" % (i, e))
            parts.add(md.partition)
    finally:
        await p.stop()
    print("OK aiokafka produced %d records (codec %s) to %s, partitions used %s"
          % (a.count, a.codec, a.topic, sorted(parts)))


async def consume(a):
    v = spec.Verifier(a.count, expect_headers=not a.no_headers, expect_ts=not a.no_timestamps)
    c = AIOKafkaConsumer(bootstrap_servers=a.bootstrap, client_id=CLIENT_ID, group_id=None,
                         enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    try:
        deadline = time.time() + TIMEOUT

        async def parts():
            await c._client.force_metadata_update()  # noqa: SLF001 - no public way to refresh
            ps = c.partitions_for_topic(a.topic)
            return bool(ps), ps
        ps = await wait_for("partitions of %s" % a.topic, parts)
        tps = [TopicPartition(a.topic, p) for p in sorted(ps)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        while not v.done() and time.time() < deadline:
            batch = await c.getmany(timeout_ms=500)
            for tp, recs in batch.items():
                for r in recs:
                    v.add(tp.partition, r.offset, r.key, r.value, list(r.headers or []), r.timestamp)
        begin = await c.beginning_offsets(tps)
        end = await c.end_offsets(tps)
    finally:
        await c.stop()
    v.finish(sum(end[tp] - begin[tp] for tp in tps))
    print("OK aiokafka consumed %d records from %d partitions (codec tag %s)" % (a.count, len(tps), a.codec_tag))


async def admin(a):
    t = a.topic
    adm = AIOKafkaAdminClient(bootstrap_servers=a.bootstrap, client_id=CLIENT_ID)
    await adm.start()
    try:
        cl = await adm.describe_cluster()
        ids = {b["node_id"] for b in cl["brokers"]}
        if not ids or cl.get("controller_id") not in ids:
            spec.fail("describe_cluster: no brokers or controller not a broker: %r" % cl)
        check_errors(await adm.create_topics([NewTopic(t, 3, 1, topic_configs={"retention.ms": "3600000"})]),
                     "create_topics")

        async def listed():
            return t in await adm.list_topics(), None
        await wait_for("%s listed" % t, listed)
        desc = await wait_for("%s with 3 led partitions" % t, lambda: partitions_led(adm, t, 3))
        for p in desc["partitions"]:
            if p["leader"] not in ids or p["replicas"] != [p["leader"]]:
                spec.fail("partition %r: leader not a broker or replicas != [leader]" % p)
        resps = await adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)])
        got = {}
        for r in resps:
            for res in r.to_object()["resources"]:
                if res["error_code"]:
                    spec.fail("describe_configs: %r" % res)
                for e in res["config_entries"]:
                    got[e["config_names"]] = e["config_value"]
        if got.get("retention.ms") != "3600000" or got.get("cleanup.policy") != "delete":
            spec.fail("describe_configs: retention.ms=%r cleanup.policy=%r" % (got.get("retention.ms"), got.get("cleanup.policy")))
        await adm.create_partitions({t: NewPartitions(total_count=4)})
        await wait_for("%s with 4 partitions" % t, lambda: partitions_led(adm, t, 4))
        check_errors(await adm.delete_topics([t]), "delete_topics")

        async def gone():
            return t not in await adm.list_topics(), None
        await wait_for("%s gone from list" % t, gone)
    finally:
        await adm.close()
    print("OK aiokafka admin: cluster create(3) list describe configs create_partitions(4) delete on %s" % t)


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
    asyncio.run({"produce": produce, "consume": consume, "admin": admin}[a.cmd](a))


if __name__ == "__main__":
    main()
