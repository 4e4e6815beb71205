package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phonehome/phonehome/synth"
)

// TestMain lets the test binary act as the floor child, as the real
// command does when bench runs os.Executable().
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == floorArg {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testCapture writes a small capture of TCP over IPv4 and VLAN-tagged UDP
// over IPv6 to a temporary file and returns its path and packet count.
// (It does not use synth.Sample: its TLS handshakes race under -race.)
func testCapture(t *testing.T) (string, uint64) {
	t.Helper()
	var buf bytes.Buffer
	w, err := synth.NewWriter(&buf, 1)
	if err != nil {
		t.Fatal(err)
	}
	var b synth.Builder
	payload := bytes.Repeat([]byte("d"), 900)
	ts := int64(1_700_000_000_000_000_000)
	for i := range 300 {
		cl := synth.Endpoint{Addr: synth.EP("10.0.0.1:1").Addr, Port: uint16(30000 + i%40)}
		var frame []byte
		if i%3 == 0 {
			frame = b.UDP(synth.L2{VLANs: []uint16{7}}, synth.EP("[2001:db8::1]:5000"), synth.EP("[2001:db8::2]:53"), payload[:i%100])
		} else {
			frame = b.TCP(synth.L2{}, cl, synth.EP("198.18.0.1:443"), uint32(i), 1, synth.ACK, payload[:i*3%900])
		}
		ts += 1000
		if err := w.WritePacket(ts, frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bench.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, uint64(w.Packets)
}

func TestFloorCountsEveryFrame(t *testing.T) {
	path, want := testCapture(t)
	c, err := floor(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Packets != want || c.Transport != want || c.DecodeErrors != 0 {
		t.Fatalf("floor %+v, want %d packets, all decoded to TCP or UDP", c, want)
	}
	back, err := parseFloorCounts(c.String())
	if err != nil || back != c {
		t.Fatalf("round trip of %q: %+v, %v", c.String(), back, err)
	}
}

func TestFloorRejectsPcapNG(t *testing.T) {
	// A pcapng section header block: the floor (pcapgo.Reader) cannot time it.
	shb := []byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0}
	if _, err := floorRead(bytes.NewReader(shb)); err == nil {
		t.Fatal("pcapng accepted by the classic-pcap floor")
	}
}

// summaryOf is cmd/phonehome's summary for a run, as printSummary writes it.
func summaryOf(frames, events int) string {
	return fmt.Sprintf(`phonehome replay summary
  packets   %d frames, %d decoded, 264.3 MB captured (264.3 MB on the wire)
  flows     2584 created, 0 evicted at the cap
  records   end_of_capture=2584
  events    %d: phonehome.flow=2584
  skipped   none
  elapsed   328ms, 832426 packets/s, 804.6 MB/s
`, frames, frames, events)
}

func TestParseSummary(t *testing.T) {
	s, err := parseSummary(summaryOf(273422, 2584))
	if err != nil || s.Frames != 273422 || s.Events != 2584 {
		t.Fatalf("got %+v, %v", s, err)
	}
	if _, err := parseSummary("phonehome replay: open x: no such file\n"); err == nil {
		t.Fatal("a summary without counts was accepted")
	}
}

// TestBenchEndToEnd runs the whole benchmark on a small capture with a
// stand-in for phonehome (a shell script that prints a summary unless
// --quiet), checking the counts, the timings and the report.
func TestBenchEndToEnd(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the stand-in phonehome")
	}
	path, packets := testCapture(t)
	// The events, written in another order by 2 workers, are the same.
	script := standIn(t, writeEvents("a\\nb\\n", "b\\na\\n")+
		"for a in \"$@\"; do [ \"$a\" = --quiet ] && exit 0; done\ncat >&2 <<'EOF'\n"+summaryOf(int(packets), 77)+"EOF\n")
	var out, log bytes.Buffer
	if rc := run([]string{"-capture", path, "-phonehome", script, "-runs", "2"}, &out, &log); rc != 0 {
		t.Fatalf("exit %d: %s", rc, log.String())
	}
	rep := out.String()
	for _, want := range []string{
		fmt.Sprintf("%d packets", packets),
		"floor (gopacket pcapgo+DLP)",
		"replay --workers 1",
		"replay --workers 2",
		"events: 77 (1 worker), 77 (2 workers)",
		"replay(1 worker) / floor time:",
		"speedup of 2 workers over 1:",
		"2 x replay --workers 1 at once",
		"median over the 2 rounds",
		"this machine's ceiling:",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	for _, line := range strings.Split(rep, "\n") {
		if strings.HasPrefix(line, "note:") && !strings.Contains(line, "CPU:") {
			t.Errorf("unexpected %q (counts disagree?)", line)
		}
	}
	if n := strings.Count(log.String(), "  run "); n != 8 {
		t.Errorf("%d timed runs logged, want 2 runs x 4 configurations:\n%s", n, log.String())
	}
}

func TestBenchFailsOnBrokenReplay(t *testing.T) {
	path, _ := testCapture(t)
	script := standIn(t, "echo 'replay: boom' >&2\nexit 1\n")
	var out, log bytes.Buffer
	if rc := run([]string{"-capture", path, "-phonehome", script, "-runs", "1"}, &out, &log); rc != 1 || !strings.Contains(log.String(), "boom") {
		t.Fatalf("exit %d, log %q; want 1 and the child's stderr", rc, log.String())
	}
}

// TestBenchReportsEventMismatch: 1 and 2 workers disagreeing on the event
// count is reported, and -strict turns it into a failure.
func TestBenchReportsEventMismatch(t *testing.T) {
	path, packets := testCapture(t)
	script := standIn(t, writeEvents("a\\n", "a\\n")+"for a in \"$@\"; do [ \"$a\" = --quiet ] && exit 0; done\n"+
		"if [ \"$5\" = 2 ]; then cat >&2 <<'EOF'\n"+summaryOf(int(packets), 78)+"EOF\nelse cat >&2 <<'EOF'\n"+summaryOf(int(packets), 77)+"EOF\nfi\n")
	var out, log bytes.Buffer
	rc := run([]string{"-capture", path, "-phonehome", script, "-runs", "1", "-strict"}, &out, &log)
	if rc != 1 || !strings.Contains(out.String(), "MISMATCH: 1 worker emitted 77 events, 2 workers 78") {
		t.Fatalf("exit %d, report:\n%s\nlog:\n%s", rc, out.String(), log.String())
	}
}

// writeEvents is a stand-in phonehome's shell code that writes one and two
// workers' events (printf formats) to the -o file.
func writeEvents(one, two string) string {
	return "if [ \"$2\" = -o ]; then if [ \"$5\" = 2 ]; then printf '" + two + "' > \"$3\"; else printf '" + one + "' > \"$3\"; fi; fi\n"
}

// TestBenchReportsEventDifference: the same number of events but not the
// same events is a mismatch too.
func TestBenchReportsEventDifference(t *testing.T) {
	path, packets := testCapture(t)
	script := standIn(t, writeEvents("a\\nb\\n", "a\\nc\\n")+"for a in \"$@\"; do [ \"$a\" = --quiet ] && exit 0; done\ncat >&2 <<'EOF'\n"+summaryOf(int(packets), 2)+"EOF\n")
	var out, log bytes.Buffer
	rc := run([]string{"-capture", path, "-phonehome", script, "-runs", "1", "-strict"}, &out, &log)
	if rc != 1 || !strings.Contains(out.String(), "MISMATCH: 1 and 2 workers emitted different events") {
		t.Fatalf("exit %d, report:\n%s\nlog:\n%s", rc, out.String(), log.String())
	}
}

// standIn writes a shell script that stands in for phonehome and returns
// its path.
func standIn(t *testing.T, body string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "phonehome")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}
