// Interop client on franz-go (pure Go, strict about the protocol): kgo for produce and
// partition consumption (ConsumePartitions, no consumer group), kadm for topic admin.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"sluice.dev/interop/kgolog"
	"sluice.dev/interop/spec"
)

const clientID = "interop-franz-go"

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "none":
		return kgo.NoCompression()
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	spec.Fail("unknown codec %q", name)
	return kgo.NoCompression()
}

func newAdmin(a spec.Args) (*kgo.Client, *kadm.Client) {
	// kgo serves Metadata requests from a cache younger than MetadataMinAge (default 5 s), so
	// polling for a created or deleted topic would see stale answers for 5 s without this
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.Bootstrap), kgo.ClientID(clientID),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		spec.Fail("client: %v", err)
	}
	return cl, kadm.NewClient(cl)
}

func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// hasPartitions reports whether topic has n partitions, each with a leader.
func hasPartitions(adm *kadm.Client, topic string, n int) func() (bool, error) {
	return func() (bool, error) {
		ctx, cancel := ctxT(10 * time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false, err
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil {
			return false, fmt.Errorf("topic: %v", td.Err)
		}
		if len(td.Partitions) != n {
			return false, fmt.Errorf("%d partitions", len(td.Partitions))
		}
		for _, p := range td.Partitions {
			if p.Leader < 0 || p.Err != nil {
				return false, fmt.Errorf("partition %d leader %d err %v", p.Partition, p.Leader, p.Err)
			}
		}
		return true, nil
	}
}

func produce(a spec.Args) {
	if a.Partitions > 0 {
		cl, adm := newAdmin(a)
		ctx, cancel := ctxT(30 * time.Second)
		r, err := adm.CreateTopic(ctx, int32(a.Partitions), 1, nil, a.Topic)
		cancel()
		if err != nil || r.Err != nil {
			spec.Fail("create topic %s: %v %v", a.Topic, err, r.Err)
		}
		spec.WaitFor("topic "+a.Topic+" led partitions", hasPartitions(adm, a.Topic, a.Partitions))
		cl.Close()
	}
	// defaults otherwise: idempotent, acks=all
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.Bootstrap), kgo.ClientID(clientID),
		kgo.DefaultProduceTopic(a.Topic), kgo.ProducerBatchCompression(codec(a.Codec)),
		kgo.ProducerLinger(5*time.Millisecond), kgolog.Opt())
	if err != nil {
		spec.Fail("client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := ctxT(spec.Timeout())
	defer cancel()
	base := spec.TsBase()
	errs := make([]error, a.Count)
	parts := make([]int32, a.Count)
	done := make(chan struct{}, a.Count)
	for i := 0; i < a.Count; i++ {
		i := i
		rec := &kgo.Record{Key: []byte(spec.Key(i)), Value: []byte(spec.Value(i)),
			Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(strconv.Itoa(i))}},
			Timestamp: time.UnixMilli(base + int64(i))}
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			errs[i] = err
			parts[i] = r.Partition
			done <- struct{}{}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		spec.Fail("flush: %v", err)
	}
	used := map[int32]bool{}
	for i := 0; i < a.Count; i++ {
		<-done
	}
	for i, err := range errs {
		if err != nil {
			spec.Fail("record %d not acknowledged: %v", i, err)
		}
		used[parts[i]] = true
	}
	var ps []int
	for p := range used {
		ps = append(ps, int(p))
	}
	sort.Ints(ps)
	fmt.Printf("OK franz-go produced %d records (codec %s) to %s, partitions used %v\n", a.Count, a.Codec, a.Topic, ps)
}

