// Package http dissects HTTP/1.x over the in-order byte streams of a TCP
// connection (as delivered by capture/reassembly) into request/response
// Transactions.
//
// Headers are parsed incrementally in a bounded per-direction buffer
// (MaxHeaderBytes); bodies are skipped by Content-Length or chunked framing
// and only counted, never buffered. Pipelined and keep-alive requests are
// queued (at most MaxPending) and paired FIFO with responses. Each finished
// exchange, or one cut short by the end of the connection, is passed to the
// emit callback given to NewConn, in request order. Bad input ends the
// affected direction with an Anomaly; nothing panics.
//
// emit is called synchronously from ClientData, ServerData, the close
// methods and Close, with a copy of the Transaction. A response that arrives
// while no request is pending (capture started mid-connection, or the
// request is still held behind a client-side hole) is emitted as
// OutcomeUnmatched. After CONNECT 2xx or 101 both directions stop (Data
// returns false) and the exchange is marked Tunnel.
//
// A Conn is not safe for concurrent use.
package http

import (
	"github.com/phonehome/phonehome/capture/reassembly"
)

// Limits.
const (
	// MaxHeaderBytes bounds one message's start line plus headers (and a
	// chunked trailer); beyond it the direction stops with
	// AnomalyHeaderTooLarge.
	MaxHeaderBytes = 16 << 10
	// MaxPending bounds requests awaiting a response; a client pipelining
	// more stops being parsed with AnomalyTooManyPending.
	MaxPending = 16
	// maxChunkLine bounds a chunk-size line including extensions.
	maxChunkLine = 1024
	// maxChunkDigits keeps chunk sizes below 2^60.
	maxChunkDigits = 15
)

// Anomaly records why a direction stopped being parsed.
type Anomaly uint8

// Anomalies.
const (
	AnomalyNone                Anomaly = iota
	AnomalyNotHTTP                     // start line is not HTTP/1.x
	AnomalyHeaderTooLarge              // header block over MaxHeaderBytes
	AnomalyBadChunk                    // malformed chunk size or framing
	AnomalyBadContentLength            // non-numeric or conflicting Content-Length
	AnomalyBadTransferEncoding         // request with a non-chunked transfer coding
	AnomalyTooManyPending              // more than MaxPending pipelined requests
	AnomalyUnmatchedResponse           // a response with no request to pair with
)

var anomalyNames = [...]string{"", "not_http", "header_too_large", "bad_chunk", "bad_content_length",
	"bad_transfer_encoding", "too_many_pending", "unmatched_response"}

func (a Anomaly) String() string {
	if int(a) < len(anomalyNames) {
		return anomalyNames[a]
	}
	return "unknown"
}

// Outcome says how a Transaction ended.
type Outcome uint8

// Outcomes.
const (
	OutcomeComplete   Outcome = iota // request and final response complete
	OutcomeNoResponse                // connection ended before any final response
	OutcomeIncomplete                // connection, gap or anomaly ended it mid-message
	OutcomeUnmatched                 // a response without a request (mid-stream pickup)
)

