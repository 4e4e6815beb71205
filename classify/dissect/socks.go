package dissect

import "github.com/phonehome/phonehome/capture/flow"

// SOCKS (RFC 1928, RFC 1929, and SOCKS4/4a) is followed only to find where
// the tunnel starts: once the proxy grants the CONNECT, the flow's protocol
// is recognised afresh from the client's next bytes (usually a TLS
// ClientHello to the real destination).

// socksMaxMessage bounds one SOCKS message: a SOCKS5 request with a
// 255-byte domain name, or a SOCKS4a request with a user id and domain, or
// a username/password subnegotiation of 2+255+255 bytes.
const socksMaxMessage = 520

// socksState follows a SOCKS negotiation. Each direction's messages are
// read in turn from a small buffer (bytes may arrive split).
type socksState struct {
	version byte // 4 or 5
	method  byte // SOCKS5 method the proxy chose
	// step counts the messages read per direction.
	step [2]int
	buf  [2][]byte
}

// looksLikeSOCKS recognises a client's opening SOCKS message: a SOCKS5
// greeting (version 5, 1 to 9 methods, the whole greeting and nothing
// more) or a SOCKS4/4a CONNECT or BIND request with its NUL-terminated
// user id.
func looksLikeSOCKS(b []byte) byte {
	switch {
	case len(b) >= 3 && b[0] == 5 && b[1] >= 1 && b[1] <= 9 && len(b) == 2+int(b[1]):
		for _, m := range b[2:] {
			if m > 0x09 && m < 0x80 || m == 0xff {
				return 0
			}
		}
		return 5
	case len(b) >= 9 && b[0] == 4 && (b[1] == 1 || b[1] == 2) && b[len(b)-1] == 0 && len(b) <= socksMaxMessage:
		return 4
	}
	return 0
}

// feed reads one direction's bytes. It returns the bytes that follow the
// proxy's final reply (the tunnel's first bytes, usually none), done once
// the tunnel is open, and ok false when the negotiation failed or is not
// SOCKS after all.
func (s *socksState) feed(dir flow.Direction, b []byte) (rest []byte, done, ok bool) {
	buf := append(s.buf[dir], b...)
	for {
		n, final, good := s.next(dir, buf)
		if !good || len(buf) > socksMaxMessage && n == 0 {
			return nil, false, false
		}
		if n == 0 {
			s.buf[dir] = buf
			return nil, false, true
		}
		buf = buf[n:]
		s.step[dir]++
		if final {
			s.buf = [2][]byte{}
			return buf, true, true
		}
		if len(buf) == 0 {
			s.buf[dir] = buf[:0]
			return nil, false, true
		}
	}
}

// next measures the next message of a direction in buf: its length (0 when
// incomplete), whether it is the proxy's grant that opens the tunnel, and
// false when it is not valid SOCKS or refuses the connection.
func (s *socksState) next(dir flow.Direction, b []byte) (n int, final, ok bool) {
	if len(b) == 0 {
		return 0, false, true
	}
	if s.version == 4 {
		if dir == flow.FromClient {
			if s.step[dir] > 0 {
				return 0, false, false // data before the grant
			}
			// VN CD DSTPORT DSTIP USERID\0 [DOMAIN\0 for 0.0.0.x]
			if len(b) < 9 {
				return 0, false, true
			}
			nul := indexByte(b[8:], 0)
			if nul < 0 {
				return 0, false, true
			}
			n = 8 + nul + 1
			if b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] != 0 { // SOCKS4a
				d := indexByte(b[n:], 0)
				if d < 0 {
					return 0, false, true
				}
				n += d + 1
			}
			return n, false, true
		}
		if len(b) < 8 {
			return 0, false, true
		}
		return 8, true, b[0] == 0 && b[1] == 0x5a
	}
	// SOCKS5. Client: greeting, [username/password], request.
	// Server: method choice, [auth status], reply.
	auth := s.method == 0x02
	step := s.step[dir]
	if dir == flow.FromClient {
		switch {
		case step == 0:
			if len(b) < 2 || len(b) < 2+int(b[1]) {
				return 0, false, true
			}
			return 2 + int(b[1]), false, true
		case step == 1 && auth:
			// VER ULEN UNAME PLEN PASSWD
			if len(b) < 2 || len(b) < 3+int(b[1]) {
				return 0, false, true
			}
			u := int(b[1])
			if len(b) < 3+u+int(b[2+u]) {
				return 0, false, true
			}
			return 3 + u + int(b[2+u]), false, b[0] == 1
		case step == 1 || step == 2 && auth:
			n, ok := socks5Address(b)
			return n, false, ok && b[0] == 5
		}
		return 0, false, false // data before the grant
	}
	switch {
	case step == 0:
		if len(b) < 2 {
			return 0, false, true
		}
		s.method = b[1]
		return 2, false, b[0] == 5 && b[1] != 0xff && (b[1] == 0 || b[1] == 2)
	case step == 1 && auth:
		if len(b) < 2 {
			return 0, false, true
		}
		return 2, false, b[1] == 0
	}
	n, ok = socks5Address(b)
	return n, n > 0, ok && b[0] == 5 && (n == 0 || b[1] == 0)
}

// socks5Address measures a SOCKS5 request or reply: VER CMD/REP RSV ATYP
// ADDR PORT. n is 0 while incomplete.
func socks5Address(b []byte) (n int, ok bool) {
	if len(b) < 5 {
		return 0, true
	}
	switch b[3] {
	case 1:
		n = 4 + 4 + 2
	case 3:
		n = 4 + 1 + int(b[4]) + 2
	case 4:
		n = 4 + 16 + 2
	default:
		return 0, false
	}
	if len(b) < n {
		return 0, true
	}
	return n, true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
