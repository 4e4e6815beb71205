package http

// knownMethods are the request methods Sniff accepts: RFC 9110, WebDAV,
// CalDAV, SSDP and common cache/proxy extensions. Conn itself accepts any
// token as a method once a stream is known to be HTTP.
var knownMethods = [...]string{
	"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
	"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
	"REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "MKCALENDAR", "VERSION-CONTROL",
	"BIND", "REBIND", "UNBIND", "ACL", "LINK", "UNLINK", "PURGE",
	"M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
}

// Verdict is the result of sniffing the start of a stream.
type Verdict uint8

// Sniff verdicts.
const (
	SniffNo    Verdict = iota // not an HTTP/1.x request line
	SniffMaybe                // a valid prefix: more bytes are needed
	SniffYes                  // METHOD SP target SP HTTP/1.x
)

// maxSniffTarget bounds how far Sniff looks for the end of the target.
const maxSniffTarget = 8 << 10

// LooksLikeRequest reports whether b starts with a complete HTTP/1.x request
// line of a known method (the CRLF itself is not required), so HTTP can be
// recognised on any port. Use Sniff to tell "not yet" from "no".
func LooksLikeRequest(b []byte) bool { return Sniff(b) == SniffYes }

// Sniff classifies the first bytes of a client stream.
func Sniff(b []byte) Verdict {
	sp := -1
	for i := 0; i < len(b) && i <= len("VERSION-CONTROL"); i++ {
		if b[i] == ' ' {
			sp = i
			break
		}
	}
	if sp < 0 {
		if len(b) > len("VERSION-CONTROL") || !isMethodPrefix(b) {
			return SniffNo
		}
		return SniffMaybe
	}
	if !isKnownMethod(b[:sp]) {
		return SniffNo
	}
	rest := b[sp+1:]
	end := -1
	for i, c := range rest {
		if c == ' ' {
			end = i
			break
		}
		if c <= 0x20 || c == 0x7f || i >= maxSniffTarget {
			return SniffNo
		}
	}
	if end < 0 {
		return SniffMaybe
	}
	if end == 0 {
		return SniffNo
	}
	ver := rest[end+1:]
	const want = "HTTP/1.x"
	for i := 0; i < len(want); i++ {
		if i >= len(ver) {
			return SniffMaybe
		}
		if i == len(want)-1 {
			if ver[i] < '0' || ver[i] > '9' {
				return SniffNo
			}
		} else if ver[i] != want[i] {
			return SniffNo
		}
	}
	if len(ver) > len(want) && ver[len(want)] != '\r' && ver[len(want)] != '\n' {
		return SniffNo
	}
	return SniffYes
}

func isKnownMethod(m []byte) bool {
	for _, k := range knownMethods {
		if string(m) == k {
			return true
		}
	}
	return false
}

func isMethodPrefix(b []byte) bool {
	for _, k := range knownMethods {
		if len(b) <= len(k) && k[:len(b)] == string(b) {
			return true
		}
	}
	return false
}
