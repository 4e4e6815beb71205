package detect_test

import (
	"testing"

	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/classify/detect"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/classify/exfil"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// expectedExfil names the corpus captures that should raise exfiltration
// alerts, with the kinds and why. None should: the corpus holds protocol
// test captures of a few packets each, far below what any detector needs
// (RITA's floors: 4 connections over 30 minutes for a beacon, 100 unique
// subdomains for a DNS tunnel, 10 MB for an upload, an hour for a long
// connection). The test would catch a detector that fires on protocol
// oddities instead of behaviour.
var expectedExfil = map[string]struct {
	kinds []string
	why   string
}{}

// trackedTunnel is the corpus's DNS tunnel capture: one iodine handshake
// query (NULL type, "v" version probe). One query is no tunnel by RITA's
// measure, so no alert is expected, but the detector must have counted the
// query against its (client, registered domain) pair.
const trackedTunnel = "suricata-verify/dns__dns-udp-null.pcap"

// TestCorpusExfil replays every capture of the shared corpus through the
// dissectors and the detectors: only the captures in expectedExfil raise
// exfiltration alerts, of the kinds listed.
func TestCorpusExfil(t *testing.T) {
	for _, rel := range testcorpus.Captures(t) {
		if testcorpus.Malformed[rel] {
			continue
		}
		r, err := pcapfile.Open(testcorpus.Path(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		stage, err := detect.New(exfil.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		out := &lines{}
		var ds dissect.Stats
		_, err = engine.Run(engine.FileSource(pcapfile.NewMerger(r)), out, engine.Config{Workers: 1, NewAnalyzer: dissect.New(dissect.Config{}, 1, &ds), Classifier: engine.Chain{stage}})
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		got := map[string]bool{}
		for _, ev := range out.out {
			if get(ev, "rule", "category") == "exfiltration" {
				got[get(ev, "phonehome", "exfil", "kind").(string)] = true
			}
		}
		want := expectedExfil[rel]
		for _, k := range want.kinds {
			if !got[k] {
				t.Errorf("%s: no %s alert (%s)", rel, k, want.why)
			}
			delete(got, k)
		}
		for k := range got {
			t.Errorf("%s: unexpected %s alert", rel, k)
		}
		if rel == trackedTunnel {
			if st := stage.Stats(); st.DNSQueries == 0 || st.DNSPairs != 1 {
				t.Errorf("%s: the NULL query was not tracked: %+v", rel, st)
			}
		}
	}
}
