package dissect

import (
	"bytes"

	"github.com/phonehome/phonehome/capture/flow"
)

// STARTTLS (SMTP RFC 3207, POP3 STLS RFC 2595, IMAP RFC 3501, FTP AUTH TLS
// RFC 4217) is followed only to find where TLS starts: the cleartext
// dialogue is read line by line until the server accepts the client's
// upgrade command; the flow's protocol is then recognised afresh from the
// client's next bytes (its ClientHello).

// Limits of the cleartext dialogue.
const (
	// startTLSMax is how many bytes both sides may exchange before the
	// upgrade; a session that never upgrades is left after it.
	startTLSMax = 16 << 10
	// startTLSLine bounds one buffered line; longer lines are skipped.
	startTLSLine = 512
)

type startTLSKind uint8

const (
	kindSMTP startTLSKind = iota + 1 // and FTP: numeric replies
	kindPOP3
	kindIMAP
)

// startTLSState follows one cleartext dialogue.
type startTLSState struct {
	kind      startTLSKind
	requested bool   // the client asked to upgrade
	tag       []byte // the IMAP command tag of the request
	line      [2][]byte
	skipping  [2]bool // inside a line longer than startTLSLine
	seen      int
}

// startTLSGreeting recognises a server greeting of a protocol that may
// upgrade to TLS.
func startTLSGreeting(b []byte) startTLSKind {
	switch {
	case len(b) >= 4 && bytes.HasPrefix(b, []byte("220")) && (b[3] == ' ' || b[3] == '-'):
		return kindSMTP // SMTP and FTP greet with 220
	case bytes.HasPrefix(b, []byte("+OK")):
		return kindPOP3
	case bytes.HasPrefix(b, []byte("* OK")), bytes.HasPrefix(b, []byte("* PREAUTH")):
		return kindIMAP
	}
	return 0
}

// feed reads one direction's bytes. It returns the bytes after the
// server's acceptance (the tunnel's first bytes, usually none), done once
// TLS starts, and ok false when the dialogue ran past its budget.
func (s *startTLSState) feed(dir flow.Direction, b []byte) (rest []byte, done, ok bool) {
	s.seen += len(b)
	if s.seen > startTLSMax {
		return nil, false, false
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.append(dir, b)
			return nil, false, true
		}
		s.append(dir, b[:i])
		b = b[i+1:]
		if !s.skipping[dir] && s.onLine(dir, bytes.TrimRight(s.line[dir], "\r")) {
			return b, true, true
		}
		s.line[dir], s.skipping[dir] = s.line[dir][:0], false
	}
	return nil, false, true
}

func (s *startTLSState) append(dir flow.Direction, b []byte) {
	if s.skipping[dir] || len(s.line[dir])+len(b) > startTLSLine {
		s.skipping[dir] = true
		return
	}
	s.line[dir] = append(s.line[dir], b...)
}

// onLine reads one whole line; true when the server accepted the upgrade.
func (s *startTLSState) onLine(dir flow.Direction, l []byte) bool {
	if dir == flow.FromClient {
		cmd, tag := bytes.TrimSpace(l), []byte(nil)
		if s.kind == kindIMAP {
			sp := bytes.IndexByte(cmd, ' ')
			if sp < 0 {
				return false
			}
			tag, cmd = cmd[:sp], bytes.TrimSpace(cmd[sp+1:])
		}
		switch {
		case s.kind == kindSMTP && (bytes.EqualFold(cmd, []byte("STARTTLS")) ||
			bytes.EqualFold(cmd, []byte("AUTH TLS")) || bytes.EqualFold(cmd, []byte("AUTH SSL"))):
		case s.kind == kindPOP3 && bytes.EqualFold(cmd, []byte("STLS")):
		case s.kind == kindIMAP && bytes.EqualFold(cmd, []byte("STARTTLS")):
			s.tag = append(s.tag[:0], tag...)
		default:
			s.requested = false // another command: any earlier request was answered
			return false
		}
		s.requested = true
		return false
	}
	if !s.requested {
		return false
	}
	switch s.kind {
	case kindSMTP:
		if len(l) < 4 || l[3] == '-' {
			return false // a continuation line
		}
		// 220 answers SMTP STARTTLS, 234 answers FTP AUTH TLS.
		if bytes.HasPrefix(l, []byte("220")) || bytes.HasPrefix(l, []byte("234")) {
			return true
		}
		s.requested = false
	case kindPOP3:
		if bytes.HasPrefix(l, []byte("+OK")) {
			return true
		}
		s.requested = false
	case kindIMAP:
		rest, ok := bytes.CutPrefix(l, s.tag)
		if !ok || len(rest) == 0 || rest[0] != ' ' {
			return false // untagged data
		}
		if bytes.HasPrefix(bytes.ToUpper(bytes.TrimSpace(rest)), []byte("OK")) {
			return true
		}
		s.requested = false
	}
	return false
}
