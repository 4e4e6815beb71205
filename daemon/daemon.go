package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/live"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/sink"
)

// ClassifierFactory builds the cross-flow stage from a configuration and
// returns a reload function that applies what can change live (signature
// files) from a new configuration, keeping the old state on error.
type ClassifierFactory func(cfg *Config) (engine.Classifier, func(*Config) error, error)

// Options are what Run needs beyond the configuration.
type Options struct {
	Config Config
	// ConfigPath is re-read on SIGHUP ("" reloads signatures only).
	ConfigPath string
	Version    string
	Logger     *zap.Logger
	// NewClassifier builds the classifier; nil runs dissection only.
	NewClassifier ClassifierFactory
	// Signals replaces the process signals (tests).
	Signals <-chan os.Signal
	// MetricsListening, if set, is told the metrics address once it listens.
	MetricsListening func(addr string)
}

// Run runs the sensor until SIGTERM or SIGINT (or ctx ends), then flushes
// every open flow and pending event, closes the outputs and returns nil.
func Run(ctx context.Context, o Options) error {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if cfg.Capture.Engine == live.EngineAFPacket && cfg.Capture.Workers <= 0 {
		cfg.Capture.Workers = runtime.NumCPU()
	}
	capt, err := live.Open(cfg.Capture)
	if err != nil {
		return fmt.Errorf("daemon: open capture: %w", err)
	}
	defer capt.Close()
	log.Info("capture open", zap.Strings("interfaces", cfg.Capture.Interfaces), zap.String("engine", cfg.Capture.Engine),
		zap.String("bpf", cfg.Capture.BPF), zap.Int("sources", len(capt.Sources())))

	// Listen for metrics before dropping privileges (a port below 1024).
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		metricsLn, err = net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("daemon: metrics: %w", err)
		}
		defer metricsLn.Close()
	}
	if cfg.User != "" {
		if err := live.DropPrivileges(cfg.User); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		log.Info("privileges dropped", zap.String("user", cfg.User))
	}

	// Outputs open after the drop, so a log directory the user cannot
	// write is an error now rather than at the first rotation.
	outs := cfg.Outputs
	if len(outs) == 0 {
		outs = []sink.Config{{Type: "stdout"}}
	}
	for i := range outs {
		if outs[i].Queue.Mode == "" {
			// Live: a stuck output must never stall capture.
			outs[i].Queue.Mode = "drop"
		}
	}
	fan, err := sink.Open(outs)
	if err != nil {
		return fmt.Errorf("daemon: outputs: %w", err)
	}
	outCtx, cancelOut := context.WithCancel(context.Background())
	defer cancelOut()
	out := &sinkOutput{ctx: outCtx, f: fan}

	var classifier engine.Classifier
	var reload func(*Config) error
	if o.NewClassifier != nil {
		classifier, reload, err = o.NewClassifier(&cfg)
		if err != nil {
			fan.Close()
			return fmt.Errorf("daemon: %w", err)
		}
	}

	host, _ := os.Hostname()
	observer := &event.Observer{Hostname: host, Name: host, Version: o.Version}
	if len(cfg.Capture.Interfaces) == 1 {
		observer.Interface = cfg.Capture.Interfaces[0]
	}
	workers := cfg.Capture.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	var dstats dissect.Stats
	st := &engine.Stats{}
	fc := cfg.Flow
	fc.CommunityIDSeed = cfg.CommunityIDSeed
	ecfg := engine.Config{
		Workers:     workers,
		Flow:        fc,
		Observer:    observer,
		NewAnalyzer: dissect.New(cfg.Dissect, workers, &dstats),
		Classifier:  classifier,
		EndReason:   flow.EndShutdown,
		Stats:       st,
	}
	snapshot := func() Snapshot { return takeSnapshot(capt, st, &dstats, fan) }

	if metricsLn != nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(&collector{snap: snapshot})
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.Handler)
		srv.Handler = mux
		go func() { _ = srv.Serve(metricsLn) }()
		defer srv.Close()
		log.Info("metrics listening", zap.String("addr", metricsLn.Addr().String()))
		if o.MetricsListening != nil {
			o.MetricsListening(metricsLn.Addr().String())
		}
	}

	done := make(chan error, 1)
	go func() {
		var err error
		if capt.Parallel() {
			_, err = engine.RunParallel(capt.Sources(), out, ecfg)
		} else {
			_, err = engine.Run(capt.Sources()[0], out, ecfg)
		}
		done <- err
	}()

	sigs := o.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(ch)
		sigs = ch
	}
	var statsTick <-chan time.Time
	if cfg.StatsInterval > 0 {
		t := time.NewTicker(cfg.StatsInterval)
		defer t.Stop()
		statsTick = t.C
	}
	statsEnc := event.NewEncoder()
	var statsMu sync.Mutex
	writeStats := func() {
		statsMu.Lock()
		defer statsMu.Unlock()
		writeStatsEvent(statsEnc, out, observer, snapshot())
	}

	var runErr error
	stopping := false
