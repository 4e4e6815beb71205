package tls

// Byte-by-byte builders for handshake messages and records, used to make
// test vectors whose every length field we control.

type ext struct {
	typ  uint16
	data []byte
}

type helloSpec struct {
	version   uint16
	random    [32]byte
	sessionID []byte
	ciphers   []uint16
	comp      []byte // nil means {0}
	exts      []ext
	noExts    bool // omit the extensions block entirely
}

func be16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }
func be24(b []byte, v int) []byte    { return append(b, byte(v>>16), byte(v>>8), byte(v)) }

func handshake(typ byte, body []byte) []byte {
	return append(be24([]byte{typ}, len(body)), body...)
}

func appendExts(b []byte, exts []ext) []byte {
	var blk []byte
	for _, e := range exts {
		blk = be16(blk, e.typ)
		blk = be16(blk, uint16(len(e.data)))
		blk = append(blk, e.data...)
	}
	b = be16(b, uint16(len(blk)))
	return append(b, blk...)
}

func buildClientHello(h helloSpec) []byte {
	b := be16(nil, h.version)
	b = append(b, h.random[:]...)
	b = append(b, byte(len(h.sessionID)))
	b = append(b, h.sessionID...)
	b = be16(b, uint16(2*len(h.ciphers)))
	for _, c := range h.ciphers {
		b = be16(b, c)
	}
	comp := h.comp
	if comp == nil {
		comp = []byte{0}
	}
	b = append(b, byte(len(comp)))
	b = append(b, comp...)
	if !h.noExts {
		b = appendExts(b, h.exts)
	}
	return handshake(TypeClientHello, b)
}

type serverSpec struct {
	version   uint16
	random    [32]byte
	sessionID []byte
	cipher    uint16
	exts      []ext
}

func buildServerHello(s serverSpec) []byte {
	b := be16(nil, s.version)
	b = append(b, s.random[:]...)
	b = append(b, byte(len(s.sessionID)))
	b = append(b, s.sessionID...)
	b = be16(b, s.cipher)
	b = append(b, 0)
	b = appendExts(b, s.exts)
	return handshake(TypeServerHello, b)
}

func list16(vs ...uint16) []byte {
	b := be16(nil, uint16(2*len(vs)))
	for _, v := range vs {
		b = be16(b, v)
	}
	return b
}

func extSNI(name string) ext {
	entry := append(be16([]byte{0}, uint16(len(name))), name...)
	return ext{ExtServerName, append(be16(nil, uint16(len(entry))), entry...)}
}

func extALPN(protos ...string) ext {
	var l []byte
	for _, p := range protos {
		l = append(append(l, byte(len(p))), p...)
	}
	return ext{ExtALPN, append(be16(nil, uint16(len(l))), l...)}
}

func extGroups(vs ...uint16) ext  { return ext{ExtSupportedGroups, list16(vs...)} }
func extSigAlgs(vs ...uint16) ext { return ext{ExtSignatureAlgorithms, list16(vs...)} }
func extFormats(fs ...byte) ext {
	return ext{ExtECPointFormats, append([]byte{byte(len(fs))}, fs...)}
}

func extVersions(vs ...uint16) ext {
	b := []byte{byte(2 * len(vs))}
	for _, v := range vs {
		b = be16(b, v)
	}
	return ext{ExtSupportedVersions, b}
}

// record wraps body in one TLS record.
func record(typ byte, ver uint16, body []byte) []byte {
	b := be16([]byte{typ}, ver)
	b = be16(b, uint16(len(body)))
	return append(b, body...)
}

// records splits a handshake byte stream into records of at most size bytes.
func records(ver uint16, stream []byte, size int) []byte {
	var out []byte
	for len(stream) > 0 {
		n := min(size, len(stream))
		out = append(out, record(contentHandshake, ver, stream[:n])...)
		stream = stream[n:]
	}
	return out
}

// specHello is the JA4 specification's example ClientHello (JA4.md), with
// GREASE added in every list where browsers put it.
func specHello() helloSpec {
	sig := []uint16{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601}
	exts := []ext{{0x0a0a, nil}}
	for _, t := range []uint16{0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015} {
		switch t {
		case ExtServerName:
			exts = append(exts, extSNI("Example.COM"))
		case ExtALPN:
			exts = append(exts, extALPN("h2", "http/1.1"))
		case ExtSignatureAlgorithms:
			exts = append(exts, extSigAlgs(sig...))
		case ExtSupportedVersions:
			exts = append(exts, extVersions(0x3a3a, 0x0304, 0x0303))
		case ExtSupportedGroups:
			exts = append(exts, extGroups(0x4a4a, 0x001d, 0x0017, 0x0018))
		case ExtECPointFormats:
			exts = append(exts, extFormats(0))
		default:
			exts = append(exts, ext{t, []byte{0}})
		}
	}
	exts = append(exts, ext{0xfafa, []byte{0}})
	return helloSpec{
		version:   0x0303,
		sessionID: make([]byte, 32),
		ciphers:   []uint16{0x2a2a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		exts:      exts,
	}
}
