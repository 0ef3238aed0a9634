#!/usr/bin/env python3
"""Which compression the stored record batches of a topic carry (Kafka's on-disk log format, which
Sluice keeps too): reads the batch headers of every segment of DATA_DIR/TOPIC-*.

    python3 bench/batch-codecs.py DATA_DIR TOPIC     -> e.g. "lz4" or "none" or "none 97%, lz4 3%"

Catches a client that was asked to compress and silently did not."""
import glob
import struct
import sys
from collections import Counter

names = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
records = Counter()
for seg in glob.glob(f"{sys.argv[1]}/{sys.argv[2]}-*/*.log"):
    with open(seg, "rb") as f:
        while True:
            h = f.read(61)
            if len(h) < 61:
                break
            _base, blen = struct.unpack(">qi", h[:12])
            if blen <= 0:
                break  # preallocated tail
            attrs = struct.unpack(">h", h[21:23])[0]
            count = struct.unpack(">i", h[57:61])[0]
            records[names.get(attrs & 7, f"codec{attrs & 7}")] += count
            f.seek(12 + blen - 61, 1)
total = sum(records.values())
if not total:
    print("no batches found")
elif len(records) == 1:
    print(next(iter(records)))
else:
    print(", ".join(f"{c} {n * 100 // total}%" for c, n in records.most_common()))
