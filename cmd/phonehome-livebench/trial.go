package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/phonehome/phonehome/daemon"
	"github.com/phonehome/phonehome/event"
)

// Timeouts of one trial's steps.
const (
	daemonStartTimeout = 20 * time.Second
	daemonStopTimeout  = 30 * time.Second
	// settleQuiet is how long the daemon's counters must stay still, with
	// its buffer empty, before a trial that lost frames is read.
	settleQuiet   = time.Second
	settleTimeout = 15 * time.Second
	pollInterval  = 100 * time.Millisecond
	// statsTailBytes is how much of the event file's end is searched for
	// the daemon's final phonehome.stats event.
	statsTailBytes = 1 << 20
	maxLogTail     = 2000
	// tcpreplay --pps-multi: one more packet per slot every
	// ppsPerMultiStep packets/s, at most ppsMultiMax.
	ppsPerMultiStep = 10000
	ppsMultiMax     = 16
)

// engineSpec is one configuration under test.
type engineSpec struct {
	Engine  string
	Workers int
}

func (e engineSpec) String() string { return fmt.Sprintf("%s/%d", e.Engine, e.Workers) }

// daemonCounters are the figures read from the daemon (metrics or its final
// phonehome.stats event).
type daemonCounters struct {
	Received, KernelDropped, InterfaceDropped uint64
	Frames, Bytes, OutputDropped              uint64
	// StartupDiscarded: AF_PACKET frames skipped before the socket's
	// filter and fanout were set (stats event only; none expected here).
	StartupDiscarded uint64
}

// covers reports whether every counter of c is at least o's.
func (c daemonCounters) covers(o daemonCounters) bool {
	return c.Received >= o.Received && c.KernelDropped >= o.KernelDropped && c.InterfaceDropped >= o.InterfaceDropped &&
		c.Frames >= o.Frames && c.Bytes >= o.Bytes && c.OutputDropped >= o.OutputDropped
}

// Unread is how many frames the kernel accepted that were neither dropped
// nor read when the daemon stopped: a backlog, not a drop.
func (c daemonCounters) Unread() uint64 {
	if done := c.Frames + c.KernelDropped + c.StartupDiscarded; c.Received > done {
		return c.Received - done
	}
	return 0
}

// replayReport is what tcpreplay says it did.
type replayReport struct {
	Packets, Bytes uint64
	Seconds        float64
	PPS, Mbps      float64
	Successful     uint64
	Failed         uint64
	Retried        uint64 // ENOBUFS + EAGAIN retries
}

// trialResult is one replay at one rate into one fresh daemon.
type trialResult struct {
	Spec      engineSpec
	Requested float64 // packets/s asked of tcpreplay; 0 = --topspeed
	Replay    replayReport
	Daemon    daemonCounters
	LinkDrops uint64        // drops the veth pair itself counted (backlog full)
	DaemonCPU time.Duration // user+system CPU time of the daemon process
	Wall      time.Duration
	Source    string // where Daemon came from: "stats event" or "metrics"
	// Settle is how the wait for the daemon's buffer to drain ended.
	Settle settleOutcome
	// Scraped is the last scrape before the daemon was stopped.
	Scraped daemonCounters
}

// settleOutcome says why the wait after a replay ended.
type settleOutcome int

const (
	settleNone     settleOutcome = iota // no daemon
	settleAll                           // every sent frame read or dropped
	settleQuietEnd                      // buffer empty, counters still for settleQuiet
	settleTimedOut                      // settleTimeout passed with a backlog
)

func (s settleOutcome) String() string {
	switch s {
	case settleAll:
		return "all accounted"
	case settleQuietEnd:
		return "quiet"
	case settleTimedOut:
		return "timed out with a backlog"
	}
	return "-"
}

// Missing is how many sent packets the daemon never read.
func (r *trialResult) Missing() uint64 {
	if r.Daemon.Frames >= r.Replay.Successful {
		return 0
	}
	return r.Replay.Successful - r.Daemon.Frames
}

// CPUPerPacket is the daemon's CPU time per frame read in microseconds,
// start-up and shutdown included (0 when unknown).
func (r *trialResult) CPUPerPacket() float64 {
	if r.Daemon.Frames == 0 {
		return 0
	}
	return float64(r.DaemonCPU.Microseconds()) / float64(r.Daemon.Frames)
}

