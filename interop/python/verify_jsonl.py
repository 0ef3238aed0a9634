#!/usr/bin/env python3
"""Check records that kcat printed with -J (one JSON object per line) against the record contract.

  verify_jsonl.py --count N [--no-headers] [--no-timestamps] [--log-records M] < records.jsonl

Standard library only: the protocol work was done by kcat (librdkafka); this only checks content.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spec  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--no-headers", action="store_true")
    ap.add_argument("--no-timestamps", action="store_true")
    ap.add_argument("--log-records", type=int, default=None)
    a = ap.parse_args()
    v = spec.Verifier(a.count, expect_headers=not a.no_headers, expect_ts=not a.no_timestamps)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
        except ValueError:
            spec.fail("kcat printed a line that is not JSON: %r" % line[:200])
        hs = r.get("headers") or []
        headers = [(hs[j], None if hs[j + 1] is None else hs[j + 1].encode()) for j in range(0, len(hs), 2)]
        k = r.get("key")
        p = r.get("payload")
        v.add(r["partition"], r["offset"], None if k is None else k.encode(),
              None if p is None else p.encode(), headers, r.get("ts", -1))
    v.finish(a.log_records)


if __name__ == "__main__":
    main()
