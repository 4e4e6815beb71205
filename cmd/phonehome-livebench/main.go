// Command phonehome-livebench is the live-capture benchmark run by
// `make bench-live` (as root). It builds a veth pair between two private
// network namespaces, generates a capture with the project's generator
// (synth.Bench), and for each engine (libpcap, AF_PACKET fanout) finds the
// highest rate at which `phonehome run` on one end reads every packet
// tcpreplay sends into the other with nothing dropped anywhere: veth,
// kernel buffer, interface counters, output queue. Every trial starts a
// fresh daemon, replays at one rate, lets the daemon drain, and compares
// the frames it read with the packets tcpreplay sent.
//
// On a small machine tcpreplay competes with the daemon for the CPUs and
// may be the limit itself; the report says so when it could not send as
// fast as asked, or when even --topspeed was lossless.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/phonehome/phonehome/synth"
)

// Defaults of a full run (about 2.5 minutes per engine) and of -quick
// (about 30 s per engine).
const (
	defaultBudget     = 150 * time.Second
	quickBudget       = 30 * time.Second
	defaultTrial      = 4 * time.Second
	quickTrial        = 2 * time.Second
	defaultResolution = 0.03
	quickResolution   = 0.10
	// Repeats of the best rate before it stands: the machine is shared,
	// and one lucky trial must not make the figure.
	defaultRepeats     = 2
	quickRepeats       = 1
	defaultCaptureSize = 64 << 20
	// defaultBufferSize is the daemon's kernel buffer per handle or fanout
	// socket during the benchmark. Its own default (64 MiB) would hold a
	// whole short trial, so a trial would measure the buffer rather than
	// the rate the daemon sustains.
	defaultBufferSize = 8 << 20
	// bufferMultiple: a trial sends at least this many times the daemon's
	// total buffer, so a sustained shortfall cannot hide in the buffer.
	bufferMultiple = 8
	// maxSenders and maxRepeats bound their flags.
	maxSenders = 16
	maxRepeats = 10
	// minPPS is where the search gives up.
	minPPS = 1000
	// firstOverhead guesses a trial's fixed cost (daemon start and stop,
	// tcpreplay loading the capture) before one has been measured.
	firstOverhead = 3 * time.Second
	// nearCeiling: a best rate within this fraction of the sender's
	// topspeed is flagged as possibly bounded by tcpreplay.
	nearCeiling = 0.90
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	phonehome  string
	engines    []string
	workers    int
	capture    string
	size       int64
	budget     time.Duration
	trial      time.Duration
	resolution float64
	bufferSize int
	senders    int
	repeats    int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("phonehome-livebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var engines string
	quick := fs.Bool("quick", false, fmt.Sprintf("short run: %v per engine, %v trials, %.0f%% resolution", quickBudget, quickTrial, quickResolution*100))
	fs.StringVar(&o.phonehome, "phonehome", "./bin/phonehome", "phonehome `binary` to run")
	fs.StringVar(&engines, "engines", "pcap,afpacket", "comma-separated capture engines to measure")
	fs.IntVar(&o.workers, "workers", 2, "--workers of the daemon (pcap: goroutines; afpacket: fanout sockets)")
	fs.StringVar(&o.capture, "capture", "", "replay this Ethernet pcap `FILE` instead of generating one")
	fs.Int64Var(&o.size, "size", defaultCaptureSize, "bytes of the generated capture (synth.Bench)")
	fs.DurationVar(&o.budget, "budget", defaultBudget, "wall time allowed per engine")
	fs.DurationVar(&o.trial, "trial", defaultTrial, "replay time of one trial")
	fs.Float64Var(&o.resolution, "resolution", defaultResolution, "stop when lossless and failing rates are within this fraction")
	fs.IntVar(&o.bufferSize, "buffer-size", defaultBufferSize, "daemon --buffer-size in `BYTES` per socket (0: the daemon's default)")
	fs.IntVar(&o.repeats, "repeats", defaultRepeats, "times the best rate is run again, lossless each time, before it stands")
	fs.IntVar(&o.senders, "senders", 1, "concurrent tcpreplay processes sharing each trial (more can outrun one sender's ceiling, given spare CPUs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["budget"] {
			o.budget = quickBudget
		}
		if !set["trial"] {
			o.trial = quickTrial
		}
		if !set["resolution"] {
			o.resolution = quickResolution
		}
		if !set["repeats"] {
			o.repeats = quickRepeats
		}
	}
	for _, e := range strings.Split(engines, ",") {
		if e = strings.TrimSpace(e); e != "" {
			o.engines = append(o.engines, e)
		}
	}
	switch {
	case fs.NArg() != 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case len(o.engines) == 0:
		return o, errors.New("-engines is empty")
	case o.workers < 1:
		return o, errors.New("-workers must be >= 1")
	case o.capture == "" && o.size < 1<<20:
		return o, errors.New("-size must be at least 1 MiB")
	case o.budget <= 0 || o.trial <= 0:
		return o, errors.New("-budget and -trial must be positive")
	case o.resolution <= 0 || o.resolution >= 1:
		return o, errors.New("-resolution must be in (0, 1)")
	case o.bufferSize < 0:
		return o, errors.New("-buffer-size must be >= 0")
	case o.repeats < 0 || o.repeats > maxRepeats:
		return o, fmt.Errorf("-repeats must be in 0..%d", maxRepeats)
	case o.senders < 1 || o.senders > maxSenders:
		return o, fmt.Errorf("-senders must be in 1..%d", maxSenders)
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "phonehome-livebench: %v\n", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "phonehome-livebench: needs root (network namespaces, veth links, packet sockets): run `sudo make bench-live`")
		return 1
	}
	for _, tool := range []string{"ip", "tcpreplay"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(stderr, "phonehome-livebench: %s not found (make deps installs iproute2 and tcpreplay)\n", tool)
			return 1
		}
	}
	if o.phonehome, err = filepath.Abs(o.phonehome); err == nil {
		_, err = os.Stat(o.phonehome)
	}
	if err != nil {
		fmt.Fprintf(stderr, "phonehome-livebench: phonehome binary: %v (make build)\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	rep, err := bench(ctx, o, stderr)
	if rep != nil {
		rep.print(stdout)
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "phonehome-livebench: interrupted; namespaces and processes cleaned up")
		return 130
	case err != nil:
		fmt.Fprintf(stderr, "phonehome-livebench: %v\n", err)
		return 1
	case rep.failed():
		return 1
	}
	return 0
}

