package dns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// This file compares Parse with tshark over every capture of the shared
// corpus. For each frame we collect, over every DNS message the frame carries
// (UDP 53/5353 payloads; TCP 53 payloads cut by TCPFramer after naive
// per-direction in-order concatenation):
//
//   - question names, normalised on both sides: escapes decoded (miekg's
//     \DDD is decimal, tshark's \ooo octal, and tshark prints "<Root>" for the
//     root), ASCII lower-cased, trailing dot removed;
//   - question types (numeric), header RCODEs (tshark's dns.flags.rcode is
//     the 4-bit header field);
//   - A and AAAA addresses (as addresses) and CNAME targets (normalised
//     names), from every section: tshark's dns.a/dns.aaaa/dns.cname fields
//     are filled from answers, authorities and additionals alike.
//
// Differences must fall into one of the explained classes below; any other
// difference fails the test.

// Explained reasons for a frame whose values differ, or that one side alone
// decodes.
const (
	// We refuse forward compression pointers (RFC 1035 4.1.4 allows only
	// prior occurrences); tshark follows them and prints the names.
	whyForwardPointer = "forward-pointer"
	// Both sides found the name bad: tshark printed a placeholder such as
	// "<Name too long>" or "<Name contains a pointer that loops>" (and types
	// read past it), we stopped at the bad name with an anomaly.
	whyPlaceholder = "tshark-placeholder"
	// Our guard refused part of the message (count lie, truncation, bad
	// RDATA...) and returned only what precedes the refusal, while tshark
	// printed what it could.
	whyMalformed = "malformed"
	// tshark reached DNS we do not. The frame's reason is one of these:
	// IP fragments (tshark reassembles, we do not; a flow engine would);
	whyFragment = "fragment"
	// DNS quoted inside ICMP/ICMPv6 errors (tshark dissects the quote);
	whyICMP = "icmp-quote"
	// ports outside IsDNS: TCP 5353, 8053, GRE-in-UDP 4754 tunnels plain
	// gopacket does not open, tshark heuristics;
	whyPort = "port"
	// link types gopacket has no decoder for (NFLOG).
	whyLinkType = "linktype"
	// DNS over TCP where our naive concatenation (no sequence numbers, no
	// retransmission handling, stream starting mid-message) frames
	// differently from tshark's reassembly.
	whyTCPFraming = "tcp-framing"
	// We read a header on port 53/5353 and flagged the rest as malformed;
	// tshark shows no DNS field at all (it rejected the message before
	// producing one). Well-formed messages tshark does not show fail the test.
	whyOursOnly = "ours-only-malformed"
)

type frameDNS struct {
	names, types, rcodes, a, aaaa, cname []string
	malformed                            bool
	anomalies                            []string
	anyDNS                               bool
	tcp                                  bool
	why                                  string // for frames without DNS: why not
}

func (f *frameDNS) addMessage(m *Message, anomalies []string) {
	f.anyDNS = true
	if len(anomalies) > 0 {
		f.malformed = true
		f.anomalies = append(f.anomalies, anomalies...)
	}
	for _, q := range m.Questions {
		f.names = append(f.names, normName(q.Name, 10))
		f.types = append(f.types, strconv.Itoa(int(q.Type)))
	}
	if m.Response { // tshark shows dns.flags.rcode for responses only
		f.rcodes = append(f.rcodes, strconv.Itoa(int(m.HeaderRcode)))
	}
	for _, sec := range [][]Record{m.Answers, m.Authorities, m.Additionals} {
		for _, rr := range sec {
			if rr.Data == "" {
				continue // empty RDATA: tshark shows no address or name
			}
			switch rr.Type {
			case 1:
				if rr.Class == 1 || rr.Class&0x7FFF == 1 {
					f.a = append(f.a, normAddr(rr.Data))
				}
			case 28:
				f.aaaa = append(f.aaaa, normAddr(rr.Data))
			case 5:
				f.cname = append(f.cname, normName(rr.Data, 10))
			}
		}
	}
}

