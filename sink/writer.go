package sink

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
)

// DefaultWriterBuffer is the buffer size of a Writer sink when none is given.
const DefaultWriterBuffer = 64 << 10

// StdoutConfig configures the "stdout" sink.
type StdoutConfig struct {
	// BufferSize in bytes; 0 means DefaultWriterBuffer.
	BufferSize int `yaml:"buffer_size"`
}

// Validate reports the first problem in the configuration.
func (c StdoutConfig) Validate() error {
	if c.BufferSize < 0 || c.BufferSize > maxBufferSize {
		return fmt.Errorf("stdout: buffer_size %d out of range 0..%d", c.BufferSize, maxBufferSize)
	}
	return nil
}

// maxBufferSize bounds configured write buffers.
const maxBufferSize = 64 << 20

// Writer writes JSON lines to an io.Writer through a buffer. Each line and
// its '\n' go into the buffer under one lock, so lines from concurrent
// writers never interleave. It does not close the underlying writer.
type Writer struct {
	name string
	mu   sync.Mutex
	bw   *bufio.Writer
}

var (
	_ Sink    = (*Writer)(nil)
	_ Flusher = (*Writer)(nil)
)

// NewWriter returns a Writer sink named name over w with a buffer of
// bufSize bytes (0 means DefaultWriterBuffer).
func NewWriter(name string, w io.Writer, bufSize int) *Writer {
	if bufSize <= 0 {
		bufSize = DefaultWriterBuffer
	}
	return &Writer{name: name, bw: bufio.NewWriterSize(w, bufSize)}
}

// NewStdout returns a Writer sink on os.Stdout.
func NewStdout(cfg StdoutConfig) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return NewWriter("stdout", os.Stdout, cfg.BufferSize), nil
}

// Name returns the sink name.
func (w *Writer) Name() string { return w.name }

// Write buffers r.Line followed by '\n'. If the line does not fit in what is
// left of the buffer, the buffer is flushed first so a line is handed to the
// underlying writer in one piece whenever it fits in the buffer.
func (w *Writer) Write(_ context.Context, r Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(r.Line)+1 > w.bw.Available() && w.bw.Buffered() > 0 {
		if err := w.bw.Flush(); err != nil {
			return fmt.Errorf("%s: flush: %w", w.name, err)
		}
	}
	if _, err := w.bw.Write(r.Line); err != nil {
		return fmt.Errorf("%s: write: %w", w.name, err)
	}
	if err := w.bw.WriteByte('\n'); err != nil {
		return fmt.Errorf("%s: write: %w", w.name, err)
	}
	return nil
}

// Flush writes buffered lines out.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("%s: flush: %w", w.name, err)
	}
	return nil
}

// Close flushes; the underlying writer stays open.
func (w *Writer) Close() error { return w.Flush() }
