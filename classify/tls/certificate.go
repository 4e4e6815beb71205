package tls

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxCertificates bounds how many certificates of one Certificate message
// are decoded; real chains hold 2-4. Further entries are counted in the
// error, not parsed.
const MaxCertificates = 16

// Name is an X.509 subject or issuer in the shape of ECS
// tls.server.x509.{subject,issuer}.*. Values are escaped: control bytes and
// invalid UTF-8 appear as \xNN.
type Name struct {
	// DistinguishedName lists the RDNs in certificate order, "C=US, O=Example
	// Inc, CN=example.com", as the ECS examples show; special characters in
	// values are escaped as RFC 4514 says.
	DistinguishedName  string
	CommonName         []string
	Country            []string
	Organization       []string
	OrganizationalUnit []string
	Locality           []string
	StateOrProvince    []string
}

// Certificate summarises one certificate of a Certificate message for ECS
// tls.server.* and tls.server.x509.*.
type Certificate struct {
	// DER is a copy of the certificate bytes (for tls.server.certificate).
	DER []byte
	// SHA256, SHA1 and MD5 are upper-case hex digests of DER
	// (tls.server.hash.*).
	SHA256, SHA1, MD5 string
	Subject, Issuer   Name
	// SerialNumber is upper-case hex without separators, as in ECS.
	SerialNumber        string
	NotBefore, NotAfter time.Time
	// AlternativeNames holds DNS names, IP addresses, e-mail addresses and
	// URIs of the subjectAltName extension, escaped.
	AlternativeNames   []string
	PublicKeyAlgorithm string
	PublicKeySize      int
	SignatureAlgorithm string
	VersionNumber      int
	// ParseError is why crypto/x509 rejected the certificate, "" if it did
	// not. The hashes are always set; subject, issuer, serial and validity
	// then come from a lenient decode of the TBSCertificate when possible.
	ParseError string
}

// ParseCertificateMessage decodes a TLS 1.2-and-older Certificate handshake
// message (type 11: a 24-bit list length, then 24-bit-length-prefixed DER
// certificates). It returns every certificate it could frame, at most
// MaxCertificates, in the order sent (leaf first). A framing defect returns
// the certificates before it with an error wrapping ErrTruncated or
// ErrMalformed; a certificate that crypto/x509 rejects is reported in its
// ParseError, not as an error.
func ParseCertificateMessage(msg []byte) ([]Certificate, error) {
	var p problem
	body, err := handshakeBody(msg, TypeCertificate, &p)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate: %w", err)
	}
	cur := cursor{body}
	total, ok := cur.u24()
	if !ok {
		overrun(&p, "certificate_list length", 3, cur.len())
		return nil, fmt.Errorf("tls: certificate: %w", p.err)
	}
	list, ok := cur.bytes(total)
	if !ok {
		list = cur.b
		overrun(&p, "certificate_list", total, cur.len())
	}
	var certs []Certificate
	lc := cursor{list}
	skipped := 0
	for lc.len() > 0 {
		l, ok := lc.u24()
		if !ok {
			overrun(&p, "certificate length", 3, lc.len())
			break
		}
		der, ok := lc.bytes(l)
		if !ok {
			overrun(&p, "certificate", l, lc.len())
			break
		}
		if len(certs) == MaxCertificates {
			skipped++
			continue
		}
		certs = append(certs, parseCertificate(der))
	}
	if skipped > 0 {
		p.set(false, ErrMalformed, "%d certificates beyond the limit of %d not decoded", skipped, MaxCertificates)
	}
	if p.err != nil {
		return certs, fmt.Errorf("tls: certificate: %w", p.err)
	}
	return certs, nil
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func parseCertificate(der []byte) Certificate {
	s256 := sha256.Sum256(der)
	s1 := sha1.Sum(der)
	m5 := md5.Sum(der)
	c := Certificate{
		DER:    append([]byte(nil), der...),
		SHA256: upperHex(s256[:]),
		SHA1:   upperHex(s1[:]),
		MD5:    upperHex(m5[:]),
	}
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		c.ParseError = err.Error()
		c.fillLenient(c.DER)
		return c
	}
	c.Subject = nameFromRaw(x.RawSubject)
	c.Issuer = nameFromRaw(x.RawIssuer)
	c.SerialNumber = serialHex(x.SerialNumber)
	c.NotBefore, c.NotAfter = x.NotBefore.UTC(), x.NotAfter.UTC()
	c.VersionNumber = x.Version
	c.SignatureAlgorithm = x.SignatureAlgorithm.String()
	c.PublicKeyAlgorithm = x.PublicKeyAlgorithm.String()
	switch k := x.PublicKey.(type) {
	case *rsa.PublicKey:
		c.PublicKeySize = k.N.BitLen()
	case *ecdsa.PublicKey:
		c.PublicKeySize = k.Curve.Params().BitSize
	case ed25519.PublicKey:
		c.PublicKeySize = 256
	}
	for _, n := range x.DNSNames {
		c.AlternativeNames = append(c.AlternativeNames, escapeText(n))
	}
	for _, ip := range x.IPAddresses {
		c.AlternativeNames = append(c.AlternativeNames, ip.String())
	}
	for _, e := range x.EmailAddresses {
		c.AlternativeNames = append(c.AlternativeNames, escapeText(e))
	}
	for _, u := range x.URIs {
		c.AlternativeNames = append(c.AlternativeNames, escapeText(u.String()))
	}
	return c
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		return "00"
	}
	s := upperHex(b)
	if n.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// laxCertificate decodes only the TBSCertificate fields we report, so that
