package tls

import "testing"

// TestServerHelloEarlyDraft: TLS 1.3 drafts before -22 sent a ServerHello
// without session id and compression method. The JA3S expected here is
// tshark's for the draft-18 ServerHello of suricata-verify
// tls__tls13-draft18.pcap (version 0x7f12, TLS_AES_128_GCM_SHA256, one
// key_share extension of the draft numbering, 40).
func TestServerHelloEarlyDraft(t *testing.T) {
	body := []byte{0x7f, 0x12}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0x13, 0x01)          // cipher suite
	body = append(body, 0x00, 0x04, 0x00, 0x28, 0x00, 0x00)
	msg := append([]byte{byte(TypeServerHello), 0, 0, byte(len(body))}, body...)
	sh, err := ParseServerHello(msg)
	if err != nil {
		t.Fatal(err)
	}
	raw, sum := sh.JA3S()
	if sh.CipherSuite != 0x1301 || len(sh.Extensions) != 1 || raw != "32530,4865,40" || sum != "b8a8031b301aef7618403061e9f33065" {
		t.Fatalf("cipher %#x extensions %v JA3S %s %s", sh.CipherSuite, sh.Extensions, raw, sum)
	}
}
