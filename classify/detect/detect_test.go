package detect_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/classify/detect"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/classify/exfil"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/synth"
)

type lines struct {
	mu  sync.Mutex
	out []map[string]any
}

func (l *lines) Write(b []byte, _, _ string) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	l.mu.Lock()
	l.out = append(l.out, m)
	l.mu.Unlock()
	return nil
}

func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// TestSampleAlerts replays the generated sample: its beacon, DNS tunnel and
// upload are flagged, and nothing else is.
func TestSampleAlerts(t *testing.T) {
	var buf bytes.Buffer
	if err := synth.Sample(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sample.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stage, err := detect.New(exfil.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	out := &lines{}
	var ds dissect.Stats
	_, err = engine.Run(engine.FileSource(pcapfile.NewMerger(r)), out, engine.Config{Workers: 1, NewAnalyzer: dissect.New(dissect.Config{}, 1, &ds), Classifier: engine.Chain{stage}})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string][]map[string]any{}
	for _, ev := range out.out {
		if get(ev, "event", "dataset") == "phonehome.alert" && get(ev, "rule", "category") == "exfiltration" {
			k := get(ev, "phonehome", "exfil", "kind").(string)
			kinds[k] = append(kinds[k], ev)
		}
	}
	for _, want := range []struct{ kind, client string }{
		{"beacon", "192.168.56.23"}, {"dns_tunnel", "192.168.56.24"}, {"upload_heavy", "192.168.56.25"},
	} {
		evs := kinds[want.kind]
		if len(evs) == 0 {
			t.Errorf("no %s alert; alerts: %v", want.kind, kinds)
			continue
		}
		for _, ev := range evs {
			if c := get(ev, "source", "ip"); c != want.client {
				t.Errorf("%s alert for %v, want %s", want.kind, c, want.client)
			}
			if s, _ := get(ev, "phonehome", "exfil", "score").(float64); s <= 0 || s > 1 {
				t.Errorf("%s score %v", want.kind, s)
			}
		}
	}
	for k := range kinds {
		switch k {
		case "beacon", "dns_tunnel", "upload_heavy":
		default:
			t.Errorf("unexpected %s alert: %v", k, kinds[k][0])
		}
	}
	if b := kinds["beacon"]; len(b) > 0 {
		if d := get(b[0], "destination", "domain"); d != "updates.example.net" {
			t.Errorf("beacon destination %v, want the HTTP Host updates.example.net", d)
		}
	}
}