// a certificate crypto/x509 refuses (negative serial, odd extension, bad
// key) still shows who it claims to be. Trailing TBS fields are ignored.
type laxCertificate struct {
	TBS laxTBS
}

type laxTBS struct {
	Version  int `asn1:"optional,explicit,default:0,tag:0"`
	Serial   asn1.RawValue
	SigAlg   pkix.AlgorithmIdentifier
	Issuer   asn1.RawValue
	Validity laxValidity
	Subject  asn1.RawValue
}

type laxValidity struct {
	NotBefore, NotAfter time.Time
}

func (c *Certificate) fillLenient(der []byte) {
	var lc laxCertificate
	if _, err := asn1.Unmarshal(der, &lc); err != nil {
		return
	}
	t := lc.TBS
	c.VersionNumber = t.Version + 1
	if t.Serial.Tag == asn1.TagInteger {
		c.SerialNumber = upperHex(t.Serial.Bytes)
	}
	c.Issuer = nameFromRaw(t.Issuer.FullBytes)
	c.Subject = nameFromRaw(t.Subject.FullBytes)
	c.NotBefore, c.NotAfter = t.Validity.NotBefore.UTC(), t.Validity.NotAfter.UTC()
}

// attrShort names the attribute types of RFC 4514 and a few common others.
var attrShort = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.5":                    "SERIALNUMBER",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "STREET",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.15":                   "businessCategory",
	"2.5.4.17":                   "POSTALCODE",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"1.3.6.1.4.1.311.60.2.1.1":   "jurisdictionL",
	"1.3.6.1.4.1.311.60.2.1.2":   "jurisdictionST",
	"1.3.6.1.4.1.311.60.2.1.3":   "jurisdictionC",
}

func nameFromRaw(raw []byte) Name {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &seq); err != nil || len(rest) != 0 {
		return Name{}
	}
	var n Name
	var dn strings.Builder
	for i, rdn := range seq {
		if i > 0 {
			dn.WriteString(", ")
		}
		for j, atv := range rdn {
			if j > 0 {
				dn.WriteByte('+')
			}
			oid := atv.Type.String()
			key, ok := attrShort[oid]
			if !ok {
				key = oid
			}
			val := attrValue(atv.Value)
			dn.WriteString(key)
			dn.WriteByte('=')
			dn.WriteString(escapeDNValue(val))
			ev := escapeText(val)
			switch oid {
			case "2.5.4.3":
				n.CommonName = append(n.CommonName, ev)
			case "2.5.4.6":
				n.Country = append(n.Country, ev)
			case "2.5.4.10":
				n.Organization = append(n.Organization, ev)
			case "2.5.4.11":
				n.OrganizationalUnit = append(n.OrganizationalUnit, ev)
			case "2.5.4.7":
				n.Locality = append(n.Locality, ev)
			case "2.5.4.8":
				n.StateOrProvince = append(n.StateOrProvince, ev)
			}
		}
	}
	n.DistinguishedName = dn.String()
	return n
}

func attrValue(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	default:
		return fmt.Sprint(t)
	}
}

// escapeText keeps printable UTF-8 (certificate names are often not ASCII)
// and writes control bytes, invalid UTF-8 and '\' as \xNN / \\.
func escapeText(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || r == '\\' || (r >= 0x80 && r < 0xa0) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError && size <= 1, r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
			for k := 0; k < size; k++ {
				c := s[i+k]
				b.WriteString(`\x`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// escapeDNValue applies RFC 4514 escaping on top of escapeText.
func escapeDNValue(s string) string {
	s = escapeText(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case strings.IndexByte(",+\"<>;=", c) >= 0,
			i == 0 && (c == '#' || c == ' '),
			i == len(s)-1 && c == ' ':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
