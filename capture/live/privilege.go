package live

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Linux capability numbers (linux/capability.h).
const (
	CapNetAdmin = 12
	CapNetRaw   = 13
)

// Capabilities are the process's capability sets, as bit masks indexed by
// capability number.
type Capabilities struct {
	Effective uint64
	Permitted uint64
	Ambient   uint64
}

// Has reports whether capability capNum is effective.
func (c Capabilities) Has(capNum int) bool { return c.Effective&(1<<capNum) != 0 }

// NetRaw reports whether CAP_NET_RAW is effective: needed to open packet
// sockets (both engines).
func (c Capabilities) NetRaw() bool { return c.Has(CapNetRaw) }

// NetAdmin reports whether CAP_NET_ADMIN is effective. Neither engine needs
// it for what the daemon does (libpcap wants it only for wireless monitor
// mode and hardware timestamps); it is reported for diagnostics.
func (c Capabilities) NetAdmin() bool { return c.Has(CapNetAdmin) }

// CheckCapabilities reads the calling thread's capability sets from
// /proc/thread-self/status (every thread has the same sets unless the
// program changed one thread's).
func CheckCapabilities() (Capabilities, error) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		b, err = os.ReadFile("/proc/self/status")
		if err != nil {
			return Capabilities{}, fmt.Errorf("live: capabilities: %w", err)
		}
	}
	st, err := parseStatus(b)
	if err != nil {
		return Capabilities{}, fmt.Errorf("live: capabilities: %w", err)
	}
	return st.caps, nil
}

// procStatus is what privilege checks need from /proc/.../status.
type procStatus struct {
	uids, gids [4]int // real, effective, saved, filesystem
	groups     []int
	caps       Capabilities
}

// parseStatus parses the Uid, Gid, Groups and Cap* lines of a status file.
func parseStatus(b []byte) (procStatus, error) {
	var st procStatus
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "Uid":
			err = parseIDs(val, st.uids[:])
		case "Gid":
			err = parseIDs(val, st.gids[:])
		case "Groups":
			for _, f := range strings.Fields(val) {
				g, perr := strconv.Atoi(f)
				if perr != nil {
					err = perr
					break
				}
				st.groups = append(st.groups, g)
			}
		case "CapEff":
			st.caps.Effective, err = strconv.ParseUint(val, 16, 64)
		case "CapPrm":
			st.caps.Permitted, err = strconv.ParseUint(val, 16, 64)
		case "CapAmb":
			st.caps.Ambient, err = strconv.ParseUint(val, 16, 64)
		default:
			continue
		}
		if err != nil {
			return st, fmt.Errorf("status line %q: %w", key, err)
		}
		seen++
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if seen < 5 {
		return st, errors.New("status file lacks Uid, Gid or Cap lines")
	}
	return st, nil
}

func parseIDs(val string, out []int) error {
	f := strings.Fields(val)
	if len(f) != len(out) {
		return fmt.Errorf("%d ids, want %d", len(f), len(out))
	}
	for i := range f {
		v, err := strconv.Atoi(f[i])
		if err != nil {
			return err
		}
		out[i] = v
	}
	return nil
}

// DropPrivileges switches the whole process (every thread) to the named
// user, its primary group and its supplementary groups, then checks that it
// cannot become root again and holds no capability. Open the capture first:
// the open sockets keep working. It refuses to switch to root and, when the
// process is not root, succeeds only if it already runs as that user. On
// error the process may be half switched: it must exit.
func DropPrivileges(name string) error {
	if name == "" {
		return errors.New("live: drop privileges: no user given")
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("live: drop privileges: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("live: drop privileges: user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("live: drop privileges: user %s: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return fmt.Errorf("live: drop privileges: user %s is root", name)
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	if os.Geteuid() != 0 {
		if os.Getuid() == uid && os.Geteuid() == uid {
			// Already that user (capabilities from setcap, if any, stay:
			// a cgo program cannot clear them on every thread).
			return verifyDropped(uid, gid, nil)
		}
		return fmt.Errorf("live: drop privileges: running as uid %d, not root: cannot switch to %s", os.Geteuid(), name)
	}
	// The standard library's setters change every thread of the process
	// (golang.org/x/sys/unix forwards Setres[ug]id to them; its Setgroups
	// is a one-thread raw syscall, so use syscall's). Groups first: after
	// setuid the process may no longer change them.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("live: drop privileges: setgroups: %w", err)
	}
	if err := unix.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("live: drop privileges: setresgid %d: %w", gid, err)
	}
	if err := unix.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("live: drop privileges: setresuid %d: %w", uid, err)
	}
	return verifyDropped(uid, gid, groups)
}

// verifyDropped checks that root cannot be regained and that every thread
// runs as uid/gid; with groups non-nil, also that every thread has exactly
// those supplementary groups and no capability left.
func verifyDropped(uid, gid int, groups []int) error {
	if err := unix.Setresuid(0, 0, 0); err == nil {
		return errors.New("live: drop privileges: setresuid(0) still succeeds")
	}
	if err := unix.Setresgid(0, 0, 0); err == nil {
		return errors.New("live: drop privileges: setresgid(0) still succeeds")
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("live: drop privileges: list threads: %v", err)
	}
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited
			}
			return fmt.Errorf("live: drop privileges: %w", err)
		}
		st, err := parseStatus(b)
		if err != nil {
			return fmt.Errorf("live: drop privileges: %s: %w", path, err)
		}
		for i := range st.uids {
			if st.uids[i] != uid || st.gids[i] != gid {
				return fmt.Errorf("live: drop privileges: %s still has uids %v gids %v", path, st.uids, st.gids)
			}
		}
		if groups == nil {
			continue
		}
		if !sameSet(st.groups, groups) {
			return fmt.Errorf("live: drop privileges: %s has groups %v, want %v", path, st.groups, groups)
		}
		if st.caps.Effective != 0 || st.caps.Permitted != 0 || st.caps.Ambient != 0 {
			return fmt.Errorf("live: drop privileges: %s still has capabilities eff=%x prm=%x amb=%x",
				path, st.caps.Effective, st.caps.Permitted, st.caps.Ambient)
		}
	}
	return nil
}

func sameSet(a, b []int) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}
