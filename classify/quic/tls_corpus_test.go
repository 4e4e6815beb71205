package quic

// This file checks the reassembled hellos with the project's TLS parser
// (classify/tls) against the fingerprints the reference tools published.

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/phonehome/phonehome/classify/tls"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// snapQUICJA4 reads "sni ja4" pairs of the udp streams in a ja4-rust.snap.
func snapQUICJA4(t testing.TB, path string) map[string]bool {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, entry := range strings.Split(string(raw), "- stream:") {
		if !strings.Contains(entry, "transport: udp") {
			continue
		}
		var sni, ja4 string
		for _, l := range strings.Split(entry, "\n") {
			l = strings.TrimSpace(l)
			if v, ok := strings.CutPrefix(l, "tls_server_name: "); ok {
				sni = v
			}
			if v, ok := strings.CutPrefix(l, "ja4: "); ok {
				ja4 = v
			}
		}
		if ja4 != "" {
			out[sni+" "+ja4] = true
		}
	}
	return out
}

var suricataJA4 = regexp.MustCompile(`quic\.ja4:\s*"?([0-9a-z_]+)"?`)

// tsharkUDPColumn returns the distinct values of a column over UDP frames.
func tsharkUDPColumn(t testing.TB, rel, col string) map[string]bool {
	raw, err := os.ReadFile(testcorpus.Path(t, rel+".tshark.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	cols := strings.Split(lines[0], "\t")
	udpCol, c := slices.Index(cols, "udp.srcport"), slices.Index(cols, col)
	out := map[string]bool{}
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) > c && f[udpCol] != "" && f[c] != "" {
			for _, v := range strings.Split(f[c], ",") {
				out[v] = true
			}
		}
	}
	return out
}

func TestCorpusFingerprints(t *testing.T) {
	checkedJA4 := 0
	for _, rel := range quicCaptures(t) {
		flows := feedCapture(t, readUDP(t, testcorpus.Path(t, rel)))
		ourJA4, ourJA3, ourJA3S := map[string]bool{}, map[string]bool{}, map[string]bool{}
		ourJA4Only := map[string]bool{}
		for _, f := range flows {
			if msg := f.conn.ClientHello(); msg != nil {
				ch, err := tls.ParseClientHello(msg)
				if err != nil {
					t.Errorf("%s: ClientHello: %v", rel, err)
					continue
				}
				if !ch.HasQUICTransportParams {
					t.Errorf("%s: ClientHello without quic_transport_parameters", rel)
				}
				if rel == "suricata-verify/quic-v2.pcap" {
					// quic-v2.test.yaml: extensions[0] status_request, [6] alpn "h3".
					if len(ch.Extensions) < 7 || ch.Extensions[0] != 5 || ch.Extensions[6] != 16 || len(ch.ALPN) == 0 || ch.ALPN[0] != "h3" {
						t.Errorf("%s: extensions %v alpn %v", rel, ch.Extensions, ch.ALPN)
					}
				}
				ja4 := ch.JA4(true)
				ourJA4[ch.ServerName+" "+ja4] = true
				ourJA4Only[ja4] = true
				_, ja3 := ch.JA3()
				ourJA3[ja3] = true
			}
			if msg := f.conn.ServerHello(); msg != nil {
				sh, err := tls.ParseServerHello(msg)
				if err != nil {
					t.Errorf("%s: ServerHello: %v", rel, err)
					continue
				}
				_, ja3s := sh.JA3S()
				ourJA3S[ja3s] = true
			}
		}
		if want := snapQUICJA4(t, testcorpus.Path(t, rel+".ja4-rust.snap")); want != nil {
			checkedJA4 += len(want)
			if !mapsEqual(want, ourJA4) {
				t.Errorf("%s: JA4 (sni ja4)\n want %v\n  got %v", rel, sortedKeys(want), sortedKeys(ourJA4))
			}
		}
		if rel == "suricata-verify/ja4-quic.pcap" || rel == "suricata-verify/ja4-tls-quic.pcap" {
			raw, err := os.ReadFile(testcorpus.Path(t, rel+"."+strings.TrimSuffix(strings.TrimPrefix(rel, "suricata-verify/"), ".pcap")+".test.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range suricataJA4.FindAllStringSubmatch(string(raw), -1) {
				checkedJA4++
				if !ourJA4Only[m[1]] {
					t.Errorf("%s: suricata expects JA4 %s, ours %v", rel, m[1], sortedKeys(ourJA4Only))
				}
			}
		}
		// tshark fingerprints the hellos it decrypted from the same Initials.
		if want := tsharkUDPColumn(t, rel, "tls.handshake.ja3"); !mapsEqual(want, ourJA3) && rel != quicVNCapture {
			t.Errorf("%s: JA3 want %v got %v", rel, sortedKeys(want), sortedKeys(ourJA3))
		}
		if want := tsharkUDPColumn(t, rel, "tls.handshake.ja3s"); !mapsEqual(want, ourJA3S) && rel != quicVNCapture {
			t.Errorf("%s: JA3S want %v got %v", rel, sortedKeys(want), sortedKeys(ourJA3S))
		}
	}
	if checkedJA4 == 0 {
		t.Fatal("no JA4 reference was checked")
	}
	t.Logf("%d JA4 references checked", checkedJA4)
}

func mapsEqual(a, b map[string]bool) bool {
	return slices.Equal(sortedKeys(a), sortedKeys(b))
}
