//go:build linux

package dockerlab

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weft-sdn/weft/internal/docker"
	"github.com/weft-sdn/weft/internal/kerneltest"
	"github.com/weft-sdn/weft/internal/netns"
)

// requireTools fails under CI (which installs docker.io and
// busybox-static) and skips elsewhere when a tool is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			kerneltest.Missing(t, "%s not found (CI installs docker.io and busybox-static)", tool)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestBusyboxRootfs(t *testing.T) {
	requireTools(t, Busybox)
	ctx := t.Context()
	a, err := BusyboxRootfs(ctx, Busybox)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BusyboxRootfs(ctx, Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("rootfs archive is not reproducible")
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if entries[h.Name] != nil {
			t.Errorf("%s twice", h.Name)
		}
		entries[h.Name] = h
	}
	if h := entries["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
		t.Errorf("bin/busybox: %+v", h)
	}
	for _, l := range []string{"bin/sh", "bin/ping", "bin/sleep", "usr/bin/nc", "usr/bin/wget", "sbin/ip"} {
		if h := entries[l]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
			t.Errorf("%s: %+v", l, h)
		}
	}
	if h := entries["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/: %+v", h)
	}
	if _, err := BusyboxRootfs(ctx, "/nonexistent/busybox"); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("missing busybox: %v", err)
	}
}

func randomPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "wdk-" + hex.EncodeToString(b) + "-"
}

// route sets up routed reachability between the Docker node and a peer
// node on another subnet: the peer owns 9.0.0.2/32 and routes the Docker
// network's subnet via the Docker node's underlay address, and back.
func route(t *testing.T, dockerNode, peer netns.LabNode, subnet netip.Prefix, peerAddr netip.Addr) {
	t.Helper()
	at := func(path string) *netlink.Handle {
		h, err := netns.NewHandle(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		return h
	}
	ph, dh := at(peer.Path), at(dockerNode.Path)
	lo, err := ph.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: peerAddr.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	add := func(h *netlink.Handle, dst netip.Prefix, via netip.Addr) {
		if err := h.RouteAdd(&netlink.Route{
			Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
			Gw:  via.AsSlice(),
		}); err != nil {
			t.Fatalf("route %s via %s: %v", dst, via, err)
		}
	}
	add(ph, subnet, dockerNode.Underlay.Addr())
	add(dh, netip.PrefixFrom(peerAddr, 25).Masked(), peer.Underlay.Addr())
}

// startDaemon starts a daemon with full cleanup: the daemon and its
// children killed, mounts under Dir gone, Dir removed; then it checks
// that no process it ever saw is left.
func startDaemon(t *testing.T, ctx context.Context, path string) *Daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "wdk-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := Start(ctx, Options{Netns: path, Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	t.Cleanup(func() {
		for _, pid := range d.Processes() {
			seen[pid] = true
		}
		if err := d.Cleanup(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if left := d.Processes(); len(left) > 0 {
			t.Errorf("processes left: %v", left)
		}
		for p := range d.seen {
			t.Errorf("process %v left", p)
		}
		if mps, err := d.Mounts(); err != nil || len(mps) > 0 {
			t.Errorf("mounts left under %s: %v %v", dir, mps, err)
		}
		if dirs := d.cgroupDirs(); len(dirs) > 0 {
			t.Errorf("cgroups left: %v", dirs)
		}
		if t.Failed() {
			if b, err := os.ReadFile(d.LogPath()); err == nil {
				lines := strings.Split(string(b), "\n")
				t.Logf("dockerd log (last 60 lines):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
			}
		}
	})
	return d
}

