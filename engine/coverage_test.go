package engine_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// coverageRows reads COVERAGE.tsv: feature -> files.
func coverageRows(t *testing.T) map[string][]string {
	f, err := os.Open(filepath.Join(testcorpus.Corpus(t), "COVERAGE.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) == 3 {
			rows[cols[0]] = strings.Fields(cols[2])
		}
	}
	return rows
}

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

func anyFlow(res replayResult, pred func(ev map[string]any) bool) bool {
	for _, ev := range res.events {
		if get(ev, "event.dataset") == "phonehome.flow" && pred(ev) {
			return true
		}
	}
	return false
}

func hasTunnel(kind string) func(map[string]any) bool {
	return func(ev map[string]any) bool {
		types, _ := get(ev, "phonehome.tunnel.types").([]any)
		for _, t := range types {
			if t == kind {
				return true
			}
		}
		return false
	}
}

// TestCoverageFeatures replays the captures COVERAGE.tsv lists for the
// encapsulation, fragment and link-type features and checks that each
// feature shows in our output. Files where the feature cannot show are
// listed with the reason.
func TestCoverageFeatures(t *testing.T) {
	rows := coverageRows(t)
	type feature struct {
		row    string
		check  func(res replayResult) bool
		exempt map[string]string // file -> why the check does not apply
	}
	features := []feature{
		{row: "VLAN 802.1Q", check: func(r replayResult) bool {
			return anyFlow(r, func(ev map[string]any) bool { return get(ev, "network.vlan.id") != nil })
		}, exempt: map[string]string{
			"suricata-verify/arp__detect-arp-03-vlan.pcap": "ARP only: no IP flow to carry the tags",
		}},
		{row: "QinQ (>=2 VLAN tags)", check: func(r replayResult) bool {
			return anyFlow(r, func(ev map[string]any) bool { return get(ev, "network.inner.vlan.id") != nil })
		}, exempt: map[string]string{
			"suricata-verify/arp__detect-arp-03-vlan.pcap": "ARP only: no IP flow to carry the tags",
			"zeek/dns__loc-29-trunc.pcap":                  "the frames are cut inside the IP header by the snap length",
			"tcpdump/802.1ad_QinQ.pcap":                    "ARP only: no IP flow to carry the tags",
		}},
		{row: "GRE", check: func(r replayResult) bool {
			// GRE carrying a payload we do not decode (Cisco CDP, keepalives)
			// is itself the flow, with network.transport gre.
			return anyFlow(r, func(ev map[string]any) bool {
				return hasTunnel("gre")(ev) || get(ev, "network.transport") == "gre"
			})
		}, exempt: map[string]string{
			"tcpdump/erspan-type-iii-pb-1.pcap": "a tcpdump crash-regression file: one malformed frame cut inside the GRE header",
		}},
		{row: "ERSPAN", check: func(r replayResult) bool { return anyFlow(r, hasTunnel("erspan")) }, exempt: map[string]string{
			"tcpdump/erspan-type-iii-pb-1.pcap": "a tcpdump crash-regression file: one malformed frame cut inside the GRE header",
		}},
		{row: "VXLAN", check: func(r replayResult) bool { return anyFlow(r, hasTunnel("vxlan")) }},
		{row: "Geneve", check: func(r replayResult) bool { return anyFlow(r, hasTunnel("geneve")) }},
		{row: "MPLS", check: func(r replayResult) bool { return anyFlow(r, hasTunnel("mpls")) }},
		{row: "PPPoE", check: func(r replayResult) bool { return anyFlow(r, hasTunnel("pppoe")) }},
		{row: "Teredo", check: func(r replayResult) bool { return anyFlow(r, hasTunnel("teredo")) }},
		{row: "GTP", check: func(r replayResult) bool { return anyFlow(r, hasTunnel("gtp")) }},
		{row: "IP fragments", check: func(r replayResult) bool { return r.stats.Defrag().Reassembled > 0 }, exempt: map[string]string{
			"zeek/ipv6-http-atomic-frag.pcap": "atomic fragments (offset 0, no more fragments) are processed as they are (RFC 6946), not reassembled",
			"zeek/ipv4__fragmented-2.pcap":    "the fragments leave bytes 16-48 unsent: nothing can be reassembled; they are held and counted as timed out",
			"zeek/ipv4__fragmented-3.pcap":    "the capture holds only fragments with more-fragments set, never the last one: held and counted as timed out",
		}},
		{row: "Linux cooked (SLL/SLL2)", check: func(r replayResult) bool {
			return r.stats.Packets.Load() > 0 && r.stats.Skipped[decode.SkipUnknownLink].Load() == 0
		}, exempt: map[string]string{
			"zeek/linuxsll-arp.pcap": "ARP only: every frame is counted as non_ip, none as an unknown link type",
		}},
		{row: "BSD loopback (DLT_NULL)", check: func(r replayResult) bool {
			return r.stats.Skipped[decode.SkipUnknownLink].Load() == 0
		}},
		{row: "raw IP link type", check: func(r replayResult) bool {
			return r.stats.Packets.Load() > 0 && r.stats.Skipped[decode.SkipUnknownLink].Load() == 0
		}, exempt: map[string]string{
			"tcpdump/erspan-type-iii-pb-1.pcap": "a tcpdump crash-regression file: one malformed frame cut inside the GRE header",
		}},
		{row: "pcapng multiple interfaces", check: func(r replayResult) bool {
			return r.stats.Skipped[decode.SkipUnknownLink].Load() == 0
		}},
	}
	for _, ft := range features {
		files := rows[ft.row]
		if len(files) == 0 {
			t.Errorf("COVERAGE.tsv has no row %q", ft.row)
			continue
		}
		for _, rel := range files {
			t.Run(ft.row+"/"+rel, func(t *testing.T) {
				if why, ok := ft.exempt[rel]; ok {
					t.Skip(why)
				}
				res := replay(t, testcorpus.Path(t, rel), 1, 0)
				if !ft.check(res) {
					t.Errorf("feature %q not seen in our output", ft.row)
				}
			})
		}
	}
}
