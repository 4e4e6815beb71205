package main

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phonehome/phonehome/internal/testcorpus"
	"github.com/phonehome/phonehome/synth"
)

var (
	sampleOnce sync.Once
	samplePath string
	sampleErr  error
)

// sample writes the generated sample capture once per test binary.
func sample(t *testing.T) string {
	t.Helper()
	sampleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "phonehome-sample")
		if err != nil {
			sampleErr = err
			return
		}
		samplePath = filepath.Join(dir, "sample.pcap")
		f, err := os.Create(samplePath)
		if err != nil {
			sampleErr = err
			return
		}
		defer f.Close()
		sampleErr = synth.Sample(f)
	})
	if sampleErr != nil {
		t.Fatalf("generate sample: %v", sampleErr)
	}
	return samplePath
}

func runCLI(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, bytes.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestReplaySample(t *testing.T) {
	code, out, errs := runCLI(t, nil, "replay", sample(t))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	ls := lines(out)
	if len(ls) < 100 {
		t.Fatalf("only %d events", len(ls))
	}
	for _, want := range []string{"phonehome replay summary", "packets", "flows", "events", "skipped", "elapsed"} {
		if !strings.Contains(errs, want) {
			t.Errorf("summary lacks %q:\n%s", want, errs)
		}
	}
	var last string
	for _, l := range ls {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON line: %v: %s", err, l)
		}
		ts, ok := m["@timestamp"].(string)
		if !ok {
			t.Fatalf("no @timestamp: %s", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("bad @timestamp %q: %v", ts, err)
		}
		last = ts
	}
	_ = last
	// --quiet prints nothing on stderr.
	code, _, errs = runCLI(t, nil, "replay", "--quiet", sample(t))
	if code != 0 || errs != "" {
		t.Fatalf("--quiet: exit %d, stderr %q", code, errs)
	}
}

// sortedEvents returns the event lines sorted, for order-insensitive
// comparison.
func sortedEvents(out string) []string {
	ls := lines(out)
	sort.Strings(ls)
	return ls
}

// TestWorkersSameOutput: several workers write the events one worker
// writes, line for line and in the same order, whether they take turns
// reading the file or one goroutine reads it (stdin) for them.
func TestWorkersSameOutput(t *testing.T) {
	_, one, _ := runCLI(t, nil, "replay", "--quiet", sample(t))
	raw, err := os.ReadFile(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--workers", "3", sample(t)}, {"--workers", "2", "-"}} {
		_, got, _ := runCLI(t, raw, append([]string{"replay", "--quiet"}, args...)...)
		a, b := lines(one), lines(got)
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("%v: 1 worker: %d events, here %d", args, len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%v: line %d differs:\n%s\n%s", args, i, a[i], b[i])
			}
		}
	}
}

