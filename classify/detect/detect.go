// Package detect runs the exfiltration detectors (classify/exfil) inside the
// engine's classifier stage: it turns flow and DNS events into the
// detectors' records and their verdicts into alert events
// (rule.category exfiltration).
package detect

import (
	"net/netip"

	mdns "github.com/miekg/dns"

	"github.com/phonehome/phonehome/classify/exfil"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
)

// MaxNamedFlows bounds the flows whose server name (SNI, HTTP Host) is
// remembered until their flow record arrives; the oldest is forgotten first.
const MaxNamedFlows = 1 << 18

// Ruleset names the exfiltration rules in alerts.
const Ruleset = "phonehome-exfiltration"

// Stage implements engine.Classifier for the exfiltration detectors.
type Stage struct {
	d      *exfil.Detectors
	alerts []exfil.Alert
	names  map[string]string // flow id -> server name seen in tls/http events
	order  []string          // insertion order of names, for eviction
	head   int
	// Forgotten counts server names dropped at MaxNamedFlows.
	Forgotten uint64
}

var _ engine.Classifier = (*Stage)(nil)

// New returns a stage with the given detector configuration.
func New(cfg exfil.Config) (*Stage, error) {
	d, err := exfil.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Stage{d: d, names: make(map[string]string)}, nil
}

// Stats returns the detectors' counters.
func (s *Stage) Stats() exfil.Stats { return s.d.Stats() }

func (s *Stage) remember(flowID, name string) {
	if flowID == "" || name == "" {
		return
	}
	if _, ok := s.names[flowID]; ok {
		return
	}
	for len(s.names) >= MaxNamedFlows && s.head < len(s.order) {
		delete(s.names, s.order[s.head])
		s.head++
		s.Forgotten++
	}
	if s.head > len(s.order)/2 && s.head > 1024 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
	s.names[flowID] = name
	s.order = append(s.order, flowID)
}

// Process implements engine.Classifier.
func (s *Stage) Process(ev *event.Event, emit func(*event.Event)) {
	switch ev.Dataset {
	case event.DatasetTLS:
		if ev.TLS != nil {
			s.remember(ev.Phonehome.FlowID, ev.TLS.ClientServerName)
		}
	case event.DatasetHTTP:
		if ev.HTTP != nil {
			s.remember(ev.Phonehome.FlowID, ev.HTTP.URLDomain)
		}
	case event.DatasetDNS:
		s.dns(ev, emit)
	case event.DatasetFlow:
		s.flow(ev, emit)
	}
}

func (s *Stage) flow(ev *event.Event, emit func(*event.Event)) {
	fi := ev.Phonehome.Flow
	if fi == nil {
		return
	}
	name := s.names[ev.Phonehome.FlowID]
	if name == "" {
		name = ev.Destination.Domain
	}
	rec := exfil.FlowRecord{
		Client: ev.Source.IP, Server: ev.Destination.IP, ServerPort: ev.Destination.Port,
		Transport: ev.Network.Transport, ServerName: name,
		StartNS: ev.Start, EndNS: ev.End,
		ClientBytes: ev.Source.Bytes, ClientPackets: ev.Source.Packets,
		ServerBytes: ev.Destination.Bytes, ServerPackets: ev.Destination.Packets,
		ServerReplied: ev.Destination.Packets > 0, Final: fi.Final, FlowID: ev.Phonehome.FlowID,
	}
	if fi.Final {
		delete(s.names, ev.Phonehome.FlowID)
	}
	s.alerts = s.d.ObserveFlow(&rec, s.alerts[:0])
	s.emitAlerts(ev, emit)
}

func (s *Stage) dns(ev *event.Event, emit func(*event.Event)) {
	d := ev.DNS
	if d == nil || d.QuestionName == "" {
		return
	}
	q := exfil.DNSQuery{
		Client: ev.Source.IP, Name: d.QuestionName, RegisteredDomain: d.RegisteredDomain,
		QType: mdns.StringToType[d.QuestionType], TimeNS: ev.Timestamp, AnswerCount: len(d.Answers),
		RCode: uint8(mdns.StringToRcode[d.ResponseCode]),
	}
	for _, a := range d.Answers {
		q.AnswerBytes += len(a.Data)
	}
	s.alerts = s.d.ObserveDNS(&q, s.alerts[:0])
	s.emitAlerts(ev, emit)
}

// Tick implements engine.Classifier.
func (s *Stage) Tick(int64, func(*event.Event)) {}

// Finish implements engine.Classifier: pairs that reached the detectors'
// minimum are scored one last time.
func (s *Stage) Finish(now int64, emit func(*event.Event)) {
	s.alerts = s.d.Flush(now, s.alerts[:0])
	s.emitAlerts(nil, emit)
}

// alertInfo names each detector's rule.
var alertInfo = map[exfil.Kind]struct{ id, name string }{
	exfil.KindBeacon:         {"PH-EXFIL-BEACON", "Periodic connections to one destination (beaconing)"},
	exfil.KindStrobe:         {"PH-EXFIL-STROBE", "Very frequent connections to one destination (strobe)"},
	exfil.KindDNSTunnel:      {"PH-EXFIL-DNS-TUNNEL", "DNS queries shaped like a tunnel"},
	exfil.KindUploadHeavy:    {"PH-EXFIL-UPLOAD", "Upload-heavy traffic: much more sent than received"},
	exfil.KindLongConnection: {"PH-EXFIL-LONG-CONNECTION", "Long-lived connection"},
}

// Verdict is phonehome.exfil.*: the detector's kind, score and figures.
type Verdict struct {
	Kind  exfil.Kind `json:"kind"`
	Score float64    `json:"score"`
	exfil.Figures
	FlowIDs []string `json:"flow_ids,omitempty"`
}

func (s *Stage) emitAlerts(src *event.Event, emit func(*event.Event)) {
	for i := range s.alerts {
		a := &s.alerts[i]
		info := alertInfo[a.Kind]
		ev := &event.Event{
			Timestamp: a.TimeNS,
			Kind:      "alert",
			Category:  []string{"network", "intrusion_detection"},
			Type:      []string{"info"},
			Dataset:   event.DatasetAlert,
			Action:    string(a.Kind),
			Reason:    a.Reason,
			Severity:  severity(a.Score),
			Rule:      &event.Rule{ID: info.id, Name: info.name, Category: "exfiltration", Ruleset: Ruleset},
		}
		if src != nil {
			// Carry the triggering flow's endpoints and ids.
			ev.Source, ev.Destination, ev.Network = src.Source, src.Destination, src.Network
			ev.Source.HasCounters, ev.Destination.HasCounters, ev.Network.HasCounters = false, false, false
			ev.Phonehome.FlowID = src.Phonehome.FlowID
			ev.Phonehome.Tunnel = src.Phonehome.Tunnel
			ev.Observer = src.Observer
		} else {
			ev.Source.IP = a.Client
			ev.Destination.IP = a.Server
			if a.ServerPort != 0 {
				ev.Destination.Port, ev.Destination.HasPort = a.ServerPort, true
			}
		}
		if a.Destination != "" {
			if _, err := netip.ParseAddr(a.Destination); err != nil {
				ev.Destination.Domain = a.Destination
			}
		}
		ev.Phonehome.Exfil = Verdict{Kind: a.Kind, Score: a.Score, Figures: a.Figures, FlowIDs: a.FlowIDs}
		emit(ev)
	}
}

// severity maps a 0..1 score onto ECS event.severity (0..100).
func severity(score float64) int {
	return max(1, min(100, int(score*100+0.5)))
}
