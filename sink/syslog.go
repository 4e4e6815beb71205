package sink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Syslog sink defaults and bounds.
const (
	// DefaultSyslogUDPMax is the default maximum UDP message size; rsyslog
	// accepts 8 KiB by default.
	DefaultSyslogUDPMax = 8 << 10
	// DefaultSyslogStreamMax is the default maximum TCP/TLS message size.
	DefaultSyslogStreamMax = 64 << 10
	// maxUDPPayload is the largest UDP payload over IPv4.
	maxUDPPayload = 65507
	// maxSyslogStreamMax bounds configured TCP/TLS message sizes.
	maxSyslogStreamMax = 16 << 20
	// minSyslogMessage leaves room for the header plus some of the message.
	minSyslogMessage = 480
	// syslogStreamBuffer is the write buffer of TCP/TLS connections.
	syslogStreamBuffer = 64 << 10

	DefaultSyslogDialTimeout  = 5 * time.Second
	DefaultSyslogWriteTimeout = 5 * time.Second
	DefaultSyslogReconnectMin = 200 * time.Millisecond
	DefaultSyslogReconnectMax = 30 * time.Second

	// RFC 5424 field limits.
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
)

// syslogFacilities maps RFC 5424 facility names to codes.
var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
	"local5": 21, "local6": 22, "local7": 23,
}

// syslogSeverities maps RFC 5424 severity names to codes.
var syslogSeverities = map[string]int{
	"emerg": 0, "emergency": 0, "alert": 1, "crit": 2, "critical": 2, "err": 3, "error": 3,
	"warning": 4, "warn": 4, "notice": 5, "info": 6, "informational": 6, "debug": 7,
}

func parseSyslogCode(kind, s string, names map[string]int, maxCode int) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if c, ok := names[s]; ok {
		return c, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= maxCode {
		return n, nil
	}
	return 0, fmt.Errorf("syslog: unknown %s %q (name or 0..%d)", kind, s, maxCode)
}

// SyslogConfig configures the "syslog" sink.
type SyslogConfig struct {
	// Network is "udp" (one message per datagram), "tcp" or "tls" (octet
	// counting framing, RFC 6587 / RFC 5425).
	Network string `yaml:"network"`
	// Address is host:port of the collector.
	Address string `yaml:"address"`
	// Facility is a name (local0, daemon, ...) or code 0..23; default local0.
	Facility string `yaml:"facility"`
	// Severity is the default severity name or code 0..7; default info.
	Severity string `yaml:"severity"`
	// SeverityFromEvent takes the severity from the event's event.severity
	// field: through SeverityMap when it is set, else used directly when it
	// is 0..7. Other values get Severity.
	SeverityFromEvent bool `yaml:"severity_from_event"`
	// SeverityMap maps event.severity values to syslog severity names/codes.
	SeverityMap map[int64]string `yaml:"severity_map"`
	// Hostname is the HOSTNAME field; empty means os.Hostname().
	Hostname string `yaml:"hostname"`
	// AppName is the APP-NAME field; default "phonehome".
	AppName string `yaml:"app_name"`
	// BOM prefixes MSG with the UTF-8 byte order mark (RFC 5424 6.4).
	BOM bool `yaml:"bom"`
	// MaxMessageSize truncates longer messages (counted); default
	// DefaultSyslogUDPMax for UDP and DefaultSyslogStreamMax otherwise.
	MaxMessageSize int `yaml:"max_message_size"`
	// DialTimeout and WriteTimeout bound connecting and each write.
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// ReconnectMin and ReconnectMax bound the exponential reconnect backoff.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// TLS applies to network "tls".
	TLS TLSConfig `yaml:"tls"`
}

