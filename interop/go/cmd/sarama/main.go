// Interop client on IBM/sarama (pure Go). Sarama does not negotiate API versions: it sends the
// versions of the Kafka release set in Config.Version (--version; default sarama.DefaultVersion).
// Consumes with a partition consumer (no consumer group); admin through ClusterAdmin.
package main

import (
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"sluice.dev/interop/spec"
)

func config(a spec.Args) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "interop-sarama"
	if a.Version != "" && a.Version != "default" {
		v, err := sarama.ParseKafkaVersion(a.Version)
		if err != nil {
			spec.Fail("bad --version %q: %v", a.Version, err)
		}
		c.Version = v
	}
	c.ClientID = "interop-sarama-" + c.Version.String()
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	c.Admin.Timeout = 30 * time.Second
	return c
}

func codec(name string) sarama.CompressionCodec {
	switch name {
	case "none":
		return sarama.CompressionNone
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	}
	spec.Fail("unknown codec %q", name)
	return sarama.CompressionNone
}

func partitionsLed(adm sarama.ClusterAdmin, topic string, n int) func() (bool, error) {
	return func() (bool, error) {
		md, err := adm.DescribeTopics([]string{topic})
		if err != nil {
			return false, err
		}
		if len(md) != 1 || md[0].Err != sarama.ErrNoError {
			return false, fmt.Errorf("describe: %v", md)
		}
		if len(md[0].Partitions) != n {
			return false, fmt.Errorf("%d partitions", len(md[0].Partitions))
		}
		for _, p := range md[0].Partitions {
			if p.Leader < 0 || p.Err != sarama.ErrNoError {
				return false, fmt.Errorf("partition %d leader %d err %v", p.ID, p.Leader, p.Err)
			}
		}
		return true, nil
	}
}

func newAdmin(a spec.Args) sarama.ClusterAdmin {
	adm, err := sarama.NewClusterAdmin([]string{a.Bootstrap}, config(a))
	if err != nil {
		spec.Fail("cluster admin: %v", err)
	}
	return adm
}

func produce(a spec.Args) {
	if a.Partitions > 0 {
		adm := newAdmin(a)
		if err := adm.CreateTopic(a.Topic, &sarama.TopicDetail{NumPartitions: int32(a.Partitions), ReplicationFactor: 1}, false); err != nil {
			spec.Fail("create topic: %v", err)
		}
		spec.WaitFor("topic "+a.Topic+" led partitions", partitionsLed(adm, a.Topic, a.Partitions))
		adm.Close()
	}
	c := config(a)
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Compression = codec(a.Codec)
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Producer.Timeout = 30 * time.Second
	p, err := sarama.NewSyncProducer([]string{a.Bootstrap}, c)
	if err != nil {
		spec.Fail("producer: %v", err)
	}
	base := spec.TsBase()
	msgs := make([]*sarama.ProducerMessage, a.Count)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: a.Topic, Key: sarama.StringEncoder(spec.Key(i)),
			Value:     sarama.StringEncoder(spec.Value(i)),
			Headers:   []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(strconv.Itoa(i))}},
			Timestamp: time.UnixMilli(base + int64(i))}
	}
	if err := p.SendMessages(msgs); err != nil {
		if pe, ok := err.(sarama.ProducerErrors); ok && len(pe) > 0 {
			spec.Fail("%d records not acknowledged, first: %v", len(pe), pe[0].Err)
		}
		spec.Fail("send: %v", err)
	}
	if err := p.Close(); err != nil {
		spec.Fail("close: %v", err)
	}
	used := map[int]bool{}
	for _, m := range msgs {
		used[int(m.Partition)] = true
	}
	var ps []int
	for x := range used {
		ps = append(ps, x)
	}
	sort.Ints(ps)
	fmt.Printf("OK sarama(%s) produced %d records (codec %s) to %s, partitions used %v\n", c.Version, a.Count, a.Codec, a.Topic, ps)
}

