#!/usr/bin/env python3
"""Insert one run's section (results.md of bench/run.sh) into bench/RESULTS.md, newest run first,
right under the end-to-end marker line; creates the end-to-end heading and marker at the end of
the file if they are missing. Nothing else in RESULTS.md is touched.

    python3 bench/append-results.py bench/RESULTS.md OUTDIR/results.md
"""
import sys
from pathlib import Path

MARKER = ("<!-- end-to-end runs, newest first: bench/run.sh --append inserts each run below "
          "this line -->")
res = Path(sys.argv[1])
run = Path(sys.argv[2]).read_text().strip() + "\n"
text = res.read_text() if res.exists() else "# Benchmark results\n"
if MARKER not in text:
    text = (text.rstrip() + "\n\n## End-to-end: Sluice, Apache Kafka, Tansu (`bench/run.sh`)\n\n"
            + MARKER + "\n")
head, _, tail = text.partition(MARKER)
tail = tail.strip("\n")
res.write_text(head + MARKER + "\n\n" + run + ("\n" + tail + "\n" if tail else ""))