// Validate reports the first problem in the configuration.
func (c SyslogConfig) Validate() error {
	switch c.Network {
	case "udp", "tcp", "tls":
	case "":
		return errors.New("syslog: network is required (udp, tcp or tls)")
	default:
		return fmt.Errorf("syslog: network %q: want udp, tcp or tls", c.Network)
	}
	if c.Address == "" {
		return errors.New("syslog: address is required (host:port)")
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return fmt.Errorf("syslog: address %q: %w", c.Address, err)
	}
	if c.Facility != "" {
		if _, err := parseSyslogCode("facility", c.Facility, syslogFacilities, 23); err != nil {
			return err
		}
	}
	if c.Severity != "" {
		if _, err := parseSyslogCode("severity", c.Severity, syslogSeverities, 7); err != nil {
			return err
		}
	}
	for k, v := range c.SeverityMap {
		if _, err := parseSyslogCode("severity", v, syslogSeverities, 7); err != nil {
			return fmt.Errorf("syslog: severity_map[%d]: %w", k, err)
		}
	}
	limit := maxSyslogStreamMax
	if c.Network == "udp" {
		limit = maxUDPPayload
	}
	if c.MaxMessageSize != 0 && (c.MaxMessageSize < minSyslogMessage || c.MaxMessageSize > limit) {
		return fmt.Errorf("syslog: max_message_size %d out of range %d..%d for %s",
			c.MaxMessageSize, minSyslogMessage, limit, c.Network)
	}
	if c.DialTimeout < 0 || c.WriteTimeout < 0 || c.ReconnectMin < 0 || c.ReconnectMax < 0 {
		return errors.New("syslog: timeouts must not be negative")
	}
	if c.ReconnectMin > 0 && c.ReconnectMax > 0 && c.ReconnectMin > c.ReconnectMax {
		return fmt.Errorf("syslog: reconnect_min %v exceeds reconnect_max %v", c.ReconnectMin, c.ReconnectMax)
	}
	if c.Network != "tls" && (c.TLS.CAFile != "" || c.TLS.CertFile != "") {
		return fmt.Errorf("syslog: tls settings given but network is %q", c.Network)
	}
	return c.TLS.validate("syslog")
}

// Syslog sends each record as one RFC 5424 message whose MSG is the JSON
// line. Safe for concurrent use.
type Syslog struct {
	cfg      SyslogConfig
	tls      *tls.Config
	facility int
	severity int
	sevMap   map[int64]int
	header   string // " HOSTNAME APP-NAME PROCID " after the timestamp
	maxSize  int
	stream   bool // tcp/tls: octet-counted framing through bw

	mu        sync.Mutex
	conn      net.Conn
	bw        *bufio.Writer // TCP/TLS only
	pending   uint64        // records buffered in bw since the last flush
	buf       []byte        // message scratch, reused
	backoff   time.Duration
	nextDial  time.Time
	connected bool // has ever connected
	closed    bool

	truncated, failed, reconnects atomic.Uint64
}

var (
	_ Sink          = (*Syslog)(nil)
	_ Flusher       = (*Syslog)(nil)
	_ StatsReporter = (*Syslog)(nil)
)

// NewSyslog validates cfg and returns a sink. It connects lazily on the first
// Write so a collector that is down at start-up does not stop capture.
func NewSyslog(cfg SyslogConfig) (*Syslog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Facility == "" {
		cfg.Facility = "local0"
	}
	if cfg.Severity == "" {
		cfg.Severity = "info"
	}
	if cfg.AppName == "" {
		cfg.AppName = "phonehome"
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("syslog: hostname: %w", err)
		}
		cfg.Hostname = h
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultSyslogStreamMax
		if cfg.Network == "udp" {
			cfg.MaxMessageSize = DefaultSyslogUDPMax
		}
	}
	setDefault(&cfg.DialTimeout, DefaultSyslogDialTimeout)
	setDefault(&cfg.WriteTimeout, DefaultSyslogWriteTimeout)
	setDefault(&cfg.ReconnectMin, DefaultSyslogReconnectMin)
	setDefault(&cfg.ReconnectMax, DefaultSyslogReconnectMax)
	s := &Syslog{cfg: cfg, maxSize: cfg.MaxMessageSize, backoff: cfg.ReconnectMin, stream: cfg.Network != "udp"}
	s.facility, _ = parseSyslogCode("facility", cfg.Facility, syslogFacilities, 23)
	s.severity, _ = parseSyslogCode("severity", cfg.Severity, syslogSeverities, 7)
	if len(cfg.SeverityMap) > 0 {
		s.sevMap = make(map[int64]int, len(cfg.SeverityMap))
		for k, v := range cfg.SeverityMap {
			s.sevMap[k], _ = parseSyslogCode("severity", v, syslogSeverities, 7)
		}
	}
	s.header = " " + headerField(cfg.Hostname, maxHostname) + " " + headerField(cfg.AppName, maxAppName) +
		" " + headerField(strconv.Itoa(os.Getpid()), maxProcID) + " "
	if cfg.Network == "tls" {
		tc, err := cfg.TLS.build(cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("syslog: %w", err)
		}
		s.tls = tc
	}
	return s, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// headerField makes s a valid RFC 5424 header field: PRINTUSASCII (33..126),
