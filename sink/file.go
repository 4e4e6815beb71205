package sink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File sink defaults and bounds.
const (
	// DefaultFileMode is the permission of new event files.
	DefaultFileMode fs.FileMode = 0o640
	// backupStamp names rotated files; fixed width so names sort by time.
	backupStamp = "20060102T150405.000000000"
	// ageCheckMin and ageCheckMax bound how often age rotation is checked.
	ageCheckMin = 10 * time.Millisecond
	ageCheckMax = time.Minute
)

// FileConfig configures the "file" sink.
type FileConfig struct {
	// Path of the live file, e.g. /var/log/phonehome/events.json. Rotated
	// files are named <base>-<UTC stamp><ext> in the same directory.
	Path string `yaml:"path"`
	// MaxBytes rotates the file before a line would make it larger than
	// this; 0 disables size rotation. A single longer line still gets a file
	// of its own.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAge rotates a non-empty file once it has been open this long;
	// 0 disables age rotation.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBackups is how many rotated files to keep (oldest removed first);
	// 0 keeps all.
	MaxBackups int `yaml:"max_backups"`
	// Mode is the permission of new files; 0 means DefaultFileMode.
	Mode fs.FileMode `yaml:"mode"`
	// BufferSize in bytes; 0 means DefaultWriterBuffer.
	BufferSize int `yaml:"buffer_size"`
}

// Validate reports the first problem in the configuration.
func (c FileConfig) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("file: path is required")
	case strings.HasSuffix(c.Path, string(os.PathSeparator)):
		return fmt.Errorf("file: path %q names a directory", c.Path)
	case c.MaxBytes < 0:
		return fmt.Errorf("file: max_bytes %d is negative", c.MaxBytes)
	case c.MaxAge < 0:
		return fmt.Errorf("file: max_age %v is negative", c.MaxAge)
	case c.MaxAge > 0 && c.MaxAge < ageCheckMin:
		return fmt.Errorf("file: max_age %v is below the minimum %v", c.MaxAge, ageCheckMin)
	case c.MaxBackups < 0:
		return fmt.Errorf("file: max_backups %d is negative", c.MaxBackups)
	case c.Mode&^fs.ModePerm != 0:
		return fmt.Errorf("file: mode %v has bits other than permissions", c.Mode)
	case c.BufferSize < 0 || c.BufferSize > maxBufferSize:
		return fmt.Errorf("file: buffer_size %d out of range 0..%d", c.BufferSize, maxBufferSize)
	}
	return nil
}

// File writes JSON lines to a file with rotation by size and age, a retention
// count and Reopen for logrotate. Lines are written and files rotated under
// one lock, and a rotation flushes the buffer first, so no line is ever split
// across files or lost at rotation. Safe for concurrent use.
type File struct {
	cfg  FileConfig
	dir  string
	base string // file name without extension
	ext  string

	mu       sync.Mutex
	f        *os.File // nil after a failed write/open: reopened on next Write
	bw       *bufio.Writer
	size     int64 // bytes in the live file including buffered ones
	openedAt time.Time
	closed   bool
	// lastStamp is the time in the newest backup name.
	lastStamp time.Time

	rotations atomic.Uint64
	stop      chan struct{}
	stopped   chan struct{}
}

var (
	_ Sink          = (*File)(nil)
	_ Flusher       = (*File)(nil)
	_ Reopener      = (*File)(nil)
	_ StatsReporter = (*File)(nil)
)

