//go:build linux

package emulator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/netns"
)

// gateScript holds a task's command until the agent has isolated its
// container (Mesos keeps the forked child waiting the same way): the agent
// writes "go" on fd 3 once the networks are attached; anything else (the
// agent dying, or closing the pipe) makes the task exit.
const gateScript = `IFS= read -r gate <&3; [ "$gate" = go ] || exit 70; exec 3<&-; exec "$@"`

// startTask starts cmdline as a task: in new network, UTS and mount
// namespaces when isolated, otherwise in the agent's; in its own session;
// held by the gate until release is called. Output goes to stdout and
// stderr.
func startTask(netnsPath string, cmdline, env []string, isolated bool, stdout, stderr *os.File) (*taskProc, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	sh, err := exec.LookPath("sh")
	if err != nil {
		_ = w.Close()
		return nil, nil, fmt.Errorf("find sh: %w", err)
	}
	cmd := &exec.Cmd{
		Path:       sh,
		Args:       append([]string{"sh", "-c", gateScript, "mesos-task"}, cmdline...),
		Env:        env,
		Dir:        "/",
		Stdout:     stdout,
		Stderr:     stderr,
		ExtraFiles: []*os.File{r},
		SysProcAttr: &syscall.SysProcAttr{
			Setsid: true,
		},
	}
	if isolated {
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWNS
	}
	if err := startIn(netnsPath, cmd); err != nil {
		_ = w.Close()
		return nil, nil, fmt.Errorf("start task: %w", err)
	}
	pid := cmd.Process.Pid
	// The process is never waited for through cmd: a watcher reaps it,
	// possibly after an agent restart.
	_ = cmd.Process.Release()
	p, err := identify(pid)
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		_ = w.Close()
		return nil, nil, err
	}
	return p, w, nil
}

// startIn starts cmd from a thread in the network namespace at path
// (the current one when path is empty).
func startIn(path string, cmd *exec.Cmd) error {
	return inNetns(path, cmd.Start)
}

// inNetns runs fn in the network namespace at path (here when empty).
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return netns.Do(path, fn)
}

// release lets a gated task run its command.
func release(w *os.File) error {
	_, err := w.WriteString("go\n")
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// identify reads the identity of a running process.
func identify(pid int) (*taskProc, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return nil, err
	}
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	return &taskProc{PID: pid, StartTime: st.startTime, BootID: boot}, nil
}

type procStat struct {
	state     byte
	startTime uint64
}

// readProcStat parses /proc/<pid>/stat: the state (field 3) and the start
// time in clock ticks since boot (field 22).
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return procStat{state: fields[0][0], startTime: start}, nil
}

func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// alive reports whether the recorded process still runs: same boot, same
// pid and start time, not a zombie.
func (p *taskProc) alive() bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	if b, err := bootID(); err != nil || b != p.BootID {
		return false
	}
	st, err := readProcStat(p.PID)
	if err != nil || st.startTime != p.StartTime {
		return false
	}
	return st.state != 'Z' && st.state != 'X'
}

// pidfd opens a pidfd on p, checking afterwards that the pid still names
// p (so the fd cannot refer to a recycled pid).
func (p *taskProc) pidfd(flags int) (int, error) {
	fd, err := unix.PidfdOpen(p.PID, flags)
	if err != nil {
		return -1, err
	}
	if !p.alive() {
		_ = unix.Close(fd)
		return -1, unix.ESRCH
	}
	return fd, nil
}

