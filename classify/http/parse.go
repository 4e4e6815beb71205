package http

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// MaxValueLen caps every string put in a Transaction (after escaping), so no
// header can blow up a log line.
const MaxValueLen = 1024

// maxMethodLen bounds the method token of a request line.
const maxMethodLen = 32

// headerFields holds the headers the dissector uses, aliasing the header
// buffer until they are copied into a Transaction.
type headerFields struct {
	host, userAgent, contentType []byte
	contentLength                int64
	haveCL, badCL                bool
	haveTE, chunked              bool
}

// plausibleStart checks the start of a header block early, so a non-HTTP
// stream stops after one line instead of filling MaxHeaderBytes.
func plausibleStart(hdr []byte, server, lineDone bool) bool {
	if lineDone {
		line := firstLine(hdr)
		if server {
			_, _, ok := parseStatusLine(line)
			return ok
		}
		_, _, _, ok := parseRequestLine(line)
		return ok
	}
	if server {
		n := min(len(hdr), len("HTTP/"))
		return string(hdr[:n]) == "HTTP/"[:n]
	}
	for i, ch := range hdr {
		if ch == ' ' {
			return i > 0
		}
		if i >= maxMethodLen || !isTchar(ch) {
			return false
		}
	}
	return true
}

func firstLine(hdr []byte) []byte {
	if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
		hdr = hdr[:i]
	}
	return trimCR(hdr)
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// isTchar reports a token character (RFC 9110 section 5.6.2).
func isTchar(ch byte) bool {
	switch {
	case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		return true
	}
	switch ch {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// parseVersion accepts "HTTP/1.x" and returns "1.x".
func parseVersion(b []byte) ([]byte, bool) {
	if len(b) != len("HTTP/1.1") || string(b[:7]) != "HTTP/1." || b[7] < '0' || b[7] > '9' {
		return nil, false
	}
	return b[5:], true
}

// parseRequestLine splits "METHOD SP target SP HTTP/1.x".
func parseRequestLine(line []byte) (method, target, version []byte, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > maxMethodLen {
		return nil, nil, nil, false
	}
	method = line[:sp]
	for _, ch := range method {
		if !isTchar(ch) {
			return nil, nil, nil, false
		}
	}
	rest := line[sp+1:]
	sp = bytes.LastIndexByte(rest, ' ')
	if sp <= 0 {
		return nil, nil, nil, false
	}
	target = rest[:sp]
	if version, ok = parseVersion(rest[sp+1:]); !ok {
		return nil, nil, nil, false
	}
	for _, ch := range target {
		if ch <= ' ' || ch == 0x7f {
			return nil, nil, nil, false
		}
	}
	return method, target, version, true
}

// parseStatusLine splits "HTTP/1.x SP 3DIGIT [SP reason]".
func parseStatusLine(line []byte) (version []byte, code int, ok bool) {
	if len(line) < len("HTTP/1.1 200") || line[8] != ' ' {
		return nil, 0, false
	}
	if version, ok = parseVersion(line[:8]); !ok {
		return nil, 0, false
	}
	for _, ch := range line[9:12] {
		if ch < '0' || ch > '9' {
			return nil, 0, false
		}
		code = code*10 + int(ch-'0')
	}
	if len(line) > 12 && line[12] != ' ' || code < 100 {
		return nil, 0, false
	}
	return version, code, true
}

// parseHeaders reads the fields after the start line.
func parseHeaders(block []byte) (f headerFields) {
	for len(block) > 0 {
		i := bytes.IndexByte(block, '\n')
		var line []byte
		if i < 0 {
			line, block = block, nil
		} else {
			line, block = block[:i], block[i+1:]
		}
		line = trimCR(line)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // obsolete line folding: not a field we use
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("host")):
			if f.host == nil {
				f.host = value
			}
		case bytes.EqualFold(name, []byte("user-agent")):
			f.userAgent = value
		case bytes.EqualFold(name, []byte("content-type")):
			f.contentType = value
		case bytes.EqualFold(name, []byte("content-length")):
			n, ok := parseLength(value)
			if !ok || (f.haveCL && n != f.contentLength) {
				f.badCL = true
			}
			f.haveCL, f.contentLength = true, n
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			f.haveTE = true
			f.chunked = lastCodingChunked(value)
		}
	}
	return f
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseLength parses a Content-Length of at most 18 digits.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// lastCodingChunked reports whether the final transfer coding is chunked.
func lastCodingChunked(v []byte) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	if i := bytes.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return bytes.EqualFold(trimOWS(v), []byte("chunked"))
}

