// Package spec is the record contract shared by every interop client (interop/README.md).
package spec

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	ValueLen  = 100
	TsMod     = 1_000_000
	TsSlackMs = 2 * 24 * 3600 * 1000
)

var keyRe = regexp.MustCompile(`^k-(\d+)$`)

func Key(i int) string { return fmt.Sprintf("k-%d", i) }

func Value(i int) string {
	s := fmt.Sprintf("v-%d-", i)
	return s + strings.Repeat("x", ValueLen-len(s))
}

// TsBase is the producer's timestamp base: record i gets TsBase()+i.
func TsBase() int64 { return (time.Now().UnixMilli() / TsMod) * TsMod }

// Timeout is the bound for a whole consume (INTEROP_TIMEOUT seconds, default 60).
func Timeout() time.Duration {
	if s := os.Getenv("INTEROP_TIMEOUT"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(f * float64(time.Second))
		}
	}
	return 60 * time.Second
}

func Fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", a...)
	os.Exit(1)
}

// Args is the common command line: CMD --bootstrap B --topic T [...].
type Args struct {
	Cmd, Bootstrap, Topic, Codec, CodecTag, Version string
	Count, Partitions                               int
	NoHeaders, NoTimestamps                         bool
}

func Parse() Args {
	if len(os.Args) < 2 {
		Fail("usage: %s produce|consume|admin --bootstrap B --topic T ...", os.Args[0])
	}
	var a Args
	a.Cmd = os.Args[1]
	fs := flag.NewFlagSet(a.Cmd, flag.ExitOnError)
	fs.StringVar(&a.Bootstrap, "bootstrap", "", "bootstrap server")
	fs.StringVar(&a.Topic, "topic", "", "topic")
	fs.StringVar(&a.Codec, "codec", "none", "none|gzip|snappy|lz4|zstd")
	fs.StringVar(&a.CodecTag, "codec-tag", "", "label only")
	fs.StringVar(&a.Version, "version", "", "sarama only: Kafka version to speak (default: sarama's DefaultVersion)")
	fs.IntVar(&a.Count, "count", 0, "record count")
	fs.IntVar(&a.Partitions, "partitions", 0, "create the topic with this many partitions first")
	fs.BoolVar(&a.NoHeaders, "no-headers", false, "producer set no headers")
	fs.BoolVar(&a.NoTimestamps, "no-timestamps", false, "producer set no explicit timestamps")
	_ = fs.Parse(os.Args[2:])
	if a.Bootstrap == "" || a.Topic == "" {
		Fail("--bootstrap and --topic are required")
	}
	return a
}

type Header struct{ Key, Value string }

// Verifier checks consumed records against the contract.
type Verifier struct {
	n                       int
	expectHeaders, expectTs bool
	seen                    map[int]bool
	last                    map[int32][2]int64
	errs                    []string
	now                     int64
}

func NewVerifier(a Args) *Verifier {
	return &Verifier{n: a.Count, expectHeaders: !a.NoHeaders, expectTs: !a.NoTimestamps,
		seen: map[int]bool{}, last: map[int32][2]int64{}, now: time.Now().UnixMilli()}
}

func (v *Verifier) err(format string, a ...any) {
	if len(v.errs) < 10 {
		v.errs = append(v.errs, fmt.Sprintf(format, a...))
	}
}

func (v *Verifier) Done() bool { return len(v.seen) >= v.n }

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func (v *Verifier) Add(partition int32, offset int64, key, value []byte, headers []Header, ts int64) {
	where := fmt.Sprintf("p%d@%d", partition, offset)
	m := keyRe.FindSubmatch(key)
	if key == nil || m == nil {
		v.err("%s: bad key %q", where, key)
		return
	}
	i, _ := strconv.Atoi(string(m[1]))
	if i >= v.n {
		v.err("%s: key index %d out of range (count %d)", where, i, v.n)
		return
	}
	if v.seen[i] {
		v.err("%s: duplicate record %d", where, i)
	}
	v.seen[i] = true
	if value == nil || string(value) != Value(i) {
		v.err("%s: record %d value %q != %q", where, i, value, Value(i))
	}
	var want []Header
	if v.expectHeaders {
		want = []Header{{"h", strconv.Itoa(i)}}
	}
	if fmt.Sprint(headers) != fmt.Sprint(want) || len(headers) != len(want) {
		v.err("%s: record %d headers %v != %v", where, i, headers, want)
	}
	if v.expectTs {
		if ts%TsMod != int64(i) || abs(ts-v.now) > TsSlackMs {
			v.err("%s: record %d timestamp %d is not base+%d", where, i, ts, i)
		}
	} else if ts <= 0 || abs(ts-v.now) > TsSlackMs {
		v.err("%s: record %d implausible timestamp %d", where, i, ts)
	}
	if prev, ok := v.last[partition]; ok {
		if offset <= prev[0] {
			v.err("%s: offset not increasing (previous %d)", where, prev[0])
		}
		if int64(i) <= prev[1] {
			v.err("%s: record %d after record %d: per-partition order broken", where, i, prev[1])
		}
	}
	v.last[partition] = [2]int64{offset, int64(i)}
}

// Finish fails unless exactly the n records were seen; logRecords < 0 means unknown.
func (v *Verifier) Finish(logRecords int64) {
	if len(v.seen) != v.n {
		var missing []int
		for i := 0; i < v.n && len(missing) < 10; i++ {
			if !v.seen[i] {
				missing = append(missing, i)
			}
		}
		sort.Ints(missing)
		v.err("got %d of %d records; first missing: %v", len(v.seen), v.n, missing)
	}
	if logRecords >= 0 && logRecords != int64(v.n) {
		v.err("log holds %d offsets, expected exactly %d (duplicates or strays?)", logRecords, v.n)
	}
	if len(v.errs) > 0 {
		Fail("%s", strings.Join(v.errs, "; "))
	}
}

// WaitFor polls probe every 200 ms for up to 30 s.
func WaitFor(what string, probe func() (bool, error)) {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ok, err := probe()
		if ok {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	Fail("timed out waiting for %s (last error: %v)", what, last)
}
