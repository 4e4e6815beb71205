package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Kafka sink defaults and bounds.
const (
	// DefaultKafkaMaxBuffered bounds records buffered in the client; when
	// full, Write blocks (and a Drop-mode Queue in front starts dropping).
	DefaultKafkaMaxBuffered = 100_000
	// maxKafkaMaxBuffered bounds the configured value.
	maxKafkaMaxBuffered = 10_000_000
	// DefaultKafkaCloseTimeout bounds the final flush.
	DefaultKafkaCloseTimeout = 10 * time.Second
)

// KafkaSASL configures SASL authentication.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// KafkaConfig configures the "kafka" sink.
type KafkaConfig struct {
	// Brokers are seed host:port addresses.
	Brokers []string `yaml:"brokers"`
	// Topic receives every record.
	Topic string `yaml:"topic"`
	// ClientID identifies the producer to the brokers; default "phonehome".
	ClientID string `yaml:"client_id"`
	// Linger waits this long to fill batches; 0 uses the client default.
	Linger time.Duration `yaml:"linger"`
	// BatchMaxBytes caps a record batch; 0 uses the client default (1 MB).
	BatchMaxBytes int32 `yaml:"batch_max_bytes"`
	// Compression is none, gzip, snappy, lz4 or zstd; default none.
	Compression string `yaml:"compression"`
	// RequiredAcks is all (default), leader or none.
	RequiredAcks string `yaml:"required_acks"`
	// Retries bounds produce retries of a record; 0 uses the client default
	// (retry until the delivery timeout).
	Retries int `yaml:"retries"`
	// DeliveryTimeout fails a record not acknowledged in time; 0 means none.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`
	// Idempotent enables the idempotent producer (default true, needs
	// required_acks all).
	Idempotent *bool `yaml:"idempotent"`
	// MaxBufferedRecords bounds records awaiting acknowledgement; 0 means
	// DefaultKafkaMaxBuffered.
	MaxBufferedRecords int `yaml:"max_buffered_records"`
	// CloseTimeout bounds the flush in Close; 0 means DefaultKafkaCloseTimeout.
	CloseTimeout time.Duration `yaml:"close_timeout"`
	TLS          TLSConfig     `yaml:"tls"`
	SASL         KafkaSASL     `yaml:"sasl"`
}

func (c KafkaConfig) idempotent() bool { return c.Idempotent == nil || *c.Idempotent }

// Validate reports the first problem in the configuration.
func (c KafkaConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: brokers is required")
	}
	for _, b := range c.Brokers {
		if b == "" || !strings.Contains(b, ":") {
			return fmt.Errorf("kafka: broker %q is not host:port", b)
		}
	}
	if c.Topic == "" {
		return errors.New("kafka: topic is required")
	}
	if _, err := kafkaCompression(c.Compression); err != nil {
		return err
	}
	acks, err := kafkaAcks(c.RequiredAcks)
	if err != nil {
		return err
	}
	if c.idempotent() && acks != kgo.AllISRAcks() {
		return fmt.Errorf("kafka: idempotent producer needs required_acks all, not %q (set idempotent: false)", c.RequiredAcks)
	}
	switch {
	case c.Linger < 0 || c.DeliveryTimeout < 0 || c.CloseTimeout < 0:
		return errors.New("kafka: durations must not be negative")
	case c.BatchMaxBytes < 0:
		return fmt.Errorf("kafka: batch_max_bytes %d is negative", c.BatchMaxBytes)
	case c.Retries < 0:
		return fmt.Errorf("kafka: retries %d is negative", c.Retries)
	case c.MaxBufferedRecords < 0 || c.MaxBufferedRecords > maxKafkaMaxBuffered:
		return fmt.Errorf("kafka: max_buffered_records %d out of range 0..%d", c.MaxBufferedRecords, maxKafkaMaxBuffered)
	}
	if _, err := c.SASL.mechanism(); err != nil {
		return err
	}
	return c.TLS.validate("kafka")
}

func kafkaCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("kafka: compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

func kafkaAcks(s string) (kgo.Acks, error) {
	switch strings.ToLower(s) {
	case "", "all", "-1":
		return kgo.AllISRAcks(), nil
	case "leader", "1":
		return kgo.LeaderAck(), nil
	case "none", "0":
		return kgo.NoAck(), nil
	}
	return kgo.Acks{}, fmt.Errorf("kafka: required_acks %q: want all, leader or none", s)
}

func (c KafkaSASL) mechanism() (sasl.Mechanism, error) {
	if c.Mechanism == "" {
		return nil, nil
	}
	if c.Username == "" {
		return nil, fmt.Errorf("kafka: sasl %s needs a username", c.Mechanism)
	}
	switch strings.ToUpper(c.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka: sasl mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Mechanism)
}

// Kafka produces each record to one topic, keyed by Record.Key so that the
// events of a flow land in one partition in order. Produce is asynchronous:
// Write returns once the client has buffered the record; delivery results are
// counted (SinkStats Delivered/Failed). Safe for concurrent use.
type Kafka struct {
	cfg    KafkaConfig
	client *kgo.Client
	// ctx lives as long as the sink; cancelled by Close after the final
	// flush, which fails whatever is still unacknowledged.
	ctx    context.Context
	cancel context.CancelFunc
	// promise is allocated once; kgo calls it for every record.
	promise func(*kgo.Record, error)

	delivered, failed atomic.Uint64
	errMu             sync.Mutex
	lastErr           error

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var (
	_ Sink          = (*Kafka)(nil)
	_ StatsReporter = (*Kafka)(nil)
)

// NewKafka validates cfg and creates the client. Brokers are contacted
// lazily; an unreachable cluster shows up as failed deliveries.
func NewKafka(cfg KafkaConfig, extra ...kgo.Opt) (*Kafka, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	codec, _ := kafkaCompression(cfg.Compression)
	acks, _ := kafkaAcks(cfg.RequiredAcks)
	if cfg.ClientID == "" {
		cfg.ClientID = "phonehome"
	}
	if cfg.MaxBufferedRecords == 0 {
		cfg.MaxBufferedRecords = DefaultKafkaMaxBuffered
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = DefaultKafkaCloseTimeout
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerBatchCompression(codec),
		kgo.RequiredAcks(acks),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		// Keyed records are hashed to a partition (murmur2, like the Java
		// client), so one flow stays in one partition.
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(64<<10, true, true, nil)),
	}
	if !cfg.idempotent() {
		// Without idempotence, more than one in-flight request per broker
		// could reorder a flow's records on retry.
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(1))
	}
	if cfg.Linger > 0 {
		opts = append(opts, kgo.ProducerLinger(cfg.Linger))
	}
	if cfg.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(cfg.BatchMaxBytes))
	}
	if cfg.Retries > 0 {
		opts = append(opts, kgo.RecordRetries(cfg.Retries))
	}
	if cfg.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout))
	}
	if cfg.TLS.Enabled {
		tc, err := cfg.TLS.build(cfg.Brokers[0])
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		if cfg.TLS.ServerName == "" {
			tc.ServerName = "" // each broker is verified against its own host
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m, _ := cfg.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	opts = append(opts, extra...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kafka{cfg: cfg, client: client, ctx: ctx, cancel: cancel}
	k.promise = k.onDelivery
	return k, nil
}

// Name returns "kafka:<topic>".
func (k *Kafka) Name() string { return "kafka:" + k.cfg.Topic }

func (k *Kafka) onDelivery(_ *kgo.Record, err error) {
	if err == nil {
		k.delivered.Add(1)
		return
	}
	k.failed.Add(1)
	k.errMu.Lock()
	k.lastErr = err
	k.errMu.Unlock()
}

// LastError returns the most recent asynchronous delivery error, or nil.
func (k *Kafka) LastError() error {
	k.errMu.Lock()
	defer k.errMu.Unlock()
	return k.lastErr
}

// Write buffers r for produce and returns nil; the outcome is counted
// asynchronously (SinkStats Delivered/Failed, LastError). While
// MaxBufferedRecords are awaiting acknowledgement it blocks until one is
// done or the sink is closed. ctx is only checked on entry: kgo keeps the
// produce context with the buffered record, so it must live as long as the
// sink, not the call.
func (k *Kafka) Write(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if k.closed.Load() {
		return ErrClosed
	}
	rec := &kgo.Record{Key: r.Key, Value: r.Line, Timestamp: r.Time}
	k.client.Produce(k.ctx, rec, k.promise)
	return nil
}

// SinkStats reports acknowledged and failed deliveries.
func (k *Kafka) SinkStats() SinkStats {
	return SinkStats{Delivered: k.delivered.Load(), Failed: k.failed.Load()}
}

// Close waits up to CloseTimeout for buffered records to be acknowledged,
// then closes the client (records still unacknowledged count as failed).
func (k *Kafka) Close() error {
	k.closeOnce.Do(func() {
		k.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), k.cfg.CloseTimeout)
		defer cancel()
		if err := k.client.Flush(ctx); err != nil {
			k.closeErr = fmt.Errorf("kafka: flush on close: %w", err)
		}
		k.cancel()
		k.client.Close()
	})
	return k.closeErr
}
