//go:build linux

package dockerlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weft-sdn/weft/internal/netns"
)

const (
	defaultStartTimeout = 60 * time.Second
	// stopGrace is how long dockerd gets to stop its containers and
	// containerd after SIGTERM, unless Stop's context ends earlier.
	stopGrace = 20 * time.Second
	// shutdownTimeout is dockerd's --shutdown-timeout: what it gives
	// containers before killing them when it stops.
	shutdownTimeout = 5
)

// Start runs dockerd in the network namespace opts.Netns with its state
// under opts.Dir and waits until it answers its ping. On failure it stops
// whatever it started and unmounts what dockerd mounted under Dir; the
// error holds the end of the daemon's log.
func Start(ctx context.Context, opts Options) (*Daemon, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("dockerlab: running dockerd needs root")
	}
	if opts.Netns == "" || !netns.IsNetns(opts.Netns) {
		return nil, fmt.Errorf("dockerlab: %q is not a network namespace", opts.Netns)
	}
	if opts.Dir == "" {
		return nil, errors.New("dockerlab: no state directory")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("dockerlab: %w", err)
	}
	// Unix socket paths are limited to 107 bytes; containerd's sockets
	// sit deepest.
	if n := len(filepath.Join(dir, "exec", "containerd", "containerd.sock.ttrpc")); n > 100 {
		return nil, fmt.Errorf("dockerlab: state directory %s is too long for unix sockets under it", dir)
	}
	dockerd, err := findDockerd(opts.Dockerd)
	if err != nil {
		return nil, fmt.Errorf("dockerlab: find dockerd (install docker.io): %w", err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("dockerlab: %w", err)
	}
	d := &Daemon{opts: opts, dir: dir, dockerd: dockerd, seen: map[proc]bool{}}
	if err := d.start(ctx); err != nil {
		if cerr := d.Cleanup(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after failed start: %w", cerr))
		}
		return nil, err
	}
	return d, nil
}

// args are dockerd's flags; README.md says why each is there.
func (d *Daemon) args() []string {
	return []string{
		"--config-file=" + filepath.Join(d.dir, "daemon.json"),
		"--data-root=" + d.dataRoot(),
		"--exec-root=" + d.execRoot(),
		"--pidfile=" + d.pidFile(),
		"--host=" + d.Socket(),
		"--storage-driver=vfs",
		"--bridge=none",
		"--exec-opt=native.cgroupdriver=cgroupfs",
		"--cgroup-parent=/" + d.cgroupParent(),
		"--iptables=true",
		"--ip-forward=true",
		"--userland-proxy=false",
		"--shutdown-timeout=" + strconv.Itoa(shutdownTimeout),
		"--log-level=info",
	}
}

func (d *Daemon) start(ctx context.Context) error {
	d.mu.Lock()
	running := d.proc != nil && d.proc.alive()
	d.mu.Unlock()
	if running {
		return fmt.Errorf("dockerlab: dockerd for %s runs already", d.dir)
	}
	if b, err := os.ReadFile(d.pidFile()); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if p, ok := procOf(pid); ok && p.alive() && strings.Contains(cmdline(pid), d.dir+"/") {
				return fmt.Errorf("dockerlab: %s is in use by dockerd pid %d", d.dir, pid)
			}
		}
	}
	// With forwarding already on, dockerd leaves the FORWARD policy at
	// ACCEPT (it sets DROP only when it has to turn forwarding on itself),
	// so routed peers can reach containers; see README.md.
	if err := netns.Do(d.opts.Netns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	}); err != nil {
		return fmt.Errorf("dockerlab: enable forwarding in %s: %w", d.opts.Netns, err)
	}
	// Our own (empty) config file: the host's /etc/docker/daemon.json
	// must not leak in.
	if err := os.WriteFile(filepath.Join(d.dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		return fmt.Errorf("dockerlab: %w", err)
	}
	logf, err := os.OpenFile(d.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("dockerlab: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- dockerlab: starting dockerd in %s at %s\n", d.opts.Netns, time.Now().UTC().Format(time.RFC3339))

	// nsenter enters only the network namespace. `ip netns exec` would
	// also unshare the mount namespace and remount /sys, hiding dockerd's
	// mounts from us (and the cgroup tree from dockerd).
	args := append([]string{"--net=" + d.opts.Netns, "--", d.dockerd}, d.args()...)
	cmd := exec.Command("nsenter", args...)
	cmd.Dir = d.dir
	cmd.Env = daemonEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	if d.opts.Log != nil {
		w := io.MultiWriter(logf, d.opts.Log)
		cmd.Stdout, cmd.Stderr = w, w
		// containerd inherits the pipe; do not wait on it forever.
		cmd.WaitDelay = 2 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dockerlab: start dockerd: %w", err)
	}
	p, _ := procOf(cmd.Process.Pid)
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	d.mu.Lock()
	d.proc, d.done = &p, done
	d.seen[p] = true
	d.mu.Unlock()
	d.log().Info("dockerd started", "pid", p.pid, "netns", d.opts.Netns, "socket", d.Socket())

	timeout := d.opts.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	var last error
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(wctx, 2*time.Second)
		err := c.Ping(pctx)
		pcancel()
		if err == nil {
			d.log().Info("dockerd ready", "pid", p.pid, "api", c.APIVersion())
			return nil
		}
		if wctx.Err() == nil || last == nil {
			last = err // keep the engine's answer, not our deadline
		}
		select {
		case <-done:
			return fmt.Errorf("dockerlab: dockerd exited during start (%v)%s", waitErr, d.logTail())
		case <-wctx.Done():
			return fmt.Errorf("dockerlab: dockerd did not answer on %s within %v: %w%s", d.Socket(), timeout, last, d.logTail())
		case <-tick.C:
		}
	}
}

