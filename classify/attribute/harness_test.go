package attribute

import (
	"bytes"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/signatures"
	"github.com/phonehome/phonehome/synth"
)

// t0 is the first packet time of generated scenarios.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).UnixNano()

const sec = int64(time.Second)

var (
	resolver  = synth.EP("192.168.56.1:53")
	resolver6 = synth.EP("[2001:db8:56::1]:53")
)

// scen builds a capture from flows described in the test.
type scen struct {
	t    testing.TB
	buf  bytes.Buffer
	c    *synth.Capture
	port uint16
	id   uint16
}

func newScen(t testing.TB) *scen {
	s := &scen{t: t, port: 40000}
	w, err := synth.NewWriter(&s.buf, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.c = &synth.Capture{W: w}
	return s
}

func (s *scen) next() uint16 { s.port++; return s.port }

func ip(a string) netip.Addr { return netip.MustParseAddr(a) }

// lookup writes one DNS query and its answer.
func (s *scen) lookup(l2 synth.L2, client netip.Addr, ts int64, name string, answers ...synth.DNSAnswer) {
	s.t.Helper()
	s.id++
	qt := mdns.TypeA
	for _, a := range answers {
		if a.Addr.Is6() {
			qt = mdns.TypeAAAA
		}
	}
	q, err := synth.DNSQuery(s.id, name, qt)
	if err != nil {
		s.t.Fatal(err)
	}
	r, err := synth.DNSResponse(q, mdns.RcodeSuccess, answers...)
	if err != nil {
		s.t.Fatal(err)
	}
	res := resolver
	if client.Is6() {
		res = resolver6
	}
	if err := s.c.UDPExchange(l2, synth.Endpoint{Addr: client, Port: s.next()}, res, ts, 10*time.Millisecond, q, r); err != nil {
		s.t.Fatal(err)
	}
}

// tlsOpts describes a generated TLS connection.
type tlsOpts struct {
	sni     string
	subject pkix.Name
	sans    []string
	upload  int // extra client bytes after the handshake
}

// handshakes caches Go TLS handshakes by options: they are slow under -race.
var (
	hsMu    sync.Mutex
	hsCache = map[string][]synth.Flight{}
)

func handshake(t testing.TB, o tlsOpts) []synth.Flight {
	key := fmt.Sprintf("%s|%s|%v", o.sni, o.subject.String(), o.sans)
	hsMu.Lock()
	defer hsMu.Unlock()
	if fl, ok := hsCache[key]; ok {
		return fl
	}
	subj := o.subject
	if subj.CommonName == "" && len(subj.Organization) == 0 {
		subj = pkix.Name{CommonName: "server.example.net", Organization: []string{"Synthetic Test Server"}}
	}
	sans := o.sans
	if sans == nil {
		sans = []string{"server.example.net"}
	}
	cert, err := synth.SelfSigned(subj, sans, time.Unix(0, t0))
	if err != nil {
		t.Fatal(err)
	}
	fl, err := synth.Handshake(
		&tls.Config{ServerName: o.sni, InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12},
		&tls.Config{Certificates: []tls.Certificate{cert}},
		[]byte("ping"), []byte("pong"))
	if err != nil {
		t.Fatal(err)
	}
	hsCache[key] = fl
	return fl
}

func (s *scen) tlsFlow(l2 synth.L2, client netip.Addr, server synth.Endpoint, ts int64, o tlsOpts) {
	s.t.Helper()
	fl := handshake(s.t, o)
	conn := s.c.Open(l2, synth.Endpoint{Addr: client, Port: s.next()}, server, ts, 10*time.Millisecond)
	conn.ReplayFlights(fl)
	if o.upload > 0 {
		conn.Send(true, make([]byte, o.upload))
	}
	if err := conn.Close(); err != nil {
		s.t.Fatal(err)
	}
}

// tcpFlow writes a plain TCP connection exchanging opaque bytes.
func (s *scen) tcpFlow(l2 synth.L2, client netip.Addr, server synth.Endpoint, ts int64, up, down int) {
	s.t.Helper()
	conn := s.c.Open(l2, synth.Endpoint{Addr: client, Port: s.next()}, server, ts, 10*time.Millisecond)
	if up > 0 {
		conn.Send(true, bytes.Repeat([]byte{0x17}, up))
	}
	if down > 0 {
		conn.Send(false, bytes.Repeat([]byte{0x18}, down))
	}
	if err := conn.Close(); err != nil {
		s.t.Fatal(err)
	}
}

// httpFlow writes one HTTP/1.1 request and response.
func (s *scen) httpFlow(l2 synth.L2, client netip.Addr, server synth.Endpoint, ts int64, host, path, ua, ctype string) {
	s.t.Helper()
	conn := s.c.Open(l2, synth.Endpoint{Addr: client, Port: s.next()}, server, ts, 10*time.Millisecond)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n"
	if ua != "" {
		req += "User-Agent: " + ua + "\r\n"
	}
	conn.Send(true, []byte(req+"Accept: */*\r\n\r\n"))
	body := strings.Repeat("x", 200)
	conn.Send(false, []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", ctype, len(body), body)))
	if err := conn.Close(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *scen) bytes() []byte {
	if err := s.c.W.Flush(); err != nil {
		s.t.Fatal(err)
	}
	return s.buf.Bytes()
}

// discard is an engine output that keeps nothing (tests look at the event
// structs through a recording classifier).
type discard struct{}

func (discard) Write([]byte, string, string) error { return nil }

// recorder wraps the Attributor and keeps every event in output order.
type recorder struct {
	a   *Attributor
	evs []*event.Event
}

func (r *recorder) keep(ev *event.Event) { r.evs = append(r.evs, ev) }

func (r *recorder) Process(ev *event.Event, emit func(*event.Event)) {
	r.keep(ev)
	r.a.Process(ev, func(e *event.Event) { r.keep(e); emit(e) })
}
func (r *recorder) Tick(now int64, emit func(*event.Event)) {
	r.a.Tick(now, func(e *event.Event) { r.keep(e); emit(e) })
}
func (r *recorder) Finish(now int64, emit func(*event.Event)) {
	r.a.Finish(now, func(e *event.Event) { r.keep(e); emit(e) })
}

// result is a run's events.
type result struct {
	t   testing.TB
	a   *Attributor
	evs []*event.Event
}

func defaultSet(t testing.TB) *signatures.Set {
	t.Helper()
	set, err := signatures.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// replay runs a capture through the engine, the dissectors and an
// Attributor built from cfg (default signatures when cfg has none).
func replay(t testing.TB, pcap []byte, cfg Config) *result {
	t.Helper()
	if cfg.Signatures == nil {
		cfg.Signatures = defaultSet(t)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapfile.NewReader(bytes.NewReader(pcap), "test.pcap")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{a: a}
	var st dissect.Stats
	_, err = engine.Run(engine.FileSource(pcapfile.NewMerger(r)), discard{}, engine.Config{Workers: 1, NewAnalyzer: dissect.New(dissect.Config{}, 1, &st), Classifier: rec})
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return &result{t: t, a: a, evs: rec.evs}
}

func (r *result) dataset(ds string) []*event.Event {
	var out []*event.Event
	for _, ev := range r.evs {
		if ev.Dataset == ds {
			out = append(out, ev)
		}
	}
	return out
}

func (r *result) alerts() []*event.Event { return r.dataset(event.DatasetAlert) }

// flowEvents returns the events of the flow to dst (address and port).
func (r *result) flowEvents(dst synth.Endpoint) []*event.Event {
	var out []*event.Event
	for _, ev := range r.evs {
		if ev.Destination.IP == dst.Addr && ev.Destination.Port == dst.Port && ev.Dataset != event.DatasetInventory {
			out = append(out, ev)
		}
	}
	return out
}

func evHas(evs []event.Evidence, typ, value string) bool {
	for _, e := range evs {
		if e.Type == typ && (value == "" || e.Value == value) {
			return true
		}
	}
	return false
}

// writeSigFile writes a test-only signature file into a new directory and
// returns the directory.
func writeSigFile(t testing.TB, name, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeMMDB writes a small GeoLite2-style database: typ is "GeoLite2-ASN"
// or "GeoLite2-Country"; records map CIDRs to their data.
func writeMMDB(t testing.TB, typ string, records map[string]mmdbtype.Map) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: typ, IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, m := range records {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, m); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), typ+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

func asnRecord(n uint32, org string) mmdbtype.Map {
	return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(n), "autonomous_system_organization": mmdbtype.String(org)}
}

func countryRecord(iso string) mmdbtype.Map {
	return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso)}}
}