func consume(a spec.Args) {
	v := spec.NewVerifier(a)
	c := config(a)
	c.Consumer.Return.Errors = true
	cl, err := sarama.NewClient([]string{a.Bootstrap}, c)
	if err != nil {
		spec.Fail("client: %v", err)
	}
	defer cl.Close()
	var parts []int32
	spec.WaitFor("partitions of "+a.Topic, func() (bool, error) {
		_ = cl.RefreshMetadata(a.Topic)
		parts, err = cl.Partitions(a.Topic)
		return err == nil && len(parts) > 0, err
	})
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		spec.Fail("consumer: %v", err)
	}
	type msg struct {
		m   *sarama.ConsumerMessage
		err error
	}
	ch := make(chan msg, 1024)
	for _, p := range parts {
		pc, err := cons.ConsumePartition(a.Topic, p, sarama.OffsetOldest)
		if err != nil {
			spec.Fail("consume partition %d: %v", p, err)
		}
		go func() {
			for m := range pc.Messages() {
				ch <- msg{m: m}
			}
		}()
		go func() {
			for e := range pc.Errors() {
				ch <- msg{err: e}
			}
		}()
	}
	timeout := time.After(spec.Timeout())
	for !v.Done() {
		select {
		case x := <-ch:
			if x.err != nil {
				spec.Fail("consumer error: %v", x.err)
			}
			m := x.m
			var hs []spec.Header
			for _, h := range m.Headers {
				hs = append(hs, spec.Header{Key: string(h.Key), Value: string(h.Value)})
			}
			v.Add(m.Partition, m.Offset, m.Key, m.Value, hs, m.Timestamp.UnixMilli())
		case <-timeout:
			v.Finish(-1)
			spec.Fail("timeout")
		}
	}
	var total int64
	for _, p := range parts {
		o, err1 := cl.GetOffset(a.Topic, p, sarama.OffsetOldest)
		n, err2 := cl.GetOffset(a.Topic, p, sarama.OffsetNewest)
		if err1 != nil || err2 != nil {
			spec.Fail("get offsets p%d: %v %v", p, err1, err2)
		}
		total += n - o
	}
	v.Finish(total)
	fmt.Printf("OK sarama(%s) consumed %d records from %d partitions (codec tag %s)\n", c.Version, a.Count, len(parts), a.CodecTag)
	os.Exit(0) // do not wait for partition consumers to drain
}

func admin(a spec.Args) {
	t := a.Topic
	adm := newAdmin(a)
	defer adm.Close()
	brokers, controller, err := adm.DescribeCluster()
	if err != nil || len(brokers) == 0 {
		spec.Fail("describe cluster: %v (%d brokers)", err, len(brokers))
	}
	ids := map[int32]bool{}
	for _, b := range brokers {
		ids[b.ID()] = true
	}
	if !ids[controller] {
		spec.Fail("controller %d is not a broker", controller)
	}
	ret := "3600000"
	if err := adm.CreateTopic(t, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &ret}}, false); err != nil {
		spec.Fail("create topic: %v", err)
	}
	spec.WaitFor(t+" listed", func() (bool, error) {
		l, err := adm.ListTopics()
		_, ok := l[t]
		return err == nil && ok, err
	})
	spec.WaitFor(t+" with 3 led partitions", partitionsLed(adm, t, 3))
	md, _ := adm.DescribeTopics([]string{t})
	for _, p := range md[0].Partitions {
		if !ids[p.Leader] || len(p.Replicas) != 1 || len(p.Isr) != 1 {
			spec.Fail("partition %+v: leader not a broker, or replicas/isr not [leader]", p)
		}
	}
	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: t})
	if err != nil {
		spec.Fail("describe config: %v", err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Name] = e.Value
	}
	if got["retention.ms"] != "3600000" || got["cleanup.policy"] != "delete" {
		spec.Fail("describe configs: retention.ms=%q cleanup.policy=%q", got["retention.ms"], got["cleanup.policy"])
	}
	if err := adm.CreatePartitions(t, 4, nil, false); err != nil {
		spec.Fail("create partitions: %v", err)
	}
	spec.WaitFor(t+" with 4 partitions", partitionsLed(adm, t, 4))
	if err := adm.DeleteTopic(t); err != nil {
		spec.Fail("delete topic: %v", err)
	}
	spec.WaitFor(t+" gone from list", func() (bool, error) {
		l, err := adm.ListTopics()
		_, ok := l[t]
		return err == nil && !ok, err
	})
	fmt.Printf("OK sarama admin: cluster create(3) list describe configs create_partitions(4) delete on %s\n", t)
}

func main() {
	a := spec.Parse()
	if os.Getenv("INTEROP_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags)
	}
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