// splitHostPort splits a Host value or authority; IPv6 literals keep their
// brackets (as ECS url.domain does). An unparsable port stays in the host.
func splitHostPort(v []byte) (host []byte, port uint16) {
	colon := bytes.LastIndexByte(v, ':')
	if colon < 0 || (len(v) > 0 && v[0] == '[' && colon < bytes.LastIndexByte(v, ']')) {
		return v, 0
	}
	if len(v) > 0 && v[0] != '[' && bytes.IndexByte(v, ':') != colon {
		return v, 0 // bare IPv6 without brackets
	}
	p, err := strconv.ParseUint(string(v[colon+1:]), 10, 16)
	if err != nil {
		return v, 0
	}
	return v[:colon], uint16(p)
}

// splitTarget returns the path, query and (for absolute or authority form)
// the authority of a request target.
func splitTarget(method, target []byte) (path, query, authority []byte) {
	if string(method) == "CONNECT" {
		return nil, nil, target
	}
	if len(target) > 8 && (bytes.EqualFold(target[:7], []byte("http://")) || bytes.EqualFold(target[:8], []byte("https://"))) {
		rest := target[bytes.IndexByte(target, '/')+2:]
		end := bytes.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		authority = rest[:end]
		if at := bytes.LastIndexByte(authority, '@'); at >= 0 {
			authority = authority[at+1:] // userinfo is never logged as host
		}
		target = rest[end:]
	}
	if i := bytes.IndexByte(target, '#'); i >= 0 {
		target = target[:i]
	}
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		return target[:i], target[i+1:], authority
	}
	return target, nil, authority
}

// sanitize turns a header value into a log-safe string: control bytes and
// invalid UTF-8 become \xNN, and the result is capped at MaxValueLen.
func sanitize(b []byte, truncated *bool) string {
	clean := len(b) <= MaxValueLen
	for _, ch := range b {
		if ch < 0x20 || ch >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, min(len(b)+16, MaxValueLen))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		var piece []byte
		var esc [4]byte
		switch {
		case b[0] < 0x20 || b[0] == 0x7f || (r == utf8.RuneError && size <= 1):
			esc = [4]byte{'\\', 'x', hex[b[0]>>4], hex[b[0]&15]}
			piece, size = esc[:], 1
		default:
			piece = b[:size]
		}
		if len(out)+len(piece) > MaxValueLen {
			*truncated = true
			break
		}
		out = append(out, piece...)
		b = b[size:]
	}
	return string(out)
}

// mimeType is the Content-Type without parameters, lower-cased.
func mimeType(v []byte, truncated *bool) string {
	if i := bytes.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = trimOWS(v)
	return sanitize(bytes.ToLower(v), truncated)
}

// headerDone parses a complete header block of h.
func (c *Conn) headerDone(h *half, ts int64) {
	block := h.hdr
	line := firstLine(block)
	var fields headerFields
	if i := bytes.IndexByte(block, '\n'); i >= 0 {
		fields = parseHeaders(block[i+1:])
	}
	hdrLen := int64(len(block))
	h.started, h.firstOK, h.lines, h.lineLen = false, false, 0, 0
	if h.server {
		c.responseHeader(h, line, fields, hdrLen)
	} else {
		c.requestHeader(h, line, fields, hdrLen)
	}
	// fields alias hdr: reuse it only now, and drop an unusually big one.
	if cap(h.hdr) > 4<<10 {
		h.hdr = nil
	} else if h.hdr != nil {
		h.hdr = h.hdr[:0]
	}
	_ = ts
}