// kill sends SIGKILL to p if it still runs.
func (p *taskProc) kill() error {
	fd, err := p.pidfd(0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// reap collects p's exit status when p is a child of this process (it
// is not after an agent restart in a new process).
func (p *taskProc) reap() exitInfo {
	for range 50 {
		// A zombie keeps its pid and start time until reaped: if they no
		// longer match, the pid is someone else's.
		if st, err := readProcStat(p.PID); err != nil || st.startTime != p.StartTime {
			return exitInfo{}
		}
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(p.PID, &ws, unix.WNOHANG, nil)
		if err != nil || wpid < 0 {
			return exitInfo{}
		}
		if wpid == p.PID {
			if ws.Signaled() {
				return exitInfo{known: true, signaled: true, signal: ws.Signal()}
			}
			return exitInfo{known: true, code: ws.ExitStatus()}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return exitInfo{}
}

// watch opens a pollable pidfd on p. It fails with ESRCH when p is gone.
func watch(p *taskProc) (*procWatcher, error) {
	fd, err := p.pidfd(unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return &procWatcher{p: p, f: os.NewFile(uintptr(fd), "pidfd")}, nil
}

// wait blocks until the process exits (true) or the watcher is closed
// (false).
func (w *procWatcher) wait() bool {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return false
	}
	exited := false
	err = rc.Read(func(uintptr) bool {
		exited = !w.p.alive()
		return exited
	})
	return err == nil && exited
}

// close stops wait.
func (w *procWatcher) close() { _ = w.f.Close() }

// waitGone polls until p no longer runs or ctx is done.
func waitGone(ctx context.Context, p *taskProc) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for p.alive() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// touch creates path if it does not exist.
func touch(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// bindNetns bind-mounts /proc/<pid>/ns/net onto target (touching it
// first), the isolator's netns handle.
func bindNetns(pid int, target string) error {
	if err := touch(target); err != nil {
		return fmt.Errorf("Failed to create the bind mount point: %w", err)
	}
	source := fmt.Sprintf("/proc/%d/ns/net", pid)
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("Failed to mount the network namespace handle from '%s' to '%s': %w", source, target, err)
	}
	return nil
}

// isNetnsHandle is the isolator's isNetworkNamespaceHandle: path is a
// live netns bind mount when its device is that of /proc/self/ns/net
// (nsfs). A missing path is an error.
func isNetnsHandle(path string) (bool, error) {
	var st, self unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, fmt.Errorf("Failed to get the device number of '%s': %w", path, err)
	}
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return false, fmt.Errorf("Failed to get the device number of '/proc/self/ns/net': %w", err)
	}
	return st.Dev == self.Dev, nil
}

// unmountNetns unmounts the netns handle.
func unmountNetns(path string) error {
	if err := unix.Unmount(path, 0); err != nil {
		return fmt.Errorf("Failed to unmount the network namespace handle '%s': %w", path, err)
	}
	return nil
}

// inNamespace runs fn on a locked thread switched into the namespace of
// type nstype at path (net, uts; not mnt, which a threaded process cannot
// join). If the thread cannot be switched back it is discarded.
func inNamespace(path string, nstype int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		kind := map[int]string{unix.CLONE_NEWUTS: "uts", unix.CLONE_NEWNET: "net"}[nstype]
		orig, err := os.Open(fmt.Sprintf("/proc/thread-self/ns/%s", kind))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), nstype); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), nstype); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore %s namespace: %w", kind, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// setHostname sets the hostname in the UTS namespace of pid.
func setHostname(pid int, hostname string) error {
	return inNamespace(fmt.Sprintf("/proc/%d/ns/uts", pid), unix.CLONE_NEWUTS, func() error {
		return unix.Sethostname([]byte(hostname))
	})
}

// loopbackUp brings lo up in the network namespace at path, as the
// isolator's setup helper does with `ip link set dev lo up`.
func loopbackUp(path string) error {
	return netns.Do(path, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	})
}

// errNoMountTools reports that nsenter or mount is missing, so network
// files are not bind-mounted into tasks.
var errNoMountTools = errors.New("nsenter or mount not found")

