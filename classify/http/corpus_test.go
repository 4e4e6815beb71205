package http

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/phonehome/phonehome/capture/reassembly"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// packetSource reads a pcap or pcapng file.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

func openCapture(t *testing.T, path string) packetSource {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open capture: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		t.Fatalf("read capture magic: %v", err)
	}
	if binary.BigEndian.Uint32(magic) == 0x0A0D0D0A {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("pcapng reader: %v", err)
		}
		return r
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		t.Fatalf("pcap reader: %v", err)
	}
	return r
}

// flowState reassembles both directions of one TCP connection into a Conn.
type flowState struct {
	clientAddr     string // "ip:port" of the side that sent the SYN (or spoke first)
	conn           *Conn
	client, server reassembly.Direction
}

// dissectCapture reassembles every TCP connection of a capture with the
// reassembly package and dissects it as HTTP; it returns the transactions
// and the connections.
func dissectCapture(t *testing.T, rel string) ([]Transaction, []*flowState) {
	t.Helper()
	src := openCapture(t, testcorpus.Path(t, rel))
	budget := reassembly.NewBudget(0)
	flows := map[string]*flowState{}
	var order []*flowState
	var txs []Transaction
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: read packet: %v", rel, err)
		}
		pkt := gopacket.NewPacket(data, src.LinkType(), gopacket.Default)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		nl := pkt.NetworkLayer()
		if tcp == nil || nl == nil {
			continue
		}
		srcAddr := fmt.Sprintf("%s:%d", nl.NetworkFlow().Src(), tcp.SrcPort)
		dstAddr := fmt.Sprintf("%s:%d", nl.NetworkFlow().Dst(), tcp.DstPort)
		key := srcAddr + "-" + dstAddr
		if srcAddr > dstAddr {
			key = dstAddr + "-" + srcAddr
		}
		fs := flows[key]
		if fs == nil {
			fs = &flowState{clientAddr: srcAddr}
			if tcp.SYN && tcp.ACK {
				fs.clientAddr = dstAddr
			}
			fs.conn = NewConn(func(tx Transaction) { txs = append(txs, tx) })
			fs.client.Init(fs.conn.ClientConsumer(), budget, nil)
			fs.server.Init(fs.conn.ServerConsumer(), budget, nil)
			flows[key] = fs
			order = append(order, fs)
		}
		d := &fs.server
		if srcAddr == fs.clientAddr {
			d = &fs.client
		}
		d.Add(tcp.Seq, tcp.Payload, tcp.SYN, tcp.FIN, tcp.RST, ci.Timestamp.UnixNano())
	}
	for _, fs := range order {
		fs.client.Close()
		fs.server.Close()
		fs.conn.Close()
	}
	if budget.Stats().InUse != 0 {
		t.Errorf("%s: %d bytes of pages still held", rel, budget.Stats().InUse)
	}
	return txs, order
}

