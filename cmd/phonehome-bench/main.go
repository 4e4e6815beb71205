// Command phonehome-bench is the end-to-end replay benchmark run by
// `make bench`. On one capture it times a read-and-decode floor (gopacket's
// pcapgo reader and DecodingLayerParser, nothing else) and `phonehome replay`
// with one and two workers, each as a child process so wall time and peak RSS
// are measured the same way, and checks two targets: replay with one worker
// within 4x of the floor, and two workers at least 1.6x faster than one.
//
// To tell the engine's parallel overhead from the machine's, each round also
// runs two one-worker replays at once: the throughput they reach together
// over one alone is the most any split of the work could gain here (shared
// caches, memory bandwidth and neighbours on a virtual machine all lower
// it), and the two-worker speedup is reported against it as well.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// floorArg, as the first argument, makes the process run the floor on the
// capture named by the second argument and print its counts; the benchmark
// runs itself that way so the floor's time and RSS are a child's, like
// phonehome's.
const floorArg = "-floor-child"

// Targets from the performance brief.
const (
	maxFloorRatio  = 4.0 // replay(1 worker) time / floor time
	minTwoOverOne  = 1.6 // replay(1 worker) time / replay(2 workers) time
	maxStderrBytes = 64 << 10
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == floorArg {
		c, err := floor(os.Args[2])
		if err != nil {
			fmt.Fprintf(os.Stderr, "phonehome-bench: floor: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(c.String())
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	capture   string
	phonehome string
	runs      int
	strict    bool
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("phonehome-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.capture, "capture", "testdata/bench.pcap", "benchmark capture `FILE` (classic pcap, Ethernet)")
	fs.StringVar(&o.phonehome, "phonehome", "./bin/phonehome", "phonehome `binary` to time")
	fs.IntVar(&o.runs, "runs", 3, "timed runs per configuration; the best is reported")
	fs.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed or the counts disagree")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.runs < 1 || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "phonehome-bench: -runs must be >= 1 and no positional arguments are taken")
		return 2
	}
	rep, err := bench(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "phonehome-bench: %v\n", err)
		return 1
	}
	rep.print(stdout)
	if o.strict && !rep.allPass() {
		return 1
	}
	return 0
}

// result collects the timed runs of one configuration.
type result struct {
	name    string
	walls   []time.Duration
	cpu     []time.Duration // user+system time of the same runs
	maxRSS  int64           // bytes, peak over all runs
	packets uint64          // frames the configuration read
	events  uint64
	hasEv   bool
}

func (r *result) best() time.Duration { return minDuration(r.walls) }

// bestCPU is the least CPU time of any run: unlike wall time it hardly
// depends on what else the machine runs, so it is the steadier figure on a
// loaded machine (it cannot show a parallel speedup, though).
func (r *result) bestCPU() time.Duration { return minDuration(r.cpu) }

func minDuration(d []time.Duration) time.Duration {
	b := d[0]
	for _, x := range d[1:] {
		b = min(b, x)
	}
	return b
}

type report struct {
	capture   string
	size      int64
	cpus      int
	loadStart string
	loadEnd   string
	floor     *result
	replay    []*result // workers 1, 2
	// pair is two one-worker replays run at once, timed together.
	pair  *result
	notes []string
	// disagree is set when the configurations read different frame counts
	// or 1 and 2 workers emitted different event counts.
	disagree bool
}

func bench(o options, log io.Writer) (*report, error) {
	st, err := os.Stat(o.capture)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if _, err := os.Stat(o.phonehome); err != nil {
		return nil, fmt.Errorf("phonehome binary: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate own executable for the floor child: %w", err)
	}
	rep := &report{capture: o.capture, size: st.Size(), cpus: runtime.NumCPU(), loadStart: loadAvg()}

	replayCmd := func(workers int, quiet bool, events string) func() *exec.Cmd {
		return func() *exec.Cmd {
			args := []string{"replay", "-o", events, "--workers", fmt.Sprint(workers)}
			if quiet {
				args = append(args, "--quiet")
			}
			return exec.Command(o.phonehome, append(args, o.capture)...)
		}
	}
	floorCmd := func() *exec.Cmd { return exec.Command(self, floorArg, o.capture) }

	// Untimed first passes: they warm the page cache and collect the
	// counts (packets from the floor, events from replay's summary, which
	// --quiet suppresses; stderr is a pipe, so no progress line is drawn).
	fmt.Fprintf(log, "phonehome-bench: warm-up and counts on %s\n", o.capture)
	out, _, err := runChild(floorCmd())
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	fc, err := parseFloorCounts(out)
	if err != nil {
		return nil, err
	}
	rep.floor = &result{name: "floor (gopacket pcapgo+DLP)", packets: fc.Packets}
	if fc.DecodeErrors > 0 {
		rep.notes = append(rep.notes, fmt.Sprintf("floor: %d of %d frames had decode errors (gopacket)", fc.DecodeErrors, fc.Packets))
	}
	dir, err := os.MkdirTemp("", "phonehome-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var digests []string
	for _, w := range []int{1, 2} {
		events := filepath.Join(dir, fmt.Sprintf("events-%d.json", w))
		_, errOut, err := runChild(replayCmd(w, false, events)())
		if err != nil {
			return nil, fmt.Errorf("replay --workers %d: %w", w, err)
		}
		d, err := eventsDigest(events)
		if err != nil {
			return nil, err
		}
		digests = append(digests, d)
		s, err := parseSummary(errOut)
		if err != nil {
			return nil, fmt.Errorf("replay --workers %d: %w", w, err)
		}
		rep.replay = append(rep.replay, &result{name: fmt.Sprintf("replay --workers %d", w), packets: s.Frames, events: s.Events, hasEv: true})
		if s.Frames != fc.Packets {
			rep.notes = append(rep.notes, fmt.Sprintf("MISMATCH: replay --workers %d read %d frames, the floor %d", w, s.Frames, fc.Packets))
			rep.disagree = true
		}
	}
	if a, b := rep.replay[0].events, rep.replay[1].events; a != b {
		rep.notes = append(rep.notes, fmt.Sprintf("MISMATCH: 1 worker emitted %d events, 2 workers %d", a, b))
		rep.disagree = true
	} else if digests[0] != digests[1] {
		rep.notes = append(rep.notes, "MISMATCH: 1 and 2 workers emitted different events (same count, order aside)")
		rep.disagree = true
	}
	rep.pair = &result{name: "2 x replay --workers 1 at once", packets: 2 * rep.replay[0].packets, events: 2 * rep.replay[0].events, hasEv: true}

	// Timed runs, interleaved so that a burst of load from elsewhere on the
	// machine spreads over the configurations instead of hitting one.
	configs := []struct {
		res *result
		cmd func() *exec.Cmd
	}{{rep.floor, floorCmd}, {rep.replay[0], replayCmd(1, true, os.DevNull)}, {rep.replay[1], replayCmd(2, true, os.DevNull)},
		{rep.pair, replayCmd(1, true, os.DevNull)}}
	for i := 0; i < o.runs; i++ {
		for _, c := range configs {
			var m measurement
			var err error
			if c.res == rep.pair {
				m, err = timeChildren(c.cmd(), c.cmd())
			} else {
				m, err = timeChild(c.cmd())
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.res.name, err)
			}
			c.res.walls = append(c.res.walls, m.wall)
			c.res.cpu = append(c.res.cpu, m.cpu)
			c.res.maxRSS = max(c.res.maxRSS, m.maxRSS)
			fmt.Fprintf(log, "  run %d %-28s wall %v, cpu %v\n", i+1, c.res.name, m.wall.Round(time.Millisecond), m.cpu.Round(time.Millisecond))
		}
	}
	rep.loadEnd = loadAvg()
	return rep, nil
}

// runChild runs cmd to completion and returns its stdout and stderr.
func runChild(cmd *exec.Cmd) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &limitedBuffer{max: maxStderrBytes, b: &e}
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), nil
}