// Lossless reports whether every packet sent was read and nothing anywhere
// on the path (veth, kernel buffer, NIC counter, output queue) dropped.
func (r *trialResult) Lossless() bool {
	return r.Replay.Failed == 0 && r.Replay.Successful > 0 && r.Missing() == 0 && r.LinkDrops == 0 &&
		r.Daemon.KernelDropped == 0 && r.Daemon.InterfaceDropped == 0 && r.Daemon.OutputDropped == 0
}

// generatorSlack is how far below the requested rate tcpreplay may stay
// before the trial counts as limited by the sender rather than by phonehome.
const generatorSlack = 0.97

// GeneratorLimited reports whether tcpreplay missed the requested rate.
func (r *trialResult) GeneratorLimited() bool {
	return r.Requested > 0 && r.Replay.PPS < generatorSlack*r.Requested
}

// LossSummary names what was lost, for the log and the table.
func (r *trialResult) LossSummary() string {
	var parts []string
	add := func(n uint64, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(r.Missing(), "missing")
	add(r.Daemon.Unread(), "unread-at-stop")
	add(r.Daemon.KernelDropped, "kernel-dropped")
	add(r.Daemon.InterfaceDropped, "if-dropped")
	add(r.LinkDrops, "veth-dropped")
	add(r.Daemon.OutputDropped, "output-dropped")
	add(r.Replay.Failed, "send-failed")
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (r *trialResult) RateLabel() string {
	if r.Requested == 0 {
		return "topspeed"
	}
	return fmt.Sprintf("%.0f pps", r.Requested)
}

// trialRunner runs trials on one testbed.
type trialRunner struct {
	tb         *testbed
	phonehome  string
	capture    string // pcap replayed
	capPackets uint64 // packets in capture
	bufferSize int    // --buffer-size for the daemon (0: its default)
	senders    int    // concurrent tcpreplay processes
	dir        string // scratch directory for event files and logs
	seq        int
}

// run starts a daemon (unless spec.Engine is ""), replays packets at pps
// (0: as fast as tcpreplay can), waits for the daemon to drain, stops it
// and collects every counter.
func (tr *trialRunner) run(ctx context.Context, spec engineSpec, pps float64, packets uint64) (res trialResult, err error) {
	start := time.Now()
	tr.seq++
	res = trialResult{Spec: spec, Requested: pps}
	var d *daemonProc
	if spec.Engine != "" {
		d, err = tr.startDaemon(ctx, spec)
		if err != nil {
			return res, err
		}
		defer func() {
			if serr := d.stop(); serr != nil && err == nil {
				err = serr
			}
			_ = os.Remove(d.events)
			_ = os.Remove(d.logPath)
		}()
	}
	capBefore, peerBefore, err := tr.tb.counters(ctx)
	if err != nil {
		return res, err
	}
	res.Replay, err = tr.replay(ctx, pps, packets)
	if err != nil {
		return res, err
	}
	if d != nil {
		if res.Scraped, res.Settle, err = d.settle(ctx, res.Replay.Successful); err != nil {
			return res, err
		}
	}
	capAfter, peerAfter, err := tr.tb.counters(ctx)
	if err != nil {
		return res, err
	}
	res.LinkDrops = (capAfter.RxDropped - capBefore.RxDropped) + (peerAfter.TxDropped - peerBefore.TxDropped)
	if d != nil {
		if err := d.stop(); err != nil {
			return res, err
		}
		res.DaemonCPU = d.cmd.ProcessState.UserTime() + d.cmd.ProcessState.SystemTime()
		// The final stats event is written after the capture stopped and
		// the buffers drained: the authoritative figures. The last scrape
		// stands in if the event is missing.
		if final, ok, ferr := finalStats(d.events); ferr == nil && ok {
			// Counters only grow: a final figure under the last scrape
			// means one of the two was misread.
			if !final.covers(res.Scraped) {
				return res, fmt.Errorf("the final stats event %+v is below the last metrics scrape %+v: misread counters", final, res.Scraped)
			}
			res.Daemon, res.Source = final, "stats event"
		} else {
			res.Daemon, res.Source = res.Scraped, "metrics"
		}
	}
	res.Wall = time.Since(start)
	return res, nil
}

// daemonProc is one `phonehome run` inside the capture namespace.
type daemonProc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	events  string // its event file
	logPath string // its stderr
	client  *http.Client
	url     string
	stopped bool
}

func (tr *trialRunner) startDaemon(ctx context.Context, spec engineSpec) (*daemonProc, error) {
	port, err := freePort(tr.tb.capNS)
	if err != nil {
		return nil, err
	}
	d := &daemonProc{
		done:    make(chan struct{}),
		events:  filepath.Join(tr.dir, fmt.Sprintf("events-%s-%d.json", spec.Engine, tr.seq)),
		logPath: filepath.Join(tr.dir, fmt.Sprintf("daemon-%s-%d.log", spec.Engine, tr.seq)),
		url:     fmt.Sprintf("http://127.0.0.1:%d/metrics", port),
		client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			DialContext: dialer(tr.tb.capNS), DisableKeepAlives: true}},
	}
	args := []string{"netns", "exec", tr.tb.capNS, tr.phonehome, "run", "-i", tr.tb.capIf,
		"--engine", spec.Engine, "--workers", strconv.Itoa(spec.Workers),
		"-o", d.events, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port),
		// One stats event, the final one: periodic ones are not needed.
		"--stats-interval", "24h"}
	if tr.bufferSize > 0 {
		args = append(args, "--buffer-size", strconv.Itoa(tr.bufferSize))
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	defer logf.Close()
	// `ip netns exec` execs phonehome in place, so the pid is the
	// daemon's. Its own process group keeps a terminal's ^C for this
	// command, which stops the daemon itself with SIGTERM; Pdeathsig ends it
	// should this command be killed outright.
	d.cmd = exec.Command("ip", args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start phonehome: %w", err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()
	deadline := time.Now().Add(daemonStartTimeout)
	for {
		if _, err := d.scrape(ctx); err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			d.stopped = true
			return nil, fmt.Errorf("phonehome exited at start (%v): %s", d.waitErr, tail(d.logPath))
		case <-ctx.Done():
			_ = d.stop()
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			_ = d.stop()
			return nil, fmt.Errorf("phonehome metrics did not answer within %v: %s", daemonStartTimeout, tail(d.logPath))
		}
	}
}

