package dissect

import (
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/classify/tls"
)

// tlsState follows one TLS handshake over TCP.
type tlsState struct {
	st         *state
	readers    [2]*tls.HandshakeReader
	client     *tls.ClientHello
	clientErr  error
	clientTS   int64
	server     *tls.ServerHello
	helloRetry bool // a HelloRetryRequest came before server
	// clientSSLv2: the client's hello is in SSLv2 format, which the
	// handshake reader does not read; only the server side is dissected.
	clientSSLv2 bool
	certs       []tls.Certificate
	serverDone  bool
	emitted     bool
	anomalies   []string
}

func newTLSState(st *state) *tlsState {
	t := &tlsState{st: st}
	for i := range t.readers {
		dir := flow.Direction(i)
		t.readers[i] = tls.NewHandshakeReader(func(m tls.Message) bool { return t.message(dir, m) })
	}
	return t
}

func (t *tlsState) feed(dir flow.Direction, b []byte, ts int64) bool {
	if dir == flow.FromClient && t.client == nil && t.clientTS == 0 {
		t.clientTS = ts
	}
	if dir == flow.FromClient && t.clientSSLv2 {
		if len(t.anomalies) == 0 {
			t.anomalies = append(t.anomalies, "tls: SSLv2-format client hello not fingerprinted")
		}
		return false
	}
	r := t.readers[dir]
	if err := r.Feed(b); err != nil {
		if t.clientErr == nil {
			t.anomalies = append(t.anomalies, "tls: "+err.Error())
		}
		if dir == flow.FromServer {
			t.serverDone = true
		}
		t.maybeEmit()
		return false
	}
	if stopped, _ := r.Stopped(); stopped {
		if dir == flow.FromServer {
			t.serverDone = true
			t.maybeEmit()
		}
		return false
	}
	return true
}

// message takes one handshake message; false stops that direction.
func (t *tlsState) message(dir flow.Direction, m tls.Message) bool {
	switch {
	case dir == flow.FromClient && m.Type == tls.TypeClientHello:
		if t.client != nil {
			return true // a second hello after HelloRetryRequest: keep the first
		}
		ch, err := m.ClientHello()
		if ch == nil {
			t.anomalies = append(t.anomalies, "tls: client hello: "+err.Error())
			t.st.d.stats.TLSMalformed.Add(1)
			return false
		}
		if err != nil {
			t.clientErr = err
			t.anomalies = append(t.anomalies, "tls: client hello: "+ch.Anomaly)
			t.st.d.stats.TLSMalformed.Add(1)
		}
		t.client = ch
		// The client's later messages are encrypted (TLS 1.3) or not needed.
		return false
	case dir == flow.FromServer && m.Type == tls.TypeServerHello:
		sh, err := m.ServerHello()
		if sh == nil {
			t.anomalies = append(t.anomalies, "tls: server hello: "+err.Error())
			return false
		}
		if err != nil {
			t.anomalies = append(t.anomalies, "tls: server hello: "+sh.Anomaly)
		}
		if sh.HelloRetryRequest && t.server == nil {
			t.server = sh
			return true
		}
		// The ServerHello answering the second ClientHello replaces the
		// HelloRetryRequest; remember that there was one.
		t.helloRetry = t.helloRetry || (t.server != nil && t.server.HelloRetryRequest)
		t.server = sh
		// TLS 1.3 encrypts everything after the ServerHello.
		if sh.Version() >= 0x0304 {
			t.serverDone = true
			t.maybeEmit()
			return false
		}
		return true
	case dir == flow.FromServer && m.Type == tls.TypeCertificate:
		certs, err := tls.ParseCertificateMessage(m.Data)
		if err != nil {
			t.anomalies = append(t.anomalies, "tls: certificate: "+err.Error())
		}
		t.certs = certs
		t.serverDone = true
		t.maybeEmit()
		return false
	}
	return true
}

// maybeEmit emits the handshake once both sides have said what they will.
func (t *tlsState) maybeEmit() {
	if t.client != nil && t.serverDone {
		t.st.emitTLS()
	}
}
