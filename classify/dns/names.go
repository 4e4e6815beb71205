package dns

import "strings"

// SanitizeName makes a presentation-format name safe and canonical for logs:
// ASCII letters lower-cased, one trailing (unescaped) dot removed, the root
// name as ".", the empty string as "", and every byte outside printable ASCII
// (below 0x20, 0x7F and above) escaped as \DDD with three decimal digits, the
// escape miekg/dns itself writes. Escapes already present (\DDD, \.) are kept
// as they are, so a name decoded by miekg/dns is not escaped twice. The result
// holds only printable ASCII, so it cannot break a JSON line or a terminal.
// It does not allocate when the name is already canonical.
func SanitizeName(s string) string {
	if s == "." {
		return "."
	}
	if n := len(s); n > 0 && s[n-1] == '.' && !escapedAt(s, n-1) {
		s = s[:n-1]
		if s == "" {
			return "."
		}
	}
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7E || ('A' <= c && c <= 'Z') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			sb.WriteByte(c + ('a' - 'A'))
		case c < 0x20 || c > 0x7E:
			writeDDD(&sb, c)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// escapeUnprintable escapes bytes outside printable ASCII as \DDD and leaves
// the rest (including case) alone; used for RDATA text.
func escapeUnprintable(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x7E {
		i++
	}
	if i == len(s) {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	sb.WriteString(s[:i])
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7E {
			writeDDD(&sb, c)
		} else {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

func writeDDD(sb *strings.Builder, c byte) {
	sb.WriteByte('\\')
	sb.WriteByte('0' + c/100)
	sb.WriteByte('0' + c/10%10)
	sb.WriteByte('0' + c%10)
}

// escapedAt reports whether s[i] is preceded by an odd number of backslashes.
func escapedAt(s string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}