// measurement is one timed child run.
type measurement struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	maxRSS int64         // bytes
}

// timeChild runs cmd with its output discarded (stderr kept for errors) and
// measures it.
func timeChild(cmd *exec.Cmd) (measurement, error) {
	var e bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &limitedBuffer{max: maxStderrBytes, b: &e}
	start := time.Now()
	err := cmd.Run()
	m := measurement{wall: time.Since(start)}
	if err != nil {
		return m, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(e.String()))
	}
	ps := cmd.ProcessState
	m.cpu = ps.UserTime() + ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		m.maxRSS = int64(ru.Maxrss) * 1024 // Linux reports kilobytes
	}
	return m, nil
}

// timeChildren runs the commands at once and measures them together: wall
// time until the last ends, CPU time summed, the larger peak RSS.
func timeChildren(cmds ...*exec.Cmd) (measurement, error) {
	errs := make([]bytes.Buffer, len(cmds))
	start := time.Now()
	for i, cmd := range cmds {
		cmd.Stdout, cmd.Stderr = io.Discard, &limitedBuffer{max: maxStderrBytes, b: &errs[i]}
		if err := cmd.Start(); err != nil {
			for _, c := range cmds[:i] {
				_ = c.Wait()
			}
			return measurement{}, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
		}
	}
	var m measurement
	var failed error
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil && failed == nil {
			failed = fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(errs[i].String()))
		}
		ps := cmd.ProcessState
		m.cpu += ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			m.maxRSS = max(m.maxRSS, int64(ru.Maxrss)*1024)
		}
	}
	m.wall = time.Since(start)
	return m, failed
}

