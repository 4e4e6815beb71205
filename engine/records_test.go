package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/internal/testcorpus"
	"github.com/phonehome/phonehome/synth"
)

// recordsRun is what one replay gave: events sorted, counters, and the
// source errors reported.
type recordsRun struct {
	lines  []string
	errs   []string
	frames uint64
	pkts   uint64
	skip   string
	defrag string
}

func replayRun(t *testing.T, path string, workers int, records bool) recordsRun {
	t.Helper()
	out := &collect{}
	var errs []string
	cfg := engine.Config{Workers: workers, OnSourceError: func(err error) { errs = append(errs, err.Error()) }}
	// OnDrained: once, before any flow is reported as open at the end.
	drained, flushedBefore := 0, 0
	cfg.OnDrained = func() {
		drained++
		out.mu.Lock()
		for _, l := range out.lines {
			if bytes.Contains(l, []byte(`"end_of_capture"`)) {
				flushedBefore++
			}
		}
		out.mu.Unlock()
	}
	var st *engine.Stats
	var err error
	if records {
		rs, ok, oerr := pcapfile.OpenRecords(path)
		if oerr != nil || !ok {
			t.Fatalf("OpenRecords %s: ok %v, %v", path, ok, oerr)
		}
		defer rs.Close()
		st, err = engine.RunRecords(rs, out, cfg)
	} else {
		r, oerr := pcapfile.Open(path)
		if oerr != nil {
			t.Fatal(oerr)
		}
		defer r.Close()
		st, err = engine.Run(engine.FileSource(pcapfile.NewMerger(r)), out, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	if drained != 1 || flushedBefore != 0 {
		t.Errorf("%s, %d workers: OnDrained called %d times, after %d flows ended at the end of the capture", path, workers, drained, flushedBefore)
	}
	run := recordsRun{errs: errs, frames: st.Frames.Load(), pkts: st.Packets.Load(), defrag: fmt.Sprintf("%+v", st.Defrag())}
	for i := range st.Skipped {
		run.skip += fmt.Sprint(st.Skipped[i].Load(), " ")
	}
	for _, l := range out.lines {
		run.lines = append(run.lines, string(l))
	}
	sort.Strings(run.lines)
	return run
}

func sameReplay(t *testing.T, name string, got, want recordsRun) {
	t.Helper()
	if strings.Join(got.lines, "\n") != strings.Join(want.lines, "\n") {
		t.Errorf("%s: %d events differ from Run's %d", name, len(got.lines), len(want.lines))
	}
	if fmt.Sprint(got.errs) != fmt.Sprint(want.errs) {
		t.Errorf("%s: source errors %q, Run's %q", name, got.errs, want.errs)
	}
	if got.frames != want.frames || got.pkts != want.pkts || got.skip != want.skip || got.defrag != want.defrag {
		t.Errorf("%s: counters frames %d/%d packets %d/%d skipped [%s]/[%s] defrag %s/%s", name,
			got.frames, want.frames, got.pkts, want.pkts, got.skip, want.skip, got.defrag, want.defrag)
	}
}

// writeCapture writes frames as a classic pcap file and returns its path.
func writeCapture(t *testing.T, frames [][]byte, ts []int64) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := synth.NewWriter(&buf, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WritePacket(ts[i], f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "frames.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRecordsSameAsRun: workers taking turns at reading the file give Run's
// events, counters and source errors, over stretches small enough to cut
// many records, with fragments reassembled across stretches, and for a
// capture cut mid-record, one with a corrupt record in the middle and one
// with no records at all.
func TestRecordsSameAsRun(t *testing.T) {
	frames, ts := shardFrames()
	path := writeCapture(t, frames, ts)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, raw[:len(raw)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	// A record in the middle claims 300,000 captured bytes.
	corrupt := bytes.Clone(raw)
	off := 24
	for range len(frames) / 2 {
		off += 16 + int(uint32(corrupt[off+8])|uint32(corrupt[off+9])<<8|uint32(corrupt[off+10])<<16|uint32(corrupt[off+11])<<24)
	}
	corrupt[off+8], corrupt[off+9], corrupt[off+10], corrupt[off+11] = 0xe0, 0x93, 0x04, 0
	bad := filepath.Join(dir, "corrupt.pcap")
	if err := os.WriteFile(bad, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pcap")
	if err := os.WriteFile(empty, raw[:24], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1 << 20, 4096, 1500} {
		restore := engine.SetStretchSize(size)
		for _, p := range []string{path, cut, bad, empty} {
			want := replayRun(t, p, 1, false)
			if p == path && (!strings.Contains(want.defrag, "Reassembled:") || strings.Contains(want.defrag, "Reassembled:0 ")) {
				t.Fatalf("test data has no reassembled fragments: %s", want.defrag)
			}
			if (p == cut || p == bad) && len(want.errs) != 1 {
				t.Fatalf("%s: Run reported %q", p, want.errs)
			}
			workers := []int{2, 3}
			if size == 1500 {
				// More workers than CPUs: shard queues fill up, and some
				// workers claim stretches past the end of the file.
				workers = append(workers, 8)
			}
			for _, workers := range workers {
				sameReplay(t, fmt.Sprintf("%s, stretch %d, %d workers", filepath.Base(p), size, workers), replayRun(t, p, workers, true), want)
			}
		}
		restore()
	}
}

// TestRecordsCorpus: the corpus' classic pcap captures (link types,
// tunnels, fragments, snapped frames, both byte orders) replayed with
// workers taking turns give Run's events and counters.
func TestRecordsCorpus(t *testing.T) {
	testcorpus.Corpus(t)
	defer engine.SetStretchSize(64 << 10)()
	n := 0
	for _, c := range testcorpus.Captures(t) {
		if testcorpus.Malformed[c] {
			continue
		}
		path := testcorpus.Path(t, c)
		if st, err := os.Stat(path); err != nil || st.Size() > 8<<20 {
			continue
		}
		rs, ok, err := pcapfile.OpenRecords(path)
		if err != nil || !ok {
			continue // pcapng, compressed, unreadable: Run only
		}
		rs.Close()
		n++
		sameReplay(t, c, replayRun(t, path, 2, true), replayRun(t, path, 1, false))
	}
	if n < 50 {
		t.Fatalf("only %d classic pcap captures compared", n)
	}
}

// TestOpenRecordsOnlyPlainPcap: pcapng and compressed captures are not
// taken (ok false, no error); a missing file is an error.
func TestOpenRecordsOnlyPlainPcap(t *testing.T) {
	testcorpus.Corpus(t)
	for _, c := range []string{"ja4/tls12.pcap"} {
		rs, ok, err := pcapfile.OpenRecords(testcorpus.Path(t, c))
		if err != nil || !ok {
			t.Fatalf("%s: ok %v, %v", c, ok, err)
		}
		rs.Close()
	}
	for _, c := range testcorpus.Captures(t) {
		if !strings.HasSuffix(c, ".pcapng") {
			continue
		}
		if _, ok, err := pcapfile.OpenRecords(testcorpus.Path(t, c)); ok || err != nil {
			t.Fatalf("%s (pcapng): ok %v, %v", c, ok, err)
		}
		break
	}
	if _, _, err := pcapfile.OpenRecords(filepath.Join(t.TempDir(), "missing.pcap")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
