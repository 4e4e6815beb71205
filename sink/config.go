package sink

import (
	"errors"
	"fmt"
)

// Sink type names accepted by New.
const (
	TypeStdout = "stdout"
	TypeFile   = "file"
	TypeSyslog = "syslog"
	TypeKafka  = "kafka"
)

// Config describes one output. Only the section matching Type is used.
//
//	outputs:
//	  - type: file
//	    queue: {size: 8192, mode: drop}
//	    file: {path: /var/log/phonehome/events.json, max_bytes: 104857600, max_backups: 10}
//	  - type: syslog
//	    syslog: {network: tcp, address: "siem:6514"}
type Config struct {
	// Type is stdout, file, syslog or kafka.
	Type string `yaml:"type"`
	// Queue configures the Queue that Open puts in front of the sink.
	Queue  QueueConfig  `yaml:"queue"`
	Stdout StdoutConfig `yaml:"stdout"`
	File   FileConfig   `yaml:"file"`
	Syslog SyslogConfig `yaml:"syslog"`
	Kafka  KafkaConfig  `yaml:"kafka"`
}

// Validate reports the first problem in the configuration.
func (c Config) Validate() error {
	if err := c.Queue.Validate(); err != nil {
		return fmt.Errorf("output %s: %w", c.Type, err)
	}
	var err error
	switch c.Type {
	case TypeStdout:
		err = c.Stdout.Validate()
	case TypeFile:
		err = c.File.Validate()
	case TypeSyslog:
		err = c.Syslog.Validate()
	case TypeKafka:
		err = c.Kafka.Validate()
	case "":
		return errors.New("output: type is required (want " + typeNames + ")")
	default:
		return fmt.Errorf("output: unknown type %q (want %s)", c.Type, typeNames)
	}
	if err != nil {
		return fmt.Errorf("output %s: %w", c.Type, err)
	}
	return nil
}

// New builds the sink described by cfg (without a Queue).
func New(cfg Config) (Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		s   Sink
		err error
	)
	switch cfg.Type {
	case TypeStdout:
		s, err = NewStdout(cfg.Stdout)
	case TypeFile:
		s, err = NewFile(cfg.File)
	case TypeSyslog:
		s, err = NewSyslog(cfg.Syslog)
	case TypeKafka:
		s, err = NewKafka(cfg.Kafka)
	}
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", cfg.Type, err)
	}
	return s, nil
}

// Open builds every output, each behind its own Queue, and returns them as a
// Fanout. On error, outputs already opened are closed.
func Open(cfgs []Config) (*Fanout, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("output: no outputs configured")
	}
	var qs []*Queue
	fail := func(err error) (*Fanout, error) {
		for _, q := range qs {
			q.Close()
		}
		return nil, err
	}
	for i, c := range cfgs {
		s, err := New(c)
		if err != nil {
			return fail(fmt.Errorf("outputs[%d]: %w", i, err))
		}
		q, err := NewQueue(s, c.Queue)
		if err != nil {
			s.Close()
			return fail(fmt.Errorf("outputs[%d]: %w", i, err))
		}
		qs = append(qs, q)
	}
	return NewFanout(qs...), nil
}

// typeNames lists the accepted types for messages.
const typeNames = TypeStdout + ", " + TypeFile + ", " + TypeSyslog + ", " + TypeKafka
