package sink

import (
	"bytes"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzSyslogFormat feeds hostile lines and datasets to the RFC 5424
// formatter: the frame must be well formed, within the size limit, and
// truncation must not split a UTF-8 sequence that was valid.
func FuzzSyslogFormat(f *testing.F) {
	f.Add([]byte(`{"event":{"severity":3},"dns":{"question":{"name":"dnl-01.geo.kaspersky.com"}}}`), "phonehome.dns", true)
	f.Add([]byte(`{"event.severity":-99999999999999999999}`), "phone home\x00", false)
	f.Add(bytes.Repeat([]byte("é"), 400), "", true)
	f.Add([]byte(`"severity":`), "x", false)
	f.Fuzz(func(t *testing.T, line []byte, dataset string, stream bool) {
		network := "udp"
		if stream {
			network = "tcp"
		}
		s, err := NewSyslog(SyslogConfig{Network: network, Address: "127.0.0.1:1", MaxMessageSize: 512,
			SeverityFromEvent: true, Hostname: "h"})
		if err != nil {
			t.Fatal(err)
		}
		out := s.format(nil, Record{Line: line, Dataset: dataset, Time: time.Unix(1, 0)})
		if stream {
			sp := bytes.IndexByte(out, ' ')
			n, err := strconv.Atoi(string(out[:max(sp, 0)]))
			if sp < 1 || err != nil || n != len(out)-sp-1 {
				t.Fatalf("bad octet count in %q", out)
			}
			out = out[sp+1:]
		}
		if len(out) > 512 {
			t.Fatalf("message of %d bytes exceeds 512", len(out))
		}
		m := rfc5424.FindSubmatch(out)
		if m == nil {
			t.Fatalf("not RFC 5424: %q", out)
		}
		msg := m[7]
		if !bytes.HasPrefix(line, msg) {
			t.Fatalf("MSG is not a prefix of the line")
		}
		if utf8.Valid(line) && !utf8.Valid(msg) {
			t.Fatalf("truncation split a UTF-8 sequence: %q", msg)
		}
		pri, _ := strconv.Atoi(string(m[1]))
		if pri < 16*8 || pri > 16*8+7 {
			t.Fatalf("PRI %d outside local0", pri)
		}
	})
}
