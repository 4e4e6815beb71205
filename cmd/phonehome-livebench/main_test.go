package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phonehome/phonehome/capture/live"
	"github.com/phonehome/phonehome/daemon"
	"github.com/phonehome/phonehome/event"
)

const tcpreplayOut = `File Cache is enabled
Actual: 150000 packets (145674535 bytes) sent in 5.00 seconds
Rated: 29134312.6 Bps, 233.07 Mbps, 29999.38 pps
Statistics for network device: lbpeer0
	Successful packets:        149990
	Failed packets:            10
	Truncated packets:         0
	Retried packets (ENOBUFS): 3
	Retried packets (EAGAIN):  2
`

func TestParseReplay(t *testing.T) {
	r, err := parseReplay(tcpreplayOut)
	if err != nil {
		t.Fatal(err)
	}
	want := replayReport{Packets: 150000, Bytes: 145674535, Seconds: 5, PPS: 29999.38, Mbps: 233.07,
		Successful: 149990, Failed: 10, Retried: 5}
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	for _, drop := range []string{"Actual:", "Rated:", "Successful packets"} {
		var kept []string
		for _, l := range strings.Split(tcpreplayOut, "\n") {
			if !strings.Contains(l, drop) {
				kept = append(kept, l)
			}
		}
		if _, err := parseReplay(strings.Join(kept, "\n")); err == nil {
			t.Errorf("output without %q parsed", drop)
		}
	}
}

