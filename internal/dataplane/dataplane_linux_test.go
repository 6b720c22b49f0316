//go:build linux

package dataplane

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/kernelnet"
	"github.com/weft-sdn/weft/internal/kerneltest"
	"github.com/weft-sdn/weft/internal/netns"
)

func randomPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "wt" + hex.EncodeToString(b) + "-"
}

// env is a lab of emulated nodes, each with its Linux data plane and a
// Fake fed the same calls.
type env struct {
	t      *testing.T
	ctx    context.Context
	prefix string
	lab    *netns.Lab
	dps    []*Linux
	fakes  []*Fake
	cfgs   []Config
	// attached endpoints per node per VNI, for Sync's desired state.
	attached []map[int][]Endpoint
}

func newEnv(t *testing.T, nodes int) *env {
	t.Helper()
	kerneltest.RequireRoot(t)
	e := &env{t: t, ctx: t.Context(), prefix: randomPrefix(t)}
	t.Cleanup(func() {
		cleanupStart := time.Now()
		defer func() { t.Logf("cleanup: %v", time.Since(cleanupStart)) }()
		// Teardown first (synchronous link removal), then everything
		// with the prefix, also when the test failed half-way.
		for _, dp := range e.dps {
			if err := dp.Teardown(context.Background()); err != nil {
				t.Errorf("teardown: %v", err)
			}
		}
		if e.lab != nil {
			if err := e.lab.Close(); err != nil {
				t.Errorf("lab close: %v", err)
			}
		} else {
			(&netns.Lab{Prefix: e.prefix}).Close()
		}
		if left, _ := netns.List(e.prefix); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	lab, err := netns.NewLab(e.prefix, nodes)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	e.lab = lab
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	for i, node := range lab.Nodes {
		cfg := Config{
			NodeNetns:  node.Path,
			NamePrefix: fmt.Sprintf("%sn%d-", e.prefix, i+1),
			Underlay:   node.Underlay.Addr(),
			VTEPIP:     netip.AddrFrom4([4]byte{44, 128, 0, byte(i + 1)}),
			VTEPMAC:    net.HardwareAddr{0x02, 0x57, 0x46, 0x54, 0x00, byte(i + 1)},
			Log:        log.With("node", i+1),
		}
		dp, err := NewLinux(cfg)
		if err != nil {
			t.Fatalf("NewLinux: %v", err)
		}
		f := NewFake()
		f.Config = cfg
		f.UnderlayMTU = 1500
		e.dps = append(e.dps, dp)
		e.fakes = append(e.fakes, f)
		e.cfgs = append(e.cfgs, cfg)
		e.attached = append(e.attached, map[int][]Endpoint{})
	}
	return e
}

// container creates a container namespace and returns its path.
func (e *env) container(name string) string {
	e.t.Helper()
	p, err := e.lab.AddContainer(name)
	if err != nil {
		e.t.Fatalf("container %s: %v", name, err)
	}
	return p
}

func nsName(path string) string { return filepath.Base(path) }

// attach attaches on node i (Linux and its Fake) and records the result.
func (e *env) attach(i int, n Network, ep Endpoint) Endpoint {
	e.t.Helper()
	got, err := e.dps[i].Attach(e.ctx, n, ep)
	if err != nil {
		e.t.Fatalf("node%d attach %s/%s: %v", i+1, ep.ContainerID, ep.IfName, err)
	}
	fgot, err := e.fakes[i].Attach(e.ctx, n, ep)
	if err != nil {
		e.t.Fatalf("node%d fake attach: %v", i+1, err)
	}
	if fmt.Sprint(fgot) != fmt.Sprint(got) {
		e.t.Fatalf("fake attach returned %+v, linux %+v", fgot, got)
	}
	e.attached[i][n.VNI] = append(e.attached[i][n.VNI], got)
	return got
}

// netSpec is a network with each node's prefixes (blocks and /32
// exceptions).
type netSpec struct {
	n      Network
	blocks map[int][]netip.Prefix
}

// state is node i's desired state: every network, remotes from the other
// nodes' prefixes, and i's attached endpoints.
func (e *env) state(i int, specs ...netSpec) State {
	var s State
	for _, sp := range specs {
		ns := NetworkState{Network: sp.n, Endpoints: e.attached[i][sp.n.VNI]}
		for j := range e.cfgs {
			if j == i || len(sp.blocks[j]) == 0 {
				continue
			}
			ns.Remotes = append(ns.Remotes, Remote{
				Node:     fmt.Sprintf("node%d", j+1),
				Underlay: e.cfgs[j].Underlay,
				VTEPIP:   e.cfgs[j].VTEPIP,
				VTEPMAC:  e.cfgs[j].VTEPMAC,
				Prefixes: sp.blocks[j],
			})
		}
		s.Networks = append(s.Networks, ns)
	}
	return s
}

// sync syncs every node (Linux and Fake) and returns the Linux changes.
func (e *env) sync(specs ...netSpec) []int64 {
	e.t.Helper()
	var changes []int64
	for i, dp := range e.dps {
		before := dp.Changes()
		s := e.state(i, specs...)
		if err := dp.Sync(e.ctx, s); err != nil {
			e.t.Fatalf("node%d sync: %v", i+1, err)
		}
		if err := e.fakes[i].Sync(e.ctx, s); err != nil {
			e.t.Fatalf("node%d fake sync: %v", i+1, err)
		}
		changes = append(changes, dp.Changes()-before)
	}
	return changes
}

func (e *env) dump(i int) string {
	e.t.Helper()
	d, err := e.dps[i].Dump(e.ctx)
	if err != nil {
		e.t.Fatalf("node%d dump: %v", i+1, err)
	}
	return d
}

// checkFakeParity asserts that every node's Linux dump equals its Fake's.
func (e *env) checkFakeParity() {
	e.t.Helper()
	for i := range e.dps {
		want, err := e.fakes[i].Dump(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if got := e.dump(i); got != want {
			e.t.Errorf("node%d: linux dump differs from fake dump\n%s", i+1, lineDiff(want, got))
		}
	}
}

// lineDiff shows lines only in a (-) or only in b (+).
func lineDiff(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	in := func(s []string, l string) bool {
		for _, x := range s {
			if x == l {
				return true
			}
		}
		return false
	}
	var out []string
	for _, l := range as {
		if !in(bs, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bs {
		if !in(as, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// ping pings dst from the named namespace; it retries a few times.
func ping(ctx context.Context, ns, dst string, args ...string) error {
	var err error
	for range 3 {
		cmd := append([]string{"netns", "exec", ns, "ping", "-n", "-c1", "-W1"}, args...)
		out, perr := exec.CommandContext(ctx, "ip", append(cmd, dst)...).CombinedOutput()
		if perr == nil {
			return nil
		}
		err = fmt.Errorf("ping %s from %s: %v: %s", dst, ns, perr, strings.TrimSpace(string(out)))
	}
	return err
}

// pingOnce pings once, for asserting that something is unreachable.
func pingOnce(ctx context.Context, ns, dst string, args ...string) error {
	cmd := append([]string{"netns", "exec", ns, "ping", "-n", "-c1", "-W1"}, args...)
	out, err := exec.CommandContext(ctx, "ip", append(cmd, dst)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v: %s", dst, ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (e *env) mustPing(ns, dst string, args ...string) {
	e.t.Helper()
	if err := ping(e.ctx, ns, dst, args...); err != nil {
		e.t.Error(err)
	}
}

func (e *env) mustNotPing(ns, dst string, args ...string) {
	e.t.Helper()
	if err := pingOnce(e.ctx, ns, dst, args...); err == nil {
		e.t.Errorf("ping %s from %s succeeded, want unreachable", dst, ns)
	}
}

// serve listens on addr inside the namespace at path and answers every
// connection with banner. The listener is closed at cleanup.
func serve(t *testing.T, path, addr, banner string) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(path, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, path, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, banner+"\n")
			c.Close()
		}
	}()
}

// dial connects to addr from inside the namespace at path and returns the
// banner read.
func dial(path, addr string) (string, error) {
	var c net.Conn
	err := netns.Do(path, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("dial %s from %s: %w", addr, nsName(path), err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read from %s in %s: %w", addr, nsName(path), err)
	}
	return strings.TrimSpace(line), nil
}

func (e *env) mustDial(path, addr, banner string) {
	e.t.Helper()
	got, err := dial(path, addr)
	if err != nil {
		e.t.Error(err)
		return
	}
	if got != banner {
		e.t.Errorf("dial %s from %s reached %q, want %q", addr, nsName(path), got, banner)
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ips(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, pfx(x))
	}
	return out
}

var (
	blue = Network{UUID: "blue", FQName: "d:p:blue", VNI: 100, Subnets: []Subnet{{Prefix: pfx("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}}}
	red  = Network{UUID: "red", FQName: "d:p:red", VNI: 200, Subnets: []Subnet{{Prefix: pfx("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}}}
	dual = Network{UUID: "dual", FQName: "d:p:dual", VNI: 300, Subnets: []Subnet{
		{Prefix: pfx("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
		{Prefix: pfx("fd00:1::/64"), Gateway: netip.MustParseAddr("fd00:1::1")},
	}}
)

// TestTwoNodes is the main scenario: overlapping networks blue and red,
// a /32 exception, a two-interface container and a dual-stack network
// across two nodes, checked with real traffic; then drift repair,
// idempotency and detach.
func TestTwoNodes(t *testing.T) {
	e := newEnv(t, 2)
	start := time.Now()

	b1 := e.container("b1")   // node1 blue 10.0.0.5
	b2 := e.container("b2")   // node2 blue 10.0.0.70
	bx := e.container("bx")   // node2 blue 10.0.0.10: exception inside node1's block
	r1 := e.container("r1")   // node1 red 10.0.0.5 (same as b1)
	r2 := e.container("r2")   // node2 red 10.0.0.71
	two := e.container("two") // node1: eth0 blue 10.0.0.6, eth1 red 10.0.0.7
	g1 := e.container("g1")   // node1 dual 10.1.0.5 fd00:1::5
	g2 := e.container("g2")   // node2 dual 10.1.0.70 fd00:1::45

	e.attach(0, blue, Endpoint{ContainerID: "b1", IfName: "eth0", Netns: b1, IPs: ips("10.0.0.5/24")})
	e.attach(1, blue, Endpoint{ContainerID: "b2", IfName: "eth0", Netns: b2, IPs: ips("10.0.0.70/24")})
	e.attach(1, blue, Endpoint{ContainerID: "bx", IfName: "eth0", Netns: bx, IPs: ips("10.0.0.10/24")})
	e.attach(0, red, Endpoint{ContainerID: "r1", IfName: "eth0", Netns: r1, IPs: ips("10.0.0.5/24")})
	e.attach(1, red, Endpoint{ContainerID: "r2", IfName: "eth0", Netns: r2, IPs: ips("10.0.0.71/24")})
	e.attach(0, blue, Endpoint{ContainerID: "two", IfName: "eth0", Netns: two, IPs: ips("10.0.0.6/24")})
	e.attach(0, red, Endpoint{ContainerID: "two", IfName: "eth1", Netns: two, IPs: ips("10.0.0.7/24")})
	e.attach(0, dual, Endpoint{ContainerID: "g1", IfName: "eth0", Netns: g1, IPs: ips("10.1.0.5/24", "fd00:1::5/64")})
	e.attach(1, dual, Endpoint{ContainerID: "g2", IfName: "eth0", Netns: g2, IPs: ips("10.1.0.70/24", "fd00:1::45/64")})

	specs := []netSpec{
		{n: blue, blocks: map[int][]netip.Prefix{0: ips("10.0.0.0/26"), 1: ips("10.0.0.64/26", "10.0.0.10/32")}},
		{n: red, blocks: map[int][]netip.Prefix{0: ips("10.0.0.0/26"), 1: ips("10.0.0.64/26")}},
		{n: dual, blocks: map[int][]netip.Prefix{0: ips("10.1.0.0/26", "fd00:1::/122"), 1: ips("10.1.0.64/26", "fd00:1::40/122")}},
	}
	e.sync(specs...)
	t.Logf("setup (lab, 8 containers, 9 attaches, sync): %v", time.Since(start))
	e.checkFakeParity()
	if t.Failed() {
		t.Log(e.dump(0))
		t.FailNow()
	}

	start = time.Now()
	// Blue across nodes, both directions, ICMP and TCP.
	e.mustPing(nsName(b1), "10.0.0.70")
	e.mustPing(nsName(b2), "10.0.0.5")
	serve(t, b1, "10.0.0.5:7000", "blue-b1")
	serve(t, b2, "10.0.0.70:7000", "blue-b2")
	serve(t, r1, "10.0.0.5:7000", "red-r1")
	serve(t, r2, "10.0.0.71:7000", "red-r2")
	e.mustDial(b1, "10.0.0.70:7000", "blue-b2")
	e.mustDial(b2, "10.0.0.5:7000", "blue-b1") // not red-r1, same address

	// Red: reaches red peers, not blue ones.
	e.mustPing(nsName(r1), "10.0.0.71")
	e.mustDial(r1, "10.0.0.71:7000", "red-r2")
	e.mustDial(r2, "10.0.0.5:7000", "red-r1")
	e.mustNotPing(nsName(r1), "10.0.0.70")
	e.mustNotPing(nsName(r2), "10.0.0.10")

	// /32 exception: bx on node2 holds an address of node1's block.
	e.mustPing(nsName(b1), "10.0.0.10")
	e.mustPing(nsName(bx), "10.0.0.5")
	e.mustPing(nsName(bx), "10.0.0.70") // same node, through the router

	// Two interfaces in one container, overlapping subnets: eth0 (blue,
	// the default) and eth1 (red, reached by binding to it).
	e.mustPing(nsName(two), "10.0.0.70")
	e.mustPing(nsName(two), "10.0.0.70", "-I", "eth0")
	e.mustPing(nsName(two), "10.0.0.71", "-I", "eth1")
	e.mustPing(nsName(two), "10.0.0.5", "-I", "eth1") // r1, same node
	e.mustNotPing(nsName(two), "10.0.0.71", "-I", "eth0")
	e.mustPing(nsName(b2), "10.0.0.6")
	e.mustPing(nsName(r2), "10.0.0.7")

	// Dual stack.
	e.mustPing(nsName(g1), "10.1.0.70")
	e.mustPing(nsName(g2), "10.1.0.5")
	e.mustPing(nsName(g1), "fd00:1::45")
	e.mustPing(nsName(g2), "fd00:1::5")
	serve(t, g2, "[fd00:1::45]:7000", "dual-g2")
	e.mustDial(g1, "[fd00:1::45]:7000", "dual-g2")
	t.Logf("traffic checks: %v", time.Since(start))

	// Check passes for every attachment.
	for i := range e.dps {
		for vni, eps := range e.attached[i] {
			n := map[int]Network{100: blue, 200: red, 300: dual}[vni]
			for _, ep := range eps {
				if err := e.dps[i].Check(e.ctx, n, ep); err != nil {
					t.Errorf("node%d check: %v", i+1, err)
				}
			}
		}
	}

	// The VXLAN sockets live in the node namespaces, not the routers.
	if !udpListening(t, e.lab.Nodes[0].Path, 4789) {
		t.Error("no vxlan socket in node1's namespace")
	}
	if udpListening(t, netns.Path(RouterNamespace(e.cfgs[0].NamePrefix, blue.VNI)), 4789) {
		t.Error("vxlan socket in a router namespace")
	}

	// Sync again: nothing to do.
	if ch := e.sync(specs...); ch[0] != 0 || ch[1] != 0 {
		t.Errorf("second sync made changes: %v", ch)
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("drift", func(t *testing.T) { testDrift(t, e, specs) })
	t.Run("attach idempotent", func(t *testing.T) { testAttachIdempotent(t, e) })
	t.Run("check reports missing", func(t *testing.T) { testCheckMissing(t, e) })
	t.Run("withdraw", func(t *testing.T) { testWithdraw(t, e, specs) })
	t.Run("detach", func(t *testing.T) { testDetach(t, e, specs) })
}

// routerHandle opens node i's router namespace of vni.
func (e *env) routerHandle(t *testing.T, i, vni int) *netlink.Handle {
	t.Helper()
	h, err := netns.NewHandle(netns.Path(RouterNamespace(e.cfgs[i].NamePrefix, vni)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func testDrift(t *testing.T, e *env, specs []netSpec) {
	before := e.dump(0)
	h := e.routerHandle(t, 0, blue.VNI)
	vx, err := h.LinkByName(VXLANName(blue.VNI))
	if err != nil {
		t.Fatal(err)
	}
	// Delete a remote route and the FDB entry by hand.
	rt := &netlink.Route{LinkIndex: vx.Attrs().Index, Dst: kernelnet.IPNetOf(pfx("10.0.0.64/26")), Table: unix.RT_TABLE_MAIN}
	if err := h.RouteDel(rt); err != nil {
		t.Fatalf("delete route: %v", err)
	}
	fdb := &netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		HardwareAddr: e.cfgs[1].VTEPMAC, IP: e.cfgs[1].Underlay.AsSlice()}
	if err := h.NeighDel(fdb); err != nil {
		t.Fatalf("delete fdb: %v", err)
	}
	// And a stale route and neighbour that Sync must remove.
	stale := &netlink.Route{LinkIndex: vx.Attrs().Index, Dst: kernelnet.IPNetOf(pfx("10.0.0.192/26")), Gw: net.ParseIP("44.128.0.9"), Flags: int(netlink.FLAG_ONLINK), Table: unix.RT_TABLE_MAIN}
	if err := h.RouteAdd(stale); err != nil {
		t.Fatalf("add stale route: %v", err)
	}
	if err := h.NeighSet(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: net.ParseIP("44.128.0.9"), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 9}}); err != nil {
		t.Fatalf("add stale neighbour: %v", err)
	}
	if d := e.dump(0); d == before {
		t.Fatal("dump unchanged after drift")
	}
	if err := pingOnce(e.ctx, nsName(netns.Path(e.prefix+"c-b1")), "10.0.0.70"); err == nil {
		t.Error("ping works without route and fdb entry")
	}
	ch := e.sync(specs...)
	if ch[0] != 4 {
		t.Errorf("repair made %d changes on node1, want 4 (route, fdb, stale route, stale neighbour)", ch[0])
	}
	if got := e.dump(0); got != before {
		t.Errorf("dump after repair differs:\n%s", lineDiff(before, got))
	}
	e.mustPing(e.prefix+"c-b1", "10.0.0.70")

	// A downed VXLAN device loses its routes and neighbours; a deleted
	// one loses everything. Sync puts both back.
	if err := h.LinkSetDown(vx); err != nil {
		t.Fatal(err)
	}
	e.sync(specs...)
	if got := e.dump(0); got != before {
		t.Errorf("dump after vxlan down+sync differs:\n%s", lineDiff(before, got))
	}
	if err := h.LinkDel(vx); err != nil {
		t.Fatal(err)
	}
	e.sync(specs...)
	if got := e.dump(0); got != before {
		t.Errorf("dump after vxlan delete+sync differs:\n%s", lineDiff(before, got))
	}
	e.mustPing(e.prefix+"c-b1", "10.0.0.70")
	e.mustPing(e.prefix+"c-b2", "10.0.0.5")

	// A deleted endpoint host route and a neighbour entry come back too.
	host, err := h.LinkByName(HostIfName("b1", "eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RouteDel(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: kernelnet.IPNetOf(pfx("10.0.0.5/32")), Scope: netlink.SCOPE_LINK, Table: unix.RT_TABLE_MAIN}); err != nil {
		t.Fatal(err)
	}
	if err := h.NeighDel(&netlink.Neigh{LinkIndex: host.Attrs().Index, Family: netlink.FAMILY_V4, IP: net.ParseIP("10.0.0.5")}); err != nil {
		t.Fatal(err)
	}
	if ch := e.sync(specs...); ch[0] != 2 {
		t.Errorf("endpoint repair made %d changes, want 2", ch[0])
	}
	if got := e.dump(0); got != before {
		t.Errorf("dump after endpoint repair differs:\n%s", lineDiff(before, got))
	}
	if ch := e.sync(specs...); ch[0] != 0 || ch[1] != 0 {
		t.Errorf("sync after repair made changes: %v", ch)
	}
	e.checkFakeParity()
}

func testAttachIdempotent(t *testing.T, e *env) {
	dp := e.dps[0]
	ep := e.attached[0][blue.VNI][0]
	before, chBefore := e.dump(0), dp.Changes()
	got, err := dp.Attach(e.ctx, blue, Endpoint{ContainerID: ep.ContainerID, IfName: ep.IfName, Netns: ep.Netns, IPs: ep.IPs})
	if err != nil {
		t.Fatalf("second attach: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(ep) {
		t.Errorf("second attach returned %+v, want %+v", got, ep)
	}
	if d := dp.Changes() - chBefore; d != 0 {
		t.Errorf("second attach made %d changes", d)
	}
	if after := e.dump(0); after != before {
		t.Errorf("dump changed:\n%s", lineDiff(before, after))
	}
	// Same interface, other addresses: an error, and nothing changes.
	_, err = dp.Attach(e.ctx, blue, Endpoint{ContainerID: ep.ContainerID, IfName: ep.IfName, Netns: ep.Netns, IPs: ips("10.0.0.9/24")})
	if err == nil || !strings.Contains(err.Error(), "different configuration") {
		t.Errorf("attach with other addresses: err %v, want different configuration", err)
	}
	if after := e.dump(0); after != before {
		t.Errorf("dump changed:\n%s", lineDiff(before, after))
	}
}

func testCheckMissing(t *testing.T, e *env) {
	dp := e.dps[0]
	ep := e.attached[0][blue.VNI][0]
	ch, err := netns.NewHandle(ep.Netns)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	cl, err := ch.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	def := &netlink.Route{LinkIndex: cl.Attrs().Index, Dst: kernelnet.IPNetOf(pfx("0.0.0.0/0")), Table: unix.RT_TABLE_MAIN}
	if err := ch.RouteDel(def); err != nil {
		t.Fatal(err)
	}
	err = dp.Check(e.ctx, blue, ep)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "default route (ipv4)") {
		t.Errorf("check: %v, want missing default route", err)
	}
	// Attach repairs the container side of an existing attachment.
	if _, err := dp.Attach(e.ctx, blue, ep); err != nil {
		t.Fatal(err)
	}
	if err := dp.Check(e.ctx, blue, ep); err != nil {
		t.Errorf("check after repair: %v", err)
	}
}

// testWithdraw takes a dual-stack endpoint out of service: its host
// routes and neighbour entries go at once (both families), a Sync that
// still desires it leaves it alone, and Attach brings it back.
func testWithdraw(t *testing.T, e *env, specs []netSpec) {
	dp := e.dps[0]
	ep := e.attached[0][dual.VNI][0] // g1: 10.1.0.5, fd00:1::5
	before := e.dump(0)
	e.mustPing(e.prefix+"c-g2", "10.1.0.5")
	for i := range 2 {
		ch := dp.Changes()
		if err := dp.Withdraw(e.ctx, dual, ep); err != nil {
			t.Fatalf("withdraw: %v", err)
		}
		if err := e.fakes[0].Withdraw(e.ctx, dual, ep); err != nil {
			t.Fatal(err)
		}
		if d := dp.Changes() - ch; i == 1 && d != 0 {
			t.Errorf("second withdraw made %d changes", d)
		}
	}
	d := e.dump(0)
	for _, gone := range []string{"route 10.1.0.5/32", "route fd00:1::5/128", "neigh 10.1.0.5 ", "neigh fd00:1::5 "} {
		if strings.Contains(d, gone) {
			t.Errorf("%q left after withdraw:\n%s", gone, d)
		}
	}
	if !strings.Contains(d, "link "+ep.HostIf+" type=veth") || !strings.Contains(d, ep.HostIf+" type=veth mac=") {
		t.Errorf("host veth gone after withdraw (only Detach deletes it):\n%s", d)
	}
	e.checkFakeParity()
	e.mustNotPing(e.prefix+"c-g2", "10.1.0.5")
	e.mustNotPing(e.prefix+"c-g2", "fd00:1::5")
	if ch := e.sync(specs...); ch[0] != 0 {
		t.Errorf("sync touched a withdrawn endpoint: %d changes", ch[0])
	}
	e.checkFakeParity()
	if _, err := dp.Attach(e.ctx, dual, ep); err != nil {
		t.Fatalf("attach after withdraw: %v", err)
	}
	if _, err := e.fakes[0].Attach(e.ctx, dual, ep); err != nil {
		t.Fatal(err)
	}
	if after := e.dump(0); after != before {
		t.Errorf("attach after withdraw differs:\n%s", lineDiff(before, after))
	}
	e.checkFakeParity()
	e.mustPing(e.prefix+"c-g2", "10.1.0.5")
	e.mustPing(e.prefix+"c-g2", "fd00:1::5")
	// Unknown endpoint, unknown network.
	if err := dp.Withdraw(e.ctx, dual, Endpoint{ContainerID: "nope", IfName: "eth0"}); err != nil {
		t.Errorf("withdraw unknown: %v", err)
	}
	if err := dp.Withdraw(e.ctx, Network{VNI: 4242}, Endpoint{ContainerID: "nope", IfName: "eth0"}); err != nil {
		t.Errorf("withdraw unknown network: %v", err)
	}
}

func testDetach(t *testing.T, e *env, specs []netSpec) {
	dp := e.dps[0]
	ep := e.attached[0][blue.VNI][0] // b1
	if err := dp.Detach(e.ctx, blue, ep); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if err := dp.Detach(e.ctx, blue, ep); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	ch, err := netns.NewHandle(ep.Netns)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.LinkByName("eth0"); err == nil {
		t.Error("container interface left after detach")
	}
	if err := e.fakes[0].Detach(e.ctx, blue, ep); err != nil {
		t.Fatal(err)
	}
	// Detach with the container netns gone.
	ep2 := e.attach(0, blue, Endpoint{ContainerID: "gone", IfName: "eth0", Netns: e.container("gone"), IPs: ips("10.0.0.20/24")})
	if err := netns.DeleteNamed(nsName(ep2.Netns)); err != nil {
		t.Fatal(err)
	}
	if err := dp.Detach(e.ctx, blue, ep2); err != nil {
		t.Fatalf("detach with netns gone: %v", err)
	}
	_ = e.fakes[0].Detach(e.ctx, blue, ep2)
	// Unknown endpoint, unknown network.
	if err := dp.Detach(e.ctx, blue, Endpoint{ContainerID: "nope", IfName: "eth0"}); err != nil {
		t.Errorf("detach unknown: %v", err)
	}
	if err := dp.Detach(e.ctx, Network{VNI: 4242}, Endpoint{ContainerID: "nope", IfName: "eth0"}); err != nil {
		t.Errorf("detach unknown network: %v", err)
	}
	e.attached[0][blue.VNI] = e.attached[0][blue.VNI][1:2] // two/eth0 stays
	e.sync(specs...)
	e.checkFakeParity()
	if err := pingOnce(e.ctx, e.prefix+"c-b2", "10.0.0.5"); err == nil {
		t.Error("detached address still answers")
	}
}

// TestAttachFailureLeavesNothing makes Attach fail in several ways and at
// every stage, for a new and for an existing network, and compares dumps.
func TestAttachFailureLeavesNothing(t *testing.T) {
	e := newEnv(t, 1)
	dp := e.dps[0]
	c1 := e.container("c1")
	c2 := e.container("c2")

	empty := e.dump(0)
	// The netns does not exist.
	_, err := dp.Attach(e.ctx, blue, Endpoint{ContainerID: "x", IfName: "eth0", Netns: "/run/netns/" + e.prefix + "missing", IPs: ips("10.0.0.5/24")})
	if err == nil {
		t.Fatal("attach into missing netns succeeded")
	}
	if got := e.dump(0); got != empty {
		t.Errorf("dump changed:\n%s", lineDiff(empty, got))
	}
	// Failures at every stage, first network on the node.
	for _, stage := range []string{"router", "veth", "host", "container", "routes"} {
		dp.failAt = func(s string) error {
			if s == stage {
				return fmt.Errorf("injected failure at %s", s)
			}
			return nil
		}
		_, err := dp.Attach(e.ctx, blue, Endpoint{ContainerID: "c1", IfName: "eth0", Netns: c1, IPs: ips("10.0.0.5/24")})
		if err == nil || !strings.Contains(err.Error(), "injected") {
			t.Errorf("stage %s: err %v", stage, err)
		}
		if got := e.dump(0); got != empty {
			t.Errorf("stage %s: dump changed:\n%s", stage, lineDiff(empty, got))
		}
		if names, _ := netns.List(e.cfgs[0].NamePrefix); len(names) != 0 {
			t.Errorf("stage %s: namespaces left: %v", stage, names)
		}
		assertNoContainerLink(t, c1, "eth0")
	}
	dp.failAt = nil

	// Existing network with an endpoint.
	if _, err := dp.Attach(e.ctx, blue, Endpoint{ContainerID: "c1", IfName: "eth0", Netns: c1, IPs: ips("10.0.0.5/24")}); err != nil {
		t.Fatal(err)
	}
	one := e.dump(0)
	for _, stage := range []string{"router", "veth", "host", "container", "routes"} {
		dp.failAt = func(s string) error {
			if s == stage {
				return fmt.Errorf("injected failure at %s", s)
			}
			return nil
		}
		_, err := dp.Attach(e.ctx, blue, Endpoint{ContainerID: "c2", IfName: "eth0", Netns: c2, IPs: ips("10.0.0.6/24", "10.0.0.7/24")})
		if err == nil {
			t.Errorf("stage %s: attach succeeded", stage)
		}
		if got := e.dump(0); got != one {
			t.Errorf("stage %s: dump changed:\n%s", stage, lineDiff(one, got))
		}
		assertNoContainerLink(t, c2, "eth0")
	}
	dp.failAt = nil
	// An address already in use by another endpoint.
	_, err = dp.Attach(e.ctx, blue, Endpoint{ContainerID: "c2", IfName: "eth0", Netns: c2, IPs: ips("10.0.0.5/24")})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("attach with a used address: %v", err)
	}
	if got := e.dump(0); got != one {
		t.Errorf("dump changed:\n%s", lineDiff(one, got))
	}
	assertNoContainerLink(t, c2, "eth0")
	// An address outside the network.
	if _, err := dp.Attach(e.ctx, blue, Endpoint{ContainerID: "c2", IfName: "eth0", Netns: c2, IPs: ips("10.9.0.5/24")}); err == nil {
		t.Error("attach with a foreign address succeeded")
	}
	// The interface name is taken in the container by something else.
	if _, err := dp.Attach(e.ctx, red, Endpoint{ContainerID: "c9", IfName: "eth0", Netns: c1, IPs: ips("10.0.0.5/24")}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("attach over an existing interface: %v", err)
	}
	if got := e.dump(0); got != one {
		t.Errorf("dump changed:\n%s", lineDiff(one, got))
	}
}

func assertNoContainerLink(t *testing.T, path, name string) {
	t.Helper()
	h, err := netns.NewHandle(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.LinkByName(name); err == nil {
		t.Errorf("%s left in %s", name, nsName(path))
	}
}

// TestSyncLifecycle checks that Sync creates namespaces, keeps the one of
// a removed network while an endpoint is attached, removes it after, and
// that Teardown removes everything with the prefix.
func TestSyncLifecycle(t *testing.T) {
	e := newEnv(t, 2)
	dp := e.dps[0]
	specs := []netSpec{
		{n: blue, blocks: map[int][]netip.Prefix{1: ips("10.0.0.64/26")}},
		{n: red, blocks: map[int][]netip.Prefix{1: ips("10.0.0.64/26")}},
	}
	e.sync(specs...)
	names, _ := netns.List(e.cfgs[0].NamePrefix)
	if len(names) != 2 {
		t.Fatalf("namespaces after sync: %v", names)
	}
	c := e.container("c")
	e.attach(0, red, Endpoint{ContainerID: "c", IfName: "eth0", Netns: c, IPs: ips("10.0.0.5/24")})
	// Red leaves the desired state but still has an endpoint: kept.
	e.attached[0][red.VNI] = nil
	e.sync(specs[:1]...)
	if !netns.Exists(RouterNamespace(e.cfgs[0].NamePrefix, red.VNI)) {
		t.Fatal("router namespace of red removed while an endpoint is attached")
	}
	e.checkFakeParity()
	if err := dp.Detach(e.ctx, red, Endpoint{ContainerID: "c", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	_ = e.fakes[0].Detach(e.ctx, red, Endpoint{ContainerID: "c", IfName: "eth0"})
	e.sync(specs[:1]...)
	if netns.Exists(RouterNamespace(e.cfgs[0].NamePrefix, red.VNI)) {
		t.Fatal("router namespace of red kept after its last endpoint left")
	}
	e.checkFakeParity()
	// Remotes removed from the state disappear.
	e.sync(netSpec{n: blue})
	if d := e.dump(0); strings.Contains(d, "10.0.0.64/26") || strings.Contains(d, "fdb") {
		t.Errorf("remote entries left:\n%s", d)
	}
	if ch := e.sync(netSpec{n: blue}); ch[0] != 0 {
		t.Errorf("second sync made %d changes", ch[0])
	}
	e.checkFakeParity()
	// Namespaces of other prefixes are never touched: node2's survive
	// node1's teardown.
	if err := dp.Teardown(e.ctx); err != nil {
		t.Fatal(err)
	}
	if names, _ := netns.List(e.cfgs[0].NamePrefix); len(names) != 0 {
		t.Errorf("namespaces after teardown: %v", names)
	}
	if names, _ := netns.List(e.cfgs[1].NamePrefix); len(names) != 1 {
		t.Errorf("node2 namespaces after node1 teardown: %v", names)
	}
	// After teardown the VNI is free again at once.
	e.sync(specs...)
	if err := dp.Teardown(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := dp.Teardown(e.ctx); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
}

// udpListening reports whether a UDP socket is bound to port in the
// namespace at path.
func udpListening(t *testing.T, path string, port int) bool {
	t.Helper()
	found := false
	err := netns.Do(path, func() error {
		for _, f := range []string{"/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if strings.Contains(string(b), fmt.Sprintf(":%04X ", port)) {
				found = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// A router namespace deleted behind the data plane's back (its handles
// are kept between operations) is not used any more: endpoint operations
// find it gone, Sync and Attach make a new one.
func TestRouterDeletedByHand(t *testing.T) {
	e := newEnv(t, 1)
	dp := e.dps[0]
	ep := e.attach(0, blue, Endpoint{ContainerID: "c1", IfName: "eth0", Netns: e.container("c1"), IPs: ips("10.0.0.5/24")})
	spec := netSpec{n: blue}
	e.sync(spec)
	name := RouterNamespace(e.cfgs[0].NamePrefix, blue.VNI)
	if err := netns.DeleteNamed(name); err != nil {
		t.Fatal(err)
	}
	e.attached[0][blue.VNI] = nil
	_ = e.fakes[0].Detach(e.ctx, blue, ep)
	// The kernel destroys the old namespace, and with it the VXLAN device
	// that holds the VNI, a moment later: Sync fails until then (the agent
	// retries it).
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := dp.Sync(e.ctx, e.state(0, spec))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync after the router was deleted by hand: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.sync(spec)
	if !netns.Exists(name) {
		t.Fatal("sync did not make the router namespace again")
	}
	if err := dp.Withdraw(e.ctx, blue, ep); err != nil {
		t.Fatalf("withdraw of an endpoint of the old router: %v", err)
	}
	if err := dp.Detach(e.ctx, blue, ep); err != nil {
		t.Fatalf("detach of an endpoint of the old router: %v", err)
	}
	e.attach(0, blue, Endpoint{ContainerID: "c2", IfName: "eth0", Netns: e.container("c2"), IPs: ips("10.0.0.6/24")})
	e.checkFakeParity()
	if d := e.dump(0); !strings.Contains(d, HostIfName("c2", "eth0")) || strings.Contains(d, HostIfName("c1", "eth0")) {
		t.Errorf("dump after the router was made again:\n%s", d)
	}
}

// A runtime attaches a container's interfaces in parallel (Mesos does):
// eth0 on blue and eth1 on red, with the same subnet and gateway, must both
// succeed every time, whichever is configured first.
func TestParallelAttachOfOneContainer(t *testing.T) {
	e := newEnv(t, 1)
	for i := range 12 {
		name := fmt.Sprintf("par%d", i)
		path := e.container(name)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, n := range []Network{blue, red} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ep := Endpoint{ContainerID: name, IfName: fmt.Sprintf("eth%d", j), Netns: path, IPs: ips(fmt.Sprintf("10.0.0.%d/24", 100+2*i+j))}
				_, errs[j] = e.dps[0].Attach(e.ctx, n, ep)
			}()
		}
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("round %d: parallel attach of eth%d: %v", i, j, err)
			}
		}
	}
}
