package sink

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startRsyslog runs rsyslogd in the foreground with imudp and imtcp on
// loopback, writing "MSGID|APP-NAME|MSG" lines to the returned file.
func startRsyslog(t *testing.T) (udpAddr, tcpAddr, out string) {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("rsyslogd not installed (apt-get install rsyslog): skipping the real-collector test")
	}
	dir := t.TempDir()
	udpPort, tcpPort := freePort(t, "udp"), freePort(t, "tcp")
	out = filepath.Join(dir, "out.log")
	conf := fmt.Sprintf(`global(workDirectory="%[1]s" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="%[2]d")
input(type="imtcp" address="127.0.0.1" port="%[3]d")
template(name="probe" type="string" string="%%msgid%%|%%app-name%%|%%msg%%\n")
*.* action(type="omfile" file="%[4]s" template="probe")
`, dir, udpPort, tcpPort, out)
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	tcpAddr = fmt.Sprintf("127.0.0.1:%d", tcpPort)
	udpAddr = fmt.Sprintf("127.0.0.1:%d", udpPort)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", tcpAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return udpAddr, tcpAddr, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd did not listen on %s: %v\n%s", tcpAddr, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLines polls the rsyslog output until it holds n lines with prefix.
func waitLines(t *testing.T, out, prefix string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got []string
		if f, err := os.Open(out); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), prefix) {
					got = append(got, sc.Text())
				}
			}
			f.Close()
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSyslogAgainstRsyslogd(t *testing.T) {
	udpAddr, tcpAddr, out := startRsyslog(t)
	for _, tc := range []struct {
		network, addr string
		n             int
	}{
		{"udp", udpAddr, 50},
		{"tcp", tcpAddr, 200},
	} {
		t.Run(tc.network, func(t *testing.T) {
			s, err := NewSyslog(SyslogConfig{Network: tc.network, Address: tc.addr})
			if err != nil {
				t.Fatal(err)
			}
			dataset := "phonehome." + tc.network
			want := make([]string, tc.n)
			for i := range tc.n {
				// Up to ~6 KB, inside rsyslog's and our UDP limits.
				line := fmt.Sprintf(`{"net":%q,"i":%d,"dns":{"question":{"name":"a%d.kaspersky-labs.com"}},"pad":"%s"}`,
					tc.network, i, i, strings.Repeat("q", (i*97)%6000))
				want[i] = dataset + "|phonehome|" + line
				if err := s.Write(context.Background(), Record{Line: []byte(line), Dataset: dataset}); err != nil {
					t.Fatal(err)
				}
				if tc.network == "udp" && i%10 == 9 {
					time.Sleep(2 * time.Millisecond) // stay under the socket buffer
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			got := waitLines(t, out, dataset+"|", tc.n)
			if len(got) != tc.n {
				t.Fatalf("rsyslogd logged %d of %d messages", len(got), tc.n)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("message %d:\n got %.200q\nwant %.200q", i, got[i], want[i])
				}
			}
		})
	}
}