// captureInfo describes the replayed capture.
type captureInfo struct {
	path     string
	size     int64
	packets  uint64
	bytes    uint64 // frame bytes
	maxFrame int
}

func (c captureInfo) avgFrame() float64 { return float64(c.bytes) / float64(max(c.packets, 1)) }

// engineReport is one engine's outcome.
type engineReport struct {
	spec   engineSpec
	result searchResult
	err    error
}

type report struct {
	opts           options
	capture        captureInfo
	tcpreplay      string
	loadStart      string
	loadEnd        string
	senderCeiling  *trialResult // tcpreplay --topspeed with no daemon
	engines        []engineReport
	staleNamespace []string
	staleScratch   []string
}

func (r *report) failed() bool {
	for _, e := range r.engines {
		if e.err != nil {
			return true
		}
	}
	return false
}

func bench(ctx context.Context, o options, log io.Writer) (*report, error) {
	rep := &report{opts: o, loadStart: loadAvg(), tcpreplay: tcpreplayVersion()}
	rep.staleNamespace = removeStaleNamespaces(ctx)
	rep.staleScratch = removeStaleScratch()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", scratchPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)

	capPath := o.capture
	if capPath == "" {
		capPath = filepath.Join(dir, "bench.pcap")
		fmt.Fprintf(log, "livebench: generating a %d MiB capture with synth.Bench\n", o.size>>20)
		if err := generate(capPath, o.size); err != nil {
			return nil, err
		}
	}
	if rep.capture, err = inspectCapture(capPath); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	tb, err := newTestbed(ctx, strconv.Itoa(os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	defer func() {
		if err := tb.Close(); err != nil {
			fmt.Fprintf(log, "livebench: cleanup: %v\n", err)
		}
	}()
	fmt.Fprintf(log, "livebench: veth %s (netns %s) <- %s (netns %s)\n", tb.capIf, tb.capNS, tb.peerIf, tb.peerNS)

	tr := &trialRunner{tb: tb, phonehome: o.phonehome, capture: capPath, capPackets: rep.capture.packets,
		bufferSize: o.bufferSize, senders: o.senders, dir: dir}
	// The sender alone, as a reference for "tcpreplay is the limit".
	ceil, err := tr.run(ctx, engineSpec{}, 0, 2*rep.capture.packets)
	if err != nil {
		return rep, fmt.Errorf("sender ceiling: %w", err)
	}
	rep.senderCeiling = &ceil
	fmt.Fprintf(log, "livebench: tcpreplay alone, --topspeed: %.0f pps, %.1f Mbit/s\n", ceil.Replay.PPS, ceil.Replay.Mbps)

	for _, name := range o.engines {
		spec := engineSpec{Engine: name, Workers: o.workers}
		er := engineReport{spec: spec}
		er.result, er.err = measureEngine(ctx, tr, o, spec, rep.capture, ceil.Replay.PPS, log)
		rep.engines = append(rep.engines, er)
		if ctx.Err() != nil {
			break
		}
		if er.err != nil {
			fmt.Fprintf(log, "livebench: %s: %v\n", spec, er.err)
		}
	}
	rep.loadEnd = loadAvg()
	return rep, ctx.Err()
}

// measureEngine runs the search for one engine.
func measureEngine(ctx context.Context, tr *trialRunner, o options, spec engineSpec, ci captureInfo, senderPPS float64, log io.Writer) (searchResult, error) {
	sockets := 1
	if spec.Engine == "afpacket" {
		sockets = spec.Workers
	}
	bufBytes := o.bufferSize
	if bufBytes == 0 {
		bufBytes = 64 << 20 // the daemon's default
	}
	minPackets := uint64(float64(bufferMultiple*bufBytes*sockets) / ci.avgFrame())
	// A --topspeed trial (pps 0) is sized and costed at the sender's rate.
	rateOf := func(pps float64) float64 {
		if pps > 0 {
			return pps
		}
		return max(senderPPS, 1)
	}
	packetsAt := func(pps float64) uint64 {
		return max(uint64(rateOf(pps)*o.trial.Seconds()), minPackets, 1)
	}
	overhead := firstOverhead
	lim := searchLimits{
		Budget:     o.budget,
		Resolution: o.resolution,
		MinPPS:     minPPS,
		Repeats:    o.repeats,
		Now:        time.Now,
		Cost: func(pps float64) time.Duration {
			return overhead + time.Duration(float64(packetsAt(pps))/rateOf(pps)*float64(time.Second))
		},
	}
	probe := func(ctx context.Context, pps float64) (trialResult, error) {
		r, err := tr.run(ctx, spec, pps, packetsAt(pps))
		if err == nil {
			overhead = max(r.Wall-time.Duration(r.Replay.Seconds*float64(time.Second)), 0)
		}
		return r, err
	}
	n := 0
	logTrial := func(r *trialResult) {
		n++
		verdict := "lossless"
		if !r.Lossless() {
			verdict = "FAIL"
		}
		limited := ""
		if r.GeneratorLimited() {
			limited = " (tcpreplay fell short of the requested rate)"
		}
		fmt.Fprintf(log, "livebench: %s trial %d: %s: sent %d at %.0f pps, %.1f Mbit/s in %.2fs%s; socket received %d, read %d (%s; wait: %s, last scrape received %d read %d); loss: %s -> %s (%.1fs)\n",
			spec, n, r.RateLabel(), r.Replay.Successful, r.Replay.PPS, r.Replay.Mbps, r.Replay.Seconds, limited,
			r.Daemon.Received, r.Daemon.Frames, r.Source, r.Settle, r.Scraped.Received, r.Scraped.Frames,
			r.LossSummary(), verdict, r.Wall.Seconds())
	}
	fmt.Fprintf(log, "livebench: %s: searching (budget %v, trials of %v or >= %d packets)\n", spec, o.budget, o.trial, minPackets)
	return search(ctx, probe, lim, logTrial)
}

// generate writes synth.Bench's capture of about size bytes.
func generate(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("generate capture: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = synth.Bench(bw, size)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("generate capture: %w", err)
	}
	return nil
}

// inspectCapture counts the capture's packets and frame bytes.
func inspectCapture(path string) (captureInfo, error) {
	ci := captureInfo{path: path}
	f, err := os.Open(path)
	if err != nil {
		return ci, fmt.Errorf("capture: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ci, fmt.Errorf("capture: %w", err)
	}
	ci.size = st.Size()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return ci, fmt.Errorf("capture %s: %w", path, err)
	}
	for {
		data, _, err := r.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ci, fmt.Errorf("capture %s: packet %d: %w", path, ci.packets+1, err)
		}
		ci.packets++
		ci.bytes += uint64(len(data))
		ci.maxFrame = max(ci.maxFrame, len(data))
	}
	if ci.packets == 0 {
		return ci, fmt.Errorf("capture %s: no packets", path)
	}
	if ci.maxFrame > linkMTU+18 {
		return ci, fmt.Errorf("capture %s: a %d-byte frame exceeds the veth MTU %d", path, ci.maxFrame, linkMTU)
	}
	return ci, nil
}

// scratchPrefix starts this command's scratch directories under
// os.TempDir(), followed by the creating pid.
const scratchPrefix = "phonehome-livebench-"

// removeStaleScratch deletes scratch directories whose creator is gone (a
// run killed outright leaves its capture behind).
func removeStaleScratch() []string {
	paths, _ := filepath.Glob(filepath.Join(os.TempDir(), scratchPrefix+"*-*"))
	var removed []string
	for _, p := range paths {
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(p), scratchPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || processIsOurs(pid) {
			continue
		}
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func tcpreplayVersion() string {
	out, _ := exec.Command("tcpreplay", "--version").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func (r *report) print(w io.Writer) {
	o := r.opts
	buf := "daemon default (64 MiB)"
	if o.bufferSize > 0 {
		buf = fmt.Sprintf("%d MiB", o.bufferSize>>20)
	}
	fmt.Fprintf(w, "\nphonehome live-capture benchmark: veth pair between two network namespaces, tcpreplay -> phonehome run\n")
	fmt.Fprintf(w, "machine: %d CPUs, load average %s at start, %s at end; %s\n", runtime.NumCPU(), r.loadStart, r.loadEnd, r.tcpreplay)
	fmt.Fprintf(w, "capture: %s: %d packets, %.0f bytes/frame on average, %.1f MiB (synth.Bench unless -capture)\n",
		filepath.Base(r.capture.path), r.capture.packets, r.capture.avgFrame(), float64(r.capture.size)/(1<<20))
	fmt.Fprintf(w, "daemon: --buffer-size %s per socket, -o event file, fresh process per trial; trials of %v (>= %dx the buffer), budget %v per engine; best rate repeated %d more time(s); %d tcpreplay sender(s)\n",
		buf, o.trial, bufferMultiple, o.budget, o.repeats, o.senders)
	if c := r.senderCeiling; c != nil {
		fmt.Fprintf(w, "sender ceiling: tcpreplay --topspeed with nothing capturing: %.0f pps, %.1f Mbit/s\n", c.Replay.PPS, c.Replay.Mbps)
	}
	if len(r.staleNamespace) > 0 {
		fmt.Fprintf(w, "removed stale namespaces of a killed earlier run: %s\n", strings.Join(r.staleNamespace, ", "))
	}
	if len(r.staleScratch) > 0 {
		fmt.Fprintf(w, "removed scratch directories of a killed earlier run: %s\n", strings.Join(r.staleScratch, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "engine\tworkers\tmax lossless pps\tMbit/s\tfirst failing: asked (sent pps)\tloss at first fail\ttrials\t")
	for _, e := range r.engines {
		s := e.result
		best, mbps := "none", "-"
		if s.Best != nil {
			best, mbps = fmt.Sprintf("%.0f", s.Best.Replay.PPS), fmt.Sprintf("%.1f", s.Best.Replay.Mbps)
		}
		fail, loss := "none", "-"
		if f := s.FirstFail; f != nil {
			fail = fmt.Sprintf("%s (%.0f)", f.RateLabel(), f.Replay.PPS)
			loss = f.LossSummary()
		}
		if e.err != nil {
			loss = "error: " + e.err.Error()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t\n", e.spec.Engine, e.spec.Workers, best, mbps, fail, loss, len(s.Trials))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, e := range r.engines {
		for _, n := range e.notes(r.senderCeiling) {
			fmt.Fprintf(w, "note: %s: %s\n", e.spec, n)
		}
	}
	fmt.Fprintln(w, "\ntrials:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "engine\tasked\tsent\tachieved pps\tMbit/s\tread\tdaemon CPU us/pkt\tloss\tverdict\t")
	for _, e := range r.engines {
		for i := range e.result.Trials {
			t := &e.result.Trials[i]
			verdict := "lossless"
			if !t.Lossless() {
				verdict = "FAIL"
			}
			if t.GeneratorLimited() {
				verdict += ", tcpreplay short of rate"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.1f\t%d\t%.2f\t%s\t%s\t\n", e.spec, t.RateLabel(), t.Replay.Successful,
				t.Replay.PPS, t.Replay.Mbps, t.Daemon.Frames, t.CPUPerPacket(), t.LossSummary(), verdict)
		}
	}
	_ = tw.Flush()
}

// notes explain what bounded an engine's figure.
func (e engineReport) notes(sender *trialResult) []string {
	s := e.result
	var notes []string
	// The daemon's own limit was found when tcpreplay held a paced rate
	// and the daemon still lost packets.
	daemonBound := s.FirstFail != nil && s.FirstFail.Requested > 0 && !s.FirstFail.GeneratorLimited()
	switch {
	case s.Best == nil && len(s.Trials) > 0 && s.Converged:
		notes = append(notes, fmt.Sprintf("no lossless rate at or above %d pps", minPPS))
	case s.Best != nil && s.Best.Requested == 0:
		notes = append(notes, fmt.Sprintf("even tcpreplay --topspeed (%.0f pps) was lossless: tcpreplay is the limit, phonehome's own is higher", s.Best.Replay.PPS))
	case s.Best != nil && s.Best.GeneratorLimited():
		notes = append(notes, fmt.Sprintf("tcpreplay reached only %.0f of the %.0f pps asked: it, not phonehome, bounds this figure",
			s.Best.Replay.PPS, s.Best.Requested))
	case daemonBound && s.Best != nil:
		f := s.FirstFail
		notes = append(notes, fmt.Sprintf("phonehome's own limit: tcpreplay held %.0f pps and the daemon lost %d of %d packets (%s); lossless at %.0f pps",
			f.Replay.PPS, f.Missing()+f.LinkDrops, f.Replay.Successful, f.LossSummary(), s.Best.Replay.PPS))
	case s.Best != nil && s.Best.Replay.PPS >= nearCeiling*s.Ceiling:
		notes = append(notes, fmt.Sprintf("the lossless rate is within %.0f%% of what tcpreplay sends at --topspeed alongside the daemon (%.0f pps): the sender may be co-limiting",
			(1-nearCeiling)*100, s.Ceiling))
	}
	if b := s.Best; b != nil && b.CPUPerPacket() > 0 && b.Replay.Seconds > 0 && !daemonBound {
		// Headroom, measured: the daemon's CPU time over the replay time
		// (start-up and shutdown included, so slightly high).
		n := fmt.Sprintf("at that rate the daemon spent %.2f CPU-us per packet, busy %.2f of the machine's %d CPUs",
			b.CPUPerPacket(), b.DaemonCPU.Seconds()/b.Replay.Seconds, runtime.NumCPU())
		if s.FirstFail == nil {
			n += ": it had headroom the sender could not use"
		}
		notes = append(notes, n)
	}
	if f := s.FirstFail; f != nil && f.GeneratorLimited() {
		notes = append(notes, fmt.Sprintf("at the first failing rate tcpreplay sent %.0f of %.0f pps asked", f.Replay.PPS, f.Requested))
	}
	if s.Ceiling > 0 && sender != nil && sender.Replay.PPS > 0 && s.Ceiling < 0.8*sender.Replay.PPS {
		notes = append(notes, fmt.Sprintf("tcpreplay --topspeed fell from %.0f pps alone to %.0f pps beside the daemon: they share %d CPUs",
			sender.Replay.PPS, s.Ceiling, runtime.NumCPU()))
	}
	if s.Best != nil && !s.Confirmed {
		notes = append(notes, "the best rate was not repeated as often as -repeats asks (budget): treat it as optimistic")
	}
	if !s.Converged && len(s.Trials) > 0 {
		notes = append(notes, "the budget ran out before the bracket narrowed to the resolution")
	}
	if e.err != nil {
		notes = append(notes, "stopped by an error: "+e.err.Error())
	}
	return notes
}