// stop sends SIGTERM (the daemon flushes and exits 0), then SIGKILL after
// daemonStopTimeout. It is idempotent.
func (d *daemonProc) stop() error {
	if d.stopped {
		return nil
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(daemonStopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("phonehome did not stop within %v of SIGTERM: %s", daemonStopTimeout, tail(d.logPath))
	}
	if d.waitErr != nil {
		return fmt.Errorf("phonehome exited with %v: %s", d.waitErr, tail(d.logPath))
	}
	return nil
}

func (d *daemonProc) scrape(ctx context.Context) (daemonCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return daemonCounters{}, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return daemonCounters{}, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return daemonCounters{}, fmt.Errorf("scrape: %s", resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 4<<20))
}

// settle polls the metrics until the daemon's buffer is empty (every frame
// the kernel accepted was read or dropped) and either every sent frame is
// accounted for or nothing has moved for settleQuiet (the rest never
// reached the socket). Stopping earlier would leave a backlog unread:
// SIGTERM stops reading at once.
func (d *daemonProc) settle(ctx context.Context, sent uint64) (daemonCounters, settleOutcome, error) {
	deadline := time.Now().Add(settleTimeout)
	var last daemonCounters
	lastChange := time.Now()
	for {
		c, err := d.scrape(ctx)
		if err != nil {
			return c, settleNone, err
		}
		drained := c.Unread() == 0
		if drained && c.Frames+c.KernelDropped >= sent {
			return c, settleAll, nil
		}
		if c != last {
			last, lastChange = c, time.Now()
		} else if drained && time.Since(lastChange) >= settleQuiet {
			return c, settleQuietEnd, nil
		}
		if time.Now().After(deadline) {
			return c, settleTimedOut, nil
		}
		select {
		case <-d.done:
			return c, settleNone, fmt.Errorf("phonehome exited during the trial (%v): %s", d.waitErr, tail(d.logPath))
		case <-ctx.Done():
			return c, settleNone, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// metricFields maps the Prometheus series read onto the counters (summed
// over labels: one interface, one output here).
var metricFields = map[string]func(*daemonCounters) *uint64{
	"phonehome_capture_received_packets_total":          func(c *daemonCounters) *uint64 { return &c.Received },
	"phonehome_capture_kernel_dropped_packets_total":    func(c *daemonCounters) *uint64 { return &c.KernelDropped },
	"phonehome_capture_interface_dropped_packets_total": func(c *daemonCounters) *uint64 { return &c.InterfaceDropped },
	"phonehome_frames_total":                            func(c *daemonCounters) *uint64 { return &c.Frames },
	"phonehome_captured_bytes_total":                    func(c *daemonCounters) *uint64 { return &c.Bytes },
	"phonehome_output_dropped_total":                    func(c *daemonCounters) *uint64 { return &c.OutputDropped },
}

// parseMetrics reads the Prometheus text exposition format. It fails when
// phonehome_frames_total is absent (not phonehome's endpoint).
func parseMetrics(r io.Reader) (daemonCounters, error) {
	var c daemonCounters
	sawFrames := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return c, fmt.Errorf("metrics: malformed line %q", line)
			}
			rest, ok = strings.TrimSpace(line[j+1:]), true
		}
		field := metricFields[name]
		if !ok || field == nil {
			continue
		}
		valStr, _, _ := strings.Cut(strings.TrimSpace(rest), " ") // drop a timestamp
		v, err := strconv.ParseFloat(valStr, 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return c, fmt.Errorf("metrics: %s: bad value %q", name, valStr)
		}
		*field(&c) += uint64(v)
		if name == "phonehome_frames_total" {
			sawFrames = true
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("metrics: %w", err)
	}
	if !sawFrames {
		return c, errors.New("metrics: no phonehome_frames_total")
	}
	return c, nil
}

// statsEvent is the part of a phonehome.stats event read here. The stats
// are decoded into the daemon's own Snapshot, whose JSON tags the event
// is encoded with, so a renamed field cannot silently read as zero.
type statsEvent struct {
	Event struct {
		Dataset string `json:"dataset"`
	} `json:"event"`
	Phonehome struct {
		Stats *daemon.Snapshot `json:"stats"`
	} `json:"phonehome"`
}

// finalStats reads the last phonehome.stats event of an event file.
func finalStats(path string) (daemonCounters, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return daemonCounters{}, false, fmt.Errorf("event file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return daemonCounters{}, false, fmt.Errorf("event file: %w", err)
	}
	off := max(st.Size()-statsTailBytes, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return daemonCounters{}, false, fmt.Errorf("event file: %w", err)
	}
	c, ok := lastStatsEvent(buf)
	return c, ok, nil
}

// lastStatsEvent finds the last complete phonehome.stats line in b.
func lastStatsEvent(b []byte) (daemonCounters, bool) {
	lines := bytes.Split(b, []byte{'\n'})
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		if !bytes.Contains(line, []byte(`"`+event.DatasetStats+`"`)) {
			continue
		}
		var ev statsEvent
		if json.Unmarshal(line, &ev) != nil || ev.Event.Dataset != event.DatasetStats || ev.Phonehome.Stats == nil {
			continue
		}
		s := ev.Phonehome.Stats
		c := daemonCounters{Frames: s.Frames, Bytes: s.Bytes}
		for _, h := range s.Capture {
			c.Received += h.Stats.Received
			c.KernelDropped += h.Stats.KernelDropped
			c.InterfaceDropped += h.Stats.InterfaceDropped
			c.StartupDiscarded += h.Stats.StartupDiscarded
		}
		for _, o := range s.Outputs {
			c.OutputDropped += o.Dropped
		}
		return c, true
	}
	return daemonCounters{}, false
}

