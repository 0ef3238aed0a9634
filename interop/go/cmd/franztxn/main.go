// The transaction scenario of interop/txn (interop/txn/txnspec.py) on franz-go's kgo:
// a client with TransactionalID (BeginTransaction / EndTransaction) and, for
// consume-transform-produce, a GroupTransactSession (its offsets go into the transaction with
// TxnOffsetCommit carrying the group's generation and member id, KIP-447).
//
//	franztxn --bootstrap B --prefix P
//
// Prints `ok STEP DETAIL` or `fail STEP WHY` per step (produce, read-committed,
// read-uncommitted, ctp, fencing).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"sluice.dev/interop/kgolog"
)

const partitions = 2

type rec struct {
	p   int32
	val string
}

// records is txnspec.records: record i of a transaction goes to partition i % 2.
func records(tag string, n int) []rec {
	out := make([]rec, n)
	for i := range out {
		out[i] = rec{int32(i % partitions), fmt.Sprintf("%s-%d", tag, i)}
	}
	return out
}

var (
	txn1, txn2, txn3 = records("c1", 10), records("ab", 5), records("c2", 10)
	round1, round2   = records("in1", 10), records("in2", 10)
	timeout          = 60 * time.Second
	bootstrap        string
	prefix           string
)

const sentinel = "end"

func perPartition(rs ...[]rec) map[int32][]string {
	out := map[int32][]string{}
	for p := int32(0); p < partitions; p++ {
		out[p] = []string{}
	}
	for _, r := range rs {
		for _, x := range r {
			out[x.p] = append(out[x.p], x.val)
		}
	}
	return out
}

func transformed(rs []rec) []rec {
	out := make([]rec, len(rs))
	for i, r := range rs {
		out[i] = rec{r.p, "out-" + r.val}
	}
	return out
}

func withSentinel(m map[int32][]string) map[int32][]string {
	for p := range m {
		m[p] = append(m[p], sentinel)
	}
	return m
}

func ok(step, detail string) { fmt.Printf("ok %s %s\n", step, detail) }
func bad(step, why string)   { fmt.Printf("fail %s %s\n", step, why) }
func compare(got, want map[int32][]string) string {
	for p := int32(0); p < partitions; p++ {
		if !reflect.DeepEqual(got[p], want[p]) {
			return fmt.Sprintf("partition %d: read %q, expected %q", p, got[p], want[p])
		}
	}
	return ""
}

func check(step string, got, want map[int32][]string, detail string) {
	if why := compare(got, want); why != "" {
		bad(step, why)
		return
	}
	ok(step, detail)
}

func client(opts ...kgo.Opt) *kgo.Client {
	base := []kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.ClientID("interop-txn-franz-go"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgolog.Opt()}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	return cl
}

func kgoRecords(topic string, rs []rec) []*kgo.Record {
	out := make([]*kgo.Record, len(rs))
	for i, r := range rs {
		out[i] = &kgo.Record{Topic: topic, Partition: r.p, Key: []byte(r.val), Value: []byte(r.val)}
	}
	return out
}

// readUntil reads both partitions from the start until each one's value last[p] arrived.
func readUntil(topic string, level kgo.IsolationLevel, last map[int32]string) map[int32][]string {
	cl := client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {
		0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}), kgo.FetchIsolationLevel(level))
	defer cl.Close()
	got := perPartition()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := func() bool {
		for p, v := range last {
			found := false
			for _, g := range got[p] {
				found = found || g == v
			}
			if !found {
				return false
			}
		}
		return true
	}
	for !done() && ctx.Err() == nil {
		f := cl.PollFetches(ctx)
		f.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], string(r.Value)) })
	}
	return got
}

func lastValues(m map[int32][]string) map[int32]string {
	out := map[int32]string{}
	for p, vs := range m {
		out[p] = vs[len(vs)-1]
	}
	return out
}

func stepProduce(topic string) error {
	cl := client(kgo.TransactionalID(prefix + "-tx"))
	defer cl.Close()
	ctx := context.Background()
	for _, t := range []struct {
		rs     []rec
		commit kgo.TransactionEndTry
	}{{txn1, kgo.TryCommit}, {txn2, kgo.TryAbort}, {txn3, kgo.TryCommit}} {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		if err := cl.ProduceSync(ctx, kgoRecords(topic, t.rs)...).FirstErr(); err != nil {
			return err
		}
		if err := cl.EndTransaction(ctx, t.commit); err != nil {
			return err
		}
	}
	return nil
}

