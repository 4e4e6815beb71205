package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/live"
)

// collector exposes the sensor's counters to Prometheus. It reads them at
// scrape time, so the packet path pays nothing for metrics.
type collector struct {
	snap func() Snapshot
}

var _ prometheus.Collector = (*collector)(nil)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("phonehome_"+name, help, labels, nil)
}

var (
	descCaptureReceived  = desc("capture_received_packets_total", "Packets the kernel handed to the capture buffer.", "interface")
	descCaptureKernDrop  = desc("capture_kernel_dropped_packets_total", "Packets the kernel dropped: the capture buffer was full.", "interface")
	descCaptureIfDrop    = desc("capture_interface_dropped_packets_total", "Packets the NIC or driver dropped.", "interface")
	descCaptureFreezes   = desc("capture_queue_freezes_total", "TPACKET_V3 ring freezes.", "interface")
	descFrames           = desc("frames_total", "Frames read from the capture.")
	descBytes            = desc("captured_bytes_total", "Bytes of frames read from the capture.")
	descPackets          = desc("packets_decoded_total", "Frames decoded into an IP packet.")
	descSkipped          = desc("packets_skipped_total", "Frames skipped, by reason.", "reason")
	descFlowsActive      = desc("flows_active", "Flows in the flow table.")
	descFlowsCreated     = desc("flows_created_total", "Flows created.")
	descFlowsEvicted     = desc("flows_evicted_total", "Flows evicted to keep the table under its cap.")
	descFlowsEnded       = desc("flow_records_total", "Flow records emitted, by reason.", "reason")
	descEvents           = desc("events_total", "Events written, by dataset.", "dataset")
	descAlerts           = desc("alerts_total", "Alerts written, by rule.", "rule")
	descOutputDepth      = desc("output_queue_depth", "Records waiting in an output's queue.", "output")
	descOutputDropped    = desc("output_dropped_total", "Records an output dropped (queue full or failed write).", "output")
	descOutputWritten    = desc("output_written_total", "Records an output wrote.", "output")
	descOutputErrors     = desc("output_errors_total", "Failed writes of an output.", "output")
	descAnomalies        = desc("parse_anomalies_total", "Protocol parse anomalies, by kind.", "kind")
	descOutputEncodeErrs = desc("output_encode_errors_total", "Events that could not be encoded or handed to the outputs.")
)

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCaptureReceived, descCaptureKernDrop, descCaptureIfDrop, descCaptureFreezes,
		descFrames, descBytes, descPackets, descSkipped, descFlowsActive, descFlowsCreated, descFlowsEvicted, descFlowsEnded,
		descEvents, descAlerts, descOutputDepth, descOutputDropped, descOutputWritten, descOutputErrors, descAnomalies, descOutputEncodeErrs} {
		ch <- d
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	for _, h := range s.Capture {
		counter(ch, descCaptureReceived, h.Stats.Received, h.Interface)
		counter(ch, descCaptureKernDrop, h.Stats.KernelDropped, h.Interface)
		counter(ch, descCaptureIfDrop, h.Stats.InterfaceDropped, h.Interface)
		counter(ch, descCaptureFreezes, h.Stats.QueueFreezes, h.Interface)
	}
	counter(ch, descFrames, s.Frames)
	counter(ch, descBytes, s.Bytes)
	counter(ch, descPackets, s.Packets)
	for r, n := range s.Skipped {
		counter(ch, descSkipped, n, r)
	}
	ch <- prometheus.MustNewConstMetric(descFlowsActive, prometheus.GaugeValue, float64(s.Flows.Active))
	counter(ch, descFlowsCreated, s.Flows.Created)
	counter(ch, descFlowsEvicted, s.Flows.Evicted)
	for i, n := range s.Flows.Ended {
		if i > 0 {
			counter(ch, descFlowsEnded, n, flow.EndReason(i).String())
		}
	}
	for d, n := range s.Events {
		counter(ch, descEvents, n, d)
	}
	for r, n := range s.Alerts {
		counter(ch, descAlerts, n, r)
	}
	for _, o := range s.Outputs {
		ch <- prometheus.MustNewConstMetric(descOutputDepth, prometheus.GaugeValue, float64(o.Depth), o.Name)
		counter(ch, descOutputDropped, o.Dropped, o.Name)
		counter(ch, descOutputWritten, o.Written, o.Name)
		counter(ch, descOutputErrors, o.Errors, o.Name)
	}
	for k, n := range s.Anomalies {
		counter(ch, descAnomalies, n, k)
	}
	counter(ch, descOutputEncodeErrs, s.OutputErrors)
}

// HandleSnapshot is one interface's capture counters (its sockets summed).
type HandleSnapshot struct {
	Interface string     `json:"interface"`
	Stats     live.Stats `json:"stats"`
}

// OutputSnapshot is one output's queue counters.
type OutputSnapshot struct {
	Name    string `json:"name"`
	Depth   int    `json:"depth"`
	Written uint64 `json:"written"`
	Dropped uint64 `json:"dropped"`
	Errors  uint64 `json:"errors"`
}

// Snapshot is every figure the daemon reports, for metrics and for the
// phonehome.stats event.
type Snapshot struct {
	Capture      []HandleSnapshot  `json:"capture"`
	Frames       uint64            `json:"frames"`
	Bytes        uint64            `json:"bytes"`
	Packets      uint64            `json:"packets"`
	Skipped      map[string]uint64 `json:"skipped"`
	Flows        flow.Stats        `json:"-"`
	FlowsActive  int               `json:"flows_active"`
	FlowsCreated uint64            `json:"flows_created"`
	FlowsEvicted uint64            `json:"flows_evicted"`
	Events       map[string]uint64 `json:"events"`
	Alerts       map[string]uint64 `json:"alerts"`
	Outputs      []OutputSnapshot  `json:"outputs"`
	Anomalies    map[string]uint64 `json:"anomalies"`
	OutputErrors uint64            `json:"output_errors"`
}

func skippedMap(get func(int) uint64) map[string]uint64 {
	m := map[string]uint64{}
	for i := 1; i < decode.NumReasons; i++ {
		if n := get(i); n > 0 {
			m[decode.Reason(i).String()] = n
		}
	}
	return m
}