func TestReplayGzipStdinAndMerge(t *testing.T) {
	raw, err := os.ReadFile(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	_, plain, _ := runCLI(t, nil, "replay", "--quiet", sample(t))
	code, fromStdin, errs := runCLI(t, gz.Bytes(), "replay", "--quiet", "-")
	if code != 0 {
		t.Fatalf("stdin gzip: exit %d: %s", code, errs)
	}
	if strings.Join(sortedEvents(plain), "\n") != strings.Join(sortedEvents(fromStdin), "\n") {
		t.Fatal("gzip from stdin gives other events than the plain file")
	}
	// Two corpus files merged in timestamp order: events of both.
	a := testcorpus.Path(t, "ja4/tls12.pcap")
	b := testcorpus.Path(t, "ja4/tls-alpn-h2.pcap")
	code, out, errs := runCLI(t, nil, "replay", "--quiet", a, b)
	if code != 0 {
		t.Fatalf("merge: exit %d: %s", code, errs)
	}
	_, outA, _ := runCLI(t, nil, "replay", "--quiet", a)
	_, outB, _ := runCLI(t, nil, "replay", "--quiet", b)
	if len(lines(out)) != len(lines(outA))+len(lines(outB)) {
		t.Fatalf("merged %d events, separately %d+%d", len(lines(out)), len(lines(outA)), len(lines(outB)))
	}
}

func TestReplayBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.bin")
	if err := os.WriteFile(junk, []byte("this is not a capture file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, nil, "replay", "--quiet", junk)
	if code != 1 || !strings.Contains(errs, "junk.bin") || !strings.Contains(errs, "unknown capture format") {
		t.Fatalf("junk: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI(t, nil, "replay", "--quiet", filepath.Join(dir, "missing.pcap"))
	if code != 1 || !strings.Contains(errs, "missing.pcap") {
		t.Fatalf("missing: exit %d, stderr %q", code, errs)
	}
	// A capture killed mid-write: a warning, the events before it kept,
	// exit 0.
	raw, err := os.ReadFile(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, raw[:len(raw)/2+7], 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, nil, "replay", cut)
	if code != 0 || !strings.Contains(errs, "warning") || len(lines(out)) == 0 {
		t.Fatalf("truncated: exit %d, %d events, stderr %q", code, len(lines(out)), errs)
	}
	// With 2 workers taking turns at reading the file: the same warning
	// and events.
	code2, out2, errs2 := runCLI(t, nil, "replay", "--workers", "2", cut)
	warning := func(s string) string {
		w, _, _ := strings.Cut(s[strings.Index(s, "warning"):], "\n")
		return w
	}
	if code2 != 0 || warning(errs2) != warning(errs) || strings.Join(sortedEvents(out2), "\n") != strings.Join(sortedEvents(out), "\n") {
		t.Fatalf("truncated, 2 workers: exit %d, stderr %q; 1 worker's %q", code2, errs2, errs)
	}
	// A corrupt capture among good ones: the others still run, exit 1.
	bad := testcorpus.Path(t, "suricata-verify/bug-1450-04.pcap")
	code, out, errs = runCLI(t, nil, "replay", "--quiet", bad, testcorpus.Path(t, "ja4/tls12.pcap"))
	if code != 1 || !strings.Contains(errs, "bug-1450-04.pcap") || !strings.Contains(errs, "offset") {
		t.Fatalf("corrupt: exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "34.117.237.239") {
		t.Fatalf("the good file's events are missing: %q", out)
	}
}

// ecsFields loads ECS's field list: name -> type.
func ecsFields(t *testing.T) map[string]string {
	f, err := os.Open(filepath.Join(testcorpus.Research(t), "ecs-fields.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows[1:] {
		out[r[3]] = r[4]
	}
	return out
}

// extensions are the documented fields outside ECS and phonehome.*
// (docs/events.md, "Extensions").
var extensions = map[string]string{
	"tls.client.ja4": "keyword",
}

func flatten(prefix string, v any, out map[string][]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			flatten(key, val, out)
		}
	case []any:
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				flatten(prefix, m, out)
			} else {
				out[prefix] = append(out[prefix], e)
			}
		}
	default:
		out[prefix] = append(out[prefix], x)
	}
}

func typeOK(ecsType string, v any) bool {
	switch ecsType {
	case "keyword", "constant_keyword", "wildcard", "match_only_text", "text":
		_, ok := v.(string)
		return ok
	case "long", "integer", "short", "byte", "unsigned_long":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "float", "double", "scaled_float", "half_float":
		_, ok := v.(float64)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "ip":
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, err := netip.ParseAddr(s)
		return err == nil
	case "date":
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, err := time.Parse(time.RFC3339Nano, s)
		return err == nil
	}
	return false
}

// checkECS reports every field of ev that is neither an ECS field of the
// right type, under phonehome.*, nor a documented extension, and returns
// the names of the fields it saw.
func checkECS(t *testing.T, ecs map[string]string, ev map[string]any) []string {
	t.Helper()
	fields := map[string][]any{}
	flatten("", ev, fields)
	names := make([]string, 0, len(fields))
	for name, vals := range fields {
		names = append(names, name)
		if strings.HasPrefix(name, "phonehome.") {
			continue
		}
		typ, ok := ecs[name]
		if !ok {
			typ, ok = extensions[name]
		}
		if !ok {
			t.Errorf("field %s is neither ECS, phonehome.* nor a documented extension", name)
			continue
		}
		for _, v := range vals {
			if !typeOK(typ, v) {
				t.Errorf("field %s = %#v is not of ECS type %s", name, v, typ)
				break
			}
		}
	}
	return names
}

// TestEventsAreECS checks every field of every event from the sample and a
// set of corpus captures: it must be an ECS field of the right type, under
// phonehome.*, or a documented extension.
func TestEventsAreECS(t *testing.T) {
	ecs := ecsFields(t)
	inputs := []string{sample(t)}
	for _, rel := range []string{"ja4/tls12.pcap", "ja4/quic-tls-handshake.pcapng", "suricata-verify/eve-flow-vlan-02.pcap", "zeek/tunnels__vxlan.pcap", "suricata-verify/http-ipv6.pcap", "zeek/dns-edns-ecs.pcap"} {
		inputs = append(inputs, testcorpus.Path(t, rel))
	}
	seen := map[string]bool{}
	for _, in := range inputs {
		code, out, errs := runCLI(t, nil, "replay", "--quiet", in)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", in, code, errs)
		}
		for _, l := range lines(out) {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			for _, name := range checkECS(t, ecs, m) {
				seen[name] = true
			}
		}
	}
	if testing.Verbose() {
		var names []string
		for n := range seen {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("fields seen: %s", strings.Join(names, " "))
	}
}

func TestReplayStages(t *testing.T) {
	datasets := func(out string) map[string]bool {
		m := map[string]bool{}
		for _, l := range lines(out) {
			var ev map[string]any
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatal(err)
			}
			m[ev["event"].(map[string]any)["dataset"].(string)] = true
		}
		return m
	}
	_, flows, _ := runCLI(t, nil, "replay", "--quiet", "--stages", "flows", sample(t))
	_, dissect, _ := runCLI(t, nil, "replay", "--quiet", "--stages", "dissect", sample(t))
	_, full, _ := runCLI(t, nil, "replay", "--quiet", sample(t))
	if d := datasets(flows); len(d) != 1 || !d["phonehome.flow"] {
		t.Errorf("--stages flows: %v", d)
	}
	if d := datasets(dissect); !d["phonehome.tls"] || !d["phonehome.dns"] || d["phonehome.alert"] {
		t.Errorf("--stages dissect: %v", d)
	}
	if d := datasets(full); !d["phonehome.alert"] || !d["phonehome.inventory"] {
		t.Errorf("full: %v", d)
	}
	if code, _, _ := runCLI(t, nil, "replay", "--stages", "everything", sample(t)); code != 2 {
		t.Errorf("bad --stages: exit %d", code)
	}
}