// daemonEnv is our environment without Docker client settings, with the
// sbin directories dockerd needs for containerd, runc and iptables.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "NOTIFY_SOCKET", "PATH":
			continue
		}
		env = append(env, kv)
	}
	path := os.Getenv("PATH")
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if !strings.Contains(":"+path+":", ":"+dir+":") {
			path += ":" + dir
		}
	}
	return append(env, "PATH="+strings.TrimPrefix(path, ":"))
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

// logTail returns the last lines of the daemon's log, for errors.
func (d *Daemon) logTail() string {
	b, err := os.ReadFile(d.LogPath())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return "\n--- last lines of " + d.LogPath() + " ---\n" + strings.Join(lines, "\n")
}

// Stop stops the daemon: SIGTERM to dockerd, which stops its containers
// and containerd; after a grace period (20s, or less if ctx ends earlier)
// SIGKILL to dockerd, containerd, the shims and the container processes.
// It returns once they are all gone. Stopping a stopped daemon is fine.
func (d *Daemon) Stop(ctx context.Context) error {
	d.mu.Lock()
	p, done := d.proc, d.done
	d.mu.Unlock()
	known := d.processes()
	if p != nil && p.alive() {
		p.signal(syscall.SIGTERM)
		grace := time.NewTimer(stopGrace)
		select {
		case <-done:
		case <-grace.C:
			d.log().Warn("dockerd did not stop in time; killing it", "pid", p.pid)
		case <-ctx.Done():
		}
		grace.Stop()
	}
	// containerd and the shims go on their own after dockerd; give them
	// a moment, then kill whatever is left.
	waitGone(d, 3*time.Second)
	left := d.processes()
	for _, q := range left {
		q.signal(syscall.SIGKILL)
	}
	if len(left) > 0 {
		d.log().Warn("killed leftover processes", "pids", left)
	}
	gone := waitGone(d, 5*time.Second)
	if done != nil {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	d.mu.Lock()
	d.proc = nil
	d.mu.Unlock()
	if !gone {
		return fmt.Errorf("dockerlab: processes survive SIGKILL: %v", d.processes())
	}
	d.log().Info("dockerd stopped", "dir", d.dir, "processes", len(known))
	return nil
}

// waitGone waits until none of the daemon's processes runs.
func waitGone(d *Daemon, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if len(d.processes()) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart stops the daemon and starts it again with the same state.
func (d *Daemon) Restart(ctx context.Context) error {
	if err := d.Stop(ctx); err != nil {
		return err
	}
	return d.start(ctx)
}

// Cleanup stops the daemon, unmounts everything dockerd mounted under Dir
// and removes its container cgroups. Dir itself is left to the caller
// (after Cleanup, os.RemoveAll(Dir) is safe). It is safe to call more than
// once.
func (d *Daemon) Cleanup(ctx context.Context) error {
	var errs []error
	if err := d.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := unmountUnder(d.dir); err != nil {
		errs = append(errs, fmt.Errorf("dockerlab: %w", err))
	}
	if err := d.removeCgroups(); err != nil {
		errs = append(errs, fmt.Errorf("dockerlab: %w", err))
	}
	return errors.Join(errs...)
}

// Mounts returns the mount points under Dir (deepest first).
func (d *Daemon) Mounts() ([]string, error) { return mountsUnder(d.dir) }
