package dissect_test

import (
	gotls "crypto/tls"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phonehome/phonehome/classify/tls"
	"github.com/phonehome/phonehome/internal/testcorpus"
	"github.com/phonehome/phonehome/synth"
)

// TestCorpusSplitClientHello runs the two corpus captures whose
// ClientHello spans several TCP segments through the pipeline: each
// connection's event must carry tshark's SNI and JA3, and FoxIO's JA4.
func TestCorpusSplitClientHello(t *testing.T) {
	for _, rel := range []string{"suricata-verify/tls__tls-client-hello-frag-01.pcap", "arkime/tls-split-client-hello.pcap"} {
		t.Run(rel, func(t *testing.T) {
			path := testcorpus.Path(t, rel)
			res := runPipeline(t, path, 1)
			byClient := map[string][]jsonEvent{}
			for _, ev := range res.tls() {
				byClient[ev.Source.IP+":"+strconv.Itoa(ev.Source.Port)] = append(byClient[ev.Source.IP+":"+strconv.Itoa(ev.Source.Port)], ev)
			}
			seen := map[string]bool{}
			checked := 0
			for _, r := range readTshark(t, path+".tshark.tsv") {
				if !r.clientHello || seen[r.port] {
					continue
				}
				seen[r.port] = true
				var evs []jsonEvent
				for _, ip := range r.ips {
					evs = append(evs, byClient[ip+":"+r.port]...)
				}
				if len(evs) != 1 {
					t.Fatalf("client port %s: %d tls events, want 1", r.port, len(evs))
				}
				c := evs[0].TLS.Client
				if c.ServerName != strings.ToLower(r.sni) || c.JA3 != r.ja3 {
					t.Errorf("client port %s: SNI %q JA3 %s, tshark %q %s", r.port, c.ServerName, c.JA3, r.sni, r.ja3)
				}
				checked++
			}
			if checked == 0 {
				t.Fatal("tshark shows no ClientHello")
			}
			if snap, err := readSnap(path + ".ja4-rust.snap"); err == nil {
				for _, e := range snap {
					if e.ja4 == "" {
						continue
					}
					evs := byClient[e.src+":"+e.sport]
					if len(evs) != 1 || evs[0].TLS.Client.JA4 != e.ja4 {
						t.Errorf("%s:%s JA4: ours %v, FoxIO %s", e.src, e.sport, evs, e.ja4)
					}
				}
			}
		})
	}
}

// helloFingerprints are what classify/tls computes from a hello's bytes.
type helloFingerprints struct{ sni, ja3, ja4 string }

func fingerprintsOf(t *testing.T, record []byte) helloFingerprints {
	t.Helper()
	var got *tls.ClientHello
	r := tls.NewHandshakeReader(func(m tls.Message) bool {
		if m.Type == tls.TypeClientHello && got == nil {
			ch, err := m.ClientHello()
			if err != nil {
				t.Fatalf("client hello: %v", err)
			}
			got = ch
		}
		return true
	})
	if err := r.Feed(record); err != nil || got == nil {
		t.Fatalf("reading the generated hello: %v", err)
	}
	_, ja3 := got.JA3()
	return helloFingerprints{got.ServerName, ja3, got.JA4(false)}
}

// segmenter writes one direction's bytes as TCP segments.
type segmenter func(c *synth.TCPConn, data []byte, rng *rand.Rand)

