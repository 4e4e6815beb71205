package live

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phonehome/phonehome/engine"
)

const dropChildEnv = "PHONEHOME_LIVE_DROP_CHILD"

// TestDropPrivileges re-runs the test binary as a child that opens
// captures on loopback as root, drops to "nobody", and checks that the
// open captures still work while root, capabilities and new packet sockets
// are gone. A child because the switch cannot be undone.
func TestDropPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dropping privileges needs root: run `sudo go test ./capture/live`")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDropPrivilegesChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), dropChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDropPrivilegesChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestDropPrivilegesChild(t *testing.T) {
	if os.Getenv(dropChildEnv) == "" {
		t.Skip("run by TestDropPrivileges")
	}
	caps, err := CheckCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.NetRaw() || !caps.NetAdmin() {
		t.Fatalf("root without CAP_NET_RAW/CAP_NET_ADMIN: %+v", caps)
	}
	// A receiver so the test datagrams draw no ICMP errors.
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	port := rx.LocalAddr().(*net.UDPAddr).Port
	var captures []*Capture
	for _, eng := range []string{EnginePcap, EngineAFPacket} {
		cfg := testConfig(eng, "lo")
		cfg.BPF = "udp and dst host 127.0.0.1 and dst port " + strconv.Itoa(port)
		c, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		captures = append(captures, c)
	}

	if err := DropPrivileges("nobody"); err != nil {
		t.Fatal(err)
	}
	nobody, _ := user.Lookup("nobody")
	if strconv.Itoa(os.Getuid()) != nobody.Uid || strconv.Itoa(os.Geteuid()) != nobody.Uid {
		t.Fatalf("uid %d euid %d, want %s", os.Getuid(), os.Geteuid(), nobody.Uid)
	}
	if caps, err := CheckCapabilities(); err != nil || caps.Effective != 0 || caps.Permitted != 0 {
		t.Fatalf("capabilities after drop: %+v %v", caps, err)
	}
	if err := unix.Setresuid(0, 0, 0); err == nil {
		t.Fatal("regained root")
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err == nil {
		unix.Close(fd)
		t.Fatal("opened a packet socket after dropping privileges")
	}
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("packet socket: %v, want EPERM", err)
	}
	if _, err := Open(testConfig(EngineAFPacket, "lo")); err == nil {
		t.Error("opened a new capture after dropping privileges")
	}
	// Dropping again as the same user is a no-op that still verifies.
	if err := DropPrivileges("nobody"); err != nil {
		t.Errorf("second drop: %v", err)
	}
	if err := DropPrivileges("root"); err == nil {
		t.Error("switched to root")
	}

	// The captures opened before the drop keep working.
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if _, err := tx.Write(testPayload(7, 0, 0, 40)); err != nil {
		t.Fatal(err)
	}
	for i, c := range captures {
		frames := readUntil(t, c.Sources()[0], time.Now().Add(3*time.Second), func(fr []captured) bool { return len(fr) > 0 })
		if fl, _, _, ok := tagOf(frames[0].Data); !ok || fl != 7 {
			t.Errorf("capture %d after drop: unexpected frame %x", i, frames[0].Data)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tphonehome\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n" +
		"Groups:\t65534 100 \nCapInh:\t0000000000000000\nCapPrm:\t0000000000003000\n" +
		"CapEff:\t0000000000002000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000001000\n"
	st, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if st.uids != [4]int{65534, 65534, 65534, 65534} || st.gids[0] != 65534 || !sameSet(st.groups, []int{100, 65534}) {
		t.Errorf("ids %+v", st)
	}
	if !st.caps.NetRaw() || st.caps.NetAdmin() || st.caps.Permitted != 0x3000 || st.caps.Ambient != 0x1000 {
		t.Errorf("caps %+v", st.caps)
	}
	for _, bad := range []string{
		"Uid:\t1 2 3\nGid:\t1 1 1 1\nCapEff:\t0\nCapPrm:\t0\nCapAmb:\t0\n",
		"Uid:\t1 1 1 1\nGid:\t1 1 1 1\nCapEff:\tzz\nCapPrm:\t0\nCapAmb:\t0\n",
		"Name:\tx\n",
	} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestDropPrivilegesRefuses(t *testing.T) {
	if err := DropPrivileges(""); err == nil {
		t.Error("empty user accepted")
	}
	if err := DropPrivileges("phonehome-no-such-user"); err == nil {
		t.Error("unknown user accepted")
	}
	if os.Geteuid() != 0 {
		// Not root: switching to another user must fail without trying.
		if err := DropPrivileges("nobody"); err == nil && strconv.Itoa(os.Getuid()) != mustUID(t, "nobody") {
			t.Error("non-root switched users")
		}
	}
}

func mustUID(t *testing.T, name string) string {
	u, err := user.Lookup(name)
	if err != nil {
		t.Skip(err)
	}
	return u.Uid
}

const netRawChildEnv = "PHONEHOME_LIVE_NETRAW_CHILD"

// TestNetRawOnly runs a child as "nobody" holding only CAP_NET_RAW (as
// systemd's AmbientCapabilities or setcap give it) and checks that both
// engines, fanout included, open and capture on loopback.
func TestNetRawOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("starting a child with only CAP_NET_RAW needs root: run `sudo go test ./capture/live`")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	cmd := exec.Command(setpriv, "--reuid="+nobody.Uid, "--regid="+nobody.Gid, "--clear-groups",
		"--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw",
		os.Args[0], "-test.run=^TestNetRawOnlyChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netRawChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNetRawOnlyChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestNetRawOnlyChild(t *testing.T) {
	if os.Getenv(netRawChildEnv) == "" {
		t.Skip("run by TestNetRawOnly")
	}
	caps, err := CheckCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 || !caps.NetRaw() || caps.NetAdmin() {
		t.Fatalf("euid %d caps %+v: want non-root with CAP_NET_RAW only", os.Geteuid(), caps)
	}
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	port := rx.LocalAddr().(*net.UDPAddr).Port
	var srcs []engine.Source
	for _, eng := range []string{EnginePcap, EngineAFPacket} {
		cfg := testConfig(eng, "lo")
		cfg.Workers = 2
		cfg.BPF = "udp and dst host 127.0.0.1 and dst port " + strconv.Itoa(port)
		c, err := Open(cfg)
		if err != nil {
			t.Fatalf("%s without root: %v", eng, err)
		}
		defer c.Close()
		defer c.Stop()
		srcs = append(srcs, c.Sources()...)
	}
	frames := make(chan captured, 16)
	stop := make(chan struct{})
	wg := readAll(t, srcs, frames, stop)
	defer wg.Wait()
	defer close(stop)
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if _, err := tx.Write(testPayload(8, 0, 0, 40)); err != nil {
		t.Fatal(err)
	}
	// pcap's one source, and one of the two fanout sockets, see it.
	var got []int
	timeout := time.After(3 * time.Second)
	for len(got) < 2 {
		select {
		case fr := <-frames:
			if fl, _, _, ok := tagOf(fr.Data); !ok || fl != 8 {
				t.Fatalf("source %d: unexpected frame %x", fr.source, fr.Data)
			}
			got = append(got, fr.source)
		case <-timeout:
			t.Fatalf("datagram seen by sources %v, want pcap's and one fanout socket", got)
		}
	}
	select {
	case fr := <-frames:
		t.Errorf("datagram seen a third time, by source %d (first %v) %x", fr.source, got, fr.Data)
	case <-time.After(300 * time.Millisecond):
	}
}