loop:
	for {
		select {
		case err := <-done:
			runErr = err
			break loop
		case <-ctx.Done():
			if !stopping {
				stopping = true
				log.Info("stopping: context done")
				capt.Stop()
			}
		case <-statsTick:
			writeStats()
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				reloadAll(log, o.ConfigPath, &cfg, reload, fan)
			default:
				if !stopping {
					stopping = true
					log.Info("stopping", zap.String("signal", sig.String()))
					capt.Stop()
				}
			}
		}
	}
	writeStats()
	if err := fan.Close(); err != nil {
		log.Warn("closing outputs", zap.Error(err))
	}
	snap := snapshot()
	log.Info("stopped", zap.Uint64("frames", snap.Frames), zap.Uint64("flows", snap.FlowsCreated),
		zap.Any("events", snap.Events), zap.Any("capture", snap.Capture))
	if runErr != nil {
		return fmt.Errorf("daemon: %w", runErr)
	}
	return nil
}

// reloadAll applies SIGHUP: re-read the configuration (keeping the old one
// on error), reload the signature files (keeping the old set on error), and
// reopen file outputs for logrotate.
func reloadAll(log *zap.Logger, path string, cfg *Config, reload func(*Config) error, fan *sink.Fanout) {
	next := *cfg
	if path != "" {
		c, err := LoadConfig(path)
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			log.Error("reload: configuration rejected, keeping the running one", zap.Error(err))
			next = *cfg
		} else {
			// Only the signature directories change live; say which other
			// sections differ, so nobody believes they took effect.
			var restart []string
			for name, changed := range map[string]bool{
				"capture":           !reflect.DeepEqual(c.Capture, cfg.Capture),
				"outputs":           !reflect.DeepEqual(c.Outputs, cfg.Outputs),
				"flow":              !reflect.DeepEqual(c.Flow, cfg.Flow),
				"dissect":           !reflect.DeepEqual(c.Dissect, cfg.Dissect),
				"exfil":             !reflect.DeepEqual(c.Exfil, cfg.Exfil),
				"geoip":             c.GeoIPCountry != cfg.GeoIPCountry || c.GeoIPASN != cfg.GeoIPASN,
				"alert_window":      c.AlertWindow != cfg.AlertWindow,
				"metrics_addr":      c.MetricsAddr != cfg.MetricsAddr,
				"user":              c.User != cfg.User,
				"stats_interval":    c.StatsInterval != cfg.StatsInterval,
				"community_id_seed": c.CommunityIDSeed != cfg.CommunityIDSeed,
			} {
				if changed {
					restart = append(restart, name)
				}
			}
			if len(restart) > 0 {
				sort.Strings(restart)
				log.Warn("reload: these settings change only on restart", zap.Strings("sections", restart))
			}
			next.Signatures = c.Signatures
		}
	}
	if reload != nil {
		if err := reload(&next); err != nil {
			log.Error("reload: signatures rejected, keeping the running set", zap.Error(err))
		} else {
			*cfg = next
			log.Info("reload: signatures applied", zap.Strings("signatures", next.Signatures))
		}
	}
	if err := fan.Reopen(); err != nil {
		log.Error("reload: reopening outputs", zap.Error(err))
	}
}

func takeSnapshot(capt *live.Capture, st *engine.Stats, ds *dissect.Stats, fan *sink.Fanout) Snapshot {
	s := Snapshot{
		Frames:  st.Frames.Load(),
		Bytes:   st.CaptureBytes.Load(),
		Packets: st.Packets.Load(),
		Skipped: skippedMap(func(i int) uint64 { return st.Skipped[i].Load() }),
		Flows:   st.Flows(),
		Events:  st.EventCounts(),
		Alerts:  st.AlertCounts(),
		Anomalies: map[string]uint64{
			"dns_malformed":      ds.DNSMalformed.Load(),
			"tls_malformed":      ds.TLSMalformed.Load(),
			"quic_undecryptable": ds.QUICUndecrypt.Load(),
			"stream_gap":         ds.StreamGaps.Load(),
			"stream_limit":       ds.StreamLimits.Load(),
		},
		OutputErrors: st.OutputErrors(),
	}
	s.FlowsActive, s.FlowsCreated, s.FlowsEvicted = s.Flows.Active, s.Flows.Created, s.Flows.Evicted
	// Sum the fanout sockets of each interface: metrics are per interface.
	if hs, err := capt.HandleStats(); err == nil {
		idx := map[string]int{}
		for i, h := range capt.Handles() {
			if i >= len(hs) {
				break
			}
			j, ok := idx[h.Interface]
			if !ok {
				j = len(s.Capture)
				idx[h.Interface] = j
				s.Capture = append(s.Capture, HandleSnapshot{Interface: h.Interface})
			}
			s.Capture[j].Stats.Add(hs[i])
		}
	}
	for _, q := range fan.Stats() {
		s.Outputs = append(s.Outputs, OutputSnapshot{Name: q.Name, Depth: q.Depth, Written: q.Written, Dropped: q.Dropped, Errors: q.Errors})
	}
	return s
}

// writeStatsEvent writes a phonehome.stats event straight to the outputs.
func writeStatsEvent(enc *event.Encoder, out engine.Output, obs *event.Observer, s Snapshot) {
	ev := &event.Event{
		Timestamp: time.Now().UnixNano(),
		Kind:      "metric",
		Category:  []string{"network"},
		Type:      []string{"info"},
		Dataset:   event.DatasetStats,
		Observer:  obs,
	}
	ev.Phonehome.Stats = s
	buf, err := enc.Encode(ev)
	if err != nil {
		return
	}
	_ = out.Write(buf.Bytes(), "", event.DatasetStats)
	buf.Free()
}
