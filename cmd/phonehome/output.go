package main

import (
	"bufio"
	"io"
	"sync"
)

// lineWriter is the replay output: JSON lines to a writer through a large
// buffer. Workers share it, so writes are serialised; a line is always
// written whole.
type lineWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func newLineWriter(w io.Writer) *lineWriter {
	return &lineWriter{w: bufio.NewWriterSize(w, 1<<20)}
}

func (l *lineWriter) Write(line []byte, _ string, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(line)
	return err
}

func (l *lineWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}