// at most n bytes, "-" when empty.
func headerField(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(b) < n; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// Name returns "syslog:<network>://<address>".
func (s *Syslog) Name() string { return "syslog:" + s.cfg.Network + "://" + s.cfg.Address }

// Write formats and sends one message. TCP/TLS messages are buffered until
// Flush or until the buffer fills. Errors: ErrUnavailable while waiting to
// reconnect; a network error after which the next Write reconnects.
func (s *Syslog) Write(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.connect(); err != nil {
		return err
	}
	s.buf = s.format(s.buf[:0], r)
	deadline := time.Now().Add(s.cfg.WriteTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		s.dropConn()
		return fmt.Errorf("syslog: set deadline: %w", err)
	}
	if !s.stream { // UDP: one datagram per message
		if _, err := s.conn.Write(s.buf); err != nil {
			return fmt.Errorf("syslog: send: %w", err)
		}
		return nil
	}
	if _, err := s.bw.Write(s.buf); err != nil {
		s.dropConn()
		return fmt.Errorf("syslog: send: %w", err)
	}
	s.pending++
	return nil
}

// format appends the framed message for r to dst.
func (s *Syslog) format(dst []byte, r Record) []byte {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	// Build the message after room for the octet count, then prepend it.
	const countRoom = 10 // "16777216 " at most
	start := len(dst)
	var room0 [countRoom]byte
	if s.stream {
		dst = append(dst, room0[:]...)
	}
	msgStart := len(dst)
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(s.facility*8+s.severityOf(r.Line)), 10)
	dst = append(dst, ">1 "...)
	dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	dst = append(dst, s.header...)
	dst = appendMsgID(dst, r.Dataset)
	dst = append(dst, " - "...)
	if s.cfg.BOM {
		dst = append(dst, 0xEF, 0xBB, 0xBF)
	}
	room := s.maxSize - (len(dst) - msgStart)
	line := r.Line
	if len(line) > room {
		cut := max(room, 0)
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut]
		s.truncated.Add(1)
	}
	dst = append(dst, line...)
	if !s.stream {
		return dst
	}
	var num [countRoom]byte
	cnt := strconv.AppendInt(num[:0], int64(len(dst)-msgStart), 10)
	cnt = append(cnt, ' ')
	off := msgStart - len(cnt)
	copy(dst[off:], cnt)
	return append(dst[:start], dst[off:]...)
}