// replay sends packets frames at pps packets/s (0: --topspeed) from
// tr.senders concurrent tcpreplay processes, each with its share of both.
func (tr *trialRunner) replay(ctx context.Context, pps float64, packets uint64) (replayReport, error) {
	n := uint64(max(tr.senders, 1))
	if n == 1 {
		return tr.replayOne(ctx, pps, packets)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reps := make([]replayReport, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		share := packets / n
		if i == 0 {
			share += packets % n
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if reps[i], errs[i] = tr.replayOne(ctx, pps/float64(n), share); errs[i] != nil {
				cancel() // one sender failed: the trial is void
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return replayReport{}, err
	}
	return combineReplays(reps), nil
}

// combineReplays sums concurrent senders; rates are over the longest
// sender's time, which is when the last packet left.
func combineReplays(reps []replayReport) replayReport {
	var c replayReport
	for _, r := range reps {
		c.Packets += r.Packets
		c.Bytes += r.Bytes
		c.Successful += r.Successful
		c.Failed += r.Failed
		c.Retried += r.Retried
		c.Seconds = max(c.Seconds, r.Seconds)
	}
	if c.Seconds > 0 {
		c.PPS = float64(c.Packets) / c.Seconds
		c.Mbps = float64(c.Bytes) * 8 / c.Seconds / 1e6
	}
	return c
}

// replayOne runs one tcpreplay in the sender namespace, looping the
// capture as often as needed.
func (tr *trialRunner) replayOne(ctx context.Context, pps float64, packets uint64) (replayReport, error) {
	loops := (packets + tr.capPackets - 1) / tr.capPackets
	args := []string{"netns", "exec", tr.tb.peerNS, "tcpreplay", "-i", tr.tb.peerIf,
		"--preload-pcap", "--no-flow-stats",
		"--limit=" + strconv.FormatUint(packets, 10), "--loop=" + strconv.FormatUint(max(loops, 1), 10)}
	if pps > 0 {
		args = append(args, "--pps="+strconv.FormatFloat(pps, 'f', 0, 64))
		// Several packets per timing slot cut tcpreplay's pacing cost at
		// high rates; bursts of ppsMultiMax frames are nothing to a buffer.
		if m := min(int(pps/ppsPerMultiStep), ppsMultiMax); m > 1 {
			args = append(args, "--pps-multi="+strconv.Itoa(m))
		}
	} else {
		args = append(args, "--topspeed")
	}
	args = append(args, tr.capture)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return replayReport{}, ctx.Err()
		}
		return replayReport{}, fmt.Errorf("tcpreplay: %w: %s", err, lastChars(out.String(), maxLogTail))
	}
	rep, err := parseReplay(out.String())
	if err != nil {
		return rep, fmt.Errorf("tcpreplay: %w: %s", err, lastChars(out.String(), maxLogTail))
	}
	return rep, nil
}

var (
	reActual = regexp.MustCompile(`Actual: (\d+) packets \((\d+) bytes\) sent in ([0-9.]+) seconds`)
	reRated  = regexp.MustCompile(`Rated: ([0-9.]+) Bps, ([0-9.]+) Mbps, ([0-9.]+) pps`)
	reCount  = regexp.MustCompile(`(?m)^\s*(Successful|Failed|Retried) packets[^:]*:\s*(\d+)`)
)

// parseReplay reads tcpreplay 4.x's closing statistics.
func parseReplay(s string) (replayReport, error) {
	var r replayReport
	m := reActual.FindStringSubmatch(s)
	if m == nil {
		return r, errors.New("no \"Actual:\" line in its output")
	}
	r.Packets, _ = strconv.ParseUint(m[1], 10, 64)
	r.Bytes, _ = strconv.ParseUint(m[2], 10, 64)
	r.Seconds, _ = strconv.ParseFloat(m[3], 64)
	m = reRated.FindStringSubmatch(s)
	if m == nil {
		return r, errors.New("no \"Rated:\" line in its output")
	}
	r.Mbps, _ = strconv.ParseFloat(m[2], 64)
	r.PPS, _ = strconv.ParseFloat(m[3], 64)
	sawOK := false
	for _, m := range reCount.FindAllStringSubmatch(s, -1) {
		n, _ := strconv.ParseUint(m[2], 10, 64)
		switch m[1] {
		case "Successful":
			r.Successful, sawOK = n, true
		case "Failed":
			r.Failed = n
		case "Retried":
			r.Retried += n
		}
	}
	if !sawOK {
		return r, errors.New("no \"Successful packets\" line in its output")
	}
	return r, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return lastChars(string(b), maxLogTail)
}

func lastChars(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
