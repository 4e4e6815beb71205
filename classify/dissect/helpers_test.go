package dissect_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
)

// collect is an engine.Output that keeps every line.
type collect struct {
	mu    sync.Mutex
	lines [][]byte
}

var _ engine.Output = (*collect)(nil)

func (c *collect) Write(line []byte, _, _ string) error {
	c.mu.Lock()
	c.lines = append(c.lines, append([]byte(nil), line...))
	c.mu.Unlock()
	return nil
}

// jsonEvent is an event line reduced to the fields the tests compare.
type jsonEvent struct {
	Event struct {
		Dataset string `json:"dataset"`
	} `json:"event"`
	Source      jsonEndpoint `json:"source"`
	Destination jsonEndpoint `json:"destination"`
	Network     struct {
		Transport string `json:"transport"`
		Protocol  string `json:"protocol"`
	} `json:"network"`
	TLS *struct {
		NextProtocol string `json:"next_protocol"`
		Client       struct {
			ServerName string `json:"server_name"`
			JA3        string `json:"ja3"`
			JA4        string `json:"ja4"`
		} `json:"client"`
		Server struct {
			JA3S string `json:"ja3s"`
		} `json:"server"`
	} `json:"tls"`
	DNS *struct {
		Type     string `json:"type"`
		Question struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"question"`
		ResponseCode string `json:"response_code"`
		Answers      []struct {
			Type string `json:"type"`
			Data string `json:"data"`
		} `json:"answers"`
	} `json:"dns"`
	Phonehome struct {
		TLS *struct {
			ALPN             []string `json:"alpn"`
			Extensions       []uint16 `json:"extensions"`
			ServerExtensions []uint16 `json:"server_extensions"`
			Incomplete       string   `json:"incomplete"`
			QUICVersion      string   `json:"quic_version"`
			HelloRetry       bool     `json:"hello_retry_request"`
		} `json:"tls"`
		Anomalies []string `json:"anomalies"`
	} `json:"phonehome"`
}

type jsonEndpoint struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

func (e jsonEndpoint) String() string { return fmt.Sprintf("%s:%d", e.IP, e.Port) }

// runResult is what the real pipeline produced for one capture.
type runResult struct {
	events []jsonEvent
	stats  *dissect.Stats
}

func (r *runResult) dataset(ds string) []jsonEvent {
	var out []jsonEvent
	for _, ev := range r.events {
		if ev.Event.Dataset == ds {
			out = append(out, ev)
		}
	}
	return out
}

func (r *runResult) tls() []jsonEvent { return r.dataset(event.DatasetTLS) }

// runPipeline replays a capture through engine.Run with the dissector, as
// `phonehome replay` wires them, and decodes every event line. Source
// errors (truncated captures) end the replay of that file; what came before
// is kept.
func runPipeline(t testing.TB, path string, workers int) *runResult {
	t.Helper()
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer r.Close()
	out := &collect{}
	var stats dissect.Stats
	cfg := engine.Config{
		Workers:       workers,
		NewAnalyzer:   dissect.New(dissect.Config{}, workers, &stats),
		OnSourceError: func(error) {},
	}
	if _, err := engine.Run(engine.FileSource(pcapfile.NewMerger(r)), out, cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	res := &runResult{stats: &stats}
	for _, l := range out.lines {
		var ev jsonEvent
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatalf("invalid JSON line %q: %v", l, err)
		}
		res.events = append(res.events, ev)
	}
	return res
}
