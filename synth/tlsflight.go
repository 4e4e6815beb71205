package synth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// Flight is the bytes one side wrote during a handshake, in order.
type Flight struct {
	FromClient bool
	Data       []byte
}

type recordingConn struct {
	net.Conn
	mu         *sync.Mutex
	log        *[]Flight
	fromClient bool
}

func (r *recordingConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	l := *r.log
	if n := len(l); n > 0 && l[n-1].FromClient == r.fromClient {
		l[n-1].Data = append(l[n-1].Data, b...)
	} else {
		l = append(l, Flight{r.fromClient, append([]byte(nil), b...)})
	}
	*r.log = l
	r.mu.Unlock()
	return r.Conn.Write(b)
}

// ClientHello returns the first flight Go's crypto/tls client writes with
// cfg (a TLS record holding the ClientHello). No server answers.
func ClientHello(cfg *tls.Config) ([]byte, error) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		c := tls.Client(a, cfg)
		done <- c.Handshake()
	}()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	// The hello may arrive in several writes; read until a whole record.
	for {
		n, err := b.Read(tmp)
		if err != nil {
			return nil, fmt.Errorf("synth: read client hello: %w", err)
		}
		buf = append(buf, tmp[:n]...)
		if len(buf) >= 5 && len(buf) >= 5+int(buf[3])<<8|int(buf[4]) {
			break
		}
	}
	a.Close()
	<-done
	return buf, nil
}

// Handshake runs a full TLS handshake between Go's client and server over an
// in-memory pipe and returns what each side wrote, in order, plus one
// application-data exchange (request then response).
func Handshake(client, server *tls.Config, request, response []byte) ([]Flight, error) {
	a, b := net.Pipe()
	var mu sync.Mutex
	var log []Flight
	ca := &recordingConn{Conn: a, mu: &mu, log: &log, fromClient: true}
	sb := &recordingConn{Conn: b, mu: &mu, log: &log, fromClient: false}
	errc := make(chan error, 1)
	// The server never sends close_notify: the recording must end with the
	// response, whatever the goroutines' timing.
	go func() {
		s := tls.Server(sb, server)
		if err := s.Handshake(); err != nil {
			errc <- err
			return
		}
		buf := make([]byte, len(request))
		if _, err := ioReadFull(s, buf); err != nil {
			errc <- err
			return
		}
		_, err := s.Write(response)
		errc <- err
	}()
	c := tls.Client(ca, client)
	if err := c.Handshake(); err != nil {
		a.Close()
		b.Close()
		<-errc
		return nil, fmt.Errorf("synth: handshake: %w", err)
	}
	if _, err := c.Write(request); err != nil {
		return nil, fmt.Errorf("synth: write request: %w", err)
	}
	buf := make([]byte, len(response))
	if _, err := ioReadFull(c, buf); err != nil {
		return nil, fmt.Errorf("synth: read response: %w", err)
	}
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("synth: server: %w", err)
	}
	a.Close()
	b.Close()
	mu.Lock()
	defer mu.Unlock()
	return append([]Flight(nil), log...), nil
}

func ioReadFull(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// SelfSigned returns a certificate for the given names with the given
// subject, valid around now.
func SelfSigned(subject pkix.Name, names []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("synth: key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      subject,
		Issuer:       subject,
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("synth: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ReplayFlights writes recorded handshake flights as TCP segments of conn.
func (t *TCPConn) ReplayFlights(flights []Flight) {
	for _, f := range flights {
		t.Send(f.FromClient, f.Data)
	}
}
