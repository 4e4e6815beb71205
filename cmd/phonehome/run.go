package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/phonehome/phonehome/daemon"
	"github.com/phonehome/phonehome/sink"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runFlags holds the daemon's flags; each maps onto a configuration key.
type runFlags struct {
	config        string
	ifaces        stringList
	engine        string
	bpf           string
	output        string
	metricsAddr   string
	user          string
	workers       int
	snaplen       int
	bufferSize    int
	statsInterval time.Duration
	seed          uint
}

func addRunFlags(fs *flag.FlagSet) *runFlags {
	f := &runFlags{}
	fs.StringVar(&f.config, "config", "", "YAML configuration `FILE` (flags given on the command line win)")
	fs.Var(&f.ifaces, "i", "capture `INTERFACE` (repeatable)")
	fs.StringVar(&f.engine, "engine", "", "capture engine: pcap or afpacket (default pcap)")
	fs.StringVar(&f.bpf, "bpf", "", "BPF filter `EXPR` in tcpdump syntax")
	fs.StringVar(&f.output, "o", "", "write events to `FILE` (a file output; default stdout)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on `ADDR` (host:port)")
	fs.StringVar(&f.user, "user", "", "drop privileges to `USER` once the capture is open")
	fs.IntVar(&f.workers, "workers", 0, "workers: AF_PACKET fanout sockets per interface, or goroutines for pcap (default: CPUs)")
	fs.IntVar(&f.snaplen, "snaplen", 0, "bytes kept per frame (default 262144)")
	fs.IntVar(&f.bufferSize, "buffer-size", 0, "kernel capture buffer in `BYTES` per socket")
	fs.DurationVar(&f.statsInterval, "stats-interval", 0, "interval of phonehome.stats events (default 1m)")
	fs.UintVar(&f.seed, "community-id-seed", 0, "Community ID v1 `seed`")
	return f
}

// config loads the configuration file (if any) and applies the flags that
// were set on the command line over it.
func (f *runFlags) configFrom(fs *flag.FlagSet) (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
	if f.config != "" {
		c, err := daemon.LoadConfig(f.config)
		if err != nil {
			return cfg, err
		}
		cfg = c
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["i"] {
		cfg.Capture.Interfaces = f.ifaces
	}
	if set["engine"] {
		cfg.Capture.Engine = f.engine
	}
	if set["bpf"] {
		cfg.Capture.BPF = f.bpf
	}
	if set["o"] {
		cfg.Outputs = []sink.Config{{Type: "file", File: sink.FileConfig{Path: f.output}}}
	}
	if set["metrics-addr"] {
		cfg.MetricsAddr = f.metricsAddr
	}
	if set["user"] {
		cfg.User = f.user
	}
	if set["workers"] {
		cfg.Capture.Workers = f.workers
	}
	if set["snaplen"] {
		cfg.Capture.SnapLen = f.snaplen
	}
	if set["buffer-size"] {
		cfg.Capture.BufferSize = f.bufferSize
	}
	if set["stats-interval"] {
		cfg.StatsInterval = f.statsInterval
	}
	if set["community-id-seed"] {
		if f.seed > 0xffff {
			return cfg, errors.New("--community-id-seed must be <= 65535")
		}
		cfg.CommunityIDSeed = uint16(f.seed)
	}
	return cfg, nil
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zap.InfoLevel)
	return zap.New(core).Named("phonehome")
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rf := addRunFlags(fs)
	cf := addClassifyFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: phonehome run -i IFACE [-i IFACE2] [flags]\n\nWatches interfaces live (span or tap ports) and writes one ECS JSON event per line\nto the configured outputs. SIGHUP reloads signatures and reopens output files;\nSIGTERM or SIGINT flushes every open flow and exits 0.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "phonehome run: unexpected arguments %q (interfaces go with -i)\n", fs.Args())
		return 2
	}
	cfg, err := rf.configFrom(fs)
	if err != nil {
		fmt.Fprintf(stderr, "phonehome run: %v\n", err)
		return 1
	}
	cf.apply(&cfg)
	defer cf.close()
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()
	err = daemon.Run(context.Background(), daemon.Options{Config: cfg, ConfigPath: rf.config, Version: version, Logger: log, NewClassifier: cf.factory()})
	if err != nil {
		fmt.Fprintf(stderr, "phonehome run: %v\n", err)
		return 1
	}
	return 0
}

// cmdConfig implements "phonehome config check FILE".
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage: phonehome config check FILE")
		return 2
	}
	cfg, err := daemon.LoadConfig(args[1])
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "phonehome config: %s: %v\n", args[1], err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (%d interface(s), engine %s, %d output(s))\n", args[1], len(cfg.Capture.Interfaces), cfg.Capture.Engine, max(len(cfg.Outputs), 1))
	return 0
}
