package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The benchmark's network: two private network namespaces (capture side and
// sender side) joined by one veth pair whose ends are created directly
// inside them, so the host's namespace, interfaces and routes are never
// touched and no replayed frame can leave the pair. Neither end has an
// address; the only address configured anywhere is 127.0.0.1 on the
// namespaces' own loopback (the daemon's metrics listener).

const (
	// nsPrefix starts every namespace name this command creates; a stale
	// one (its creator dead) is removed on the next start.
	nsPrefix = "phlb-"
	// ownComm is how /proc/PID/comm names this command (15 bytes at most),
	// to tell a live run's namespaces from a dead run's under a reused pid.
	ownComm  = "phonehome-live"
	capLink  = "lbcap0"
	peerLink = "lbpeer0"
	// linkMTU lets every synthetic frame (VLAN-tagged full-size ones
	// included) through the pair without a send failure.
	linkMTU = 9000
)

// testbed is one pair of namespaces and the veth link between them.
type testbed struct {
	capNS, peerNS string   // names under /run/netns
	capIf, peerIf string   // veth ends, inside capNS and peerNS
	created       []string // namespaces to delete on Close
}

// ipCmd runs the ip command and returns its stdout.
func ipCmd(ctx context.Context, args ...string) ([]byte, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.Bytes(), nil
}

// newTestbed creates the namespaces and the veth pair; on error everything
// already created is removed again.
func newTestbed(ctx context.Context, tag string) (tb *testbed, err error) {
	tb = &testbed{capNS: nsPrefix + tag + "-c", peerNS: nsPrefix + tag + "-p", capIf: capLink, peerIf: peerLink}
	defer func() {
		if err != nil {
			_ = tb.Close()
		}
	}()
	for _, ns := range []string{tb.capNS, tb.peerNS} {
		if _, err := ipCmd(ctx, "netns", "add", ns); err != nil {
			return nil, err
		}
		tb.created = append(tb.created, ns)
		if _, err := ipCmd(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
		// No IPv6 autoconfiguration chatter on the pair: the capture must
		// see exactly the replayed frames.
		if err := inNetns(ns, func() error {
			for _, k := range []string{"all", "default"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0); err != nil {
					return fmt.Errorf("disable IPv6 (%s): %w", k, err)
				}
			}
			return nil
		}); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
	}
	mtu := strconv.Itoa(linkMTU)
	if _, err := ipCmd(ctx, "link", "add", tb.capIf, "netns", tb.capNS, "mtu", mtu, "type", "veth",
		"peer", "name", tb.peerIf, "netns", tb.peerNS, "mtu", mtu); err != nil {
		return nil, err
	}
	if _, err := ipCmd(ctx, "-n", tb.capNS, "link", "set", tb.capIf, "up"); err != nil {
		return nil, err
	}
	if _, err := ipCmd(ctx, "-n", tb.peerNS, "link", "set", tb.peerIf, "up"); err != nil {
		return nil, err
	}
	return tb, nil
}

// Close ends whatever still runs inside the namespaces (only this command's
// own children can: nothing else knows them) and deletes them, which
// destroys the veth pair.
func (tb *testbed) Close() error {
	var errs []error
	for _, ns := range tb.created {
		killNetnsPids(ns)
		if _, err := ipCmd(context.Background(), "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	tb.created = nil
	return errors.Join(errs...)
}

// killNetnsPids SIGKILLs the processes inside one of this command's
// namespaces, by pid.
func killNetnsPids(ns string) {
	out, err := ipCmd(context.Background(), "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeStaleNamespaces deletes namespaces a killed earlier run left behind
// (named nsPrefix+PID+..., whose PID is gone or is no longer this command).
func removeStaleNamespaces(ctx context.Context) []string {
	out, err := ipCmd(ctx, "netns", "list")
	if err != nil {
		return nil
	}
	var removed []string
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || processIsOurs(pid) {
			continue
		}
		killNetnsPids(name)
		if _, err := ipCmd(ctx, "netns", "del", name); err == nil {
			removed = append(removed, name)
		}
	}
	return removed
}

func processIsOurs(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(comm)), ownComm)
}

// inNetns runs fn on an OS thread switched into namespace ns; sockets fn
// opens belong to ns for their whole life.
func inNetns(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with its goroutine instead of
		// running other goroutines in the wrong namespace.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// dialer returns a DialContext that opens its sockets inside ns, so this
// process can scrape a daemon listening on ns's loopback. Each dial runs on
// a goroutine of its own because a failed switch back strands its thread.
func dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			var r result
			r.err = inNetns(ns, func() error {
				var err error
				r.c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			ch <- r
		}()
		r := <-ch
		return r.c, r.err
	}
}

// freePort finds a free TCP port on 127.0.0.1 inside ns.
func freePort(ns string) (int, error) {
	var port int
	err := inNetns(ns, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		return ln.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("free port in %s: %w", ns, err)
	}
	return port, nil
}

// linkCounters are a veth end's kernel counters.
type linkCounters struct {
	RxPackets, RxDropped, TxPackets, TxDropped uint64
}

// parseLinkJSON reads `ip -s -j link show dev X` output.
func parseLinkJSON(b []byte) (linkCounters, error) {
	var links []struct {
		Stats64 struct {
			Rx struct {
				Packets uint64 `json:"packets"`
				Dropped uint64 `json:"dropped"`
			} `json:"rx"`
			Tx struct {
				Packets uint64 `json:"packets"`
				Dropped uint64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(b, &links); err != nil {
		return linkCounters{}, fmt.Errorf("link counters: %w", err)
	}
	if len(links) != 1 {
		return linkCounters{}, fmt.Errorf("link counters: %d links in the answer, want 1", len(links))
	}
	s := links[0].Stats64
	return linkCounters{RxPackets: s.Rx.Packets, RxDropped: s.Rx.Dropped, TxPackets: s.Tx.Packets, TxDropped: s.Tx.Dropped}, nil
}

// counters reads both ends of the pair.
func (tb *testbed) counters(ctx context.Context) (capEnd, peerEnd linkCounters, err error) {
	for _, e := range []struct {
		ns, dev string
		into    *linkCounters
	}{{tb.capNS, tb.capIf, &capEnd}, {tb.peerNS, tb.peerIf, &peerEnd}} {
		out, err := ipCmd(ctx, "-n", e.ns, "-s", "-j", "link", "show", "dev", e.dev)
		if err != nil {
			return capEnd, peerEnd, err
		}
		if *e.into, err = parseLinkJSON(out); err != nil {
			return capEnd, peerEnd, err
		}
	}
	return capEnd, peerEnd, nil
}
