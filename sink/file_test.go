package sink

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type fileLine struct {
	G, I int
	Pad  string
}

// readLines parses every line of the files in order; a torn line fails.
func readLines(t *testing.T, files ...string) []fileLine {
	t.Helper()
	var out []fileLine
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var v fileLine
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("%s: torn line %q: %v", name, sc.Text(), err)
			}
			out = append(out, v)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return out
}

func line(g, i, pad int) Record {
	return Record{Line: fmt.Appendf(nil, `{"g":%d,"i":%d,"pad":"%s"}`, g, i, strings.Repeat("p", pad))}
}

func allFiles(t *testing.T, s *File) []string {
	t.Helper()
	b, err := s.Backups()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, s.cfg.Path)
}

func TestFileRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile(FileConfig{Path: filepath.Join(dir, "events.json"), MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := s.Write(context.Background(), line(0, i, 50)); err != nil {
			t.Fatal(err)
		}
	}
	files := allFiles(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(files) < 7 {
		t.Fatalf("%d files for ~7.5 KB with max 1000 bytes: %v", len(files), files)
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1000 || st.Size() == 0 {
			t.Fatalf("%s has %d bytes", f, st.Size())
		}
	}
	got := readLines(t, files...)
	if len(got) != n {
		t.Fatalf("%d lines, want %d", len(got), n)
	}
	for i, l := range got {
		if l.I != i {
			t.Fatalf("line %d has i=%d: order lost across rotation", i, l.I)
		}
	}
	if s.SinkStats().Rotations != uint64(len(files)-1) {
		t.Fatalf("rotations %d, files %d", s.SinkStats().Rotations, len(files))
	}
}

func TestFileRetention(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile(FileConfig{Path: filepath.Join(dir, "ev.log"), MaxBytes: 200, MaxBackups: 3})
	if err != nil {
		t.Fatal(err)
	}
	// A foreign file with a similar name must survive pruning.
	foreign := filepath.Join(dir, "ev-notes.log")
	os.WriteFile(foreign, []byte("keep\n"), 0o600)
	const n = 60
	for i := range n {
		if err := s.Write(context.Background(), line(0, i, 40)); err != nil {
			t.Fatal(err)
		}
	}
	files := allFiles(t, s)
	s.Close()
	if len(files) != 4 {
		t.Fatalf("files %v, want 3 backups + live", files)
	}
	if s.SinkStats().Rotations < 10 {
		t.Fatalf("only %d rotations", s.SinkStats().Rotations)
	}
	got := readLines(t, files...)
	if got[len(got)-1].I != n-1 {
		t.Fatalf("last line %d", got[len(got)-1].I)
	}
	for i := 1; i < len(got); i++ {
		if got[i].I != got[i-1].I+1 {
			t.Fatalf("kept files are not the newest contiguous ones: %d then %d", got[i-1].I, got[i].I)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("foreign file pruned: %v", err)
	}
}

func TestFileRotatesByAge(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile(FileConfig{Path: filepath.Join(dir, "ev.json"), MaxAge: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write(context.Background(), line(0, 0, 1))
	s.Flush()
	// The ticker rotates the idle file without another Write.
	deadline := time.Now().Add(2 * time.Second)
	for s.SinkStats().Rotations == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := s.Backups()
	if len(b) != 1 {
		t.Fatalf("backups %v after MaxAge", b)
	}
	if got := readLines(t, b[0]); len(got) != 1 || got[0].I != 0 {
		t.Fatalf("backup lines %+v", got)
	}
	// An empty live file is not rotated however old it is.
	time.Sleep(120 * time.Millisecond)
	if r := s.SinkStats().Rotations; r != 1 {
		t.Fatalf("empty file rotated: %d rotations", r)
	}
	s.Write(context.Background(), line(0, 1, 1))
	s.Flush()
	if got := readLines(t, s.cfg.Path); len(got) != 1 || got[0].I != 1 {
		t.Fatalf("live lines %+v", got)
	}
}

func TestFileReopenAfterMove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ev.json")
	s, err := NewFile(FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s.Write(context.Background(), line(0, i, 1))
	}
	moved := path + ".1"
	if err := os.Rename(path, moved); err != nil { // logrotate "create" mode
		t.Fatal(err)
	}
	// Until Reopen, lines still go to the moved file (same inode).
	for i := 5; i < 8; i++ {
		s.Write(context.Background(), line(0, i, 1))
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	for i := 8; i < 12; i++ {
		s.Write(context.Background(), line(0, i, 1))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	old, cur := readLines(t, moved), readLines(t, path)
	if len(old) != 8 || old[7].I != 7 || len(cur) != 4 || cur[0].I != 8 || cur[3].I != 11 {
		t.Fatalf("moved file %+v, new file %+v", old, cur)
	}
	if err := s.Reopen(); err == nil {
		t.Fatal("Reopen after Close succeeded")
	}
}

func TestFileAppendsToExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.json")
	os.WriteFile(path, []byte(`{"g":9,"i":0,"pad":""}`+"\n"), 0o600)
	s, err := NewFile(FileConfig{Path: path, MaxBytes: 60})
	if err != nil {
		t.Fatal(err)
	}
	s.Write(context.Background(), line(9, 1, 20)) // 23+43 > 60: rotates first
	files := allFiles(t, s)
	s.Close()
	if len(files) != 2 || len(readLines(t, files...)) != 2 {
		t.Fatalf("files %v", files)
	}
}

func TestFileNoTornOrLostLinesUnderConcurrentRotation(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile(FileConfig{Path: filepath.Join(dir, "ev.json"), MaxBytes: 4096, BufferSize: 1024, MaxAge: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const writers, per = 6, 800
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range per {
				if err := s.Write(context.Background(), line(g, i, (i*13)%300)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() { // forced rotations, reopens and flushes race the writers
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			switch k % 3 {
			case 0:
				s.Rotate()
			case 1:
				s.Reopen()
			default:
				s.Flush()
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
	wg.Wait()
	close(stop)
	rg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := allFiles(t, s) // after Close: the age ticker no longer rotates
	got := readLines(t, files...)
	if len(got) != writers*per {
		t.Fatalf("%d lines across %d files, want %d", len(got), len(files), writers*per)
	}
	next := make([]int, writers)
	for _, l := range got {
		if l.I != next[l.G] {
			t.Fatalf("writer %d: line %d after %d", l.G, l.I, next[l.G]-1)
		}
		next[l.G]++
	}
	if len(files) < 20 {
		t.Fatalf("only %d files: rotation not exercised", len(files))
	}
}

func TestFileConfigValidation(t *testing.T) {
	for _, c := range []FileConfig{
		{},
		{Path: "x/"},
		{Path: "x", MaxBytes: -1},
		{Path: "x", MaxAge: -time.Second},
		{Path: "x", MaxAge: time.Millisecond},
		{Path: "x", MaxBackups: -2},
		{Path: "x", Mode: os.ModeDir | 0o600},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if _, err := NewFile(FileConfig{Path: t.TempDir()}); err == nil {
		t.Error("directory accepted as file path")
	}
}
