package quic

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/phonehome/phonehome/internal/testcorpus"
)

// quicVNCapture starts with an Initial of an unknown version, answered by
// Version Negotiation; the client then retries in v1 on the same flow.
// tshark 4.0 keeps the flow's first version and decrypts nothing after it,
// we decrypt the v1 Initial (AEAD-authenticated), so only we see the hello.
const quicVNCapture = "tcpdump/quic_vn.pcap"

// sniExceptions are the captures whose server names are expected to differ
// from tshark's, with our expected result.
var sniExceptions = map[string][]string{quicVNCapture: {"localhost"}}

// TestCorpusSNI feeds every QUIC capture listed in COVERAGE.tsv and compares
// the server names in our reassembled ClientHellos with tshark's.
func TestCorpusSNI(t *testing.T) {
	var table strings.Builder
	fmt.Fprintf(&table, "capture\ttshark\tours\tagree\tversion\tstats\n")
	for _, rel := range quicCaptures(t) {
		want := tsharkUDPSNIs(t, rel)
		flows := feedCapture(t, readUDP(t, testcorpus.Path(t, rel)))
		got := map[string]bool{}
		var agg Stats
		hellos, serverHellos, retried := 0, 0, 0
		versions := map[string]bool{}
		for _, f := range flows {
			if f.conn.ClientHello() != nil {
				hellos++
			} else if f.conn.Stats().Decrypted > 0 && rel != "tcpdump/quic_handshake_truncated.pcap" {
				t.Errorf("%s: a flow decrypted Initials but its ClientHello is incomplete (prefix %d bytes)", rel, len(f.conn.CryptoPrefix(true)))
			}
			if f.conn.ServerHello() != nil {
				serverHellos++
			}
			if v := f.conn.Version(); v != 0 {
				versions[fmt.Sprintf("%x", v)] = true
			}
			if f.conn.Retried() {
				retried++
			}
			if sni, ok := testSNI(f.conn.ClientHello()); ok {
				got[sni] = true
			}
			s := f.conn.Stats()
			agg.Decrypted += s.Decrypted
			agg.DecryptFailed += s.DecryptFailed
			agg.NoKeys += s.NoKeys
			agg.UnsupportedVersion += s.UnsupportedVersion
			agg.FrameErrors += s.FrameErrors
			for _, err := range f.errs {
				t.Logf("%s: %v", rel, err)
			}
		}
		ours := sortedKeys(got)
		agree := slices.Equal(want, ours)
		tshark := strings.Join(want, ",")
		if exp, ok := sniExceptions[rel]; ok {
			want = exp
		}
		fmt.Fprintf(&table, "%s\t%s\t%s\t%v\t%s\tflows=%d ch=%d sh=%d retried=%d dec=%d fail=%d nokeys=%d unsup=%d frameerr=%d\n", rel,
			tshark, strings.Join(ours, ","), agree, strings.Join(sortedKeys(versions), ","), len(flows), hellos, serverHellos, retried,
			agg.Decrypted, agg.DecryptFailed, agg.NoKeys, agg.UnsupportedVersion, agg.FrameErrors)
		if !slices.Equal(want, ours) {
			t.Errorf("%s: tshark %v, ours %v", rel, want, ours)
		}
	}
	t.Log("\n" + table.String())
	if out := os.Getenv("QUIC_SNI_TABLE"); out != "" {
		_ = os.WriteFile(out, []byte(table.String()), 0o644)
	}
}