// NewFile opens (appending) or creates cfg.Path.
func NewFile(cfg FileConfig) (*File, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == 0 {
		cfg.Mode = DefaultFileMode
	}
	bufSize := cfg.BufferSize
	if bufSize == 0 {
		bufSize = DefaultWriterBuffer
	}
	name := filepath.Base(cfg.Path)
	ext := filepath.Ext(name)
	s := &File{
		cfg:     cfg,
		dir:     filepath.Dir(cfg.Path),
		base:    strings.TrimSuffix(name, ext),
		ext:     ext,
		bw:      bufio.NewWriterSize(nil, bufSize),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	if cfg.MaxAge > 0 {
		go s.ageLoop(min(max(cfg.MaxAge/4, ageCheckMin), ageCheckMax))
	} else {
		close(s.stopped)
	}
	return s, nil
}

// Name returns "file:<path>".
func (s *File) Name() string { return "file:" + s.cfg.Path }

// open opens the live file by name; s.mu held (or not yet shared).
func (s *File) open() error {
	f, err := os.OpenFile(s.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, s.cfg.Mode)
	if err != nil {
		return fmt.Errorf("file: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file: stat: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("file: %s is not a regular file", s.cfg.Path)
	}
	s.f = f
	s.bw.Reset(f)
	s.size = st.Size()
	s.openedAt = time.Now()
	return nil
}

// closeFile flushes and closes the live file; s.mu held.
func (s *File) closeFile() error {
	if s.f == nil {
		return nil
	}
	ferr := s.bw.Flush()
	cerr := s.f.Close()
	s.f = nil
	if ferr != nil {
		return fmt.Errorf("file: flush: %w", ferr)
	}
	if cerr != nil {
		return fmt.Errorf("file: close: %w", cerr)
	}
	return nil
}

// Write appends r.Line and '\n', rotating first if the line would overflow
// MaxBytes or the file is older than MaxAge.
func (s *File) Write(_ context.Context, r Record) error {
	n := int64(len(r.Line)) + 1
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.f == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.size > 0 && (s.cfg.MaxBytes > 0 && s.size+n > s.cfg.MaxBytes || s.aged()) {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	_, err := s.bw.Write(r.Line)
	if err == nil {
		err = s.bw.WriteByte('\n')
	}
	if err != nil {
		// bufio errors are sticky: drop the handle and reopen next time.
		s.f.Close()
		s.f = nil
		return fmt.Errorf("file: write: %w", err)
	}
	s.size += n
	return nil
}

func (s *File) aged() bool {
	return s.cfg.MaxAge > 0 && time.Since(s.openedAt) >= s.cfg.MaxAge
}

// rotate moves the live file to a backup name, opens a new one and prunes
// old backups; s.mu held.
func (s *File) rotate() error {
	if err := s.closeFile(); err != nil {
		return err
	}
	// Stamps strictly increase within a process so names sort in rotation
	// order even when two rotations share a clock reading.
	t := time.Now().UTC()
	if !t.After(s.lastStamp) {
		t = s.lastStamp.Add(time.Nanosecond)
	}
	s.lastStamp = t
	backup := s.backupName(t)
	if err := os.Rename(s.cfg.Path, backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Keep writing to the same file rather than losing events.
		if oerr := s.open(); oerr != nil {
			return errors.Join(fmt.Errorf("file: rotate: %w", err), oerr)
		}
		return fmt.Errorf("file: rotate: %w", err)
	}
	s.rotations.Add(1)
	if err := s.open(); err != nil {
		return err
	}
	return s.prune()
}

// backupName returns an unused rotated file name for time t.
func (s *File) backupName(t time.Time) string {
	stem := filepath.Join(s.dir, s.base+"-"+t.UTC().Format(backupStamp))
	name := stem + s.ext
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s.%d%s", stem, i, s.ext)
	}
}

// Backups lists the rotated files, oldest first.
func (s *File) Backups() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("file: list backups: %w", err)
	}
	prefix := s.base + "-"
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, s.ext) {
			continue
		}
		mid := strings.TrimSuffix(strings.TrimPrefix(n, prefix), s.ext)
		if len(mid) < len(backupStamp) {
			continue
		}
		if _, err := time.Parse(backupStamp, mid[:len(backupStamp)]); err != nil {
			continue
		}
		out = append(out, filepath.Join(s.dir, n))
	}
	slices.Sort(out)
	return out, nil
}

// prune removes the oldest backups beyond MaxBackups; s.mu held.
func (s *File) prune() error {
	if s.cfg.MaxBackups == 0 {
		return nil
	}
	backups, err := s.Backups()
	if err != nil {
		return err
	}
	var errs []error
	for len(backups) > s.cfg.MaxBackups {
		if err := os.Remove(backups[0]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("file: prune: %w", err))
		}
		backups = backups[1:]
	}
	return errors.Join(errs...)
}

// ageLoop rotates idle files that outlived MaxAge.
func (s *File) ageLoop(every time.Duration) {
	defer close(s.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if !s.closed && s.f != nil && s.size > 0 && s.aged() {
				_ = s.rotate() // retried on the next tick or Write
			}
			s.mu.Unlock()
		}
	}
}

// Rotate rotates the live file now (if it is not empty).
func (s *File) Rotate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.f == nil || s.size == 0 {
		return nil
	}
	return s.rotate()
}

// Reopen flushes and closes the live file and opens cfg.Path again by name,
// for logrotate's create mode: after the file was moved away, new lines go to
// a new file at the configured path.
func (s *File) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	err := s.closeFile()
	return errors.Join(err, s.open())
}

// Flush writes buffered lines to the file.
func (s *File) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		s.f.Close()
		s.f = nil
		return fmt.Errorf("file: flush: %w", err)
	}
	return nil
}

// SinkStats reports rotations.
func (s *File) SinkStats() SinkStats { return SinkStats{Rotations: s.rotations.Load()} }

// Close flushes and closes the file and stops age rotation.
func (s *File) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.closeFile()
	s.mu.Unlock()
	if s.cfg.MaxAge > 0 {
		close(s.stop)
	}
	<-s.stopped
	return err
}
