//go:build linux

package overlaydp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weft-sdn/weft/internal/kerneltest"
	"github.com/weft-sdn/weft/internal/netns"
)

// fixtures is shared/fixtures, read-only test data.
const fixtures = "../../../shared/fixtures/"

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// kernelLab is two overlay nodes and an outside host on one fabric, each
// in a fresh namespace named <prefix>...; all of them are deleted when
// the test ends, whatever happens.
type kernelLab struct {
	lab     *netns.Lab
	nodes   [2]*Linux
	outside netns.LabNode
}

func newKernelLab(t *testing.T) *kernelLab {
	t.Helper()
	kerneltest.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft is needed: %v", err)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := "wodp-" + hex.EncodeToString(b[:]) + "-"
	lab, err := netns.NewLab(prefix, 3)
	if err != nil {
		t.Fatal(err)
	}
	kl := &kernelLab{lab: lab, outside: lab.Nodes[2]}
	t.Cleanup(func() {
		for _, l := range kl.nodes {
			if l != nil {
				l.Close()
			}
		}
		if err := lab.Close(); err != nil {
			t.Errorf("delete namespaces: %v", err)
		}
		if left, _ := netns.List(prefix); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
	})
	for i := range 2 {
		l, err := NewLinux(Options{
			Netns:  lab.Nodes[i].Path,
			Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil)).With("node", i+1),
		})
		if err != nil {
			t.Fatal(err)
		}
		kl.nodes[i] = l
	}
	return kl
}

func (kl *kernelLab) nodeName(i int) string { return kl.lab.Nodes[i-1].Name }

// sh runs a command inside the named namespace.
func sh(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func ping(ns string, dst netip.Addr) error {
	args := []string{"netns", "exec", ns, "ping", "-c1", "-W2"}
	if dst.Is6() {
		args = append(args, "-6")
	}
	out, err := exec.Command("ip", append(args, dst.String())...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w\n%s", dst, ns, err, out)
	}
	return nil
}

func mustPing(t *testing.T, ns string, dst netip.Addr) {
	t.Helper()
	var err error
	for range 3 {
		if err = ping(ns, dst); err == nil {
			return
		}
	}
	t.Error(err)
}

// echoPeer listens on addr inside the namespace at path and answers each
// connection with the address it came from.
func echoPeer(t *testing.T, path, addr string) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(path, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = c.Write([]byte(host + "\n"))
			c.Close()
		}
	}()
}

// dialFrom connects from the namespace at path and returns what the
// echoPeer saw as our address.
func dialFrom(path, addr string) (string, error) {
	var got string
	err := netns.Do(path, func() error {
		c, err := net.DialTimeout("tcp", addr, 1500*time.Millisecond)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		got, err = bufio.NewReader(c).ReadString('\n')
		got = strings.TrimSpace(got)
		return err
	})
	return got, err
}

// containerEndpoints are the two interfaces of a container on node i:
// eth0 on m-dcos (.5) and eth1 on m-dcos6 (::5).
func containerEndpoints(i int, path string) [2]Endpoint {
	n := dcosNodeN(i)
	id := "ctr-" + strconv.Itoa(i)
	return [2]Endpoint{
		{ContainerID: id, IfName: "eth0", Netns: path, Bridge: "m-dcos", MTU: 1420, DefaultRoute: true,
			IPs: []netip.Prefix{netip.PrefixFrom(nth(n.mesos, 5), 25)}, Gateways: []netip.Addr{n.gateway}},
		{ContainerID: id, IfName: "eth1", Netns: path, Bridge: "m-dcos6", DefaultRoute: true,
			IPs: []netip.Prefix{netip.PrefixFrom(nth(n.mesos6, 5), 81)}, Gateways: []netip.Addr{n.gateway6}},
	}
}

func nth(p netip.Prefix, k int) netip.Addr {
	a := p.Masked().Addr()
	for range k {
		a = a.Next()
	}
	return a
}