func stepCtp() error {
	tin, tout, group := prefix+"-in", prefix+"-out", prefix+"-group"
	ctx := context.Background()
	plain := client()
	defer plain.Close()
	if err := plain.ProduceSync(ctx, kgoRecords(tin, round1)...).FirstErr(); err != nil {
		return err
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(bootstrap), kgo.ClientID("interop-txn-franz-go"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgolog.Opt(),
		kgo.TransactionalID(prefix+"-ctp"), kgo.ConsumerGroup(group), kgo.ConsumeTopics(tin),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer sess.Close()
	for n, r := range []struct {
		rs     []rec
		commit kgo.TransactionEndTry
	}{{round1, kgo.TryCommit}, {round2, kgo.TryAbort}} {
		if n == 1 {
			if err := plain.ProduceSync(ctx, kgoRecords(tin, r.rs)...).FirstErr(); err != nil {
				return err
			}
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		var seen []string
		pctx, cancel := context.WithTimeout(ctx, timeout)
		for len(seen) < len(r.rs) && pctx.Err() == nil {
			f := sess.PollFetches(pctx)
			f.EachRecord(func(x *kgo.Record) {
				seen = append(seen, string(x.Value))
				sess.Produce(ctx, &kgo.Record{Topic: tout, Partition: x.Partition, Key: x.Key,
					Value: []byte("out-" + string(x.Value))}, nil)
			})
		}
		cancel()
		want := perPartition(r.rs)
		wantAll := append(append([]string{}, want[0]...), want[1]...)
		sort.Strings(seen)
		sort.Strings(wantAll)
		if !reflect.DeepEqual(seen, wantAll) {
			return fmt.Errorf("round %d consumed %q", n+1, seen)
		}
		// End(TryAbort) drops records still buffered: flush, so the aborted round reaches the log
		if err := sess.Client().Flush(ctx); err != nil {
			return err
		}
		committed, err := sess.End(ctx, r.commit)
		if err != nil {
			return fmt.Errorf("round %d: End: %w", n+1, err)
		}
		if committed != bool(r.commit) {
			return fmt.Errorf("round %d: End reported committed=%v", n+1, committed)
		}
	}
	// a committed sentinel after the aborted round bounds the reads of the output
	sentinels := []rec{{0, sentinel}, {1, sentinel}}
	if err := sess.Begin(); err != nil {
		return err
	}
	if err := sess.ProduceSync(ctx, kgoRecords(tout, sentinels)...).FirstErr(); err != nil {
		return err
	}
	// the sentinel transaction also commits the offsets the session holds: round 1's end again
	// (after an abort the session rewinds to the committed offsets)
	if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("sentinel: %w", err)
	}
	offs, err := kadm.NewClient(plain).FetchOffsets(ctx, group)
	if err != nil {
		return err
	}
	got := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		o, found := offs.Lookup(tin, p)
		if !found || o.Err != nil {
			return fmt.Errorf("no committed offset for %s/%d: %v", tin, p, o.Err)
		}
		got[p] = o.At
	}
	if !reflect.DeepEqual(got, map[int32]int64{0: 5, 1: 5}) {
		return fmt.Errorf("group's committed offsets %v, round 1 ended at map[0:5 1:5]", got)
	}
	wantOut := withSentinel(perPartition(transformed(round1)))
	if why := compare(readUntil(tout, kgo.ReadCommitted(), lastValues(wantOut)), wantOut); why != "" {
		return fmt.Errorf("output read_committed: %s", why)
	}
	all := withSentinel(perPartition(transformed(round1), transformed(round2)))
	if why := compare(readUntil(tout, kgo.ReadUncommitted(), lastValues(wantOut)), all); why != "" {
		return fmt.Errorf("output read_uncommitted: %s", why)
	}
	ok("ctp", fmt.Sprintf("committed offsets %v; output holds round 1 only (both rounds read_uncommitted)", got))
	return nil
}

func stepFencing() error {
	topic, tid := prefix+"-fence", prefix+"-fenced"
	ctx := context.Background()
	p1 := client(kgo.TransactionalID(tid))
	defer p1.Close()
	if err := p1.BeginTransaction(); err != nil {
		return err
	}
	if err := p1.ProduceSync(ctx, kgoRecords(topic, []rec{{0, "f1"}})...).FirstErr(); err != nil {
		return err
	}
	// kgo initialises the producer id at the first produce: p2 takes the id over there
	p2 := client(kgo.TransactionalID(tid))
	defer p2.Close()
	if err := p2.BeginTransaction(); err != nil {
		return err
	}
	if err := p2.ProduceSync(ctx, kgoRecords(topic, []rec{{0, "f2"}})...).FirstErr(); err != nil {
		return fmt.Errorf("second producer: %w", err)
	}
	err := p1.EndTransaction(ctx, kgo.TryCommit)
	if err == nil {
		return errors.New("the first producer's commit succeeded after a second one took its id")
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		return fmt.Errorf("first producer's commit failed with %v, not PRODUCER_FENCED", err)
	}
	if err := p2.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("second producer's commit: %w", err)
	}
	got := readUntil(topic, kgo.ReadCommitted(), map[int32]string{0: "f2"})
	check("fencing", got, map[int32][]string{0: {"f2"}, 1: {}}, "first commit failed with "+err.Error())
	return nil
}

func main() {
	flag.StringVar(&bootstrap, "bootstrap", "", "host:port")
	flag.StringVar(&prefix, "prefix", "", "names of topics, groups and transactional ids start with it")
	flag.Parse()
	if s, err := strconv.Atoi(os.Getenv("INTEROP_TIMEOUT")); err == nil {
		timeout = time.Duration(s) * time.Second
	}
	ctx := context.Background()
	admin := kadm.NewClient(client())
	topic := prefix + "-t"
	res, err := admin.CreateTopics(ctx, partitions, 1, nil, topic, prefix+"-in", prefix+"-out", prefix+"-fence")
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "create topics:", err)
		os.Exit(1)
	}
	if err := stepProduce(topic); err != nil {
		bad("produce", err.Error())
		return
	}
	ok("produce", "commit 10, abort 5, commit 10")
	committed := perPartition(txn1, txn3)
	check("read-committed", readUntil(topic, kgo.ReadCommitted(), lastValues(committed)), committed,
		"20 committed records, none aborted")
	all := perPartition(txn1, txn2, txn3)
	check("read-uncommitted", readUntil(topic, kgo.ReadUncommitted(), lastValues(all)), all, "all 25")
	if err := stepCtp(); err != nil {
		bad("ctp", err.Error())
	}
	if err := stepFencing(); err != nil {
		bad("fencing", err.Error())
	}
}