// normName decodes \DDD (base 10, miekg) or \ooo (base 8, tshark) escapes and
// \X escapes, lower-cases ASCII and drops a trailing dot.
func normName(s string, base int) string {
	if s == "<Root>" || s == "." || s == "" {
		return "."
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v, err := strconv.ParseUint(s[i+1:i+4], base, 16)
			if err == nil {
				b = append(b, byte(v))
				i += 3
				continue
			}
		}
		if c == '\\' && i+1 < len(s) && base == 10 {
			b = append(b, s[i+1])
			i++
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return strings.TrimSuffix(string(b), ".")
}

func (f *frameDNS) hasAnomaly(reason string) bool {
	for _, a := range f.anomalies {
		if strings.Contains(a, reason) {
			return true
		}
	}
	return false
}

// hasPlaceholder reports whether tshark printed one of its "<...>" texts in
// place of a name.
func hasPlaceholder(names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, "<") && strings.HasSuffix(n, ">") {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func normAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}

type tsharkRow struct {
	names, types, rcodes, a, aaaa, cname []string
}

func (r tsharkRow) anyDNS() bool {
	return len(r.names)+len(r.types)+len(r.rcodes)+len(r.a)+len(r.aaaa)+len(r.cname) > 0
}

func splitField(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func readTshark(t *testing.T, path string) map[int]tsharkRow {
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("tshark dump: %v", err)
	}
	defer f.Close()
	rd := bufio.NewReaderSize(f, 1<<16)
	rows := map[int]tsharkRow{}
	var col map[string]int
	for {
		line, err := rd.ReadString('\n')
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			fields := strings.Split(line, "\t")
			if col == nil {
				col = map[string]int{}
				for i, h := range fields {
					col[h] = i
				}
			} else {
				get := func(name string) string {
					if i, ok := col[name]; ok && i < len(fields) {
						return fields[i]
					}
					return ""
				}
				n, _ := strconv.Atoi(get("frame.number"))
				row := tsharkRow{
					names: splitField(get("dns.qry.name")), types: splitField(get("dns.qry.type")),
					rcodes: splitField(get("dns.flags.rcode")), a: splitField(get("dns.a")),
					aaaa: splitField(get("dns.aaaa")), cname: splitField(get("dns.cname")),
				}
				for i := range row.names {
					row.names[i] = normName(row.names[i], 8)
				}
				for i := range row.cname {
					row.cname[i] = normName(row.cname[i], 8)
				}
				for i := range row.a {
					row.a[i] = normAddr(row.a[i])
				}
				for i := range row.aaaa {
					row.aaaa[i] = normAddr(row.aaaa[i])
				}
				rows[n] = row
			}
		}
		if err == io.EOF {
			return rows
		}
		if err != nil {
			t.Fatalf("tshark dump %s: %v", path, err)
		}
	}
}

// packetSource yields (frame data, link type) for pcap and pcapng files.
type packetSource func() ([]byte, layers.LinkType, error)

func openCapture(path string) (packetSource, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(magic, []byte{0x0A, 0x0D, 0x0D, 0x0A}) {
		r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: pcapng: %w", path, err)
		}
		return func() ([]byte, layers.LinkType, error) {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				return nil, 0, err
			}
			lt := r.LinkType()
			if iface, err := r.Interface(ci.InterfaceIndex); err == nil {
				lt = iface.LinkType
			}
			return data, lt, nil
		}, func() { f.Close() }, nil
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: pcap: %w", path, err)
	}
	return func() ([]byte, layers.LinkType, error) {
		data, _, err := r.ReadPacketData()
		return data, r.LinkType(), err
	}, func() { f.Close() }, nil
}

func decoderFor(lt layers.LinkType) (gopacket.Decoder, bool) {
	switch lt {
	case layers.LinkTypeIPv4:
		return layers.LayerTypeIPv4, true
	case layers.LinkTypeIPv6:
		return layers.LayerTypeIPv6, true
	}
	if int(lt) < len(layers.LinkTypeMetadata) && layers.LinkTypeMetadata[lt].DecodeWith != nil {
		return lt, true
	}
	return nil, false
}

