package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/phonehome/phonehome/synth"
)

// syncBuffer collects a child's stderr for polling.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// e2eCapture writes a capture of the given scenario for tcpreplay: a host
// looking up and contacting Kaspersky update servers, a browsing host, and
// (open) a TCP connection left open so that shutdown must flush it.
func e2eCapture(t *testing.T, path string, portBase uint16, open bool) {
	var buf bytes.Buffer
	w, err := synth.NewWriter(&buf, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &synth.Capture{W: w}
	ts := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).UnixNano()
	kav, browser := netip.MustParseAddr("192.168.57.21"), netip.MustParseAddr("192.168.57.22")
	resolver := synth.Endpoint{Addr: netip.MustParseAddr("192.168.57.1"), Port: 53}
	port := portBase
	next := func() uint16 { port++; return port }
	rtt := 10 * time.Millisecond
	lookup := func(client netip.Addr, name string, addr netip.Addr) {
		q, err := synth.DNSQuery(port, name, mdns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		r, err := synth.DNSResponse(q, mdns.RcodeSuccess, synth.DNSAnswer{Name: name, TTL: 300, Addr: addr})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.UDPExchange(synth.L2{}, synth.Endpoint{Addr: client, Port: next()}, resolver, ts, rtt, q, r); err != nil {
			t.Fatal(err)
		}
		ts += int64(50 * time.Millisecond)
	}
	tlsTo := func(client netip.Addr, server netip.Addr, sni string, close bool) {
		cert, err := synth.SelfSigned(pkix.Name{CommonName: sni}, []string{sni}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		fl, err := synth.Handshake(&tls.Config{ServerName: sni, InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12},
			&tls.Config{Certificates: []tls.Certificate{cert}}, []byte("ping"), []byte("pong"))
		if err != nil {
			t.Fatal(err)
		}
		conn := c.Open(synth.L2{}, synth.Endpoint{Addr: client, Port: next()}, synth.Endpoint{Addr: server, Port: 443}, ts, rtt)
		conn.ReplayFlights(fl)
		if close {
			if err := conn.Close(); err != nil {
				t.Fatal(err)
			}
		}
		ts = conn.T + int64(50*time.Millisecond)
	}
	kavAddr := netip.MustParseAddr("198.51.100.10")
	lookup(kav, "dnl-01.geo.kaspersky.com", kavAddr)
	tlsTo(kav, kavAddr, "dnl-01.geo.kaspersky.com", true)
	web := netip.MustParseAddr("203.0.113.10")
	lookup(browser, "www.example.com", web)
	tlsTo(browser, web, "www.example.com", true)
	if open {
		tlsTo(browser, web, "www.example.com", false)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonEndToEnd runs the sensor on one end of a veth pair whose other
// end lives in a network namespace the test creates, replays generated
// traffic into it with tcpreplay, swaps signatures with SIGHUP mid-run, and
// stops it with SIGTERM, which must flush every open flow. No address
// outside the test's own namespace and 127.0.0.1 is used.
func TestDaemonEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace, raw capture)")
	}
	for _, tool := range []string{"ip", "tcpreplay", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it)", tool)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "phonehome")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	id := os.Getpid() % 100000
	ns, a, b := fmt.Sprintf("phe2e%d", id), fmt.Sprintf("phe2ea%d", id), fmt.Sprintf("phe2eb%d", id)
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	sh(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", a).Run() })
	sh(t, "ip", "link", "set", a, "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", b, "up")

	capA, capB := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	e2eCapture(t, capA, 40000, false)
	e2eCapture(t, capB, 50000, true)
	sigDir := filepath.Join(dir, "signatures")
	if err := os.Mkdir(sigDir, 0o755); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "events.json")
	cfgPath := filepath.Join(dir, "phonehome.yaml")
	cfg := fmt.Sprintf(`capture:
  interfaces: [%s]
  engine: afpacket
  workers: 2
metrics_addr: 127.0.0.1:0
stats_interval: 1s
alert_window: 0s
signatures: [%s]
outputs:
  - type: file
    file: {path: %s}
`, a, sigDir, events)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("phonehome stderr:\n%s", stderr.String())
		}
	})
	metricsRe := regexp.MustCompile(`metrics listening.*"addr": "([^"]+)"`)
	waitFor(t, "the sensor to listen", 15*time.Second, func() bool { return metricsRe.MatchString(stderr.String()) })
	metricsAddr := metricsRe.FindStringSubmatch(stderr.String())[1]

	replay := func(path string) {
		sh(t, "ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", b, "--pps=500", path)
	}
	readEvents := func() []map[string]any {
		raw, _ := os.ReadFile(events)
		var out []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				out = append(out, m)
			}
		}
		return out
	}
	alertsFor := func(evs []map[string]any, sni string) (n int, rules []string) {
		for _, ev := range evs {
			if get(ev, "event.dataset") == "phonehome.alert" && get(ev, "destination.domain") == sni {
				n++
				rules = append(rules, fmt.Sprint(get(ev, "rule.id")))
			}
		}
		return n, rules
	}

	replay(capA)
	// The Kaspersky TLS flow closes with FIN; its record and alert follow
	// the close delay, driven by the wall clock on an idle link.
	waitFor(t, "the Kaspersky alert", 20*time.Second, func() bool {
		n, _ := alertsFor(readEvents(), "dnl-01.geo.kaspersky.com")
		return n > 0
	})
	waitFor(t, "the browsing flow record", 20*time.Second, func() bool {
		for _, ev := range readEvents() {
			if get(ev, "event.dataset") == "phonehome.flow" && get(ev, "destination.domain") == "www.example.com" {
				return true
			}
		}
		return false
	})
	if n, rules := alertsFor(readEvents(), "www.example.com"); n != 0 {
		t.Fatalf("www.example.com alerted before the signature existed: %v", rules)
	}

	// SIGHUP with a new signature file: www.example.com becomes a vendor.
	sig := `format: phonehome-signatures/v1
vendor:
  name: E2E Test Vendor
signatures:
  - id: E2E-001
    product: e2e test product
    purpose: telemetry
    severity: medium
    confidence: high
    description: Test-only signature added by SIGHUP in the end-to-end test.
    references: [https://example.com/e2e]
    match:
      - domain: www.example.com
`
	if err := os.WriteFile(filepath.Join(sigDir, "e2e.yaml"), []byte(sig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", 10*time.Second, func() bool { return strings.Contains(stderr.String(), "reload: signatures applied") })
	// A broken file on the next SIGHUP keeps the running set and says why.
	broken := filepath.Join(sigDir, "zz-broken.yaml")
	if err := os.WriteFile(broken, []byte("format: phonehome-signatures/v1\nvendor: {name: Broken}\nsignatures:\n  - id: BAD\n    purpose: nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rejected reload", 10*time.Second, func() bool {
		return strings.Contains(stderr.String(), "signatures rejected, keeping the running set") && strings.Contains(stderr.String(), "zz-broken.yaml")
	})

	replay(capB)
	waitFor(t, "the new vendor's alert", 20*time.Second, func() bool {
		n, _ := alertsFor(readEvents(), "www.example.com")
		return n > 0
	})

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`phonehome_capture_received_packets_total{interface="` + a + `"}`,
		`phonehome_capture_kernel_dropped_packets_total{interface="` + a + `"} 0`,
		"phonehome_frames_total",
		`phonehome_events_total{dataset="phonehome.tls"}`,
		`phonehome_alerts_total{rule="E2E-001"}`,
		`phonehome_output_queue_depth{output=`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20 s of SIGTERM")
	}
	evs := readEvents()
	var shutdownFlows, stats, dns, tlsEv int
	for _, ev := range evs {
		switch get(ev, "event.dataset") {
		case "phonehome.flow":
			if get(ev, "event.reason") == "shutdown" {
				shutdownFlows++
			}
		case "phonehome.stats":
			stats++
		case "phonehome.dns":
			dns++
		case "phonehome.tls":
			tlsEv++
		}
	}
	if shutdownFlows == 0 {
		t.Error("SIGTERM flushed no open flow (reason shutdown)")
	}
	if stats == 0 || dns < 4 || tlsEv < 5 {
		t.Errorf("events: %d stats, %d dns, %d tls", stats, dns, tlsEv)
	}
	if n, rules := alertsFor(evs, "www.example.com"); n == 0 || rules[0] != "E2E-001" {
		t.Errorf("alerts for www.example.com after SIGHUP: %v", rules)
	}
}

// get reads a dotted path from a decoded event.
func get(ev map[string]any, path string) any {
	var cur any = ev
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}