// eventsDigest sums a hash of every line of an event file, so two runs that
// emitted the same events in another order compare equal. It streams: a
// child's peak RSS counts the benchmark's own (the kernel carries the
// parent's high-water mark into a child that it spawns with vfork), so the
// benchmark must stay small.
func eventsDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read events: %w", err)
	}
	defer f.Close()
	var sum, n uint64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		h := fnv.New64a()
		h.Write(sc.Bytes())
		sum += h.Sum64()
		n++
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read events: %w", err)
	}
	return fmt.Sprintf("%d/%x", n, sum), nil
}

// limitedBuffer keeps the first max bytes written and drops the rest, so a
// child that floods stderr cannot grow the benchmark's memory.
type limitedBuffer struct {
	max int
	b   *bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (r *report) ratios() (floorRatio, speedup float64) {
	floorRatio = r.replay[0].best().Seconds() / r.floor.best().Seconds()
	speedup = r.replay[0].best().Seconds() / r.replay[1].best().Seconds()
	return floorRatio, speedup
}

// pairedMedians compares the runs of each round, which ran back to back and
// so under about the same load: the median over rounds of the two-worker
// speedup, and of the ceiling (the throughput of two one-worker replays at
// once over one alone).
func (r *report) pairedMedians() (speedup, ceiling float64) {
	one, two, pair := r.replay[0].walls, r.replay[1].walls, r.pair.walls
	var sp, ce []float64
	for i := range one {
		sp = append(sp, one[i].Seconds()/two[i].Seconds())
		ce = append(ce, 2*one[i].Seconds()/pair[i].Seconds())
	}
	return median(sp), median(ce)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func (r *report) allPass() bool {
	fr, sp := r.ratios()
	return fr <= maxFloorRatio && sp >= minTwoOverOne && !r.disagree
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nreplay benchmark: %s, %.1f MB, %d packets; %d CPUs; load average %s at start, %s at end\n",
		r.capture, float64(r.size)/1e6, r.floor.packets, r.cpus, r.loadStart, r.loadEnd)
	fmt.Fprintf(w, "best of %d runs each (page cache warm):\n\n", len(r.floor.walls))
	fmt.Fprintf(w, "%-28s %10s %9s %12s %12s %12s %10s   %s\n", "", "wall", "MB/s", "packets/s", "events/s", "peak RSS", "cpu", "all runs (wall)")
	for _, res := range append(append([]*result{r.floor}, r.replay...), r.pair) {
		b := res.best().Seconds()
		ev := "-"
		if res.hasEv {
			ev = fmt.Sprintf("%.0f", float64(res.events)/b)
		}
		var all []string
		for _, x := range res.walls {
			all = append(all, x.Round(time.Millisecond).String())
		}
		fmt.Fprintf(w, "%-28s %10s %9.1f %12.0f %12s %8.1f MiB %10s   %s\n", res.name, res.best().Round(time.Millisecond),
			float64(r.size)/1e6/b, float64(res.packets)/b, ev, float64(res.maxRSS)/(1<<20), res.bestCPU().Round(time.Millisecond), strings.Join(all, " "))
	}
	fr, sp := r.ratios()
	fmt.Fprintf(w, "\nevents: %d (1 worker), %d (2 workers)\n", r.replay[0].events, r.replay[1].events)
	fmt.Fprintf(w, "replay(1 worker) / floor time: %.2fx (target <= %.1fx): %s\n", fr, maxFloorRatio, passMiss(fr <= maxFloorRatio))
	fmt.Fprintf(w, "speedup of 2 workers over 1:   %.2fx (target >= %.1fx on 2 cores): %s\n", sp, minTwoOverOne, passMiss(sp >= minTwoOverOne))
	psp, ceil := r.pairedMedians()
	fmt.Fprintf(w, "  median over the %d rounds (each round's runs back to back): %.2fx\n", len(r.replay[0].walls), psp)
	fmt.Fprintf(w, "  this machine's ceiling: 2 one-worker replays at once do %.2fx the work of one in the same time (median);\n", ceil)
	fmt.Fprintf(w, "  2 workers reach %.0f%% of it\n", 100*psp/ceil)
	fmt.Fprintf(w, "for reference, replay(1 worker) / floor CPU time: %.2fx (steadier than wall time on a loaded machine)\n",
		r.replay[0].bestCPU().Seconds()/r.floor.bestCPU().Seconds())
	if r.cpus < 2 {
		fmt.Fprintf(w, "note: only %d CPU: the 2-worker target cannot be met here\n", r.cpus)
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
