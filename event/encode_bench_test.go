package event_test

import (
	"os"
	"testing"

	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/classify/attribute"
	"github.com/phonehome/phonehome/classify/detect"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/classify/exfil"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/signatures"
)

// recorder keeps every event the classifiers let through, as encoded.
type recorder struct{ evs []*event.Event }

func (r *recorder) Process(ev *event.Event, emit func(*event.Event)) { r.evs = append(r.evs, ev) }
func (r *recorder) Tick(int64, func(*event.Event))                   {}
func (r *recorder) Finish(int64, func(*event.Event))                 {}

type discard struct{}

func (discard) Write([]byte, string, string) error { return nil }

// sampleEvents replays the bundled sample capture through the whole
// analysis (dissectors, attribution, detectors) and returns its events.
func sampleEvents(b *testing.B) []*event.Event {
	b.Helper()
	const path = "../testdata/sample.pcap"
	if _, err := os.Stat(path); err != nil {
		b.Skipf("%s: %v (make sample generates it)", path, err)
	}
	set, err := signatures.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	attr, err := attribute.New(attribute.Config{Signatures: set, AlertWindow: 3600e9})
	if err != nil {
		b.Fatal(err)
	}
	det, err := detect.New(exfil.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	rec := &recorder{}
	r, err := pcapfile.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var dstats dissect.Stats
	cfg := engine.Config{Workers: 1, NewAnalyzer: dissect.New(dissect.Config{}, 1, &dstats),
		Classifier: engine.Chain{attr, det, rec}, Observer: &event.Observer{Hostname: "sensor", Name: "sensor"}}
	if _, err := engine.Run(engine.FileSource(pcapfile.NewMerger(r)), discard{}, cfg); err != nil {
		b.Fatal(err)
	}
	for _, ev := range rec.evs {
		ev.Observer = cfg.Observer
	}
	return rec.evs
}

// BenchmarkEncode encodes the sample capture's events (flows, DNS, TLS
// with certificates, HTTP, alerts), one per iteration.
func BenchmarkEncode(b *testing.B) {
	evs := sampleEvents(b)
	enc := event.NewEncoder()
	var bytes int64
	for _, ev := range evs {
		buf, err := enc.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		bytes += int64(buf.Len())
		buf.Free()
	}
	b.SetBytes(bytes / int64(len(evs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf, _ := enc.Encode(evs[i%len(evs)])
		buf.Free()
	}
}