// appendMsgID appends dataset as an RFC 5424 MSGID.
func appendMsgID(dst []byte, dataset string) []byte {
	if dataset == "" {
		return append(dst, '-')
	}
	for i := 0; i < len(dataset) && i < maxMsgID; i++ {
		c := dataset[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// severityOf returns the syslog severity for line.
func (s *Syslog) severityOf(line []byte) int {
	if !s.cfg.SeverityFromEvent {
		return s.severity
	}
	v, ok := eventSeverity(line)
	if !ok {
		return s.severity
	}
	if s.sevMap != nil {
		if sev, ok := s.sevMap[v]; ok {
			return sev
		}
		return s.severity
	}
	if v >= 0 && v <= 7 {
		return int(v)
	}
	return s.severity
}

// eventSeverity finds the integer value of the ECS event.severity field in
// a JSON line, written either dotted ("event.severity":N) or nested
// ({"event":{"severity":N}}). A quote inside a JSON string is always escaped,
// so these byte patterns only match keys.
func eventSeverity(line []byte) (int64, bool) {
	i := bytes.Index(line, []byte(`"event.severity"`))
	klen := len(`"event.severity"`)
	if i < 0 {
		i = bytes.Index(line, []byte(`"severity"`))
		klen = len(`"severity"`)
	}
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(line[i+klen:], " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return 0, false
	}
	rest = bytes.TrimLeft(rest[1:], " \t")
	neg := len(rest) > 0 && rest[0] == '-'
	if neg {
		rest = rest[1:]
	}
	// At most 18 digits: cannot overflow int64, and no allocation.
	var v int64
	n := 0
	for ; n < len(rest) && n < 18 && rest[n] >= '0' && rest[n] <= '9'; n++ {
		v = v*10 + int64(rest[n]-'0')
	}
	if n == 0 || n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// connect dials if there is no connection, honouring the backoff; s.mu held.
func (s *Syslog) connect() error {
	if s.conn != nil {
		return nil
	}
	now := time.Now()
	if now.Before(s.nextDial) {
		return fmt.Errorf("syslog: %w: reconnecting to %s in %v", ErrUnavailable, s.cfg.Address,
			s.nextDial.Sub(now).Round(time.Millisecond))
	}
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	var (
		c   net.Conn
		err error
	)
	switch s.cfg.Network {
	case "udp":
		c, err = d.Dial("udp", s.cfg.Address)
	case "tcp":
		c, err = d.Dial("tcp", s.cfg.Address)
	case "tls":
		c, err = (&tls.Dialer{NetDialer: &d, Config: s.tls}).Dial("tcp", s.cfg.Address)
	}
	if err != nil {
		s.nextDial = now.Add(s.backoff)
		s.backoff = min(s.backoff*2, s.cfg.ReconnectMax)
		return fmt.Errorf("syslog: connect %s: %w", s.cfg.Address, err)
	}
	s.backoff = s.cfg.ReconnectMin
	if s.connected {
		s.reconnects.Add(1)
	}
	s.connected = true
	s.conn = c
	if s.stream {
		if s.bw == nil {
			s.bw = bufio.NewWriterSize(c, syslogStreamBuffer)
		} else {
			s.bw.Reset(c)
		}
	}
	return nil
}

// dropConn closes a broken stream connection; the buffered records are lost
// and counted. The next Write reconnects at once. s.mu held.
func (s *Syslog) dropConn() {
	if s.conn == nil {
		return
	}
	s.conn.Close()
	s.conn = nil
	s.failed.Add(s.pending)
	s.pending = 0
}

// Flush sends buffered TCP/TLS messages.
func (s *Syslog) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *Syslog) flushLocked() error {
	if s.conn == nil || s.bw == nil || s.bw.Buffered() == 0 {
		return nil
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		s.dropConn()
		return fmt.Errorf("syslog: set deadline: %w", err)
	}
	if err := s.bw.Flush(); err != nil {
		s.dropConn()
		return fmt.Errorf("syslog: flush: %w", err)
	}
	s.pending = 0
	return nil
}

// SinkStats reports truncations, records lost in a broken connection's
// buffer, and reconnects.
func (s *Syslog) SinkStats() SinkStats {
	return SinkStats{
		Truncated:  s.truncated.Load(),
		Failed:     s.failed.Load(),
		Reconnects: s.reconnects.Load(),
	}
}

// Close flushes and closes the connection.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.flushLocked()
	if s.conn != nil {
		if cerr := s.conn.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("syslog: close: %w", cerr)
		}
		s.conn = nil
	}
	return err
}