func (c *Conn) requestHeader(h *half, line []byte, f headerFields, hdrLen int64) {
	method, target, version, ok := parseRequestLine(line)
	if !ok {
		c.stop(h, AnomalyNotHTTP)
		return
	}
	if c.n == MaxPending {
		c.stop(h, AnomalyTooManyPending)
		return
	}
	c.reqIdx = (c.head + c.n) % MaxPending
	c.n++
	c.stats.Requests++
	tx := &c.pending[c.reqIdx]
	*tx = Transaction{RequestTime: h.msgStart, RequestBytes: hdrLen}
	tr := &tx.Truncated
	tx.Method = sanitize(method, tr)
	tx.Target = sanitize(target, tr)
	tx.Version = string(version)
	path, query, authority := splitTarget(method, target)
	tx.Path = sanitize(path, tr)
	tx.Query = sanitize(query, tr)
	hostSrc := f.host
	if len(authority) > 0 {
		hostSrc = authority
	}
	host, port := splitHostPort(hostSrc)
	tx.Host = sanitize(bytes.ToLower(host), tr)
	tx.Port = port
	tx.UserAgent = sanitize(f.userAgent, tr)
	tx.RequestContentType = sanitize(f.contentType, tr)

	c.reqOpen = true
	switch {
	case f.haveTE && f.chunked:
		h.state, h.remain, h.chunkLen, h.chunkDig, h.chunkExt = stChunkSize, 0, 0, 0, false
	case f.haveTE:
		c.stop(h, AnomalyBadTransferEncoding)
	case f.badCL:
		c.stop(h, AnomalyBadContentLength)
	case f.contentLength > 0:
		h.state, h.remain = stBodyLength, f.contentLength
	default:
		c.reqOpen = false
		if string(method) == "CONNECT" {
			h.state = stAwaitConnect
		}
	}
}

func (c *Conn) responseHeader(h *half, line []byte, f headerFields, hdrLen int64) {
	version, code, ok := parseStatusLine(line)
	if !ok {
		c.stop(h, AnomalyNotHTTP)
		return
	}
	if code < 200 && code != 101 {
		c.stats.Interim++ // 100 Continue, 103 Early Hints: the final response follows
		return
	}
	c.stats.Responses++
	var tx *Transaction
	if c.n > 0 {
		tx = &c.pending[c.head]
	} else {
		c.orphan = Transaction{Version: string(version), Anomaly: AnomalyUnmatchedResponse}
		c.orphanOn = true
		tx = &c.orphan
	}
	c.respOpen = true
	tx.Status = code
	tx.MimeType = mimeType(f.contentType, &tx.Truncated)
	tx.ResponseTime = h.msgStart
	tx.ResponseBytes = hdrLen
	method := tx.Method
	if method == "CONNECT" && code/100 != 2 && c.client.state == stAwaitConnect {
		c.client.state = stHeaders // refused: the client may retry on this connection
	}
	switch {
	case code == 101 || (method == "CONNECT" && code/100 == 2):
		tx.Tunnel = true
		c.emitResponse(OutcomeComplete)
		c.stop(&c.client, AnomalyNone)
		c.stop(h, AnomalyNone)
	case method == "HEAD" || code == 204 || code == 304:
		c.messageDone(h)
	case f.haveTE && f.chunked:
		h.state, h.remain, h.chunkLen, h.chunkDig, h.chunkExt = stChunkSize, 0, 0, 0, false
	case f.haveTE:
		h.state = stUntilClose // a non-chunked coding is delimited by the close
	case f.badCL:
		c.stop(h, AnomalyBadContentLength)
	case f.haveCL && f.contentLength > 0:
		h.state, h.remain = stBodyLength, f.contentLength
	case f.haveCL:
		c.messageDone(h)
	default:
		h.state = stUntilClose
	}
}
