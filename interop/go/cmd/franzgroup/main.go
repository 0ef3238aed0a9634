// A consumer-group member on franz-go's kgo (classic group protocol, kgo's default balancer:
// cooperative-sticky), driven by interop/groups/client_group.sh.
//
//	franzgroup --bootstrap B --topic T --group G [--session-timeout-ms MS] [--max N]
//
// It joins G subscribed to T and prints one line per event on stdout:
//
//	config balancers=B session.timeout=MS  first: what it offers in JoinGroup
//	assigned GEN P,P,...   its whole assignment after every change, with the generation it
//	                       was seen in ("-" when empty)
//	record P O KEY         a record it polled (partition, offset, key)
//	committed P O          an offset commit of O for P that the coordinator accepted
//	error WHAT             a commit, fetch or leave error (the script fails on these)
//	left                   LeaveGroup answered without error (clean close)
//	closed                 the client is closed; the process exits 0 right after
//
// Offsets are committed synchronously after every poll (autocommit off), with
// BlockRebalanceOnPoll so a rebalance never revokes a partition between a poll and its commit.
// SIGTERM or SIGINT: stop polling, leave the group (LeaveGroup), close. With --max N it does
// the same by itself after reading and committing N records.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"sluice.dev/interop/kgolog"
	"sluice.dev/interop/spec"
)

var (
	outMu     sync.Mutex
	owned     = map[int32]bool{}
	lastShown string
)

func say(format string, a ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", a...)
}

// change applies an assignment change from a rebalance callback and prints the whole
// assignment with the generation it belongs to.
func change(cl *kgo.Client, topic string, parts map[string][]int32, add bool) {
	outMu.Lock()
	for _, p := range parts[topic] {
		if add {
			owned[p] = true
		} else {
			delete(owned, p)
		}
	}
	ps := make([]int, 0, len(owned))
	for p := range owned {
		ps = append(ps, int(p))
	}
	outMu.Unlock()
	sort.Ints(ps)
	list := make([]string, len(ps))
	for i, p := range ps {
		list[i] = strconv.Itoa(p)
	}
	if len(list) == 0 {
		list = []string{"-"}
	}
	_, gen := cl.GroupMetadata()
	line := fmt.Sprintf("assigned %d %s", gen, strings.Join(list, ","))
	// kgo calls back with empty changes too: print only what changed
	if line != lastShown {
		lastShown = line
		say("%s", line)
	}
}

func main() {
	bootstrap := flag.String("bootstrap", "", "bootstrap server host:port")
	topic := flag.String("topic", "", "topic to subscribe to")
	group := flag.String("group", "", "consumer group id")
	sessionMs := flag.Int("session-timeout-ms", 0, "session timeout in ms (0: kgo's default, 45 s)")
	max := flag.Int("max", 0, "leave after reading and committing this many records (0: until SIGTERM)")
	flag.Parse()
	if *bootstrap == "" || *topic == "" || *group == "" {
		spec.Fail("usage: franzgroup --bootstrap B --topic T --group G [--session-timeout-ms MS] [--max N]")
	}

	opts := []kgo.Opt{
		kgo.SeedBrokers(*bootstrap), kgo.ClientID("interop-franz-go-group"), kgolog.Opt(),
		kgo.ConsumerGroup(*group), kgo.ConsumeTopics(*topic),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		// rebalances are noticed through heartbeats; kgo's default interval is 3 s
		kgo.HeartbeatInterval(500 * time.Millisecond),
		// records produced while a member waits come back within 1 s instead of kgo's 5 s
		kgo.FetchMaxWait(time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			change(cl, *topic, m, true)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			change(cl, *topic, m, false)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			say("error partitions lost %v", m[*topic])
			change(cl, *topic, m, false)
		}),
	}
	if *sessionMs > 0 {
		opts = append(opts, kgo.SessionTimeout(time.Duration(*sessionMs)*time.Millisecond))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		spec.Fail("client: %v", err)
	}

	// what this member offers in JoinGroup (classic protocol: kgo uses KIP-848 only with
	// ServerSideBalancer)
	var names []string
	for _, b := range cl.OptValue(kgo.Balancers).([]kgo.GroupBalancer) {
		names = append(names, b.ProtocolName())
	}
	say("config balancers=%s session.timeout=%d", strings.Join(names, ","),
		cl.OptValue(kgo.SessionTimeout).(time.Duration).Milliseconds())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	read := 0
	for ctx.Err() == nil && (*max == 0 || read < *max) {
		limit := 0
		if *max > 0 {
			limit = *max - read
		}
		fetches := cl.PollRecords(ctx, limit)
		if fetches.IsClientClosed() {
			say("error client closed while polling")
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				say("error fetch %s/%d: %v", t, p, err)
			}
		})
		recs := fetches.Records()
		for _, r := range recs {
			say("record %d %d %s", r.Partition, r.Offset, r.Key)
		}
		read += len(recs)
		if len(recs) > 0 {
			commit(cl, recs)
		}
		cl.AllowRebalance()
	}

	lctx, cancel := context.WithTimeout(context.Background(), spec.Timeout())
	defer cancel()
	if err := cl.LeaveGroupContext(lctx); err != nil {
		say("error LeaveGroup: %v", err)
	} else {
		say("left")
	}
	cl.Close()
	say("closed")
}

// commit commits the offset after the last polled record of each partition, synchronously,
// and prints what the coordinator answered for each partition.
func commit(cl *kgo.Client, recs []*kgo.Record) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, r := range recs {
		if offsets[r.Topic] == nil {
			offsets[r.Topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.Timeout())
	defer cancel()
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			say("error OffsetCommit: %v", err)
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					say("error OffsetCommit %s/%d (generation %d): %v", t.Topic, p.Partition, req.Generation, err)
					continue
				}
				say("committed %d %d", p.Partition, offsets[t.Topic][p.Partition].Offset)
			}
		}
	})
}