func dump(t *testing.T, l *Linux) string {
	t.Helper()
	d, err := l.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fakeDump(t *testing.T, states ...State) string {
	t.Helper()
	f := NewFake()
	for _, s := range states {
		if err := f.Sync(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	d, err := f.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fixtureVTEP reads the attributes of the dcos-net vtep1024 netlink dump.
func fixtureVTEP(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, "overlay/dcos-net/vtep_link.data"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for key, re := range map[string]string{
		"ifname":   `\{ifname, "([^"]+)"\}`,
		"kind":     `\{kind, "([^"]+)"\}`,
		"id":       `\{id, (\d+)\}`,
		"port":     `\{port, (\d+)\}`,
		"learning": `\{learning, (\d+)\}`,
		"ttl":      `\{ttl, (\d+)\}`,
		"mtu":      `\{mtu, (\d+)\}`,
		"address":  `\{address, <<([\d, ]+)>>\}`,
	} {
		m := regexp.MustCompile(re).FindStringSubmatch(string(data))
		if m == nil {
			t.Fatalf("fixture has no %s", key)
		}
		out[key] = m[1]
	}
	var mac net.HardwareAddr
	for _, b := range strings.Split(out["address"], ",") {
		v, err := strconv.Atoi(strings.TrimSpace(b))
		if err != nil {
			t.Fatal(err)
		}
		mac = append(mac, byte(v))
	}
	out["address"] = mac.String()
	return out
}

func TestKernelOverlay(t *testing.T) {
	ctx := context.Background()
	kl := newKernelLab(t)
	n1, n2 := kl.nodes[0], kl.nodes[1]

	// Leftovers the first Sync must deal with on node 1: a vtep1024 with
	// the wrong port (re-created) and someone else's m-* bridge (kept).
	sh(t, kl.nodeName(1), "ip", "link", "add", "vtep1024", "type", "vxlan", "id", "1024", "dstport", "4789")
	sh(t, kl.nodeName(1), "ip", "link", "add", "m-foreign", "type", "bridge")

	s1, s2 := dcosState(1, false, 2), dcosState(2, false, 1)
	if err := n1.Sync(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if err := n2.Sync(ctx, s2); err != nil {
		t.Fatal(err)
	}

	t.Run("vtep matches dcos-net", func(t *testing.T) {
		fx := fixtureVTEP(t)
		h, err := netns.NewHandle(kl.lab.Nodes[0].Path)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		link, err := h.LinkByName(fx["ifname"])
		if err != nil {
			t.Fatal(err)
		}
		vx, ok := link.(*netlink.Vxlan)
		if !ok {
			t.Fatalf("%s is a %s", fx["ifname"], link.Type())
		}
		learning := "0"
		if vx.Learning {
			learning = "1"
		}
		got := map[string]string{
			"ifname": vx.Name, "kind": vx.Type(), "id": strconv.Itoa(vx.VxlanId), "port": strconv.Itoa(vx.Port),
			"learning": learning, "ttl": strconv.Itoa(vx.TTL), "mtu": strconv.Itoa(vx.MTU), "address": vx.HardwareAddr.String(),
		}
		for k, want := range fx {
			if got[k] != want {
				t.Errorf("%s = %s, the dcos-net fixture has %s", k, got[k], want)
			}
		}
	})

	// Containers, one per node, on both overlays.
	var eps [2][2]Endpoint
	for i := range 2 {
		path, err := kl.lab.AddContainer("n" + strconv.Itoa(i+1))
		if err != nil {
			t.Fatal(err)
		}
		for j, ep := range containerEndpoints(i+1, path) {
			got, err := kl.nodes[i].Attach(ctx, ep)
			if err != nil {
				t.Fatal(err)
			}
			if err := kl.nodes[i].Check(ctx, ep); err != nil {
				t.Errorf("check: %v", err)
			}
			again, err := kl.nodes[i].Attach(ctx, ep)
			if err != nil || again.HostIf != got.HostIf || again.MAC.String() != got.MAC.String() {
				t.Errorf("second attach: %v, %+v", err, again)
			}
			eps[i][j] = got
		}
	}
	c1, c2 := filepath.Base(eps[0][0].Netns), filepath.Base(eps[1][0].Netns)
	ip4 := func(i int) netip.Addr { return eps[i][0].IPs[0].Addr() }
	ip6 := func(i int) netip.Addr { return eps[i][1].IPs[0].Addr() }

	t.Run("ping across nodes", func(t *testing.T) {
		mustPing(t, c1, ip4(1))
		mustPing(t, c2, ip4(0))
		mustPing(t, c1, ip6(1))
		mustPing(t, c2, ip6(0))
		// Table 42: overlay traffic to a peer's underlay goes through the
		// tunnel.
		mustPing(t, c1, dcosNodeN(2).underlay)
	})

	t.Run("dump matches the fake and sync is idempotent", func(t *testing.T) {
		d1 := dump(t, n1)
		if want := fakeDump(t, s1); d1 != want {
			t.Errorf("linux dump differs from the fake's:\n--- linux\n%s--- fake\n%s", d1, want)
		}
		if !strings.Contains(d1, "link vtep1024 type=vxlan vni=1024 port=64000 local=198.18.0.1 learning=on ttl=0 mac=70:b3:d5:80:00:01 mtu=1500") {
			t.Errorf("vtep line missing:\n%s", d1)
		}
		before := n1.Changes()
		for range 2 {
			if err := n1.Sync(ctx, s1); err != nil {
				t.Fatal(err)
			}
		}
		if c := n1.Changes() - before; c != 0 {
			t.Errorf("syncing the same state twice made %d changes", c)
		}
		if d := dump(t, n1); d != d1 {
			t.Errorf("dump changed:\n%s\nwas\n%s", d, d1)
		}
	})

	t.Run("sync repairs", func(t *testing.T) {
		want := dump(t, n1)
		ns := kl.nodeName(1)
		sh(t, ns, "ip", "route", "del", "9.0.1.0/24", "dev", "vtep1024")
		sh(t, ns, "ip", "route", "del", "198.18.0.2/32", "table", "42")
		sh(t, ns, "ip", "neigh", "del", "44.128.0.2", "dev", "vtep1024")
		sh(t, ns, "bridge", "fdb", "del", "70:b3:d5:80:00:02", "dev", "vtep1024", "dst", "198.18.0.2", "self")
		sh(t, ns, "ip", "rule", "del", "priority", "32000")
		sh(t, ns, "ip", "route", "add", "9.9.9.0/24", "via", "44.128.0.9", "dev", "vtep1024")
		sh(t, ns, "ip", "neigh", "add", "44.128.0.9", "lladdr", "70:b3:d5:80:00:09", "dev", "vtep1024", "nud", "permanent")
		sh(t, ns, "bridge", "fdb", "add", "70:b3:d5:80:00:09", "dev", "vtep1024", "dst", "198.18.0.9", "self", "permanent")
		sh(t, ns, "ip", "addr", "add", "44.128.0.99/20", "dev", "vtep1024")
		sh(t, ns, "nft", "flush", "chain", "inet", DefaultNFTTable, "postrouting")
		if d := dump(t, n1); d == want {
			t.Fatal("hand edits not visible in the dump")
		}
		if err := n1.Sync(ctx, s1); err != nil {
			t.Fatal(err)
		}
		if d := dump(t, n1); d != want {
			t.Errorf("after repair:\n%s\nwant\n%s", d, want)
		}
		mustPing(t, c1, ip4(1))
	})

	t.Run("nat", func(t *testing.T) {
		outside := kl.outside.Underlay.Addr()
		echoPeer(t, kl.outside.Path, net.JoinHostPort(outside.String(), "7000"))
		echoPeer(t, eps[1][0].Netns, net.JoinHostPort(ip4(1).String(), "7000"))
		echoPeer(t, eps[1][1].Netns, net.JoinHostPort(ip6(1).String(), "7000"))

		// Without NAT the outside cannot answer 9.0.0.0/8.
		if got, err := dialFrom(eps[0][0].Netns, net.JoinHostPort(outside.String(), "7000")); err == nil {
			t.Errorf("outside reached without NAT (saw %s)", got)
		}
		s1, s2 = dcosState(1, true, 2), dcosState(2, true, 1)
		if err := n1.Sync(ctx, s1); err != nil {
			t.Fatal(err)
		}
		if err := n2.Sync(ctx, s2); err != nil {
			t.Fatal(err)
		}
		if d, want := dump(t, n1), fakeDump(t, s1); d != want {
			t.Errorf("linux dump differs from the fake's:\n--- linux\n%s--- fake\n%s", d, want)
		}
		got, err := dialFrom(eps[0][0].Netns, net.JoinHostPort(outside.String(), "7000"))
		if err != nil {
			t.Fatalf("outside with NAT: %v", err)
		}
		if want := dcosNodeN(1).underlay.String(); got != want {
			t.Errorf("outside saw %s, want the node's underlay %s", got, want)
		}
		// Between overlay subnets the source is kept.
		if got, err := dialFrom(eps[0][0].Netns, net.JoinHostPort(ip4(1).String(), "7000")); err != nil || got != ip4(0).String() {
			t.Errorf("overlay peer saw %q (%v), want %s", got, err, ip4(0))
		}
		if got, err := dialFrom(eps[0][1].Netns, net.JoinHostPort(ip6(1).String(), "7000")); err != nil || got != ip6(0).String() {
			t.Errorf("overlay peer saw %q (%v), want %s", got, err, ip6(0))
		}
	})

	t.Run("peer removal", func(t *testing.T) {
		alone := dcosState(1, true)
		if err := n1.Sync(ctx, alone); err != nil {
			t.Fatal(err)
		}
		d := dump(t, n1)
		for _, gone := range []string{"44.128.0.2 ", "fd01:a::2 ", "70:b3:d5:80:00:02", "9.0.1.0/24", "fd01:b:0:0:1::/80", "198.18.0.2"} {
			if strings.Contains(d, gone) {
				t.Errorf("dump still has %q after the peer left:\n%s", gone, d)
			}
		}
		if want := fakeDump(t, alone); d != want {
			t.Errorf("linux dump differs from the fake's:\n--- linux\n%s--- fake\n%s", d, want)
		}
		if err := ping(c1, ip4(1)); err == nil {
			t.Error("ping to the removed peer's container still works")
		}
		// And back.
		if err := n1.Sync(ctx, s1); err != nil {
			t.Fatal(err)
		}
		mustPing(t, c1, ip4(1))
	})

	t.Run("detach", func(t *testing.T) {
		for range 2 {
			if err := n1.Detach(ctx, eps[0][1]); err != nil {
				t.Fatalf("detach: %v", err)
			}
		}
		if err := n1.Check(ctx, eps[0][1]); !errors.Is(err, ErrIncomplete) {
			t.Errorf("check after detach: %v", err)
		}
		if out := sh(t, c1, "ip", "-o", "link"); strings.Contains(out, "eth1") {
			t.Errorf("eth1 still in the container:\n%s", out)
		}
		gone := eps[0][0]
		gone.Netns = "/run/netns/" + kl.lab.Prefix + "no-such-netns"
		if err := n1.Detach(ctx, gone); err != nil {
			t.Errorf("detach with a missing netns: %v", err)
		}
	})

	t.Run("teardown", func(t *testing.T) {
		for i, l := range kl.nodes {
			for range 2 {
				if err := l.Teardown(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if d := dump(t, l); d != "" {
				t.Errorf("node %d dump after teardown:\n%s", i+1, d)
			}
			ns := kl.nodeName(i + 1)
			if out := sh(t, ns, "nft", "list", "tables"); strings.TrimSpace(out) != "" {
				t.Errorf("node %d nft tables after teardown: %s", i+1, out)
			}
			if out := sh(t, ns, "ip", "rule", "show", "table", "42"); strings.TrimSpace(out) != "" {
				t.Errorf("node %d rules after teardown: %s", i+1, out)
			}
			links := sh(t, ns, "ip", "-o", "link")
			for _, name := range []string{"vtep1024", "m-dcos:", "m-dcos6"} {
				if strings.Contains(links, name) {
					t.Errorf("node %d still has %s:\n%s", i+1, name, links)
				}
			}
		}
		if links := sh(t, kl.nodeName(1), "ip", "-o", "link", "show", "m-foreign"); !strings.Contains(links, "m-foreign") {
			t.Error("someone else's bridge m-foreign was removed")
		}
	})
}

func TestKernelEmptySyncRemovesAll(t *testing.T) {
	ctx := context.Background()
	kl := newKernelLab(t)
	l := kl.nodes[0]
	if err := l.Sync(ctx, dcosState(1, true, 2)); err != nil {
		t.Fatal(err)
	}
	// A new Linux on the same namespace (an agent restart) sees the same
	// state and changes nothing when synced with it.
	l2, err := NewLinux(Options{Netns: kl.lab.Nodes[0].Path})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.Sync(ctx, dcosState(1, true, 2)); err != nil {
		t.Fatal(err)
	}
	if c := l2.Changes(); c != 0 {
		t.Errorf("restarted data plane made %d changes", c)
	}
	if err := l2.Sync(ctx, State{}); err != nil {
		t.Fatal(err)
	}
	if d := dump(t, l); d != "" {
		t.Errorf("dump after an empty sync:\n%s", d)
	}
}