func TestDaemonInNetns(t *testing.T) {
	kerneltest.RequireRoot(t)
	requireTools(t, "nsenter", "dockerd", "containerd", "runc", "docker", "iptables", Busybox)
	began := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	prefix := randomPrefix(t)
	t.Cleanup(func() {
		if left, _ := netns.List(prefix); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
	})
	lab, err := netns.NewLab(prefix, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("delete namespaces: %v", err)
		}
	})
	node, peer := lab.Nodes[0], lab.Nodes[1]
	subnet := netip.MustParsePrefix("9.0.1.128/25")
	peerAddr := netip.MustParseAddr("9.0.0.2")
	route(t, node, peer, subnet, peerAddr)

	d := startDaemon(t, ctx, node.Path)
	t.Logf("daemon up after %v", time.Since(began).Round(time.Millisecond))
	c, err := d.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.APIVersion() == "" {
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("engine API %s", c.APIVersion())

	spec := docker.NetworkSpec{Name: "test", BridgeName: "d-test", MTU: 1420, Subnet: subnet}
	if created, err := docker.EnsureNetwork(ctx, c, spec); err != nil || !created {
		t.Fatalf("EnsureNetwork: %v %v", created, err)
	}
	if created, err := docker.EnsureNetwork(ctx, c, spec); err != nil || created {
		t.Fatalf("EnsureNetwork again: %v %v", created, err)
	}
	other := spec
	other.Subnet = netip.MustParsePrefix("9.0.5.128/25")
	_, err = docker.EnsureNetwork(ctx, c, other)
	if !errors.Is(err, docker.ErrMismatch) ||
		err.Error() != "docker network test exists with subnet 9.0.1.128/25, want 9.0.5.128/25: remove it (docker network rm test) or fix the overlay assignment" {
		t.Fatalf("mismatch: %v", err)
	}
	n, err := c.NetworkInspect(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if n.BridgeName() != "d-test" || n.MTU() != 1420 || n.Options[docker.OptMasquerade] != "false" || !slices.Equal(n.Subnets, []netip.Prefix{subnet}) {
		t.Fatalf("network: %+v", n)
	}
	// The bridge lives in the node's namespace, not in ours.
	if _, err := net.InterfaceByName("d-test"); err == nil {
		t.Error("d-test appeared in the test's own namespace")
	}

	if err := EnsureImage(ctx, d, ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := EnsureImage(ctx, d, ""); err != nil {
		t.Fatal(err)
	}
	t.Logf("EnsureImage again: %v", time.Since(start).Round(time.Millisecond))

	id, err := Run(ctx, d, RunOptions{Name: "c1", Network: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := ContainerIP(ctx, d, id, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !subnet.Contains(ip) {
		t.Fatalf("container address %s not in %s", ip, subnet)
	}
	t.Logf("container %.12s has %s", id, ip)
	if out, err := Exec(ctx, d, id, "cat", "/sys/class/net/eth0/mtu"); err != nil || strings.TrimSpace(out) != "1420" {
		t.Errorf("container mtu: %q %v", out, err)
	}
	if out, err := Exec(ctx, d, id, "ping", "-c1", "-W2", "9.0.1.129"); err != nil {
		t.Fatalf("ping gateway: %v\n%s", err, out)
	}
	// Routed peers on another subnet: the container reaches them, and
	// they reach the container (FORWARD policy stays ACCEPT).
	if out, err := Exec(ctx, d, id, "ping", "-c1", "-W2", peerAddr.String()); err != nil {
		t.Errorf("container -> peer %s: %v\n%s", peerAddr, err, out)
	}
	if out, err := exec.CommandContext(ctx, "nsenter", "--net="+peer.Path, Busybox, "ping", "-c1", "-W2", "-I", peerAddr.String(), ip.String()).CombinedOutput(); err != nil {
		t.Errorf("peer %s -> container %s: %v\n%s", peerAddr, ip, err, out)
	}
	if _, err := Exec(ctx, d, id, "false"); err == nil {
		t.Error("a failing exec reported success")
	}

	pids := d.Processes()
	if len(pids) < 4 { // dockerd, containerd, shim, sleep
		t.Errorf("processes: %v", pids)
	}

	// A second daemon in the peer's namespace coexists, with a network
	// of the same name and another subnet.
	d2 := startDaemon(t, ctx, peer.Path)
	c2, err := d2.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if created, err := docker.EnsureNetwork(ctx, c2, other); err != nil || !created {
		t.Fatalf("second daemon EnsureNetwork: %v %v", created, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("first daemon after the second started: %v", err)
	}
	start = time.Now()
	if err := d2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("second daemon stopped in %v", time.Since(start).Round(time.Millisecond))

	// Stop: the engine is gone, and so are its processes.
	start = time.Now()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped with a running container in %v", time.Since(start).Round(time.Millisecond))
	if err := c.Ping(ctx); !errors.Is(err, docker.ErrUnavailable) {
		t.Fatalf("ping after stop: %v", err)
	}
	if _, err := docker.EnsureNetwork(ctx, c, spec); !errors.Is(err, docker.ErrUnavailable) {
		t.Fatalf("EnsureNetwork after stop: %v", err)
	}
	for _, pid := range pids {
		if p, ok := procOf(pid); ok && p.alive() && strings.Contains(cmdline(pid), d.Dir()) {
			t.Errorf("pid %d (%s) survived Stop", pid, cmdline(pid))
		}
	}
	if left := d.Processes(); len(left) > 0 {
		t.Errorf("after Stop: %v", left)
	}

	// Start again on the same state: the network is still there.
	start = time.Now()
	if err := d.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(start).Round(time.Millisecond))
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if created, err := docker.EnsureNetwork(ctx, c, spec); err != nil || created {
		t.Fatalf("EnsureNetwork after restart: %v %v", created, err)
	}
	if err := Remove(ctx, d, id); err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, d, id); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if err := c.NetworkRemove(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	t.Logf("total %v", time.Since(began).Round(time.Millisecond))
}

func TestStartFailureShowsLogAndCleansUp(t *testing.T) {
	kerneltest.RequireRoot(t)
	requireTools(t, "nsenter")
	ctx := t.Context()
	prefix := randomPrefix(t)
	name := prefix + "x"
	if err := netns.NewNamed(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })

	if _, err := Start(ctx, Options{Netns: "/nonexistent", Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not a network namespace") {
		t.Errorf("bad netns: %v", err)
	}

	dir, err := os.MkdirTemp("", "wdk-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// A "dockerd" that dies at once, and one that never answers.
	dies := dir + "/dies.sh"
	hangs := dir + "/hangs.sh"
	if err := os.WriteFile(dies, []byte("#!/bin/sh\necho 'boom: cannot start the engine' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hangs, []byte("#!/bin/sh\necho 'hanging'\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Start(ctx, Options{Netns: netns.Path(name), Dir: dir + "/a", Dockerd: dies})
	if err == nil || !strings.Contains(err.Error(), "dockerd exited during start (exit status 3)") ||
		!strings.Contains(err.Error(), "boom: cannot start the engine") {
		t.Errorf("dying dockerd: %v", err)
	}
	start := time.Now()
	_, err = Start(ctx, Options{Netns: netns.Path(name), Dir: dir + "/b", Dockerd: hangs, StartTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "did not answer on unix://"+dir+"/b/docker.sock within 1s") ||
		!strings.Contains(err.Error(), "hanging") || !errors.Is(err, docker.ErrUnavailable) {
		t.Errorf("hanging dockerd: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v", d)
	}
	// The hanging one was killed.
	out, _ := exec.Command("pgrep", "-f", dir+"/b/").Output()
	if len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("left running: %s", out)
	}
}
