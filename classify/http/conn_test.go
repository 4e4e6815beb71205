package http

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/phonehome/phonehome/capture/reassembly"
)

// event is one read or write seen on the server side of a real connection.
type event struct {
	fromClient bool
	b          []byte
}

type tap struct {
	mu      sync.Mutex
	events  []event
	accepts int
}

func (t *tap) record(fromClient bool, b []byte) {
	t.mu.Lock()
	t.events = append(t.events, event{fromClient, bytes.Clone(b)})
	t.mu.Unlock()
}

func (t *tap) snapshot() []event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]event(nil), t.events...)
}

type tapConn struct {
	net.Conn
	t *tap
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.record(true, p[:n])
	}
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.t.record(false, p) // before the client can see it, so order is kept
	return c.Conn.Write(p)
}

type tapListener struct {
	net.Listener
	t *tap
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.t.mu.Lock()
	l.t.accepts++
	l.t.mu.Unlock()
	return &tapConn{c, l.t}, nil
}

// collect runs events through a Conn, cutting every event with cut.
func collect(events []event, cut func([]byte) [][]byte) ([]Transaction, *Conn) {
	var txs []Transaction
	c := NewConn(func(tx Transaction) { txs = append(txs, tx) })
	for i, e := range events {
		for _, piece := range cut(e.b) {
			if e.fromClient {
				c.ClientData(piece, int64(i))
			} else {
				c.ServerData(piece, int64(i))
			}
		}
	}
	c.ClientClose(reassembly.CloseFIN)
	c.ServerClose(reassembly.CloseFIN)
	return txs, c
}

func whole(b []byte) [][]byte { return [][]byte{b} }

