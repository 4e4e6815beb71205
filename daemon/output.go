package daemon

import (
	"context"
	"time"

	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/sink"
)

// sinkOutput adapts the sink fan-out to engine.Output.
type sinkOutput struct {
	ctx context.Context
	f   *sink.Fanout
}

var _ engine.Output = (*sinkOutput)(nil)

// Write copies the line (the engine reuses its buffer; sinks keep records)
// without its newline, which each sink adds in its own framing.
func (s *sinkOutput) Write(line []byte, key, dataset string) error {
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
	}
	buf := make([]byte, n+len(key))
	copy(buf, line[:n])
	copy(buf[n:], key)
	return s.f.Write(s.ctx, sink.Record{Line: buf[:n:n], Key: buf[n:], Time: time.Now(), Dataset: dataset})
}
