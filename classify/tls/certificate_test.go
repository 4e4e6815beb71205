package tls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	gotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	certNotBefore = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	certNotAfter  = time.Date(2027, 6, 7, 8, 9, 10, 0, time.UTC)
)

func testCert(t testing.TB) (gotls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x0123456789abcdef),
		Subject: pkix.Name{
			Country: []string{"US"}, Province: []string{"California"}, Locality: []string{"San Francisco"},
			Organization: []string{"Example, Inc."}, OrganizationalUnit: []string{"Ops", "Web"},
			CommonName: "test.example",
		},
		NotBefore:   certNotBefore,
		NotAfter:    certNotAfter,
		DNSNames:    []string{"test.example", "*.test.example"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.7")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return gotls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// goHandshake runs a crypto/tls client and server through a recording relay
// and returns both directions' bytes and the client's connection state.
func goHandshake(t testing.TB, ccfg, scfg *gotls.Config) (c2s, s2c []byte, cs gotls.ConnectionState) {
	t.Helper()
	cliApp, cliNet := net.Pipe()
	srvNet, srvApp := net.Pipe()
	var mu sync.Mutex
	var wg sync.WaitGroup
	relay := func(dst, src net.Conn, rec *[]byte) {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			mu.Lock()
			*rec = append(*rec, buf[:n]...)
			mu.Unlock()
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	wg.Add(3)
	go relay(srvNet, cliNet, &c2s)
	go relay(cliNet, srvNet, &s2c)
	go func() {
		defer wg.Done()
		_ = gotls.Server(srvApp, scfg).Handshake()
	}()
	for _, c := range []net.Conn{cliApp, srvApp} {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	cli := gotls.Client(cliApp, ccfg)
	if err := cli.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	cs = cli.ConnectionState()
	cliApp.Close()
	srvApp.Close()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return c2s, s2c, cs
}

func TestGoServerFlight(t *testing.T) {
	cert, leaf := testCert(t)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	c2s, s2c, cs := goHandshake(t,
		&gotls.Config{ServerName: "test.example", RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}, MaxVersion: gotls.VersionTLS12},
		&gotls.Config{Certificates: []gotls.Certificate{cert}, NextProtos: []string{"h2"}})

	var hellos []*ClientHello
	cr := NewHandshakeReader(func(m Message) bool {
		if m.Type == TypeClientHello {
			c, err := m.ClientHello()
			if err != nil {
				t.Errorf("client hello: %v", err)
			}
			hellos = append(hellos, c)
		}
		return true
	})
	if err := cr.Feed(c2s); err != nil {
		t.Fatal(err)
	}
	if len(hellos) != 1 || hellos[0].ServerName != "test.example" || hellos[0].RecordVersion == 0 {
		t.Fatalf("client hellos: %+v", hellos)
	}

	var sh *ServerHello
	var certs []Certificate
	var types []uint8
	sr := NewHandshakeReader(func(m Message) bool {
		types = append(types, m.Type)
		var err error
		switch m.Type {
		case TypeServerHello:
			sh, err = m.ServerHello()
		case TypeCertificate:
			certs, err = ParseCertificateMessage(m.Data)
		}
		if err != nil {
			t.Errorf("type %d: %v", m.Type, err)
		}
		return true
	})
	// Feed in awkward 3-byte pieces.
	for i := 0; i < len(s2c); i += 3 {
		if err := sr.Feed(s2c[i:min(i+3, len(s2c))]); err != nil {
			t.Fatal(err)
		}
	}
	if _, why := sr.Stopped(); why != StopChangeCipherSpec {
		t.Errorf("server direction stop: %v", why)
	}
	// ServerHello, Certificate, ServerKeyExchange, ServerHelloDone.
	if !slices.Equal(types, []uint8{2, 11, 12, 14}) {
		t.Errorf("server messages %v", types)
	}
	if sh == nil || sh.CipherSuite != cs.CipherSuite || sh.ALPN != cs.NegotiatedProtocol || sh.Version() != cs.Version || sh.HelloRetryRequest {
		t.Fatalf("ServerHello %+v vs state %+v", sh, cs)
	}
	if raw, _ := sh.JA3S(); !strings.HasPrefix(raw, "771,") {
		t.Errorf("JA3S %s", raw)
	}
	if len(certs) != 1 {
		t.Fatalf("%d certificates", len(certs))
	}
	c := certs[0]
	sum := sha256.Sum256(leaf.Raw)
	if c.SHA256 != strings.ToUpper(hexString(sum[:])) || !bytes.Equal(c.DER, leaf.Raw) || c.ParseError != "" {
		t.Errorf("hash %s, parse error %q", c.SHA256, c.ParseError)
	}
	wantDN := `C=US, ST=California, L=San Francisco, O=Example\, Inc., OU=Ops+OU=Web, CN=test.example` // Go puts both OUs in one multi-valued RDN
	if c.Subject.DistinguishedName != wantDN || c.Issuer.DistinguishedName != wantDN {
		t.Errorf("DN %q / %q, want %q", c.Subject.DistinguishedName, c.Issuer.DistinguishedName, wantDN)
	}
	n := c.Subject
	if !slices.Equal(n.CommonName, []string{"test.example"}) || !slices.Equal(n.Country, []string{"US"}) ||
		!slices.Equal(n.Organization, []string{"Example, Inc."}) || !slices.Equal(n.OrganizationalUnit, []string{"Ops", "Web"}) ||
		!slices.Equal(n.Locality, []string{"San Francisco"}) || !slices.Equal(n.StateOrProvince, []string{"California"}) {
		t.Errorf("subject %+v", n)
	}
	if c.SerialNumber != "0123456789ABCDEF" || !c.NotBefore.Equal(certNotBefore) || !c.NotAfter.Equal(certNotAfter) {
		t.Errorf("serial %s validity %v %v", c.SerialNumber, c.NotBefore, c.NotAfter)
	}
	if !slices.Equal(c.AlternativeNames, []string{"test.example", "*.test.example", "192.0.2.7"}) {
		t.Errorf("SAN %q", c.AlternativeNames)
	}
	if c.PublicKeyAlgorithm != "ECDSA" || c.PublicKeySize != 256 || c.SignatureAlgorithm != "ECDSA-SHA256" || c.VersionNumber != 3 {
		t.Errorf("key %s %d sig %s v%d", c.PublicKeyAlgorithm, c.PublicKeySize, c.SignatureAlgorithm, c.VersionNumber)
	}
}

func hexString(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(hexDigits[c>>4])
		s.WriteByte(hexDigits[c&0xf])
	}
	return s.String()
}

func certMessage(ders ...[]byte) []byte {
	var list []byte
	for _, d := range ders {
		list = append(be24(list, len(d)), d...)
	}
	return handshake(TypeCertificate, append(be24(nil, len(list)), list...))
}

func TestParseCertificateMessageRejectedCert(t *testing.T) {
	_, leaf := testCert(t)
	// Spoil the public key point: crypto/x509 refuses it, the lenient
	// decode still finds the names.
	der := slices.Clone(leaf.Raw)
	pub := leaf.PublicKey.(*ecdsa.PublicKey)
	point, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	xb := point[1:33]
	i := bytes.Index(der, xb)
	if i < 0 {
		t.Fatal("public key not found in DER")
	}
	der[i+5] ^= 0xff
	certs, err := ParseCertificateMessage(certMessage(der, []byte{0x30, 0x03, 1, 2, 3}))
	if err != nil || len(certs) != 2 {
		t.Fatalf("%v, %d certs", err, len(certs))
	}
	c := certs[0]
	sum := sha256.Sum256(der)
	if c.ParseError == "" || c.SHA256 != strings.ToUpper(hexString(sum[:])) {
		t.Errorf("spoilt cert: parse error %q hash %s", c.ParseError, c.SHA256)
	}
	if !slices.Equal(c.Subject.CommonName, []string{"test.example"}) || c.SerialNumber != "0123456789ABCDEF" || !c.NotAfter.Equal(certNotAfter) {
		t.Errorf("lenient decode: %+v", c)
	}
	if certs[1].ParseError == "" || len(certs[1].SHA256) != 64 {
		t.Errorf("junk cert: %+v", certs[1])
	}

	// Lying lengths.
	good := certMessage(leaf.Raw)
	for i := 4; i < 10; i++ {
		bad := slices.Clone(good)
		bad[i] = 0xff
		if _, err := ParseCertificateMessage(bad); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
			t.Errorf("byte %d lying: %v", i, err)
		}
	}
	for i := 0; i < len(good); i++ {
		if _, err := ParseCertificateMessage(good[:i]); err == nil {
			t.Fatalf("prefix %d: no error", i)
		}
	}
	// More than MaxCertificates.
	many := make([][]byte, MaxCertificates+2)
	for i := range many {
		many[i] = leaf.Raw
	}
	certs, err = ParseCertificateMessage(certMessage(many...))
	if len(certs) != MaxCertificates || !errors.Is(err, ErrMalformed) {
		t.Errorf("too many: %d certs, %v", len(certs), err)
	}
}

