package sink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKafkaOrderPerFlowWithCompression(t *testing.T) {
	const topic = "phonehome-events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(6, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	for ci, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			k, err := NewKafka(KafkaConfig{Brokers: brokers, Topic: topic, Compression: codec,
				Linger: 5 * time.Millisecond, BatchMaxBytes: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			q, err := NewQueue(k, QueueConfig{Size: 256})
			if err != nil {
				t.Fatal(err)
			}
			const flows, per = 12, 60
			for i := range per {
				for f := range flows {
					line := fmt.Sprintf(`{"codec":%q,"flow":%d,"seq":%d,"pad":"%s"}`, codec, f, i, strings.Repeat("k", (i*31)%500))
					r := Record{Line: []byte(line), Key: fmt.Appendf(nil, "%s-flow-%d", codec, f), Time: time.Now(), Dataset: "phonehome.flow"}
					if err := q.Write(context.Background(), r); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := q.Close(); err != nil { // drains the queue and flushes the producer
				t.Fatal(err)
			}
			if st := q.Stats(); st.Written != flows*per || st.Sink.Delivered != flows*per || st.Sink.Failed != 0 {
				t.Fatalf("stats %+v, last error %v", st, k.LastError())
			}

			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			next := map[string]int{}
			part := map[string]int32{}
			got := 0
			for got < flows*per {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("consumed %d of %d records", got, flows*per)
				}
				fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
				fs.EachRecord(func(r *kgo.Record) {
					key := string(r.Key)
					if !strings.HasPrefix(key, codec+"-") {
						return // an earlier subtest's record
					}
					var f, seq int
					var c string
					if _, err := fmt.Sscanf(string(r.Value), `{"codec":%q,"flow":%d,"seq":%d,`, &c, &f, &seq); err != nil {
						t.Fatalf("value %q: %v", r.Value, err)
					}
					want := fmt.Sprintf(`{"codec":%q,"flow":%d,"seq":%d,"pad":"%s"}`, codec, f, seq, strings.Repeat("k", (seq*31)%500))
					if string(r.Value) != want || key != fmt.Sprintf("%s-flow-%d", codec, f) {
						t.Fatalf("record %q key %q", r.Value, key)
					}
					if seq != next[key] {
						t.Fatalf("flow %s: seq %d after %d", key, seq, next[key]-1)
					}
					if p, ok := part[key]; ok && p != r.Partition {
						t.Fatalf("flow %s split over partitions %d and %d", key, p, r.Partition)
					}
					if got := r.Attrs.CompressionType(); got != uint8(ci+1) && codec != "zstd" || codec == "zstd" && got != 4 {
						t.Fatalf("record batch compression %d, want %s", got, codec)
					}
					part[key] = r.Partition
					next[key]++
					got++
				})
			}
			used := map[int32]bool{}
			for _, p := range part {
				used[p] = true
			}
			if len(used) < 2 {
				t.Fatalf("%d flows all in partitions %v: key partitioning not in effect", flows, used)
			}
		})
	}
}

func TestKafkaAsyncFailuresCounted(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	brokers := cluster.ListenAddrs()
	cluster.Close() // nothing answers any more
	k, err := NewKafka(KafkaConfig{Brokers: brokers, Topic: "t", DeliveryTimeout: time.Second,
		CloseTimeout: 2 * time.Second}, kgo.RetryTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := k.Write(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	k.Close()
	if st := k.SinkStats(); st.Failed != 5 || st.Delivered != 0 || k.LastError() == nil {
		t.Fatalf("stats %+v, last error %v", st, k.LastError())
	}
	if err := k.Write(context.Background(), rec(9)); err != ErrClosed {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestKafkaConfigValidation(t *testing.T) {
	no := false
	for _, c := range []KafkaConfig{
		{Topic: "t"},
		{Brokers: []string{"nohost"}, Topic: "t"},
		{Brokers: []string{"h:9092"}},
		{Brokers: []string{"h:9092"}, Topic: "t", Compression: "brotli"},
		{Brokers: []string{"h:9092"}, Topic: "t", RequiredAcks: "some"},
		{Brokers: []string{"h:9092"}, Topic: "t", RequiredAcks: "leader"}, // idempotent needs all
		{Brokers: []string{"h:9092"}, Topic: "t", SASL: KafkaSASL{Mechanism: "GSSAPI", Username: "u"}},
		{Brokers: []string{"h:9092"}, Topic: "t", SASL: KafkaSASL{Mechanism: "PLAIN"}},
		{Brokers: []string{"h:9092"}, Topic: "t", TLS: TLSConfig{Enabled: true, KeyFile: "k"}},
		{Brokers: []string{"h:9092"}, Topic: "t", Retries: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	ok := KafkaConfig{Brokers: []string{"h:9092"}, Topic: "t", RequiredAcks: "leader", Idempotent: &no,
		SASL: KafkaSASL{Mechanism: "scram-sha-512", Username: "u", Password: "p"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
}
