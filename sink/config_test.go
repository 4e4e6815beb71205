package sink

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	yaml "go.yaml.in/yaml/v3"
)

func TestConfigFromYAMLAndOpen(t *testing.T) {
	dir := t.TempDir()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cluster, err := kfake.NewCluster(kfake.SeedTopics(2, "ev"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	doc := `
- type: file
  queue: {size: 16, mode: block, close_timeout: 3s}
  file: {path: ` + filepath.Join(dir, "ev.json") + `, max_bytes: 100000, max_age: 1h, max_backups: 5}
- type: syslog
  queue: {mode: drop}
  syslog: {network: udp, address: "` + pc.LocalAddr().String() + `", facility: daemon, reconnect_min: 50ms}
- type: kafka
  kafka: {brokers: ["` + cluster.ListenAddrs()[0] + `"], topic: ev, compression: lz4, linger: 2ms, close_timeout: 2s}
- type: stdout
  stdout: {buffer_size: 4096}
`
	var cfgs []Config
	if err := yaml.Unmarshal([]byte(doc), &cfgs); err != nil {
		t.Fatal(err)
	}
	if cfgs[0].Queue.CloseTimeout != 3*time.Second || cfgs[0].File.MaxAge != time.Hour ||
		cfgs[1].Syslog.ReconnectMin != 50*time.Millisecond || cfgs[2].Kafka.Linger != 2*time.Millisecond {
		t.Fatalf("durations not decoded: %+v", cfgs)
	}
	// Keep the test's stdout clean: the stdout output is validated only.
	if err := cfgs[3].Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(cfgs[:3])
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := f.Write(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, st := range f.Stats() {
		if st.Written != 10 || st.Dropped != 0 {
			t.Errorf("%s: %+v", st.Name, st)
		}
	}
	if st := f.Stats()[2]; st.Sink.Delivered != 10 {
		t.Errorf("kafka delivered %d", st.Sink.Delivered)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "ev.json"))
	if strings.Count(string(b), "\n") != 10 {
		t.Errorf("file holds %q", b)
	}
}

func TestConfigErrorsSayWhatIsWrong(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "type is required"},
		{Config{Type: "splunk"}, `unknown type "splunk"`},
		{Config{Type: "file"}, "file: path is required"},
		{Config{Type: "file", File: FileConfig{Path: "x"}, Queue: QueueConfig{Mode: "maybe"}}, `mode "maybe"`},
		{Config{Type: "syslog", Syslog: SyslogConfig{Network: "udp", Address: "h:1", Facility: "mars"}}, `facility "mars"`},
		{Config{Type: "kafka", Kafka: KafkaConfig{Brokers: []string{"h:1"}}}, "topic is required"},
		{Config{Type: "stdout", Stdout: StdoutConfig{BufferSize: -1}}, "buffer_size -1"},
	} {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want it to mention %q", c.cfg, err, c.want)
		}
	}
	if _, err := Open(nil); err == nil {
		t.Error("Open(nil) succeeded")
	}
	dir := t.TempDir()
	_, err := Open([]Config{{Type: "file", File: FileConfig{Path: filepath.Join(dir, "a.json")}}, {Type: "nope"}})
	if err == nil || !strings.Contains(err.Error(), "outputs[1]") {
		t.Errorf("Open with a bad second output: %v", err)
	}
}
