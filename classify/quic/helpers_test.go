package quic

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var hexSpace = regexp.MustCompile(`\s+`)

// readHex loads a testdata file of hex with '#' comment lines.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			sb.WriteString(line)
		}
	}
	b, err := hex.DecodeString(hexSpace.ReplaceAllString(sb.String(), ""))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return binary.BigEndian.AppendUint16(b, uint16(v)|0x4000)
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, uint32(v)|0x80000000)
	}
	return binary.BigEndian.AppendUint64(b, v|0xc0<<56)
}

// initialSpec describes an Initial packet for sealInitial, the test-only
// inverse of Conn's decryption (checked against the RFC vectors).
type initialSpec struct {
	version    uint32
	keyDCID    []byte // DCID the keys derive from
	dcid, scid []byte
	token      []byte
	pn         uint64
	pnLen      int
	fromClient bool
	payload    []byte
}

func sealInitial(t testing.TB, s initialSpec) []byte {
	t.Helper()
	p := params(s.version)
	if p == nil {
		t.Fatalf("unsupported version %x", s.version)
	}
	cs, ss, err := initialSecrets(p, s.keyDCID)
	if err != nil {
		t.Fatal(err)
	}
	secret := ss
	if s.fromClient {
		secret = cs
	}
	m, err := deriveMaterial(p, secret)
	if err != nil {
		t.Fatal(err)
	}
	payload := s.payload
	if need := 4 - s.pnLen; len(payload) < need { // room for the HP sample
		payload = append(bytes.Clone(payload), make([]byte, need-len(payload))...)
	}
	typeBits := byte(typeInitial)
	if p.isV2Types {
		typeBits = 1
	}
	h := []byte{0xc0 | typeBits<<4 | byte(s.pnLen-1)}
	h = binary.BigEndian.AppendUint32(h, s.version)
	h = append(h, byte(len(s.dcid)))
	h = append(h, s.dcid...)
	h = append(h, byte(len(s.scid)))
	h = append(h, s.scid...)
	h = appendVarint(h, uint64(len(s.token)))
	h = append(h, s.token...)
	length := s.pnLen + len(payload) + tagLen
	h = binary.BigEndian.AppendUint16(h, uint16(length)|0x4000)
	pnOff := len(h)
	for i := s.pnLen - 1; i >= 0; i-- {
		h = append(h, byte(s.pn>>(8*i)))
	}
	block, _ := aes.NewCipher(m.key)
	aead, _ := cipher.NewGCM(block)
	nonce := bytes.Clone(m.iv)
	for i := range 8 {
		nonce[ivLen-1-i] ^= byte(s.pn >> (8 * i))
	}
	pkt := aead.Seal(bytes.Clone(h), nonce, payload, h)
	hp, _ := aes.NewCipher(m.hp)
	var mask [16]byte
	hp.Encrypt(mask[:], pkt[pnOff+4:pnOff+4+sampleLen])
	pkt[0] ^= mask[0] & 0x0f
	for i := range s.pnLen {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

// cryptoFrame encodes a CRYPTO frame.
func cryptoFrame(offset uint64, data []byte) []byte {
	b := appendVarint([]byte{frameCrypto}, offset)
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

// fakeHello builds a handshake message of the given type and body length.
func fakeHello(typ byte, bodyLen int) []byte {
	m := []byte{typ, byte(bodyLen >> 16), byte(bodyLen >> 8), byte(bodyLen)}
	for i := range bodyLen {
		m = append(m, byte(i*7+3))
	}
	return m
}

// testSNI is a minimal ClientHello server_name reader used only by these
// tests so that they do not depend on the classify/tls package.
func testSNI(ch []byte) (string, bool) {
	if len(ch) < 4+2+32+1 || ch[0] != 1 {
		return "", false
	}
	b := ch[4:]
	b = b[2+32:]
	sid := int(b[0])
	if len(b) < 1+sid+2 {
		return "", false
	}
	b = b[1+sid:]
	cs := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+cs+1 {
		return "", false
	}
	b = b[2+cs:]
	cm := int(b[0])
	if len(b) < 1+cm+2 {
		return "", false
	}
	b = b[1+cm:]
	el := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < el {
		return "", false
	}
	b = b[:el]
	for len(b) >= 4 {
		typ := binary.BigEndian.Uint16(b)
		l := int(binary.BigEndian.Uint16(b[2:]))
		if len(b) < 4+l {
			return "", false
		}
		ext := b[4 : 4+l]
		b = b[4+l:]
		if typ != 0 {
			continue
		}
		// server_name_list: u16 length, then type(1) u16 len name.
		if len(ext) < 5 || ext[2] != 0 {
			return "", false
		}
		nl := int(binary.BigEndian.Uint16(ext[3:]))
		if len(ext) < 5+nl {
			return "", false
		}
		return string(ext[5 : 5+nl]), true
	}
	return "", false
}

func retryTag(t testing.TB, p *versionParams, pseudo []byte) []byte {
	block, err := aes.NewCipher(p.retryKey)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := cipher.NewGCM(block)
	return aead.Seal(nil, p.retryIV, nil, pseudo)
}
