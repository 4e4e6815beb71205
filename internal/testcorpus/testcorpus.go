// Package testcorpus locates the shared capture corpus (../shared/corpus beside
// the repository) for tests, which read it in place and never copy it.
package testcorpus

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Root returns the absolute path of ../shared beside the module root, or
// skips the test with a clear message when it is absent.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testcorpus: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("testcorpus: go.mod not found above the test directory; shared corpus unavailable")
		}
		dir = parent
	}
	shared := filepath.Join(filepath.Dir(dir), "shared")
	if st, err := os.Stat(filepath.Join(shared, "corpus")); err != nil || !st.IsDir() {
		t.Skipf("testcorpus: %s/corpus is absent; skipping tests over the shared capture corpus", shared)
	}
	return shared
}

// Corpus returns the absolute path of ../shared/corpus or skips.
func Corpus(t testing.TB) string {
	t.Helper()
	return filepath.Join(Root(t), "corpus")
}

// Research returns the absolute path of ../shared/research or skips.
func Research(t testing.TB) string {
	t.Helper()
	return filepath.Join(Root(t), "research")
}

// Path returns the absolute path of a corpus file given relative to the corpus
// root (for example "ja4/tls12.pcap").
func Path(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(Corpus(t), filepath.FromSlash(rel))
}

// Captures lists every capture in MANIFEST.tsv as a corpus-relative path.
func Captures(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(Corpus(t), "MANIFEST.tsv"))
	if err != nil {
		t.Fatalf("testcorpus: %v", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.SplitN(line, "\t", 2)[0])
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("testcorpus: %v", err)
	}
	return out
}

// Malformed names the captures that tshark itself rejects; readers must
// reject them with a clear error.
var Malformed = map[string]bool{
	"suricata-verify/bug-1450-04.pcap":  true,
	"suricata-verify/bug-1450-05.pcap":  true,
	"gopacket/pcapng-le-test901.pcapng": true,
	"gopacket/pcapng-be-test901.pcapng": true,
}