var outcomeNames = [...]string{"complete", "no_response", "incomplete", "unmatched"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Transaction is one request and its response. Strings are sanitised (see
// MaxValueLen); times are unix nanoseconds of the first byte of the request
// line and of the status line.
type Transaction struct {
	Method             string
	Target             string // request target as sent
	Path               string // target without query ("*" for OPTIONS *, "" for CONNECT)
	Query              string // without the '?'
	Host               string // lower-cased Host (or absolute/authority target), IPv6 in brackets, no port
	Port               uint16 // port from the same source, 0 when absent
	UserAgent          string
	RequestContentType string // as sent, parameters included
	Version            string // "1.0" or "1.1" (of the request; of the response when unmatched)
	RequestBodyBytes   int64
	RequestBytes       int64 // headers and body
	Status             int   // final status code, 0 when no response
	MimeType           string
	ResponseBodyBytes  int64
	ResponseBytes      int64 // headers and body of the final response
	RequestTime        int64
	ResponseTime       int64
	Outcome            Outcome
	Anomaly            Anomaly // anomaly that cut this exchange short, if any
	Tunnel             bool    // CONNECT 2xx or 101: the rest of the connection is not HTTP
	Truncated          bool    // a value was capped at MaxValueLen
}

// Stats are per-connection counters.
type Stats struct {
	Requests          uint64
	Responses         uint64 // final responses
	Interim           uint64 // 1xx other than 101
	Emitted           uint64
	Gaps              uint64
	ClientAnomaly     Anomaly
	ServerAnomaly     Anomaly
	ClientEnd         reassembly.CloseReason
	ServerEnd         reassembly.CloseReason
	RequestBodyBytes  int64
	ResponseBodyBytes int64
}

// state is a direction's parser state.
type state uint8

const (
	stHeaders state = iota
	stBodyLength
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
	stUntilClose
	stAwaitConnect // client sent CONNECT; more bytes before the answer are tunnel data
	stStopped
)

// half is the parser of one direction.
type half struct {
	server   bool
	state    state
	closed   bool
	anomaly  Anomaly
	hdr      []byte
	lineLen  int   // non-CR bytes in the current line
	lines    int   // completed lines in the current header block
	started  bool  // a non-empty line of the current message was seen
	firstOK  bool  // its start line is complete and valid
	msgStart int64 // ts of its first byte
	remain   int64 // body or chunk bytes left
	chunkLen int   // bytes of the current chunk-size line
	chunkDig int   // hex digits seen
	chunkExt bool  // past the digits (extension or whitespace)
	sawCR    bool  // stChunkCRLF: CR seen
	trailer  int   // trailer bytes seen
}

// Conn dissects one TCP connection.
type Conn struct {
	client, server half

	pending  [MaxPending]Transaction // ring of requests awaiting responses
	head, n  int
	reqOpen  bool // the newest pending request is still receiving its body
	reqIdx   int
	respOpen bool // a response is being parsed
	orphan   Transaction
	orphanOn bool // the open response is unmatched (uses orphan)

	emit      func(Transaction)
	finalized bool
	stats     Stats
}

// NewConn returns a Conn that passes each finished Transaction to emit.
func NewConn(emit func(Transaction)) *Conn {
	c := &Conn{emit: emit}
	c.server.server = true
	return c
}

// Stats returns the connection counters.
func (c *Conn) Stats() Stats { return c.stats }

// Anomaly returns the first anomaly of either direction.
func (c *Conn) Anomaly() Anomaly {
	if c.stats.ClientAnomaly != AnomalyNone {
		return c.stats.ClientAnomaly
	}
	return c.stats.ServerAnomaly
}

// ClientData feeds in-order client-to-server bytes; it returns false once
// the client direction is no longer parsed.
func (c *Conn) ClientData(b []byte, ts int64) bool { return c.feed(&c.client, b, ts) }

// ServerData feeds in-order server-to-client bytes; it returns false once
// the server direction is no longer parsed.
func (c *Conn) ServerData(b []byte, ts int64) bool { return c.feed(&c.server, b, ts) }

// ClientGap and ServerGap note bytes lost in a direction; the reassembly
// closes the direction right after.
func (c *Conn) ClientGap(int) { c.stats.Gaps++; c.stop(&c.client, AnomalyNone) }

// ServerGap: see ClientGap.
func (c *Conn) ServerGap(int) { c.stats.Gaps++; c.stop(&c.server, AnomalyNone) }

// ClientClose ends the client direction.
func (c *Conn) ClientClose(r reassembly.CloseReason) {
	c.stats.ClientEnd = r
	c.endHalf(&c.client)
}

// ServerClose ends the server direction; a response delimited by the close
// completes here on FIN or RST (on a gap or eviction it is incomplete).
func (c *Conn) ServerClose(r reassembly.CloseReason) {
	c.stats.ServerEnd = r
	if c.server.state == stUntilClose && (r == reassembly.CloseFIN || r == reassembly.CloseRST) {
		c.responseDone()
	}
	c.endHalf(&c.server)
}

// Close ends the connection (flow eviction): every pending exchange is
// emitted (a response still being read as OutcomeIncomplete, requests
// without one as OutcomeNoResponse). It is idempotent and implied once both
// directions closed.
func (c *Conn) Close() {
	if c.finalized {
		return
	}
	c.finalized = true
	c.client.state, c.server.state = stStopped, stStopped
	if c.respOpen {
		c.emitResponse(OutcomeIncomplete)
	}
	for c.n > 0 {
		tx := &c.pending[c.head]
		if tx.Outcome == OutcomeComplete {
			tx.Outcome = OutcomeNoResponse
		}
		c.emitTx(tx)
		c.pop()
	}
}

// ClientConsumer and ServerConsumer adapt the Conn to reassembly.Consumer
// without allocating.
func (c *Conn) ClientConsumer() reassembly.Consumer { return (*clientSide)(c) }

// ServerConsumer: see ClientConsumer.
func (c *Conn) ServerConsumer() reassembly.Consumer { return (*serverSide)(c) }

type clientSide Conn
type serverSide Conn

var (
	_ reassembly.Consumer = (*clientSide)(nil)
	_ reassembly.Consumer = (*serverSide)(nil)
)

func (s *clientSide) Data(b []byte, ts int64) bool   { return (*Conn)(s).ClientData(b, ts) }
func (s *clientSide) Gap(missing int)                { (*Conn)(s).ClientGap(missing) }
func (s *clientSide) Close(r reassembly.CloseReason) { (*Conn)(s).ClientClose(r) }
func (s *serverSide) Data(b []byte, ts int64) bool   { return (*Conn)(s).ServerData(b, ts) }
func (s *serverSide) Gap(missing int)                { (*Conn)(s).ServerGap(missing) }
func (s *serverSide) Close(r reassembly.CloseReason) { (*Conn)(s).ServerClose(r) }

func (c *Conn) endHalf(h *half) {
	h.closed = true
	if h.state != stStopped {
		c.stop(h, AnomalyNone)
	}
	if c.client.closed && c.server.closed {
		c.Close()
	}
}

// stop ends parsing of a direction, recording the anomaly if any; an
// exchange cut short by the server side is emitted now.
func (c *Conn) stop(h *half, a Anomaly) {
	if h.state == stStopped {
		return
	}
	h.state = stStopped
	h.hdr = nil
	if a != AnomalyNone && h.anomaly == AnomalyNone {
		h.anomaly = a
		if h.server {
			c.stats.ServerAnomaly = a
		} else {
			c.stats.ClientAnomaly = a
		}
	}
	if h.server {
		if c.respOpen {
			if a != AnomalyNone {
				c.currentResponse().Anomaly = a
			}
			c.emitResponse(OutcomeIncomplete)
		}
		return
	}
	if c.reqOpen {
		tx := &c.pending[c.reqIdx]
		tx.Outcome = OutcomeIncomplete
		if a != AnomalyNone {
			tx.Anomaly = a
		}
		c.reqOpen = false
	}
}

func (c *Conn) feed(h *half, b []byte, ts int64) bool {
	for len(b) > 0 && h.state != stStopped {
		switch h.state {
		case stHeaders:
			b = c.scanHeader(h, b, ts)
		case stBodyLength, stChunkData:
			n := int64(len(b))
			if h.remain < n {
				n = h.remain
			}
			c.body(h, n)
			h.remain -= n
			b = b[n:]
			if h.remain == 0 {
				if h.state == stChunkData {
					h.state, h.sawCR = stChunkCRLF, false
				} else {
					c.messageDone(h)
				}
			}
		case stUntilClose:
			c.body(h, int64(len(b)))
			b = nil
		case stChunkSize:
			b = c.chunkSize(h, b)
		case stChunkCRLF:
			c.frame(h, 1)
			switch {
			case b[0] == '\r' && !h.sawCR:
				h.sawCR = true
			case b[0] == '\n':
				h.state = stChunkSize
				h.chunkLen, h.chunkDig, h.chunkExt = 0, 0, false
			default:
				c.stop(h, AnomalyBadChunk)
			}
			b = b[1:]
		case stTrailer:
			b = c.trailer(h, b)
		case stAwaitConnect:
			// Bytes after an unanswered CONNECT are the tunnel's.
			c.stop(h, AnomalyNone)
		}
	}
	return h.state != stStopped
}

// body counts n body bytes of the current message.
func (c *Conn) body(h *half, n int64) {
	if h.server {
		c.stats.ResponseBodyBytes += n
		if c.respOpen {
			tx := c.currentResponse()
			tx.ResponseBodyBytes += n
			tx.ResponseBytes += n
		}
		return
	}
	c.stats.RequestBodyBytes += n
	if c.reqOpen {
		c.pending[c.reqIdx].RequestBodyBytes += n
		c.pending[c.reqIdx].RequestBytes += n
	}
}

// frame counts n bytes of chunk framing towards the message size.
func (c *Conn) frame(h *half, n int64) {
	if h.server {
		if c.respOpen {
			c.currentResponse().ResponseBytes += n
		}
	} else if c.reqOpen {
		c.pending[c.reqIdx].RequestBytes += n
	}
}

// scanHeader accumulates header bytes up to the empty line and returns what
// is left of b.
func (c *Conn) scanHeader(h *half, b []byte, ts int64) []byte {
	from := 0
	if !h.started {
		// Skip empty lines before a start line (RFC 9112 section 2.2).
		for from < len(b) && (b[from] == '\r' || b[from] == '\n') {
			from++
		}
		if from == len(b) {
			return nil
		}
		h.started = true
		h.msgStart = ts
	}
	end := -1
	for i := from; i < len(b); i++ {
		switch b[i] {
		case '\n':
			if h.lineLen == 0 {
				end = i
			}
			h.lineLen = 0
			h.lines++
		case '\r':
		default:
			h.lineLen++
		}
		if end >= 0 {
			break
		}
	}
	take := len(b)
	if end >= 0 {
		take = end + 1
	}
	if len(h.hdr)+take-from > MaxHeaderBytes {
		c.stop(h, AnomalyHeaderTooLarge)
		return nil
	}
	h.hdr = append(h.hdr, b[from:take]...)
	if !h.firstOK {
		// Validate the start line once, as soon as it is complete, so a
		// non-HTTP stream stops after one line instead of MaxHeaderBytes.
		if !plausibleStart(h.hdr, h.server, h.lines > 0) {
			c.stop(h, AnomalyNotHTTP)
			return nil
		}
		h.firstOK = h.lines > 0
	}
	if end >= 0 {
		c.headerDone(h, ts)
	}
	return b[take:]
}

// chunkSize parses a chunk-size line: hex digits, optional extensions, LF.
func (c *Conn) chunkSize(h *half, b []byte) []byte {
	for i, ch := range b {
		h.chunkLen++
		if h.chunkLen > maxChunkLine {
			c.stop(h, AnomalyBadChunk)
			return nil
		}
		switch {
		case ch == '\n':
			c.frame(h, int64(i+1))
			if h.chunkDig == 0 {
				c.stop(h, AnomalyBadChunk)
				return nil
			}
			if h.remain == 0 {
				h.state, h.trailer, h.lineLen = stTrailer, 0, 0
			} else {
				h.state = stChunkData
			}
			return b[i+1:]
		case h.chunkExt:
			// Extension or whitespace: ignored up to the LF.
		case hexVal(ch) >= 0:
			if h.chunkDig == 0 {
				h.remain = 0
			}
			h.chunkDig++
			if h.chunkDig > maxChunkDigits {
				c.stop(h, AnomalyBadChunk)
				return nil
			}
			h.remain = h.remain<<4 | int64(hexVal(ch))
		case ch == ';' || ch == ' ' || ch == '\t' || ch == '\r':
			if h.chunkDig == 0 {
				c.stop(h, AnomalyBadChunk)
				return nil
			}
			h.chunkExt = true
		default:
			c.stop(h, AnomalyBadChunk)
			return nil
		}
	}
	c.frame(h, int64(len(b)))
	return nil
}

// trailer skips trailer fields up to the empty line ending the message.
func (c *Conn) trailer(h *half, b []byte) []byte {
	for i, ch := range b {
		h.trailer++
		if h.trailer > MaxHeaderBytes {
			c.stop(h, AnomalyHeaderTooLarge)
			return nil
		}
		switch ch {
		case '\n':
			if h.lineLen == 0 {
				c.frame(h, int64(i+1))
				c.messageDone(h)
				return b[i+1:]
			}
			h.lineLen = 0
		case '\r':
		default:
			h.lineLen++
		}
	}
	c.frame(h, int64(len(b)))
	return nil
}

func hexVal(ch byte) int {
	switch {
	case ch >= '0' && ch <= '9':
		return int(ch - '0')
	case ch >= 'a' && ch <= 'f':
		return int(ch-'a') + 10
	case ch >= 'A' && ch <= 'F':
		return int(ch-'A') + 10
	}
	return -1
}

// messageDone resets a direction for the next message after a complete one.
func (c *Conn) messageDone(h *half) {
	h.state = stHeaders
	h.started, h.firstOK, h.lines, h.lineLen = false, false, 0, 0
	if h.server {
		c.responseDone()
		return
	}
	c.reqOpen = false
}

func (c *Conn) responseDone() {
	if c.respOpen {
		c.emitResponse(OutcomeComplete)
	}
}

func (c *Conn) currentResponse() *Transaction {
	if c.orphanOn {
		return &c.orphan
	}
	return &c.pending[c.head]
}

// emitResponse emits the exchange whose response was being parsed.
func (c *Conn) emitResponse(o Outcome) {
	c.respOpen = false
	if c.orphanOn {
		c.orphanOn = false
		if c.orphan.Outcome == OutcomeComplete {
			c.orphan.Outcome = OutcomeUnmatched
		}
		c.emitTx(&c.orphan)
		return
	}
	tx := &c.pending[c.head]
	if tx.Outcome == OutcomeComplete {
		tx.Outcome = o
	}
	c.emitTx(tx)
	c.pop()
}

func (c *Conn) emitTx(tx *Transaction) {
	c.stats.Emitted++
	if c.emit != nil {
		c.emit(*tx)
	}
}

func (c *Conn) pop() {
	if c.reqOpen && c.reqIdx == c.head {
		c.reqOpen = false // its body, if any more arrives, is counted per conn only
	}
	c.pending[c.head] = Transaction{}
	c.head = (c.head + 1) % MaxPending
	c.n--
}