func bytewise(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

func TestNetHTTPKeepAlive(t *testing.T) {
	tp := &tap{}
	big := strings.Repeat("z", 12345)
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/len", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "Text/Plain; charset=utf-8")
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		io.WriteString(w, big)
	})
	mux.HandleFunc("/upload", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"n":%d}`, n)
	})
	mux.HandleFunc("/chunked", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 5; i++ {
			io.WriteString(w, strings.Repeat("c", 700))
			w.(nethttp.Flusher).Flush()
		}
	})
	mux.HandleFunc("/empty", func(w nethttp.ResponseWriter, r *nethttp.Request) { w.WriteHeader(204) })
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = &tapListener{srv.Listener, tp}
	srv.Start()
	defer srv.Close()

	client := srv.Client()
	do := func(req *nethttp.Request) {
		t.Helper()
		req.Header.Set("User-Agent", "phonehome-test/1.0")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get := func(path string) { req, _ := nethttp.NewRequest("GET", srv.URL+path, nil); do(req) }
	get("/len?a=b&c=d")
	req, _ := nethttp.NewRequest("POST", srv.URL+"/upload", strings.NewReader(strings.Repeat("u", 5000)))
	req.Header.Set("Content-Type", "application/octet-stream")
	do(req)
	get("/chunked")
	// A body of unknown length is sent chunked.
	req, _ = nethttp.NewRequest("PUT", srv.URL+"/upload?chunked=1", io.MultiReader(strings.NewReader("abc"), strings.NewReader(strings.Repeat("d", 3000))))
	do(req)
	req, _ = nethttp.NewRequest("HEAD", srv.URL+"/len", nil)
	do(req)
	get("/empty")
	get("/missing")
	if tp.accepts != 1 {
		t.Fatalf("%d connections, want 1 keep-alive connection", tp.accepts)
	}
	events := tp.snapshot()
	host := strings.TrimPrefix(srv.URL, "http://")
	hostOnly, _, _ := net.SplitHostPort(host)

	type want struct {
		method, path, query string
		status              int
		mime                string
		reqBody, respBody   int64
	}
	wants := []want{
		{"GET", "/len", "a=b&c=d", 200, "text/plain", 0, 12345},
		{"POST", "/upload", "", 201, "application/json", 5000, int64(len(`{"n":5000}`))},
		{"GET", "/chunked", "", 200, "text/event-stream", 0, 3500},
		{"PUT", "/upload", "chunked=1", 201, "application/json", 3003, int64(len(`{"n":3003}`))},
		{"HEAD", "/len", "", 200, "text/plain", 0, 0},
		{"GET", "/empty", "", 204, "", 0, 0},
		{"GET", "/missing", "", 404, "text/plain", 0, int64(len("404 page not found\n"))},
	}
	for _, cut := range []func([]byte) [][]byte{whole, bytewise} {
		txs, c := collect(events, cut)
		if len(txs) != len(wants) {
			t.Fatalf("%d transactions, want %d: %+v", len(txs), len(wants), txs)
		}
		for i, w := range wants {
			tx := txs[i]
			if tx.Method != w.method || tx.Path != w.path || tx.Query != w.query || tx.Status != w.status ||
				tx.MimeType != w.mime || tx.RequestBodyBytes != w.reqBody || tx.ResponseBodyBytes != w.respBody {
				t.Errorf("tx %d = %+v, want %+v", i, tx, w)
			}
			if tx.Host != hostOnly || tx.Port == 0 || tx.UserAgent != "phonehome-test/1.0" || tx.Version != "1.1" ||
				tx.Outcome != OutcomeComplete || tx.Anomaly != AnomalyNone {
				t.Errorf("tx %d = %+v", i, tx)
			}
			if tx.ResponseTime < tx.RequestTime {
				t.Errorf("tx %d: response before request", i)
			}
		}
		if txs[1].RequestContentType != "application/octet-stream" {
			t.Errorf("request content type %q", txs[1].RequestContentType)
		}
		if c.Anomaly() != AnomalyNone || c.Stats().Requests != 7 || c.Stats().Responses != 7 {
			t.Errorf("stats %+v", c.Stats())
		}
	}
}

func TestPipelining(t *testing.T) {
	client := "GET /a HTTP/1.1\r\nHost: 10.1.2.3:8080\r\n\r\n" +
		"GET /b?x HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n" +
		"POST /c HTTP/1.1\r\nHost: [2001:db8::1]:81\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc" +
		"HEAD /d HTTP/1.0\r\nHost: EXAMPLE.com\r\n\r\n" +
		"GET /e HTTP/1.1\r\nHost: x\r\n\r\n"
	server := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" +
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n" +
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/HTML;charset=x\r\n\r\n" +
		"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n" +
		"HTTP/1.0 200 OK\r\nContent-Type: application/x-thing\r\n\r\nread until close"
	for _, cut := range []func([]byte) [][]byte{whole, bytewise} {
		txs, c := collect([]event{{true, []byte(client)}, {false, []byte(server)}}, cut)
		if len(txs) != 5 {
			t.Fatalf("%d transactions: %+v", len(txs), txs)
		}
		check := func(i int, method, host string, port uint16, path string, status int, body int64) {
			t.Helper()
			tx := txs[i]
			if tx.Method != method || tx.Host != host || tx.Port != port || tx.Path != path || tx.Status != status || tx.ResponseBodyBytes != body {
				t.Errorf("tx %d = %+v", i, tx)
			}
		}
		check(0, "GET", "10.1.2.3", 8080, "/a", 200, 2)
		check(1, "GET", "10.1.2.3", 0, "/b", 304, 0)
		check(2, "POST", "[2001:db8::1]", 81, "/c", 200, 9)
		check(3, "HEAD", "example.com", 0, "/d", 200, 0)
		check(4, "GET", "x", 0, "/e", 200, int64(len("read until close")))
		if txs[1].Query != "x" || txs[2].RequestBodyBytes != 3 || txs[2].MimeType != "text/html" || txs[3].Version != "1.0" {
			t.Errorf("details: %+v", txs)
		}
		if c.Stats().Interim != 1 || c.Anomaly() != AnomalyNone {
			t.Errorf("stats %+v", c.Stats())
		}
	}
}

func TestAbsoluteAndConnect(t *testing.T) {
	client := "GET http://user@Proxy.Example:3128/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n" +
		"CONNECT update.kaspersky.com:443 HTTP/1.1\r\nHost: update.kaspersky.com:443\r\n\r\n" +
		"\x16\x03\x01\x02\x00"
	server := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03"
	txs, c := collect([]event{{true, []byte(client)}, {false, []byte(server)}}, whole)
	if len(txs) != 2 {
		t.Fatalf("%+v", txs)
	}
	if txs[0].Host != "proxy.example" || txs[0].Port != 3128 || txs[0].Path != "/p" || txs[0].Query != "q=1" {
		t.Errorf("absolute form: %+v", txs[0])
	}
	if txs[1].Method != "CONNECT" || txs[1].Host != "update.kaspersky.com" || txs[1].Port != 443 || !txs[1].Tunnel || txs[1].Status != 200 {
		t.Errorf("connect: %+v", txs[1])
	}
	if c.Anomaly() != AnomalyNone {
		t.Errorf("anomaly %v", c.Anomaly())
	}
}

func TestAnomalies(t *testing.T) {
	cases := []struct {
		name           string
		client, server string
		want           Anomaly
		txs            int
	}{
		{"tls", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "", AnomalyNotHTTP, 0},
		{"garbage line", "hello world this is not http\r\n\r\n", "", AnomalyNotHTTP, 0},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", AnomalyNotHTTP, 0},
		{"header too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n", "", AnomalyHeaderTooLarge, 0},
		{"bad chunk", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", AnomalyBadChunk, 1},
		{"huge chunk", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", AnomalyBadChunk, 1},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "", AnomalyBadContentLength, 1},
		{"bad response", "GET / HTTP/1.1\r\n\r\n", "SSH-2.0-OpenSSH\r\n", AnomalyNotHTTP, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			txs, c := collect([]event{{true, []byte(tc.client)}, {false, []byte(tc.server)}}, whole)
			if c.Anomaly() != tc.want || len(txs) != tc.txs {
				t.Fatalf("anomaly %v, %d txs (%+v); want %v, %d", c.Anomaly(), len(txs), txs, tc.want, tc.txs)
			}
			for _, tx := range txs {
				if tx.Outcome == OutcomeComplete {
					t.Errorf("complete despite anomaly: %+v", tx)
				}
			}
		})
	}
	// Non-HTTP is detected at the first line, not after MaxHeaderBytes.
	c := NewConn(nil)
	if c.ClientData([]byte("\x00\x01binary"), 0) {
		t.Fatal("binary prefix accepted")
	}
	c = NewConn(nil)
	if !c.ClientData([]byte("GE"), 0) || !c.ClientData([]byte("T /x HTTP/1."), 0) {
		t.Fatal("valid prefix refused")
	}
}

func TestUnmatchedAndIncomplete(t *testing.T) {
	// Response without request (capture started mid-connection).
	txs, _ := collect([]event{{false, []byte("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc")}}, whole)
	if len(txs) != 1 || txs[0].Outcome != OutcomeUnmatched || txs[0].Status != 404 || txs[0].Anomaly != AnomalyUnmatchedResponse {
		t.Fatalf("%+v", txs)
	}
	// Request without response, and a response cut by a gap.
	var got []Transaction
	c := NewConn(func(tx Transaction) { got = append(got, tx) })
	c.ClientData([]byte("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"), 1)
	c.ServerData([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"), 2)
	c.ServerGap(50)
	c.ServerClose(reassembly.CloseGap)
	c.Close()
	if len(got) != 2 || got[0].Outcome != OutcomeIncomplete || got[0].ResponseBodyBytes != 3 || got[1].Outcome != OutcomeNoResponse || got[1].Path != "/2" {
		t.Fatalf("%+v", got)
	}
	c.Close()
	if len(got) != 2 {
		t.Fatal("Close emitted twice")
	}
}

func TestTooManyPending(t *testing.T) {
	var b strings.Builder
	for i := 0; i < MaxPending+5; i++ {
		fmt.Fprintf(&b, "GET /%d HTTP/1.1\r\n\r\n", i)
	}
	txs, c := collect([]event{{true, []byte(b.String())}}, whole)
	if len(txs) != MaxPending || c.Anomaly() != AnomalyTooManyPending {
		t.Fatalf("%d txs, anomaly %v", len(txs), c.Anomaly())
	}
}

func TestSanitize(t *testing.T) {
	long := strings.Repeat("A", MaxValueLen+100)
	client := "GET /p\xffath HTTP/1.1\r\nHost: evil\x1b[31m.com\r\nUser-Agent: a\x00b\xffc \u00e9\r\nX-Long: y\r\nContent-Type: " + long + "\r\n\r\n"
	txs, _ := collect([]event{{true, []byte(client)}}, whole)
	if len(txs) != 1 {
		t.Fatalf("%+v", txs)
	}
	tx := txs[0]
	if tx.Host != `evil\x1b[31m.com` || tx.UserAgent != `a\x00b\xffc é` || len(tx.RequestContentType) != MaxValueLen || !tx.Truncated {
		t.Errorf("%q %q %d %v", tx.Host, tx.UserAgent, len(tx.RequestContentType), tx.Truncated)
	}
	if tx.Path != `/p\xffath` || tx.Target != tx.Path {
		t.Errorf("path %q target %q", tx.Path, tx.Target)
	}
}

func TestSniff(t *testing.T) {
	cases := []struct {
		in   string
		want Verdict
	}{
		{"GET / HTTP/1.1\r\n", SniffYes},
		{"PROPFIND /dav/ HTTP/1.1\r\nHost: x", SniffYes},
		{"CONNECT example.com:443 HTTP/1.0", SniffYes},
		{"OPTIONS * HTTP/1.1\n", SniffYes},
		{"M-SEARCH * HTTP/1.1\r\n", SniffYes},
		{"PATCH /x HTTP/1.1\r\n", SniffYes},
		{"GE", SniffMaybe},
		{"GET /long/path", SniffMaybe},
		{"GET / HTTP/1", SniffMaybe},
		{"GET / HTTP/2.0\r\n", SniffNo},
		{"GET / HTTP/1.1x", SniffNo},
		{"FOO / HTTP/1.1\r\n", SniffNo},
		{"get / HTTP/1.1\r\n", SniffNo},
		{"GET  HTTP/1.1\r\n", SniffNo},
		{"\x16\x03\x01", SniffNo},
		{"", SniffMaybe},
		{"HTTP/1.1 200 OK", SniffNo},
	}
	for _, tc := range cases {
		if got := Sniff([]byte(tc.in)); got != tc.want {
			t.Errorf("Sniff(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !LooksLikeRequest([]byte("DELETE /x?y HTTP/1.0\r\n")) || LooksLikeRequest([]byte("GET /")) {
		t.Error("LooksLikeRequest")
	}
}

// TestViaReassembly drives a Conn through reassembly.Direction with shuffled
// small segments, as the flow table will.
func TestViaReassembly(t *testing.T) {
	client := []byte("GET /one HTTP/1.1\r\nHost: a.example\r\n\r\nPOST /two HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\n\r\nbody")
	server := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 50; iter++ {
		var txs []Transaction
		c := NewConn(func(tx Transaction) { txs = append(txs, tx) })
		var cd, sd reassembly.Direction
		budget := reassembly.NewBudget(0)
		cd.Init(c.ClientConsumer(), budget, nil)
		sd.Init(c.ServerConsumer(), budget, nil)
		feed := func(d *reassembly.Direction, isn uint32, msg []byte) {
			type seg struct{ off, end int }
			var segs []seg
			for off := 0; off < len(msg); {
				end := min(off+1+rng.Intn(20), len(msg))
				segs = append(segs, seg{off, end})
				off = end
			}
			rng.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
			d.Add(isn, nil, true, false, false, 0)
			for _, s := range segs {
				d.Add(isn+1+uint32(s.off), msg[s.off:s.end], false, false, false, 1)
			}
			d.Add(isn+1+uint32(len(msg)), nil, false, true, false, 2)
		}
		feed(&cd, 0xFFFFFFF0, client)
		feed(&sd, 12345, server)
		if len(txs) != 2 || txs[0].Path != "/one" || txs[0].ResponseBodyBytes != 5 || txs[1].Status != 500 || txs[1].RequestBodyBytes != 4 {
			t.Fatalf("iter %d: %+v", iter, txs)
		}
		if c.Stats().ClientEnd != reassembly.CloseFIN || c.Stats().ServerEnd != reassembly.CloseFIN {
			t.Fatalf("ends %+v", c.Stats())
		}
	}
}

func FuzzHTTPConn(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), uint8(3))
	f.Add([]byte("POST /u HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /v HTTP/1.0\r\n\r\n"), []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No\r\n\r\nHTTP/1.0 200 OK\r\n\r\nxyz"), uint8(1))
	f.Add([]byte("CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03"), []byte("HTTP/1.1 200 OK\r\n\r\n\x16"), uint8(7))
	f.Add([]byte("\x16\x03\x01"), []byte("garbage"), uint8(0))
	seedFromCorpus(f, "zeek/http-vlan-0.pcap")
	seedFromCorpus(f, "suricata-verify/http-ipv6.pcap")
	f.Fuzz(func(t *testing.T, client, server []byte, step uint8) {
		n := int(step%32) + 1
		emitted := 0
		c := NewConn(func(tx Transaction) {
			emitted++
			for _, s := range []string{tx.Method, tx.Host, tx.Path, tx.Query, tx.Target, tx.UserAgent, tx.MimeType, tx.RequestContentType} {
				if len(s) > MaxValueLen {
					t.Fatalf("value over MaxValueLen: %d", len(s))
				}
				for i := 0; i < len(s); i++ {
					if s[i] < 0x20 || s[i] == 0x7f {
						t.Fatalf("control byte in %q", s)
					}
				}
			}
		})
		for len(client) > 0 || len(server) > 0 {
			k := min(n, len(client))
			c.ClientData(client[:k], 1)
			client = client[k:]
			k = min(n, len(server))
			c.ServerData(server[:k], 2)
			server = server[k:]
			if cap(c.client.hdr) > 2*MaxHeaderBytes || cap(c.server.hdr) > 2*MaxHeaderBytes {
				t.Fatal("header buffer over bound")
			}
		}
		c.Close()
		if uint64(emitted) != c.Stats().Emitted || c.n != 0 {
			t.Fatalf("emitted %d, stats %+v, pending %d", emitted, c.Stats(), c.n)
		}
	})
}

func TestBodyZeroAllocs(t *testing.T) {
	c := NewConn(func(Transaction) {})
	c.ClientData([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1)
	c.ServerData([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 2)
	chunk := []byte("5dc\r\n" + strings.Repeat("b", 0x5dc) + "\r\n")
	allocs := testing.AllocsPerRun(500, func() {
		if !c.ServerData(chunk, 3) {
			t.Fatal("stopped")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per body segment", allocs)
	}
	if c.Stats().ResponseBodyBytes != 501*0x5dc {
		t.Fatalf("body bytes %d", c.Stats().ResponseBodyBytes)
	}
}