// captureDNS walks a capture and returns the DNS found per frame number, and
// the number of frames whose link type gopacket cannot decode.
func captureDNS(tb testing.TB, path string, each func(payload []byte)) (map[int]*frameDNS, int, error) {
	next, closeFn, err := openCapture(path)
	if err != nil {
		return nil, 0, err
	}
	defer closeFn()
	frames := map[int]*frameDNS{}
	framers := map[string]*TCPFramer{}
	undecodable := 0
	for n := 1; ; n++ {
		data, lt, err := next()
		if errors.Is(err, io.EOF) {
			return frames, undecodable, nil
		}
		if err != nil {
			// A damaged tail ends the walk; what was read still counts.
			return frames, undecodable, nil
		}
		dec, ok := decoderFor(lt)
		if !ok {
			undecodable++
			frames[n] = &frameDNS{why: whyLinkType}
			continue
		}
		pkt := gopacket.NewPacket(data, dec, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		var udp *layers.UDP
		var tcp *layers.TCP
		var netFlow gopacket.Flow
		why := whyPort
		for _, l := range pkt.Layers() {
			switch v := l.(type) {
			case *layers.IPv6Fragment:
				why = whyFragment
			case *layers.ICMPv4, *layers.ICMPv6:
				why = whyICMP
			case *layers.UDP:
				udp, tcp = v, nil
			case *layers.TCP:
				tcp, udp = v, nil
			case *layers.IPv4:
				netFlow = v.NetworkFlow()
				if v.Flags&layers.IPv4MoreFragments != 0 || v.FragOffset != 0 {
					why = whyFragment
				}
			case *layers.IPv6:
				netFlow = v.NetworkFlow()
			}
		}
		switch {
		case udp != nil && IsDNS(UDP, uint16(udp.SrcPort), uint16(udp.DstPort)):
			if len(udp.Payload) == 0 {
				continue
			}
			fd := &frameDNS{}
			if each != nil {
				each(udp.Payload)
			}
			if m, anomalies, err := Parse(udp.Payload); err == nil {
				fd.addMessage(m, anomalies)
			} else {
				fd.malformed = true
			}
			frames[n] = fd
		case tcp != nil && IsDNS(TCP, uint16(tcp.SrcPort), uint16(tcp.DstPort)) && len(tcp.Payload) > 0:
			key := fmt.Sprintf("%v:%d>%d", netFlow, tcp.SrcPort, tcp.DstPort)
			fr := framers[key]
			if fr == nil {
				fr = &TCPFramer{}
				framers[key] = fr
			}
			fd := &frameDNS{tcp: true}
			for _, msg := range fr.Feed(tcp.Payload, nil) {
				if each != nil {
					each(msg)
				}
				if m, anomalies, err := Parse(msg); err == nil {
					fd.addMessage(m, anomalies)
				} else {
					fd.malformed = true
				}
			}
			frames[n] = fd
		default:
			frames[n] = &frameDNS{why: why}
		}
	}
}

func sameAddrs(a, b []string) bool { return slices.Equal(a, b) }

func (f *frameDNS) agrees(r tsharkRow) bool {
	return slices.Equal(f.names, r.names) && slices.Equal(f.types, r.types) && slices.Equal(f.rcodes, r.rcodes) &&
		sameAddrs(f.a, r.a) && sameAddrs(f.aaaa, r.aaaa) && slices.Equal(f.cname, r.cname)
}

// detail logs one explained difference when -v is given.
func detail(t *testing.T, rel string, n int, f *frameDNS, r tsharkRow) {
	if !testing.Verbose() {
		return
	}
	if f == nil {
		f = &frameDNS{}
	}
	if f.why != "" {
		t.Logf("%s frame %d: %s", rel, n, f.why)
	}
	clip := func(v []string) []string { return v[:min(len(v), 4)] }
	t.Logf("%s frame %d:\n ours:   names=%q types=%v rcodes=%v a=%v aaaa=%v cname=%q\n tshark: names=%q types=%v rcodes=%v a=%v aaaa=%v cname=%q",
		rel, n, clip(f.names), clip(f.types), f.rcodes, clip(f.a), clip(f.aaaa), clip(f.cname), clip(r.names), clip(r.types), r.rcodes, clip(r.a), clip(r.aaaa), clip(r.cname))
}

type captureStats struct {
	compared, agree, disagree, unreached, oursOnly int
	reasons                                        map[string]int
}

func TestCorpusAgainstTshark(t *testing.T) {
	corpus := testcorpus.Corpus(t)
	var total captureStats
	total.reasons = map[string]int{}
	var table []string
	undecodableCaptures := 0
	for _, rel := range testcorpus.Captures(t) {
		if testcorpus.Malformed[rel] {
			continue
		}
		path := corpus + "/" + rel
		tsv := path + ".tshark.tsv"
		if _, err := os.Stat(tsv); err != nil {
			t.Errorf("%s: no tshark dump: %v", rel, err)
			continue
		}
		rows := readTshark(t, tsv)
		ours, undecodable, err := captureDNS(t, path, nil)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if undecodable > 0 {
			undecodableCaptures++
		}
		st := captureStats{reasons: map[string]int{}}
		frameNos := map[int]bool{}
		for n, r := range rows {
			if r.anyDNS() {
				frameNos[n] = true
			}
		}
		for n, f := range ours {
			if f.anyDNS {
				frameNos[n] = true
			}
		}
		for n := range frameNos {
			r, f := rows[n], ours[n]
			switch {
			case f == nil || !f.anyDNS:
				st.unreached++
				detail(t, rel, n, f, r)
				switch {
				case f == nil:
					t.Errorf("%s frame %d: tshark shows DNS in a frame we did not read", rel, n)
				case f.tcp:
					st.reasons[whyTCPFraming]++
				default:
					st.reasons[f.why]++
				}
			case !r.anyDNS():
				st.oursOnly++
				if !f.malformed {
					t.Errorf("%s frame %d: well-formed DNS that tshark does not show", rel, n)
				}
				detail(t, rel, n, f, r)
				st.reasons[whyOursOnly]++
			default:
				st.compared++
				if f.agrees(r) {
					st.agree++
					continue
				}
				st.disagree++
				switch {
				case f.malformed && f.hasAnomaly(AnomalyForwardPointer):
					st.reasons[whyForwardPointer]++
					detail(t, rel, n, f, r)
				case f.malformed && hasPlaceholder(r.names):
					st.reasons[whyPlaceholder]++
					detail(t, rel, n, f, r)
				case f.malformed:
					st.reasons[whyMalformed]++
					detail(t, rel, n, f, r)
				case f.tcp:
					st.reasons[whyTCPFraming]++
				default:
					t.Errorf("%s frame %d: unexplained difference\n ours:   names=%q types=%v rcodes=%v a=%v aaaa=%v cname=%q\n tshark: names=%q types=%v rcodes=%v a=%v aaaa=%v cname=%q",
						rel, n, f.names, f.types, f.rcodes, f.a, f.aaaa, f.cname, r.names, r.types, r.rcodes, r.a, r.aaaa, r.cname)
				}
			}
		}
		if len(frameNos) == 0 {
			continue
		}
		total.compared += st.compared
		total.agree += st.agree
		total.disagree += st.disagree
		total.unreached += st.unreached
		total.oursOnly += st.oursOnly
		var why []string
		for k, v := range st.reasons {
			total.reasons[k] += v
			why = append(why, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(why)
		table = append(table, fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %s |", rel, st.compared, st.agree, st.disagree, st.unreached, st.oursOnly, strings.Join(why, " ")))
	}
	sort.Strings(table)
	t.Logf("\n| capture | compared | agree | disagree | tshark only | ours only | reasons |\n|---|---|---|---|---|---|---|\n%s\n| TOTAL | %d | %d | %d | %d | %d | |",
		strings.Join(table, "\n"), total.compared, total.agree, total.disagree, total.unreached, total.oursOnly)
	for k, v := range total.reasons {
		t.Logf("reason %q: %d frames", k, v)
	}
	t.Logf("captures with frames of a link type gopacket cannot decode: %d", undecodableCaptures)
	if total.compared == 0 || total.agree < total.compared*95/100 {
		t.Errorf("agreement too low: %d of %d", total.agree, total.compared)
	}
}
