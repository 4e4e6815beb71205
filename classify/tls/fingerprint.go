package tls

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
)

// fpScratch is the stack buffer size for building fingerprint strings; a
// typical browser JA3 or JA4_r string is 300-600 bytes. Longer ones spill to
// the heap, which is correct, only slower.
const fpScratch = 1024

// JA3 returns the JA3 string and its lower-case MD5 hex (salesforce/ja3):
// legacy_version, ciphers, extensions, supported groups and EC point formats
// as decimals joined by '-', fields joined by ','; GREASE removed from
// ciphers, extensions and groups.
func (c *ClientHello) JA3() (raw, md5hex string) {
	var buf [fpScratch]byte
	b := strconv.AppendUint(buf[:0], uint64(c.LegacyVersion), 10)
	b = append(b, ',')
	b = appendDecList(b, c.CipherSuites, true)
	b = append(b, ',')
	b = appendDecList(b, c.Extensions, true)
	b = append(b, ',')
	b = appendDecList(b, c.SupportedGroups, true)
	b = append(b, ',')
	for i, f := range c.ECPointFormats {
		if i > 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, uint64(f), 10)
	}
	return string(b), md5Hex(b)
}

// JA3S returns the JA3S string and its MD5 hex: legacy version, chosen
// cipher and extension types in wire order. As in the reference ja3s.py,
// GREASE is not removed here.
func (s *ServerHello) JA3S() (raw, md5hex string) {
	var buf [fpScratch]byte
	b := strconv.AppendUint(buf[:0], uint64(s.LegacyVersion), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(s.CipherSuite), 10)
	b = append(b, ',')
	b = appendDecList(b, s.Extensions, false)
	return string(b), md5Hex(b)
}

func appendDecList(b []byte, vs []uint16, skipGREASE bool) []byte {
	first := true
	for _, v := range vs {
		if skipGREASE && IsGREASE(v) {
			continue
		}
		if !first {
			b = append(b, '-')
		}
		first = false
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	return b
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	var out [2 * md5.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// JA4 returns the JA4 fingerprint (FoxIO JA4 specification, BSD-3):
// "t" or, with quic, "q"; the TLS version; "d"/"i" for SNI present or not;
// cipher and extension counts; the ALPN marker; then the truncated SHA-256
// of the sorted ciphers and of the sorted extensions (less SNI and ALPN)
// with the signature algorithms. GREASE is ignored everywhere, signature
// algorithms included, as the specification says.
func (c *ClientHello) JA4(quic bool) string { return c.ja4(quic, false, false) }

// JA4R returns JA4_r: the JA4 with its two lists written out unhashed.
func (c *ClientHello) JA4R(quic bool) string { return c.ja4(quic, true, false) }

// JA4O returns JA4_o: lists in wire order, SNI and ALPN kept, hashed.
func (c *ClientHello) JA4O(quic bool) string { return c.ja4(quic, false, true) }

// JA4RO returns JA4_ro: lists in wire order, SNI and ALPN kept, unhashed.
func (c *ClientHello) JA4RO(quic bool) string { return c.ja4(quic, true, true) }

// ja4Empty stands for a hash over an empty list, per the specification.
const ja4Empty = "000000000000"

func (c *ClientHello) ja4(quic, raw, original bool) string {
	var ciphersBuf, extsBuf, sigsBuf [128]uint16
	ciphers := appendNonGREASE(ciphersBuf[:0], c.CipherSuites, false)
	exts := appendNonGREASE(extsBuf[:0], c.Extensions, false)
	nExts := len(exts)
	if !original {
		exts = appendNonGREASE(exts[:0], exts, true)
		slices.Sort(ciphers)
		slices.Sort(exts)
	}
	sigs := appendNonGREASE(sigsBuf[:0], c.SignatureAlgorithms, false)

	var out [fpScratch]byte
	b := out[:0]
	if quic {
		b = append(b, 'q')
	} else {
		b = append(b, 't')
	}
	b = append(b, ja4Version(c.ja4VersionValue())...)
	if c.hasSNIExt {
		b = append(b, 'd')
	} else {
		b = append(b, 'i')
	}
	b = appendCount(b, len(ciphers))
	b = appendCount(b, nExts)
	b = c.appendALPNMarker(b)
	b = append(b, '_')

	var list [fpScratch]byte
	l := appendHexList(list[:0], ciphers)
	b = appendPart(b, l, raw, len(ciphers) == 0)
	b = append(b, '_')
	l = appendHexList(list[:0], exts)
	if len(sigs) > 0 {
		l = append(l, '_')
		l = appendHexList(l, sigs)
	}
	b = appendPart(b, l, raw, len(exts) == 0)
	return string(b)
}

// appendPart appends list itself (raw) or its 12-hex-digit SHA-256 prefix,
// or twelve zeros when the list is empty (not the hash of "").
func appendPart(b, list []byte, raw, empty bool) []byte {
	if raw {
		return append(b, list...)
	}
	if empty {
		return append(b, ja4Empty...)
	}
	sum := sha256.Sum256(list)
	var h [12]byte
	hex.Encode(h[:], sum[:6])
	return append(b, h[:]...)
}

// appendNonGREASE appends the non-GREASE values of src; dropSNIALPN also
// drops extensions 0x0000 and 0x0010 (JA4 c). src may alias dst[:0].
func appendNonGREASE(dst, src []uint16, dropSNIALPN bool) []uint16 {
	for _, v := range src {
		if IsGREASE(v) || dropSNIALPN && (v == ExtServerName || v == ExtALPN) {
			continue
		}
		dst = append(dst, v)
	}
	return dst
}

func appendHexList(b []byte, vs []uint16) []byte {
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
	}
	return b
}

func appendCount(b []byte, n int) []byte {
	n = min(n, 99)
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

// ja4VersionValue is the highest non-GREASE supported_versions entry, or
// legacy_version when that extension is absent or holds only GREASE.
func (c *ClientHello) ja4VersionValue() uint16 {
	var best uint16
	found := false
	for _, v := range c.SupportedVersions {
		if !IsGREASE(v) && (!found || v > best) {
			best, found = v, true
		}
	}
	if found {
		return best
	}
	return c.LegacyVersion
}

func ja4Version(v uint16) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

func isAlnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z'
}

// appendALPNMarker appends the first and last characters of the first ALPN
// value ("00" when there is none or it is empty; a 1-byte value is both).
// If either byte is not ASCII alphanumeric, the first and last hex digits
// of the value are used instead (high nibble of the first byte, low nibble
// of the last).
func (c *ClientHello) appendALPNMarker(b []byte) []byte {
	if c.alpnFirstLen == 0 {
		return append(b, '0', '0')
	}
	f, l := c.alpnFirst, c.alpnLast
	if isAlnum(f) && isAlnum(l) {
		return append(b, f, l)
	}
	return append(b, hexDigits[f>>4], hexDigits[l&0xf])
}