func TestEscapeDN(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"a,b+c":        `a\,b\+c`,
		" lead":        `\ lead`,
		"trail ":       `trail\ `,
		"#x":           `\#x`,
		"Zürich":       "Zürich",
		"bad\x00\xff":  `bad\x00\xff`,
		"back\\slash":  `back\\slash`,
		"line\nbreak;": `line\x0abreak\;`,
	} {
		if got := escapeDNValue(in); got != want {
			t.Errorf("escapeDNValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// A real HelloRetryRequest from crypto/tls: the client's key share (X25519)
// is not what the server wants (P-384 only).
func TestGoHelloRetryRequest(t *testing.T) {
	cert, leaf := testCert(t)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	c2s, s2c, cs := goHandshake(t,
		&gotls.Config{ServerName: "test.example", RootCAs: pool, CurvePreferences: []gotls.CurveID{gotls.X25519, gotls.CurveP384}},
		&gotls.Config{Certificates: []gotls.Certificate{cert}, CurvePreferences: []gotls.CurveID{gotls.CurveP384}})
	if cs.Version != gotls.VersionTLS13 {
		t.Fatalf("version %#x", cs.Version)
	}
	var hellos []*ClientHello
	cr := NewHandshakeReader(func(m Message) bool {
		if c, err := m.ClientHello(); err == nil {
			hellos = append(hellos, c)
		}
		return true
	})
	_ = cr.Feed(c2s)
	var servers []*ServerHello
	sr := NewHandshakeReader(func(m Message) bool {
		if s, err := m.ServerHello(); err == nil {
			servers = append(servers, s)
		}
		return true
	})
	_ = sr.Feed(s2c)
	if len(hellos) != 2 || len(servers) != 2 {
		t.Fatalf("%d client hellos, %d server hellos", len(hellos), len(servers))
	}
	if !servers[0].HelloRetryRequest || servers[1].HelloRetryRequest || servers[1].CipherSuite != cs.CipherSuite || servers[1].Version() != gotls.VersionTLS13 {
		t.Errorf("server hellos %+v %+v", servers[0], servers[1])
	}
	if !slices.Equal(hellos[0].CipherSuites, hellos[1].CipherSuites) || hellos[1].ServerName != "test.example" {
		t.Errorf("client hellos %+v %+v", hellos[0], hellos[1])
	}
	for _, r := range []*HandshakeReader{cr, sr} {
		if _, why := r.Stopped(); why != StopApplicationData {
			t.Errorf("stop %v", why)
		}
	}
}