func TestCorpusHTTP(t *testing.T) {
	type want struct {
		method, host, path string
		port               uint16
		status             int
		mime               string
		respBody           int64
	}
	cases := []struct {
		capture string
		mixed   bool // also holds TLS connections (AnomalyNotHTTP expected there)
		txs     []want
	}{
		{"zeek/http-vlan-0.pcap", false, []want{{"GET", "bro.org", "/download/CHANGES.bro-aux.txt", 0, 200, "text/plain", 4705}}},
		{"zeek/http-qinq-0.pcap", false, []want{{"GET", "bro.org", "/download/CHANGES.bro-aux.txt", 0, 200, "text/plain", 4705}}},
		{"suricata-verify/http-ipv6.pcap", false, []want{{"GET", "[::1]", "/", 8000, 200, "", -1}}},
		{"ja4/http1-with-cookies.pcapng", false, []want{{"GET", "localhost", "/", 8000, -1, "", -1}}},
		{"arkime/v6-http.pcap", false, []want{{"GET", "cl-1985.ham-01.de.sixxs.net", "/", 0, 200, "", -1}}},
		// A browser capture: among the TLS flows, one plain-HTTP certificate fetch.
		{"ja4/latest.pcapng", true, []want{{"GET", "apps.identrust.com", "/roots/dstrootcax3.p7c", 0, 304, "application/pkcs7-mime", 0}}},
		{"ja4/http-empty-useragent.pcap", false, []want{{"GET", "", "/", 0, 200, "", -1}}},
		{"ja4/https-connect.pcap", false, []want{{"CONNECT", "ts01-b.cloudsink.net", "", 443, 200, "", 0}}},
		{"suricata-verify/http-connect__http-connect-tls.pcap", false, []want{{"CONNECT", "abc", "", 443, 200, "", 0}}},
		{"ja4/tls3.pcapng", true, []want{{"GET", "apps.identrust.com", "/roots/dstrootcax3.p7c", 0, 304, "application/pkcs7-mime", 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.capture, func(t *testing.T) {
			txs, flows := dissectCapture(t, tc.capture)
			for _, tx := range txs {
				t.Logf("%s %s host=%q port=%d path=%q status=%d mime=%q req=%d resp=%d outcome=%v anomaly=%v ua=%q",
					tc.capture, tx.Method, tx.Host, tx.Port, tx.Path, tx.Status, tx.MimeType, tx.RequestBodyBytes, tx.ResponseBodyBytes, tx.Outcome, tx.Anomaly, tx.UserAgent)
			}
			if len(txs) != len(tc.txs) {
				t.Fatalf("%d transactions, want %d", len(txs), len(tc.txs))
			}
			for i, w := range tc.txs {
				tx := txs[i]
				if tx.Method != w.method || tx.Host != w.host || tx.Path != w.path || tx.Port != w.port {
					t.Errorf("tx %d: %s %s:%d %s, want %+v", i, tx.Method, tx.Host, tx.Port, tx.Path, w)
				}
				if w.status >= 0 && tx.Status != w.status {
					t.Errorf("tx %d: status %d, want %d", i, tx.Status, w.status)
				}
				if w.status >= 0 && tx.Outcome != OutcomeComplete {
					t.Errorf("tx %d: outcome %v", i, tx.Outcome)
				}
				if tx.Tunnel != (tx.Method == "CONNECT") {
					t.Errorf("tx %d: tunnel %v for %s", i, tx.Tunnel, tx.Method)
				}
				if w.mime != "" && tx.MimeType != w.mime {
					t.Errorf("tx %d: mime %q, want %q", i, tx.MimeType, w.mime)
				}
				if w.respBody >= 0 && tx.ResponseBodyBytes != w.respBody {
					t.Errorf("tx %d: response body %d, want %d", i, tx.ResponseBodyBytes, w.respBody)
				}
				if tx.RequestTime == 0 || (tx.Status != 0 && tx.ResponseTime < tx.RequestTime) {
					t.Errorf("tx %d: times %d %d", i, tx.RequestTime, tx.ResponseTime)
				}
			}
			for _, fs := range flows {
				if a := fs.conn.Anomaly(); a != AnomalyNone && !(tc.mixed && a == AnomalyNotHTTP) {
					t.Errorf("flow from %s: anomaly %v", fs.clientAddr, a)
				}
				if st := fs.client.Stats(); st.Gaps != 0 {
					t.Errorf("flow from %s: client gaps %+v", fs.clientAddr, st)
				}
			}
		})
	}
}

// TestCorpusNoFalseHTTP runs the dissector over TLS captures: every
// connection must stop with AnomalyNotHTTP and emit nothing.
func TestCorpusNoFalseHTTP(t *testing.T) {
	for _, rel := range []string{"arkime/curl-enabled-tls13.pcap", "arkime/https2-301-get.pcap", "ja4/tls12.pcap"} {
		txs, flows := dissectCapture(t, rel)
		if len(txs) != 0 {
			t.Errorf("%s: %d transactions from TLS: %+v", rel, len(txs), txs)
		}
		notHTTP := 0
		for _, fs := range flows {
			if fs.conn.Anomaly() == AnomalyNotHTTP {
				notHTTP++
			}
		}
		if notHTTP == 0 {
			t.Errorf("%s: no connection recognised as not HTTP", rel)
		}
	}
}

// seedFromCorpus adds the client and server streams of a capture's first
// HTTP connection to a fuzz corpus.
func seedFromCorpus(f *testing.F, rel string) {
	path := testcorpus.Path(f, rel)
	if _, err := os.Stat(path); err != nil {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	// Cheap seed: the payload around the first request line as sent.
	s := string(data)
	if i := strings.Index(s, "GET "); i >= 0 {
		j := strings.Index(s[i:], "\r\n\r\n")
		if j > 0 {
			f.Add([]byte(s[i:i+j+4]), []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), uint8(5))
		}
	}
	if i := strings.Index(s, "HTTP/1."); i >= 0 {
		f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), []byte(s[i:min(len(s), i+2048)]), uint8(11))
	}
}