// TestSplitClientHelloSynthetic generates ClientHellos larger than one MTU
// (Go's default X25519MLKEM768 key share) and sends them in small,
// shuffled, duplicated and overlapping segments: each capture must give
// exactly one tls event whose SNI, JA3 and JA4 equal those classify/tls
// computes from the original bytes.
func TestSplitClientHelloSynthetic(t *testing.T) {
	hello, err := synth.ClientHello(&gotls.Config{ServerName: "split.phonehome.test", NextProtos: []string{"h2", "http/1.1"}, MinVersion: gotls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if len(hello) <= 1500 {
		t.Fatalf("hello is %d bytes; the test needs one larger than an MTU", len(hello))
	}
	want := fingerprintsOf(t, hello)
	if want.sni != "split.phonehome.test" || !strings.HasPrefix(want.ja4, "t13d") {
		t.Fatalf("unexpected reference fingerprints %+v", want)
	}
	cases := map[string]segmenter{
		"mss-1448": func(c *synth.TCPConn, d []byte, _ *rand.Rand) { c.Send(true, d) },
		"mss-200":  func(c *synth.TCPConn, d []byte, _ *rand.Rand) { c.MSS = 200; c.Send(true, d) },
		"mss-7":    func(c *synth.TCPConn, d []byte, _ *rand.Rand) { c.SendDisordered(true, d, 7, nil, nil) },
		"shuffled-200": func(c *synth.TCPConn, d []byte, rng *rand.Rand) {
			c.SendDisordered(true, d, 200, rng, nil)
		},
		"shuffled-dup-100": func(c *synth.TCPConn, d []byte, rng *rand.Rand) {
			dup := map[int]bool{}
			for i := 0; i < len(d)/100+1; i += 2 {
				dup[i] = true
			}
			c.SendDisordered(true, d, 100, rng, dup)
		},
		"overlapping": nil, // built by hand below
	}
	for name, seg := range cases {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(name+"/"+strconv.FormatUint(seed, 10), func(t *testing.T) {
				t.Parallel()
				path := filepath.Join(t.TempDir(), "split.pcap")
				writeSplitCapture(t, path, hello, seg, rand.New(rand.NewPCG(seed, 99)))
				res := runPipeline(t, path, 1)
				evs := res.tls()
				if len(evs) != 1 {
					t.Fatalf("%d tls events, want 1", len(evs))
				}
				c := evs[0].TLS.Client
				got := helloFingerprints{c.ServerName, c.JA3, c.JA4}
				if got != want {
					t.Fatalf("got %+v, want %+v", got, want)
				}
				if n := res.stats.TLSMalformed.Load(); n != 0 {
					t.Fatalf("%d malformed hellos counted", n)
				}
			})
		}
	}
}

// writeSplitCapture writes one connection carrying hello from the client,
// segmented by seg, or, for a nil seg, in overlapping shuffled segments
// (each 300 bytes long, starting every 200 bytes) built frame by frame.
func writeSplitCapture(t *testing.T, path string, hello []byte, seg segmenter, rng *rand.Rand) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := synth.NewWriter(f, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &synth.Capture{W: w}
	client, server := synth.EP("192.0.2.10:40000"), synth.EP("198.51.100.20:443")
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	if seg != nil {
		conn := c.Open(synth.L2{}, client, server, ts, 10*time.Millisecond)
		seg(conn, hello, rng)
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
	} else {
		const iss, irs = 1000, 5000
		emit := func(src, dst synth.Endpoint, seq, ack uint32, flags uint8, payload []byte) {
			ts += 1000
			if err := c.Emit(ts, c.B.TCP(synth.L2{}, src, dst, seq, ack, flags, payload)); err != nil {
				t.Fatal(err)
			}
		}
		emit(client, server, iss, 0, synth.SYN, nil)
		emit(server, client, irs, iss+1, synth.SYN|synth.ACK, nil)
		emit(client, server, iss+1, irs+1, synth.ACK, nil)
		var offs []int
		for off := 0; off < len(hello); off += 200 {
			offs = append(offs, off)
		}
		rng.Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
		for _, off := range offs {
			end := min(off+300, len(hello))
			emit(client, server, iss+1+uint32(off), irs+1, synth.PSH|synth.ACK, hello[off:end])
		}
		emit(server, client, irs+1, iss+1+uint32(len(hello)), synth.ACK, nil)
		emit(client, server, iss+1+uint32(len(hello)), irs+1, synth.FIN|synth.ACK, nil)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestCorpusQUICHandshakes runs QUIC captures with several Initials and
// CRYPTO frames through the pipeline: each must give a quic tls event with
// the server name tshark (or FoxIO) shows and a JA4 with the q prefix,
// equal to FoxIO's where it published one.
func TestCorpusQUICHandshakes(t *testing.T) {
	cases := []struct {
		rel, sni, version string
		extensions        []uint16 // suricata-verify's expectations, when any
	}{
		{"zeek/quic__quic-multiple-initial-fragmented-crypto.pcap", "googleads.g.doubleclick.net", "1", nil},
		{"zeek/quic__chromium-115.0.5790.110-google-de-fragmented.pcap", "www.google.de", "1", nil},
		{"zeek/quic__quic-decrypt-fail-google-de-51833.pcap", "www.google.de", "1", nil},
		{"ja4/quic-tls-handshake.pcapng", "www.google.com", "1", nil},
		{"ja4/quic-with-several-tls-frames.pcapng", "ogs.google.com", "1", nil},
		// No SNI in this v2 hello; suricata-verify's quic-v2 test names
		// extension 0 status_request and extension 6 alpn "h3".
		{"suricata-verify/quic-v2.pcap", "", "2", []uint16{5, 10, 11, 13, 65281, 23, 16}},
	}
	for _, tc := range cases {
		t.Run(tc.rel, func(t *testing.T) {
			path := testcorpus.Path(t, tc.rel)
			res := runPipeline(t, path, 1)
			var quic []jsonEvent
			for _, ev := range res.tls() {
				if ev.Network.Protocol == "quic" {
					quic = append(quic, ev)
				}
			}
			if len(quic) == 0 {
				t.Fatal("no quic handshake event")
			}
			ev := quic[0]
			c := ev.TLS.Client
			if c.ServerName != tc.sni || !strings.HasPrefix(c.JA4, "q") || ev.Phonehome.TLS.QUICVersion != tc.version {
				t.Errorf("SNI %q JA4 %s version %q; want %q, q prefix, %q", c.ServerName, c.JA4, ev.Phonehome.TLS.QUICVersion, tc.sni, tc.version)
			}
			if tc.sni == "" && c.JA4[3] != 'i' {
				t.Errorf("JA4 %s: a hello without SNI must have 'i'", c.JA4)
			}
			for i, e := range tc.extensions {
				if x := ev.Phonehome.TLS.Extensions; i >= len(x) || x[i] != e {
					t.Errorf("extensions %v, want prefix %v", x, tc.extensions)
					break
				}
			}
			if snap, err := readSnap(path + ".ja4-rust.snap"); err == nil {
				for _, e := range snap {
					if strings.HasPrefix(e.ja4, "q") && e.ja4 != c.JA4 {
						t.Errorf("JA4 %s, FoxIO %s", c.JA4, e.ja4)
					}
				}
			}
		})
	}
}

// TestHelloRetryRequest: after a HelloRetryRequest the event carries the
// ServerHello that completed the handshake and says that a retry happened.
func TestHelloRetryRequest(t *testing.T) {
	for _, tc := range []struct{ rel, hrr, final string }{
		// tshark shows the HRR's JA3S only (frame 6).
		{"zeek/tls__hrr.pcap", "15af977ce25de452b96affa2addb1036", ""},
		// tshark: HRR in frame 6, the ServerHello in frame 9.
		{"suricata-verify/tls__tls13-draft22.pcap", "45877694de44dca6cdff383fa40984e9", "d9f520f64c0731564298ee69133d59d2"},
	} {
		t.Run(tc.rel, func(t *testing.T) {
			evs := runPipeline(t, testcorpus.Path(t, tc.rel), 1).tls()
			if len(evs) != 1 {
				t.Fatalf("%d tls events, want 1", len(evs))
			}
			x, ja3s := evs[0].Phonehome.TLS, evs[0].TLS.Server.JA3S
			if x == nil || !x.HelloRetry {
				t.Fatal("hello_retry_request not set")
			}
			if ja3s == "" || ja3s == tc.hrr || tc.final != "" && ja3s != tc.final {
				t.Fatalf("JA3S %s: want the final ServerHello's (%q), not the HRR's %s", ja3s, tc.final, tc.hrr)
			}
		})
	}
}