func consume(a spec.Args) {
	v := spec.NewVerifier(a)
	acl, adm := newAdmin(a)
	defer acl.Close()
	var parts []int32
	spec.WaitFor("partitions of "+a.Topic, func() (bool, error) {
		ctx, cancel := ctxT(10 * time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx, a.Topic)
		if err != nil {
			return false, err
		}
		td := md.Topics[a.Topic]
		if td.Err != nil || len(td.Partitions) == 0 {
			return false, td.Err
		}
		parts = td.Partitions.Numbers()
		return true, nil
	})
	offs := map[int32]kgo.Offset{}
	for _, p := range parts {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.Bootstrap), kgo.ClientID(clientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{a.Topic: offs}))
	if err != nil {
		spec.Fail("client: %v", err)
	}
	defer cl.Close()
	// franz-go exposes each record's batch attributes: check the batches really carry the codec
	// the producer was asked for (catches a client that silently stops compressing).
	codecIDs := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	wantCodec, checkCodec := codecIDs[a.CodecTag]
	codecErrs := 0
	deadline := time.Now().Add(spec.Timeout())
	for !v.Done() && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(t string, p int32, err error) {
			if err != context.DeadlineExceeded {
				spec.Fail("fetch error %s[%d]: %v", t, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			var hs []spec.Header
			for _, h := range r.Headers {
				hs = append(hs, spec.Header{Key: h.Key, Value: string(h.Value)})
			}
			v.Add(r.Partition, r.Offset, r.Key, r.Value, hs, r.Timestamp.UnixMilli())
			if got := r.Attrs.CompressionType(); checkCodec && got != wantCodec {
				codecErrs++
				if codecErrs == 1 {
					fmt.Fprintf(os.Stderr, "p%d@%d: batch compression %d, expected %d (%s)\n", r.Partition, r.Offset, got, wantCodec, a.CodecTag)
				}
			}
		})
	}
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	starts, err1 := adm.ListStartOffsets(ctx, a.Topic)
	ends, err2 := adm.ListEndOffsets(ctx, a.Topic)
	if err1 != nil || err2 != nil {
		spec.Fail("list offsets: %v %v", err1, err2)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		total += o.Offset - s.Offset
	})
	if codecErrs > 0 {
		spec.Fail("%d records were in batches not compressed with %s (codec ids: none 0, gzip 1, snappy 2, lz4 3, zstd 4)", codecErrs, a.CodecTag)
	}
	v.Finish(total)
	fmt.Printf("OK franz-go consumed %d records from %d partitions (codec tag %s%s)\n", a.Count, len(parts), a.CodecTag, map[bool]string{true: ", batch codec checked"}[checkCodec])
}

func admin(a spec.Args) {
	t := a.Topic
	cl, adm := newAdmin(a)
	defer cl.Close()
	ctx, cancel := ctxT(60 * time.Second)
	defer cancel()
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		spec.Fail("metadata: %v", err)
	}
	if len(md.Brokers) == 0 || md.Cluster == "" {
		spec.Fail("metadata: no brokers or no cluster id: %+v", md)
	}
	ids := map[int32]bool{}
	for _, b := range md.Brokers {
		ids[b.NodeID] = true
	}
	if !ids[md.Controller] {
		spec.Fail("metadata: controller %d is not a broker", md.Controller)
	}
	ret := "3600000"
	cr, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": &ret}, t)
	if err != nil || cr.Err != nil {
		spec.Fail("create topic: %v %v", err, cr.Err)
	}
	if cr.ID == [16]byte{} {
		spec.Fail("create topic returned a zero topic id")
	}
	spec.WaitFor(t+" listed", func() (bool, error) {
		td, err := adm.ListTopics(ctx)
		return err == nil && td.Has(t), err
	})
	spec.WaitFor(t+" with 3 led partitions", hasPartitions(adm, t, 3))
	md2, err := adm.Metadata(ctx, t)
	if err != nil {
		spec.Fail("metadata: %v", err)
	}
	td := md2.Topics[t]
	if td.ID != cr.ID {
		spec.Fail("metadata topic id %v != created id %v", td.ID, cr.ID)
	}
	for _, p := range td.Partitions {
		if !ids[p.Leader] || len(p.Replicas) != 1 || len(p.ISR) != 1 {
			spec.Fail("partition %+v: leader not a broker, or replicas/isr not [leader]", p)
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, t)
	if err != nil {
		spec.Fail("describe configs: %v", err)
	}
	rc, err := rcs.On(t, nil)
	if err != nil || rc.Err != nil {
		spec.Fail("describe configs: %v %v", err, rc.Err)
	}
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	if got["retention.ms"] != "3600000" || got["cleanup.policy"] != "delete" {
		spec.Fail("describe configs: retention.ms=%q cleanup.policy=%q", got["retention.ms"], got["cleanup.policy"])
	}
	upr, err := adm.UpdatePartitions(ctx, 4, t)
	if err != nil {
		spec.Fail("create partitions: %v", err)
	}
	if r, _ := upr.On(t, nil); r.Err != nil {
		spec.Fail("create partitions: %v", r.Err)
	}
	spec.WaitFor(t+" with 4 partitions", hasPartitions(adm, t, 4))
	dr, err := adm.DeleteTopic(ctx, t)
	if err != nil || dr.Err != nil {
		spec.Fail("delete topic: %v %v", err, dr.Err)
	}
	spec.WaitFor(t+" gone from list", func() (bool, error) {
		td, err := adm.ListTopics(ctx)
		return err == nil && !td.Has(t), err
	})
	fmt.Printf("OK franz-go admin: metadata create(3) list describe configs create_partitions(4) delete on %s\n", t)
}

func main() {
	a := spec.Parse()
	switch a.Cmd {
	case "produce":
		produce(a)
	case "consume":
		consume(a)
	case "admin":
		admin(a)
	default:
		spec.Fail("unknown command %q", a.Cmd)
	}
}
