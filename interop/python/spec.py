"""The record contract shared by every interop client (see interop/README.md, "Record contract").

Record i (0 <= i < N):
  key        k-<i>
  value      v-<i>- followed by 'x' up to VALUE_LEN bytes
  header     h=<i>                      (absent when the producer cannot set per-record headers)
  timestamp  base + i, base a multiple of TS_MOD near the producer's clock
             (CreateTime chosen by the broker's client library when it cannot be set explicitly)
"""
import re
import sys
import time

VALUE_LEN = 100
TS_MOD = 1_000_000
TS_SLACK_MS = 2 * 24 * 3600 * 1000
KEY_RE = re.compile(r"^k-(\d+)$")


def key(i):
    return "k-%d" % i


def value(i):
    s = "v-%d-" % i
    return s + "x" * (VALUE_LEN - len(s))


def ts_base(now_ms=None):
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return (now_ms // TS_MOD) * TS_MOD


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


class Verifier:
    """Checks records as they are consumed; `finish` checks the whole set."""

    def __init__(self, n, expect_headers=True, expect_ts=True):
        self.n = n
        self.expect_headers = expect_headers
        self.expect_ts = expect_ts
        self.seen = set()
        self.last = {}  # partition -> (offset, index)
        self.errors = []
        self.now = int(time.time() * 1000)

    def err(self, msg):
        if len(self.errors) < 10:
            self.errors.append(msg)

    def add(self, partition, offset, k, v, headers, ts):
        """k, v: bytes or None; headers: list of (str, bytes)."""
        where = "p%d@%d" % (partition, offset)
        ks = k.decode("utf-8", "replace") if k is not None else None
        m = KEY_RE.match(ks or "")
        if not m:
            self.err("%s: bad key %r" % (where, ks))
            return
        i = int(m.group(1))
        if i >= self.n:
            self.err("%s: key index %d out of range (count %d)" % (where, i, self.n))
            return
        if i in self.seen:
            self.err("%s: duplicate record %d" % (where, i))
        self.seen.add(i)
        vs = v.decode("utf-8", "replace") if v is not None else None
        if vs != value(i):
            self.err("%s: record %d value %r != %r" % (where, i, vs, value(i)))
        hs = [(hk, hv.decode("utf-8", "replace") if hv is not None else None) for hk, hv in headers]
        want = [("h", str(i))] if self.expect_headers else []
        if hs != want:
            self.err("%s: record %d headers %r != %r" % (where, i, hs, want))
        if self.expect_ts:
            if ts % TS_MOD != i or abs(ts - self.now) > TS_SLACK_MS:
                self.err("%s: record %d timestamp %d is not base+%d" % (where, i, ts, i))
        elif ts <= 0 or abs(ts - self.now) > TS_SLACK_MS:
            self.err("%s: record %d implausible timestamp %d" % (where, i, ts))
        prev = self.last.get(partition)
        if prev is not None:
            if offset <= prev[0]:
                self.err("%s: offset not increasing (previous %d)" % (where, prev[0]))
            if i <= prev[1]:
                self.err("%s: record %d after record %d: per-partition order broken" % (where, i, prev[1]))
        self.last[partition] = (offset, i)

    def done(self):
        return len(self.seen) >= self.n

    def finish(self, log_records=None):
        """log_records: sum over partitions of (end offset - start offset), if known."""
        if len(self.seen) != self.n:
            missing = sorted(set(range(self.n)) - self.seen)
            self.err("got %d of %d records; first missing: %s" % (len(self.seen), self.n, missing[:10]))
        if log_records is not None and log_records != self.n:
            self.err("log holds %d offsets, expected exactly %d (duplicates or strays?)" % (log_records, self.n))
        if self.errors:
            fail("; ".join(self.errors))
