package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/daemon"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
)

type replayFlags struct {
	output   string
	workers  int
	quiet    bool
	seed     uint
	maxFlows int
	config   string
	stages   string
}

func cmdReplay(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf replayFlags
	fs.StringVar(&rf.output, "o", "", "write events to `FILE` (default stdout)")
	fs.IntVar(&rf.workers, "workers", 1, "shard flows across `N` worker goroutines")
	fs.BoolVar(&rf.quiet, "quiet", false, "no progress line and no summary on stderr")
	fs.UintVar(&rf.seed, "community-id-seed", 0, "Community ID v1 `seed`")
	fs.IntVar(&rf.maxFlows, "max-flows", flow.DefaultMaxFlows, "cap on concurrent flows (least recently seen evicted)")
	fs.StringVar(&rf.config, "config", "", "analysis settings from a YAML configuration `FILE` (flow, dissect, exfil, signatures, geoip, alert_window)")
	fs.StringVar(&rf.stages, "stages", "full", "analysis depth: flows (flow records only), dissect (plus dns/tls/http events), full (plus attribution and detectors)")
	cf := addClassifyFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: phonehome replay [flags] FILE...\n\nReplays pcap or pcapng captures (gzip-compressed or not; - reads stdin),\nmerged in timestamp order, and writes one ECS JSON event per line.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "phonehome replay: no capture files given")
		fs.Usage()
		return 2
	}
	switch rf.stages {
	case "flows", "dissect", "full":
	default:
		fmt.Fprintf(stderr, "phonehome replay: --stages must be flows, dissect or full, not %q\n", rf.stages)
		return 2
	}
	if rf.workers < 1 || rf.seed > 0xffff {
		fmt.Fprintln(stderr, "phonehome replay: --workers must be >= 1 and --community-id-seed <= 65535")
		return 2
	}
	// The analysis settings: the configuration file (the daemon's format;
	// its capture and output sections are not used here), then the flags.
	acfg := daemon.DefaultConfig()
	if rf.config != "" {
		c, err := daemon.LoadConfig(rf.config)
		if err != nil {
			fmt.Fprintf(stderr, "phonehome replay: %v\n", err)
			return 1
		}
		acfg = c
	}
	cf.apply(&acfg)
	if err := acfg.Exfil.Validate(); err != nil {
		fmt.Fprintf(stderr, "phonehome replay: %v\n", err)
		return 1
	}
	// A broken signature file or database stops the run before any work.
	classifier, attributor, err := cf.build(&acfg)
	if err != nil {
		fmt.Fprintf(stderr, "phonehome replay: %v\n", err)
		return 1
	}
	defer cf.close()

	failed := false
	// One uncompressed pcap file and several workers: the workers take turns
	// reading it (engine.RunRecords), so reading and decoding run on every
	// core.
	var records *pcapfile.Records
	if args := fs.Args(); rf.workers > 1 && len(args) == 1 && args[0] != "-" {
		rs, ok, err := pcapfile.OpenRecords(args[0])
		if err != nil {
			fmt.Fprintf(stderr, "phonehome replay: %v\n", err)
			return 1
		}
		if ok {
			defer rs.Close()
			records = rs
		}
	}
	var readers []*pcapfile.Reader
	for _, path := range fs.Args() {
		if records != nil {
			break
		}
		var r *pcapfile.Reader
		var err error
		if path == "-" {
			r, err = pcapfile.NewReader(stdin, "-")
		} else {
			r, err = pcapfile.Open(path)
		}
		if err != nil {
			fmt.Fprintf(stderr, "phonehome replay: %v\n", err)
			failed = true
			continue
		}
		defer r.Close()
		if rf.workers > 1 {
			// The file reads (the kernel copying data) then overlap with
			// decoding on the reading goroutine instead of stalling it.
			r.ReadAhead()
		}
		readers = append(readers, r)
	}
	if len(readers) == 0 && records == nil {
		return 1
	}

	var dst io.Writer = stdout
	if rf.output != "" {
		f, err := os.Create(rf.output)
		if err != nil {
			fmt.Fprintf(stderr, "phonehome replay: %v\n", err)
			return 1
		}
		defer f.Close()
		dst = f
	}
	out := newLineWriter(dst)

	var dstats dissect.Stats
	host, _ := os.Hostname()
	cfg := engine.Config{
		Workers:     rf.workers,
		Flow:        flowConfig(acfg, fs, rf),
		Observer:    &event.Observer{Hostname: host, Name: host, Version: version},
		NewAnalyzer: dissect.New(acfg.Dissect, rf.workers, &dstats),
		Classifier:  classifier,
		OnSourceError: func(err error) {
			var pe *pcapfile.Error
			if errors.As(err, &pe) {
				if errors.Is(err, pcapfile.ErrTruncated) {
					fmt.Fprintf(stderr, "phonehome replay: warning: %v (events before it were kept)\n", pe)
					return
				}
				err = pe
			}
			fmt.Fprintf(stderr, "phonehome replay: error: %v\n", err)
			failed = true
		},
	}
	progress := !rf.quiet && isTerminal(stderr)
	var total int64
	for _, r := range readers {
		if r.Size() > 0 {
			total += r.Size()
		}
	}
	read := func(*engine.Stats) int64 {
		var n int64
		for _, r := range readers {
			n += r.BytesRead()
		}
		return n
	}
	if records != nil {
		total = records.Size()
		// Records and their headers, as far as decoded.
		read = func(s *engine.Stats) int64 { return int64(s.CaptureBytes.Load() + 16*s.Frames.Load()) }
	}
	if progress {
		cfg.Progress = func(s *engine.Stats) { printProgress(stderr, s, read(s), total) }
	}
	switch rf.stages {
	case "flows":
		cfg.NewAnalyzer, cfg.Classifier = nil, nil
	case "dissect":
		cfg.Classifier = nil
	}
	var gc finalGC
	cfg.OnDrained = gc.skip
	var st *engine.Stats
	if records != nil {
		st, err = engine.RunRecords(records, out, cfg)
	} else {
		st, err = engine.Run(engine.FileSource(pcapfile.NewMerger(readers...)), out, cfg)
	}
	gc.restore()
	if ferr := out.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("write events: %w", ferr)
	}
	if progress {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintf(stderr, "phonehome replay: %v\n", err)
		failed = true
	}
	if !rf.quiet {
		printSummary(stderr, st)
	}
	if cf.summary {
		if err := attributor.WriteInventory(stderr); err != nil {
			fmt.Fprintf(stderr, "phonehome replay: %v\n", err)
		}
	}
	if failed {
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func printProgress(w io.Writer, s *engine.Stats, read, total int64) {
	el := time.Since(s.Started).Seconds()
	rate := float64(read) / el
	eta := "?"
	if total > 0 && rate > 0 {
		eta = time.Duration(float64(total-read) / rate * float64(time.Second)).Round(100 * time.Millisecond).String()
	}
	fmt.Fprintf(w, "\r\033[K%s read, %d packets, %s/s, ETA %s", human(float64(read)), s.Frames.Load(), human(rate), eta)
}

func human(b float64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for b >= 1000 && i < len(units)-1 {
		b /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

func printSummary(w io.Writer, s *engine.Stats) {
	el := time.Since(s.Started)
	fs := s.Flows()
	frames := s.Frames.Load()
	bytes := s.CaptureBytes.Load()
	fmt.Fprintf(w, "phonehome replay summary\n")
	fmt.Fprintf(w, "  packets   %d frames, %d decoded, %s captured (%s on the wire)\n", frames, s.Packets.Load(), human(float64(bytes)), human(float64(s.WireBytes.Load())))
	fmt.Fprintf(w, "  flows     %d created, %d evicted at the cap\n", fs.Created, fs.Evicted)
	var ends []string
	for i, n := range fs.Ended {
		if n > 0 {
			ends = append(ends, fmt.Sprintf("%s=%d", flow.EndReason(i), n))
		}
	}
	if len(ends) > 0 {
		fmt.Fprintf(w, "  records   %s\n", strings.Join(ends, " "))
	}
	counts := s.EventCounts()
	keys := make([]string, 0, len(counts))
	var nev uint64
	for k, v := range counts {
		keys = append(keys, k)
		nev += v
	}
	sort.Strings(keys)
	var evs []string
	for _, k := range keys {
		evs = append(evs, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	fmt.Fprintf(w, "  events    %d: %s\n", nev, strings.Join(evs, " "))
	var skipped []string
	for i := range s.Skipped {
		if n := s.Skipped[i].Load(); n > 0 {
			skipped = append(skipped, fmt.Sprintf("%s=%d", decode.Reason(i), n))
		}
	}
	if len(skipped) == 0 {
		skipped = []string{"none"}
	}
	fmt.Fprintf(w, "  skipped   %s\n", strings.Join(skipped, " "))
	ds := s.Defrag()
	if ds.Fragments > 0 {
		fmt.Fprintf(w, "  fragments %d seen, %d datagrams reassembled, %d timed out, %d evicted, %d dropped\n", ds.Fragments, ds.Reassembled, ds.Timeouts, ds.Evicted, ds.Dropped)
	}
	if n := s.OutputErrors(); n > 0 {
		fmt.Fprintf(w, "  output    %d events failed to write\n", n)
	}
	secs := el.Seconds()
	fmt.Fprintf(w, "  elapsed   %s, %.0f packets/s, %s/s\n", el.Round(time.Millisecond), float64(frames)/secs, human(float64(bytes)/secs))
}

// flowConfig takes the flow table settings from the configuration file, with
// --max-flows and --community-id-seed winning when given.
func flowConfig(cfg daemon.Config, fs *flag.FlagSet, rf replayFlags) flow.Config {
	fc := cfg.Flow
	fc.CommunityIDSeed = cfg.CommunityIDSeed
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "max-flows":
			fc.MaxFlows = rf.maxFlows
		case "community-id-seed":
			fc.CommunityIDSeed = uint16(rf.seed)
		}
	})
	return fc
}
