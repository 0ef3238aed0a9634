"""The transaction scenario every client of interop/txn runs, as data, plus its checks.

Each client program prints one line per step: `ok STEP DETAIL` or `fail STEP WHY`
(interop/txn/txn.sh turns them into PASS/FAIL lines). Steps, in order:
  produce           a transactional producer commits TXN1 (10 records over 2 partitions),
                    aborts TXN2 (5), commits TXN3 (10)
  read-committed    a read_committed consumer reads exactly TXN1 then TXN3, per partition in order
  read-uncommitted  a read_uncommitted consumer reads all 25 records in produce order
  ctp               consume-transform-produce in a group: round 1 committed with the group's
                    offsets in the transaction, round 2 aborted; the group's committed offsets
                    are round 1's end and the output holds round 1 only (and, read_uncommitted,
                    both rounds)
  fencing           a second producer with the same transactional.id fences the first: the
                    first's commit fails with the client's fenced error, the second's commits
A step is decided by the records a client read, never by a sleep: consumers read until the last
record they must see has arrived (a sentinel committed after everything else where needed), or
fail at the deadline.
"""
import sys

PARTITIONS = 2


def records(tag, n):
    """(partition, key, value) of a transaction's records: i goes to partition i % 2."""
    return [(i % PARTITIONS, "%s-%d" % (tag, i), "%s-%d" % (tag, i)) for i in range(n)]


TXN1 = records("c1", 10)
TXN2 = records("ab", 5)
TXN3 = records("c2", 10)
# consume-transform-produce input: round 1 and round 2, 10 records each (5 per partition)
ROUND1 = records("in1", 10)
ROUND2 = records("in2", 10)
SENTINEL = "end"


def transform(value):
    return "out-" + value


def per_partition(recs):
    """{partition: [value, ...]} in produce order."""
    out = {p: [] for p in range(PARTITIONS)}
    for p, _k, v in recs:
        out[p].append(v)
    return out


def expect_committed():
    return per_partition(TXN1 + TXN3)


def expect_uncommitted():
    return per_partition(TXN1 + TXN2 + TXN3)


def expect_out_committed():
    e = per_partition([(p, k, transform(v)) for p, k, v in ROUND1])
    for p in e:
        e[p].append(SENTINEL)
    return e


def expect_out_uncommitted():
    e = per_partition([(p, k, transform(v)) for p, k, v in ROUND1 + ROUND2])
    for p in e:
        e[p].append(SENTINEL)
    return e


def last_values(expected):
    return {p: vs[-1] for p, vs in expected.items()}


def compare(got, expected):
    """None if got == expected ({partition: [values]}), else a short description."""
    for p in range(PARTITIONS):
        g, e = got.get(p, []), expected[p]
        if g != e:
            return "partition %d: read %s, expected %s" % (p, g, e)
    return None


class Steps:
    """Prints `ok STEP ...` / `fail STEP ...` once per step."""

    def ok(self, step, detail=""):
        print("ok %s %s" % (step, detail), flush=True)

    def fail(self, step, why):
        print("fail %s %s" % (step, str(why).replace("\n", " ")[:600]), flush=True)

    def check(self, step, got, expected, detail=""):
        why = compare(got, expected)
        if why:
            self.fail(step, why)
            return False
        self.ok(step, detail)
        return True


def log(msg):
    print(msg, file=sys.stderr, flush=True)
