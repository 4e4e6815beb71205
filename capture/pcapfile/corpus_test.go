package pcapfile

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// manifestPackets maps corpus-relative file names to the packets column of
// MANIFEST.tsv (-1 when it is "?").
func manifestPackets(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join(testcorpus.Corpus(t), "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	col := -1
	out := map[string]int{}
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if col < 0 {
			for i, name := range fields {
				if name == "packets" {
					col = i
				}
			}
			if col < 0 {
				t.Fatal("MANIFEST.tsv has no packets column")
			}
			continue
		}
		if len(fields) <= col {
			continue
		}
		n, err := strconv.Atoi(fields[col])
		if err != nil {
			n = -1
		}
		out[fields[0]] = n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readAll reads every packet and returns copies of their metadata.
func readAll(r *Reader) ([]Packet, error) {
	var out []Packet
	for {
		p, err := r.Next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, p)
	}
}

func TestCorpus(t *testing.T) {
	want := manifestPackets(t)
	captures := testcorpus.Captures(t)
	if len(captures) < 300 {
		t.Fatalf("only %d captures listed", len(captures))
	}
	for _, rel := range captures {
		path := testcorpus.Path(t, rel)
		r, err := Open(path)
		var pkts []Packet
		if err == nil {
			pkts, err = readAll(r)
			r.Close()
		}
		if testcorpus.Malformed[rel] {
			var fe *Error
			if err == nil || !errors.As(err, &fe) || fe.Offset < 0 || !strings.Contains(err.Error(), path) ||
				errors.Is(err, ErrTruncated) {
				t.Errorf("%s: want a corrupt-record error naming the file and offset, got %v", rel, err)
			}
			t.Logf("%s: %d packets, then %v", rel, len(pkts), err)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if n, ok := want[rel]; !ok || n != len(pkts) {
			t.Errorf("%s: read %d packets, MANIFEST says %d", rel, len(pkts), n)
		}
	}
}

// TestCorpusMatchesGopacket compares every packet with gopacket's pcapgo
// readers on the files they read.
func TestCorpusMatchesGopacket(t *testing.T) {
	for _, rel := range testcorpus.Captures(t) {
		if testcorpus.Malformed[rel] {
			continue
		}
		path := testcorpus.Path(t, rel)
		r, err := Open(path)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		ours, err := readAll(r)
		r.Close()
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		theirs, err := readGopacket(path, r.Format())
		if err != nil {
			t.Logf("%s: gopacket cannot read it (%v); skipped", rel, err)
			continue
		}
		if len(ours) != len(theirs) {
			t.Errorf("%s: %d packets, gopacket %d", rel, len(ours), len(theirs))
			continue
		}
		for i, p := range ours {
			g := theirs[i]
			gts := g.ci.Timestamp.UnixNano()
			if g.ci.Timestamp.IsZero() {
				gts = 0 // gopacket's "no timestamp" (simple packet blocks)
			}
			if p.Timestamp != gts || p.CaptureLength != g.ci.CaptureLength ||
				p.Length != g.ci.Length || p.LinkType != g.link || p.Interface != g.ci.InterfaceIndex ||
				string(p.Data) != string(g.data) {
				t.Errorf("%s: packet %d: ours ts=%d cap=%d len=%d link=%v if=%d, gopacket ts=%d cap=%d len=%d link=%v if=%d",
					rel, i, p.Timestamp, p.CaptureLength, p.Length, p.LinkType, p.Interface,
					gts, g.ci.CaptureLength, g.ci.Length, g.link, g.ci.InterfaceIndex)
				break
			}
		}
	}
}

type gopacketPacket struct {
	data []byte
	ci   gopacket.CaptureInfo
	link layers.LinkType
}

func readGopacket(path string, format Format) ([]gopacketPacket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []gopacketPacket
	if format == FormatPcapNG {
		ng, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, err
		}
		for {
			data, ci, err := ng.ReadPacketData()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return nil, err
			}
			in, err := ng.Interface(ci.InterfaceIndex)
			if err != nil {
				return nil, err
			}
			out = append(out, gopacketPacket{data, ci, in.LinkType})
		}
	}
	pr, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, err
	}
	for {
		data, ci, err := pr.ReadPacketData()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, gopacketPacket{data, ci, pr.LinkType()})
	}
}
