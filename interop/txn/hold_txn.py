#!/usr/bin/env python3
"""Holds a transaction open for kafka-transactions (txn.sh's tools checks), on kafka-python.

  hold_txn.py --bootstrap B --topic T --transactional-id X

Creates T (2 partitions), begins a transaction with id X, writes one record to each partition,
flushes, prints `holding`, and keeps the transaction open until stdin closes; then aborts it.
"""
import argparse
import sys

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--transactional-id", required=True)
a = ap.parse_args()
admin = KafkaAdminClient(bootstrap_servers=a.bootstrap, client_id="interop-txn-hold")
admin.create_topics([NewTopic(a.topic, 2, 1)])
admin.close()
p = KafkaProducer(bootstrap_servers=a.bootstrap, client_id="interop-txn-hold",
                  transactional_id=a.transactional_id, transaction_timeout_ms=120000)
p.init_transactions()
p.begin_transaction()
for part in (0, 1):
    p.send(a.topic, key=b"held", value=b"held", partition=part)
p.flush()
print("holding", flush=True)
sys.stdin.read()
p.abort_transaction()
p.close()