func TestCombineReplays(t *testing.T) {
	c := combineReplays([]replayReport{
		{Packets: 100, Bytes: 100000, Seconds: 1, PPS: 100, Successful: 100, Retried: 1},
		{Packets: 150, Bytes: 150000, Seconds: 2, PPS: 75, Successful: 149, Failed: 1},
	})
	want := replayReport{Packets: 250, Bytes: 250000, Seconds: 2, PPS: 125, Mbps: 1, Successful: 249, Failed: 1, Retried: 1}
	if c != want {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}

const metricsText = `# HELP phonehome_capture_received_packets_total Packets the kernel handed to the capture buffer.
# TYPE phonehome_capture_received_packets_total counter
phonehome_capture_received_packets_total{interface="lbcap0"} 300000
phonehome_capture_received_packets_total{interface="other"} 5
phonehome_capture_kernel_dropped_packets_total{interface="lbcap0"} 13137
phonehome_capture_interface_dropped_packets_total{interface="lbcap0"} 2
phonehome_captured_bytes_total 1.45674535e+08
phonehome_frames_total 286863
phonehome_output_dropped_total{output="file:/tmp/x {odd} name"} 7
phonehome_output_written_total{output="file:/tmp/x"} 1334
phonehome_flows_active 12
`

func TestParseMetrics(t *testing.T) {
	c, err := parseMetrics(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	want := daemonCounters{Received: 300005, KernelDropped: 13137, InterfaceDropped: 2, Frames: 286863,
		Bytes: 145674535, OutputDropped: 7}
	if c != want {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines 5\n")); err == nil {
		t.Error("metrics without phonehome_frames_total accepted")
	}
	if _, err := parseMetrics(strings.NewReader("phonehome_frames_total NaN\n")); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := parseMetrics(strings.NewReader("phonehome_frames_total{a=\"b\" 5\n")); err == nil {
		t.Error("unterminated label set accepted")
	}
}

// statsLine encodes a phonehome.stats event the way the daemon does.
func statsLine(t *testing.T, snap daemon.Snapshot) string {
	t.Helper()
	ev := &event.Event{Timestamp: time.Now().UnixNano(), Kind: "metric", Dataset: event.DatasetStats}
	ev.Phonehome.Stats = snap
	buf, err := event.NewEncoder().Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	return strings.TrimSpace(buf.String())
}

func TestLastStatsEvent(t *testing.T) {
	snap := func(frames uint64) daemon.Snapshot {
		return daemon.Snapshot{
			Capture: []daemon.HandleSnapshot{
				{Interface: "lbcap0", Stats: live.Stats{Received: frames + 7, KernelDropped: 4, InterfaceDropped: 1, StartupDiscarded: 2}},
				{Interface: "other", Stats: live.Stats{Received: 1, KernelDropped: 1}},
			},
			Frames: frames, Bytes: 999,
			Outputs: []daemon.OutputSnapshot{{Name: "file:x", Dropped: 3}, {Name: "file:y", Dropped: 2}},
		}
	}
	file := strings.Join([]string{
		statsLine(t, snap(10)),
		`{"event":{"dataset":"phonehome.flow"},"phonehome":{"note":"mentions \"phonehome.stats\" in text"}}`,
		statsLine(t, snap(20)),
		`{"event":{"dataset":"phonehome.dns"}}`,
		`{"event":{"dataset":"phonehome.stats"},"phonehome":{"stats":{"frames":` /* truncated last line */}, "\n")
	c, ok := lastStatsEvent([]byte(file))
	if !ok {
		t.Fatalf("no stats event found in\n%s", file)
	}
	want := daemonCounters{Received: 28, KernelDropped: 5, InterfaceDropped: 1, StartupDiscarded: 2, Frames: 20, Bytes: 999, OutputDropped: 5}
	if c != want {
		t.Fatalf("got %+v\nwant %+v\nfrom %s", c, want, statsLine(t, snap(20)))
	}
	if _, ok := lastStatsEvent([]byte(`{"event":{"dataset":"phonehome.flow"}}`)); ok {
		t.Error("stats found in a file without any")
	}
	path := t.TempDir() + "/events.json"
	if err := os.WriteFile(path, []byte(file+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := finalStats(path); err != nil || !ok || got != want {
		t.Fatalf("finalStats = %+v, %v, %v", got, ok, err)
	}
}

// TestSettleWaitsForBacklog: the daemon must not be stopped while frames
// the kernel accepted are still unread (SIGTERM would strand them).
func TestSettleWaitsForBacklog(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		frames := 500
		if n.Add(1) > 3 {
			frames = 990
		}
		fmt.Fprintf(w, "phonehome_capture_received_packets_total{interface=\"x\"} 1000\n"+
			"phonehome_capture_kernel_dropped_packets_total{interface=\"x\"} 10\nphonehome_frames_total %d\n", frames)
	}))
	defer srv.Close()
	d := &daemonProc{client: srv.Client(), url: srv.URL, done: make(chan struct{})}
	c, how, err := d.settle(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if c.Frames != 990 || c.Unread() != 0 || n.Load() != 4 || how != settleAll {
		t.Fatalf("settled on %+v after %d scrapes", c, n.Load())
	}
	if u := (daemonCounters{Received: 100, KernelDropped: 5, StartupDiscarded: 2, Frames: 90}).Unread(); u != 3 {
		t.Errorf("Unread = %d, want 3", u)
	}
}

func TestParseLinkJSON(t *testing.T) {
	c, err := parseLinkJSON([]byte(`[{"ifname":"lbcap0","stats64":{"rx":{"bytes":1,"packets":200000,"dropped":3},"tx":{"packets":7,"dropped":9}}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (linkCounters{RxPackets: 200000, RxDropped: 3, TxPackets: 7, TxDropped: 9}); c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if _, err := parseLinkJSON([]byte(`[]`)); err == nil {
		t.Error("empty answer accepted")
	}
}

func TestTrialVerdict(t *testing.T) {
	ok := trialResult{Requested: 1000, Replay: replayReport{Successful: 500, PPS: 990}, Daemon: daemonCounters{Frames: 500}}
	if !ok.Lossless() || ok.GeneratorLimited() || ok.LossSummary() != "none" {
		t.Fatalf("clean trial: lossless=%v limited=%v loss=%q", ok.Lossless(), ok.GeneratorLimited(), ok.LossSummary())
	}
	for name, mut := range map[string]func(*trialResult){
		"missing":     func(r *trialResult) { r.Daemon.Frames = 499 },
		"kernel drop": func(r *trialResult) { r.Daemon.KernelDropped = 1 },
		"if drop":     func(r *trialResult) { r.Daemon.InterfaceDropped = 1 },
		"veth drop":   func(r *trialResult) { r.LinkDrops = 1 },
		"output drop": func(r *trialResult) { r.Daemon.OutputDropped = 1 },
		"send failed": func(r *trialResult) { r.Replay.Failed = 1 },
		"nothing":     func(r *trialResult) { r.Replay.Successful, r.Daemon.Frames = 0, 0 },
	} {
		r := ok
		mut(&r)
		if r.Lossless() {
			t.Errorf("%s: counted lossless", name)
		}
	}
	slow := ok
	slow.Replay.PPS = 900
	if !slow.GeneratorLimited() {
		t.Error("90% of the requested rate not flagged as generator-limited")
	}
	top := ok
	top.Requested = 0
	if top.GeneratorLimited() || top.RateLabel() != "topspeed" {
		t.Error("topspeed trial mislabelled")
	}
}

// fakeLink models a daemon that reads capacity packets/s and a sender that
// reaches at most sender packets/s; every trial costs a fixed time.
type fakeLink struct {
	capacity, sender float64
	now              time.Time
	cost             time.Duration
	calls            []float64
	// After slowAfter calls (if > 0) the capacity falls to slowCapacity:
	// another job took the CPUs.
	slowAfter    int
	slowCapacity float64
}

func (f *fakeLink) probe(_ context.Context, pps float64) (trialResult, error) {
	f.calls = append(f.calls, pps)
	f.now = f.now.Add(f.cost)
	achieved := f.sender
	if pps > 0 {
		achieved = math.Min(pps, f.sender)
	}
	capacity := f.capacity
	if f.slowAfter > 0 && len(f.calls) > f.slowAfter {
		capacity = f.slowCapacity
	}
	const sent = 100000
	frames := uint64(sent)
	if achieved > capacity {
		frames = uint64(sent * capacity / achieved)
	}
	return trialResult{Requested: pps, Replay: replayReport{Successful: sent, PPS: achieved},
		Daemon: daemonCounters{Frames: frames, KernelDropped: sent - frames}}, nil
}

func (f *fakeLink) limits(budget time.Duration) searchLimits {
	return searchLimits{Budget: budget, Resolution: 0.03, MinPPS: 1000, Repeats: 1, Now: func() time.Time { return f.now },
		Cost: func(float64) time.Duration { return f.cost }}
}

func TestSearchConverges(t *testing.T) {
	f := &fakeLink{capacity: 61000, sender: 140000, now: time.Unix(0, 0), cost: 5 * time.Second}
	res, err := search(context.Background(), f.probe, f.limits(10*time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged || res.Best == nil || res.FirstFail == nil {
		t.Fatalf("converged=%v best=%v fail=%v after %v", res.Converged, res.Best, res.FirstFail, f.calls)
	}
	best, fail := res.Best.Replay.PPS, res.FirstFail.Replay.PPS
	if best > f.capacity || best < 0.96*f.capacity {
		t.Errorf("best %.0f pps, capacity %.0f (trials %v)", best, f.capacity, f.calls)
	}
	if fail <= f.capacity || fail > best/(1-0.03)+1 {
		t.Errorf("first failing %.0f pps, best %.0f, capacity %.0f", fail, best, f.capacity)
	}
	if res.Ceiling != f.sender || res.GeneratorLimited() {
		t.Errorf("ceiling %.0f, limited %v", res.Ceiling, res.GeneratorLimited())
	}
	if len(f.calls) > 12 {
		t.Errorf("%d trials: the first guess should start near the capacity", len(f.calls))
	}
	if !res.Confirmed || f.calls[len(f.calls)-1] != res.Best.Requested {
		t.Errorf("best rate %.0f not repeated last (calls %v)", res.Best.Requested, f.calls)
	}
	// With two repeats the best rate is run three times in all.
	g := &fakeLink{capacity: 61000, sender: 140000, now: time.Unix(0, 0), cost: 5 * time.Second}
	lim := g.limits(time.Hour)
	lim.Repeats = 2
	res2, err := search(context.Background(), g.probe, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range g.calls {
		if c == res2.Best.Requested {
			n++
		}
	}
	if n != 3 || !res2.Confirmed {
		t.Errorf("repeats 2: best %.0f run %d times (calls %v)", res2.Best.Requested, n, g.calls)
	}
}

// TestSearchRepeatFails: the machine slows down before the repeat of the
// best rate, which then fails; the search must go on below it and settle
// on a rate lossless at the lower capacity, itself repeated.
func TestSearchRepeatFails(t *testing.T) {
	f := &fakeLink{capacity: 61000, sender: 140000, now: time.Unix(0, 0), cost: 5 * time.Second}
	probe := f.probe
	// Count the calls of a clean search to make the slowdown hit its
	// repeat exactly.
	clean := &fakeLink{capacity: 61000, sender: 140000, now: time.Unix(0, 0), cost: 5 * time.Second}
	cleanRes, err := search(context.Background(), clean.probe, clean.limits(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanBest := cleanRes.Best.Requested
	f.slowAfter, f.slowCapacity = len(clean.calls)-1, 50000
	res, err := search(context.Background(), probe, f.limits(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("calls %v", f.calls)
	if res.Best == nil || res.Best.Replay.PPS > f.slowCapacity || res.Best.Replay.PPS < 0.9*f.slowCapacity || !res.Confirmed {
		t.Fatalf("best %v confirmed %v after calls %v", res.Best, res.Confirmed, f.calls)
	}
	repeatFailed := false
	for i := range res.Trials {
		if tr := &res.Trials[i]; tr.Requested == cleanBest && !tr.Lossless() {
			repeatFailed = true
		}
	}
	if !repeatFailed {
		t.Errorf("the repeat of %.0f pps did not fail (calls %v): the test does not test the fallback", cleanBest, f.calls)
	}
	if res.FirstFail.Replay.PPS <= res.Best.Replay.PPS {
		t.Errorf("first failing %.0f not above best %.0f", res.FirstFail.Replay.PPS, res.Best.Replay.PPS)
	}
	if len(res.Trials) >= maxTrials {
		t.Errorf("search ran into the trial cap")
	}
}

func TestSearchBudget(t *testing.T) {
	f := &fakeLink{capacity: 61000, sender: 140000, now: time.Unix(0, 0), cost: 5 * time.Second}
	res, err := search(context.Background(), f.probe, f.limits(12*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	// 5 s per trial in 12 s: the topspeed one and one more fit (the
	// third would end at 15 s).
	if len(f.calls) != 2 || res.Converged {
		t.Fatalf("%d trials (%v), converged %v", len(f.calls), f.calls, res.Converged)
	}
}

func TestSearchSenderBound(t *testing.T) {
	// The daemon outruns the sender: topspeed is lossless and ends it.
	f := &fakeLink{capacity: 500000, sender: 140000, now: time.Unix(0, 0), cost: time.Second}
	res, err := search(context.Background(), f.probe, f.limits(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 2 || res.Best == nil || !res.GeneratorLimited() || !res.Confirmed || res.FirstFail != nil {
		t.Fatalf("calls %v, best %v, limited %v, confirmed %v", f.calls, res.Best, res.GeneratorLimited(), res.Confirmed)
	}
	// Two repeats: three lossless topspeed runs, the slowest reported.
	f = &fakeLink{capacity: 500000, sender: 140000, now: time.Unix(0, 0), cost: time.Second}
	lim := f.limits(time.Minute)
	lim.Repeats = 2
	if res, err = search(context.Background(), f.probe, lim, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 3 || !res.Confirmed {
		t.Fatalf("repeats 2: calls %v, confirmed %v", f.calls, res.Confirmed)
	}
	// Nothing lossless at all: the search walks down and gives up at MinPPS.
	f = &fakeLink{capacity: 500, sender: 140000, now: time.Unix(0, 0), cost: time.Second}
	res, err = search(context.Background(), f.probe, f.limits(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Best != nil || !res.Converged {
		t.Fatalf("calls %v, best %v", f.calls, res.Best)
	}
	for _, pps := range f.calls {
		if pps > 0 && pps < 1000 {
			t.Errorf("trial at %.0f pps, under MinPPS (calls %v)", pps, f.calls)
		}
	}
}

func TestSearchProbeError(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	probe := func(context.Context, float64) (trialResult, error) {
		n++
		if n == 2 {
			return trialResult{}, boom
		}
		return trialResult{Replay: replayReport{Successful: 10, PPS: 100000}, Daemon: daemonCounters{Frames: 5}}, nil
	}
	lim := searchLimits{Budget: time.Hour, Resolution: 0.03, MinPPS: 1000, Now: time.Now, Cost: func(float64) time.Duration { return 0 }}
	if _, err := search(context.Background(), probe, lim, nil); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}

// TestTestbed builds the namespaces and veth pair, sends a few frames with
// tcpreplay and checks the link counters and the cleanup. It needs root.
func TestTestbed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "tcpreplay"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	ctx := context.Background()
	tb, err := newTestbed(ctx, fmt.Sprintf("%d-t", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	capPath := t.TempDir() + "/small.pcap"
	if err := generate(capPath, 1<<20); err != nil {
		t.Fatal(err)
	}
	ci, err := inspectCapture(capPath)
	if err != nil {
		t.Fatal(err)
	}
	tr := &trialRunner{tb: tb, capture: capPath, capPackets: ci.packets, dir: t.TempDir()}
	r, err := tr.run(ctx, engineSpec{}, 20000, ci.packets+10)
	if err != nil {
		t.Fatal(err)
	}
	if r.Replay.Successful != ci.packets+10 || r.Replay.Failed != 0 {
		t.Fatalf("tcpreplay sent %+v, want %d packets", r.Replay, ci.packets+10)
	}
	capEnd, _, err := tb.counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if capEnd.RxPackets != ci.packets+10 {
		t.Errorf("capture end received %d packets, want exactly the %d sent (no other traffic)", capEnd.RxPackets, ci.packets+10)
	}
	names := []string{tb.capNS, tb.peerNS}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := ipCmd(ctx, "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s still exists after Close", n)
		}
	}
}

func TestNotes(t *testing.T) {
	pass := trialResult{Requested: 200000, Replay: replayReport{Successful: 800000, PPS: 199990, Seconds: 4}, Daemon: daemonCounters{Frames: 800000}, DaemonCPU: time.Second}
	fail := trialResult{Requested: 210000, Replay: replayReport{Successful: 840000, PPS: 209990}, Daemon: daemonCounters{Frames: 839000, KernelDropped: 1000}}
	daemonBound := engineReport{spec: engineSpec{Engine: "pcap", Workers: 2},
		result: searchResult{Best: &pass, FirstFail: &fail, Ceiling: 215000, Converged: true, Confirmed: true}}
	got := strings.Join(daemonBound.notes(nil), "\n")
	if !strings.Contains(got, "phonehome's own limit") || !strings.Contains(got, "lost 1000 of 840000") ||
		strings.Contains(got, "headroom") || strings.Contains(got, "co-limiting") {
		t.Errorf("daemon-bound notes:\n%s", got)
	}
	top := pass
	top.Requested = 0
	senderBound := engineReport{spec: engineSpec{Engine: "afpacket", Workers: 2},
		result: searchResult{Best: &top, Ceiling: 199990, Converged: true}}
	got = strings.Join(senderBound.notes(&trialResult{Replay: replayReport{PPS: 400000}}), "\n")
	for _, want := range []string{"tcpreplay is the limit", "busy 0.25 of the machine", "fell from 400000 pps alone", "not repeated as often"} {
		if !strings.Contains(got, want) {
			t.Errorf("sender-bound notes lack %q:\n%s", want, got)
		}
	}
}