// bindNetworkFiles bind-mounts the container's hosts, hostname and
// resolv.conf over /etc/… in the mount namespace of pid, after marking
// that namespace's mounts as slaves so nothing propagates back to the
// host (what the isolator's setup helper does). files maps a target to
// its source; targets missing on the host are skipped.
func bindNetworkFiles(ctx context.Context, pid int, files [][2]string) error {
	nsenter, err1 := exec.LookPath("nsenter")
	mount, err2 := exec.LookPath("mount")
	if err1 != nil || err2 != nil {
		return errNoMountTools
	}
	mnt, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return err
	}
	defer mnt.Close()
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(int(mnt.Fd()), &theirs); err != nil {
		return err
	}
	if err := unix.Stat("/proc/self/ns/mnt", &ours); err != nil {
		return err
	}
	if theirs.Ino == ours.Ino && theirs.Dev == ours.Dev {
		return fmt.Errorf("task %d shares the agent's mount namespace", pid)
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, nsenter, append([]string{"--mount=/proc/self/fd/3", "--", mount, "-n"}, args...)...)
		cmd.ExtraFiles = []*os.File{mnt}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("mount %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("--make-rslave", "/"); err != nil {
		return err
	}
	for _, f := range files {
		target, source := f[0], f[1]
		if source == target {
			continue
		}
		if _, err := os.Stat(target); err != nil {
			continue
		}
		if err := run("--bind", source, target); err != nil {
			return err
		}
	}
	return nil
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	id     int
	target string
	shared int // peer group of a shared mount, 0 when not shared
}

func readMountInfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		id, _ := strconv.Atoi(fields[0])
		m := mountInfo{id: id, target: netns.UnescapeMountPath(fields[4])}
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			if g, ok := strings.CutPrefix(opt, "shared:"); ok {
				m.shared, _ = strconv.Atoi(g)
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func underPath(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// ensureSharedRoot makes root a shared mount in its own peer group, as
// the isolator does at start-up, so that netns handles mounted under it
// propagate to (and are unmounted from) tasks' mount namespaces.
func ensureSharedRoot(root string) error {
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	var rootMount *mountInfo
	for i := len(mounts) - 1; i >= 0; i-- {
		if underPath(root, mounts[i].target) {
			rootMount = &mounts[i]
			break
		}
	}
	if rootMount == nil {
		return errors.New("Cannot find the mount containing CNI network information root directory")
	}
	needed := rootMount.shared == 0
	if !needed {
		for _, m := range mounts {
			if m.id != rootMount.id && !underPath(m.target, root) && m.shared == rootMount.shared && underPath(root, m.target) {
				needed = true
				break
			}
		}
	}
	if !needed {
		return nil
	}
	if rootMount.target != root {
		if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("Failed to bind mount '%s' and make it a shared mount: %w", root, err)
		}
	}
	if err := unix.Mount("", root, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("Failed to make '%s' a shared mount: %w", root, err)
	}
	if err := unix.Mount("", root, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("Failed to make '%s' a shared mount: %w", root, err)
	}
	return nil
}

// ReleaseRoot undoes the self bind mount an Agent makes of its root
// directory (Mesos leaves it in place; the lab and tests remove it). It
// lazily unmounts everything still mounted under root.
func ReleaseRoot(root string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if underPath(mounts[i].target, abs) {
			if err := unix.Unmount(mounts[i].target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i].target, err))
			}
		}
	}
	return errors.Join(errs...)
}

// KillNetnsProcesses SIGKILLs every process whose network namespace is the
// one bind-mounted at nsPath: the whole task, including children that
// outlived its first process (a shell's children are re-parented to init
// when the shell dies). It refuses a namespace that is this process's or
// init's, and does nothing when nsPath is no namespace (host networking, or
// already unmounted).
func KillNetnsProcesses(nsPath string) error {
	var target unix.Stat_t
	if err := unix.Stat(nsPath, &target); err != nil {
		return nil
	}
	for _, own := range []string{"/proc/self/ns/net", "/proc/1/ns/net"} {
		var st unix.Stat_t
		if err := unix.Stat(own, &st); err == nil && st.Ino == target.Ino && st.Dev == target.Dev {
			return nil
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+e.Name()+"/ns/net", &st); err != nil {
			continue
		}
		if st.Ino == target.Ino && st.Dev == target.Dev {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("kill process %d of the task: %w", pid, err)
			}
		}
	}
	return nil
}
