//go:build linux

package dockerlab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/netns"
)

// proc names a process by pid and start time, so that a recycled pid is
// never taken for it.
type proc struct {
	pid   int
	start uint64
}

// procStat returns a process's state letter and start time.
func procStat(pid int) (state byte, start uint64, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], start, true
}

func procOf(pid int) (proc, bool) {
	_, start, ok := procStat(pid)
	return proc{pid: pid, start: start}, ok
}

// alive: the same process still runs (a zombie does not count: nobody
// may reap orphans here quickly).
func (p proc) alive() bool {
	state, start, ok := procStat(p.pid)
	return ok && start == p.start && state != 'Z' && state != 'X'
}

func (p proc) signal(sig syscall.Signal) {
	if p.alive() {
		_ = syscall.Kill(p.pid, sig)
	}
}

func (p proc) String() string {
	comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "comm"))
	return fmt.Sprintf("%d(%s)", p.pid, strings.TrimSpace(string(comm)))
}

// processes returns the live processes of the daemon: dockerd, its
// containerd and the shims (the engine's programs whose command line
// names a path under Dir), the processes in the daemon's container cgroups, and every
// one seen before that still runs. It remembers them all.
func (d *Daemon) processes() []proc {
	var found []proc
	entries, _ := os.ReadDir("/proc")
	needle := []byte(d.dir + "/")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, needle) || !dockerComm(pid) {
			continue
		}
		if p, ok := procOf(pid); ok {
			found = append(found, p)
		}
	}
	for _, dir := range d.cgroupDirs() {
		_ = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					if p, ok := procOf(pid); ok {
						found = append(found, p)
					}
				}
			}
			return nil
		})
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range found {
		d.seen[p] = true
	}
	var out []proc
	for p := range d.seen {
		if p.alive() {
			out = append(out, p)
		} else {
			delete(d.seen, p)
		}
	}
	slices.SortFunc(out, func(a, b proc) int { return a.pid - b.pid })
	return out
}

// dockerComm reports whether pid runs one of the engine's programs
// (dockerd, containerd, its shims, runc, docker-proxy/-init): other
// processes may name a path under Dir too (a client given the socket).
func dockerComm(pid int) bool {
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return false
	}
	c := strings.TrimSpace(string(comm))
	for _, p := range []string{"dockerd", "containerd", "runc", "docker-", "nsenter"} {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

// Processes returns the pids of the daemon's live processes: dockerd,
// containerd, shims and container processes.
func (d *Daemon) Processes() []int {
	var pids []int
	for _, p := range d.processes() {
		pids = append(pids, p.pid)
	}
	return pids
}

// cgroupDirs returns the daemon's container cgroup parent in every
// hierarchy where it exists (v1 controllers, named hierarchies, v2).
func (d *Daemon) cgroupDirs() []string {
	var out []string
	parent := d.cgroupParent()
	if fi, err := os.Stat(filepath.Join("/sys/fs/cgroup", parent)); err == nil && fi.IsDir() {
		out = append(out, filepath.Join("/sys/fs/cgroup", parent))
	}
	hs, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range hs {
		dir := filepath.Join("/sys/fs/cgroup", h.Name(), parent)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			out = append(out, dir)
		}
	}
	return out
}

// removeCgroups removes the daemon's (empty) container cgroups.
func (d *Daemon) removeCgroups() error {
	var errs []error
	for _, dir := range d.cgroupDirs() {
		var dirs []string
		_ = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		// Deepest first.
		for _, sub := range slices.Backward(dirs) {
			if err := unix.Rmdir(sub); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", sub, err))
			}
		}
	}
	return errors.Join(errs...)
}

// mountsUnder returns the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := netns.UnescapeMountPath(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// Deeper (longer) first; a path mounted twice appears twice.
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out, nil
}

// unmountUnder detaches every mount at or below dir (dockerd bind-mounts
// its data root onto itself and keeps container netns files under its
// exec root). Nothing outside dir is touched.
func unmountUnder(dir string) error {
	var errs []error
	for range 4 { // stacked mounts need more than one pass
		mps, err := mountsUnder(dir)
		if err != nil {
			return fmt.Errorf("read mounts: %w", err)
		}
		if len(mps) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, mp := range mps {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
			}
		}
	}
	if mps, _ := mountsUnder(dir); len(mps) > 0 {
		errs = append(errs, fmt.Errorf("mounts left under %s: %v", dir, mps))
	}
	return errors.Join(errs...)
}
