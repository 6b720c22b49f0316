//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/kernelnet"
	"github.com/weft-sdn/weft/internal/keylock"
	"github.com/weft-sdn/weft/internal/netns"
)

// addrGenModeNone is IN6_ADDR_GEN_MODE_NONE: no IPv6 link-local address
// on router-side interfaces, so they carry nothing the kernel invents.
const addrGenModeNone = 1

// Linux is the netlink data plane. It owns the router namespaces named
// <NamePrefix>vn<VNI> and everything inside them, and the container-side
// veth ends it creates; it touches nothing else. Methods are safe for
// concurrent use. Operations on different endpoints run in parallel; the
// locks, always taken in this order, are:
//
//   - syncMu: one whole-node pass (Sync, Teardown) at a time;
//   - a routerGuard per network: shared by Attach and by Sync's pass over
//     the network, exclusive while the router namespace is created or
//     removed (Sync's pruning, Teardown, the undo of an Attach that
//     created it);
//   - a lock per endpoint (host veth name): Attach, Withdraw, Detach,
//     Check, and Sync's repairs of that endpoint's routes and neighbour
//     entries;
//   - a lock per container namespace (see containers), while Attach
//     configures the container's end.
type Linux struct {
	cfg     Config
	log     *slog.Logger
	changes atomic.Int64

	syncMu    sync.Mutex
	guardsMu  sync.Mutex
	guards    map[int]*routerGuard
	endpoints keylock.Locks
	// containers serialises the configuration inside one container
	// namespace: a runtime attaches a container's interfaces in parallel
	// (Mesos does), and they share its routing table. Taken inside an
	// endpoint lock, never the other way round.
	containers keylock.Locks
	routers    routerPool

	// mtuMu guards the cached underlay MTU (see underlayMTU).
	mtuMu   sync.Mutex
	mtu     int
	mtuRead time.Time

	// failAt, set by tests, is called at each stage of Attach; an error
	// makes Attach fail there.
	failAt func(stage string) error
}

// routerGuard orders the work in one router namespace (see Linux).
type routerGuard struct {
	mu sync.RWMutex
	// ready is set once this data plane has set the namespace up
	// (ensureRouter) and cleared when it removes it: an Attach then only
	// checks that the namespace still exists. Sync repairs drift inside.
	ready atomic.Bool
}

// guard returns the guard of network vni's router namespace.
func (l *Linux) guard(vni int) *routerGuard {
	l.guardsMu.Lock()
	defer l.guardsMu.Unlock()
	g, ok := l.guards[vni]
	if !ok {
		g = &routerGuard{}
		l.guards[vni] = g
	}
	return g
}

// NewLinux returns a data plane for the node described by cfg. It checks
// cfg but changes nothing on the node.
func NewLinux(cfg Config) (*Linux, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("dataplane config: %w", err)
	}
	if cfg.NodeNetns != "" && !netns.IsNetns(cfg.NodeNetns) {
		return nil, fmt.Errorf("dataplane config: node netns %s is not a network namespace", cfg.NodeNetns)
	}
	return &Linux{cfg: cfg, log: cfg.Log.With("component", "dataplane", "prefix", cfg.NamePrefix), guards: map[int]*routerGuard{}}, nil
}

// Changes returns how many changes (netlink writes, sysctl writes,
// namespace creations and deletions) this data plane has made so far. A
// Sync that finds nothing to do leaves it unchanged.
func (l *Linux) Changes() int64 { return l.changes.Load() }

// changed counts one change and logs it at debug level.
func (l *Linux) changed(ctx context.Context, msg string, args ...any) {
	l.changes.Add(1)
	l.log.DebugContext(ctx, msg, args...)
}

func (l *Linux) hook(stage string) error {
	if l.failAt == nil {
		return nil
	}
	return l.failAt(stage)
}

// nodeHandle returns a netlink handle in the node namespace.
func (l *Linux) nodeHandle() (*netlink.Handle, error) { return netns.NewHandle(l.cfg.NodeNetns) }

// router is an open router namespace.
type router struct {
	name string
	path string
	ino  uint64 // identity of the namespace mounted at path
	ns   vnetns.NsHandle
	h    *netlink.Handle
	pool *routerPool
}

// close hands r back to its pool for the next operation in the
// namespace, or closes it.
func (r *router) close() {
	if r == nil {
		return
	}
	if r.pool != nil && r.pool.put(r) {
		return
	}
	r.discard()
}

// discard closes r.
func (r *router) discard() {
	if r.h != nil {
		r.h.Close()
		r.h = nil
	}
	if r.ns.IsOpen() {
		_ = r.ns.Close()
	}
}

// routerPool keeps routers (a namespace handle and a netlink socket in
// it) open between operations: opening one takes two setns calls and a
// socket, more than a Withdraw does with it. A pooled router is reused
// only while the namespace mounted under its name is still the one it was
// opened in.
type routerPool struct {
	mu   sync.Mutex
	free map[string][]*router
}

// pooledPerRouter bounds the idle routers kept per namespace.
const pooledPerRouter = 4

func (p *routerPool) get(name string, ino uint64) *router {
	p.mu.Lock()
	defer p.mu.Unlock()
	for rs := p.free[name]; len(rs) > 0; rs = rs[:len(rs)-1] {
		r := rs[len(rs)-1]
		if r.ino == ino {
			p.free[name] = rs[:len(rs)-1]
			return r
		}
		r.discard() // another namespace of the same name
	}
	delete(p.free, name)
	return nil
}

func (p *routerPool) put(r *router) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free == nil {
		p.free = map[string][]*router{}
	}
	if len(p.free[r.name]) >= pooledPerRouter {
		return false
	}
	p.free[r.name] = append(p.free[r.name], r)
	return true
}

// drop closes the idle routers of the namespace name.
func (p *routerPool) drop(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.free[name] {
		r.discard()
	}
	delete(p.free, name)
}

// errNoRouter reports a missing router namespace.
var errNoRouter = errors.New("router namespace does not exist")

func (l *Linux) routerName(vni int) string { return RouterNamespace(l.cfg.NamePrefix, vni) }

// nsInode returns the inode of the namespace mounted at path, false when
// no namespace is.
func nsInode(path string) (uint64, bool) {
	if !netns.IsNetns(path) {
		return 0, false
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// openRouter opens an existing router namespace; the error wraps
// errNoRouter when it does not exist. Close the router when done.
func (l *Linux) openRouter(name string) (*router, error) {
	path := netns.Path(name)
	ino, ok := nsInode(path)
	if !ok {
		l.routers.drop(name)
		return nil, fmt.Errorf("%s: %w", name, errNoRouter)
	}
	if r := l.routers.get(name, ino); r != nil {
		return r, nil
	}
	r := &router{name: name, path: path, ino: ino, pool: &l.routers}
	ns, err := netns.Open(r.path)
	if err != nil {
		return nil, err
	}
	r.ns = ns
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		r.discard()
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	r.h = h
	return r, nil
}

// ourRouters lists the router namespaces of this Config with their VNIs.
func (l *Linux) ourRouters() (map[string]int, error) {
	names, err := netns.List(l.cfg.NamePrefix + "vn")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, name := range names {
		if vni, ok := parseRouterNamespace(l.cfg.NamePrefix, name); ok {
			out[name] = vni
		}
	}
	return out, nil
}

// networkMTU is n's MTU, or the underlay MTU minus the VXLAN overhead.
func (l *Linux) networkMTU(ctx context.Context, n Network) int {
	if n.MTU > 0 {
		return n.MTU
	}
	return l.underlayMTU(ctx, false) - vxlanOverhead(l.cfg.Underlay)
}

// underlayMTUMaxAge bounds how old the underlay MTU used by Attach and
// Check may be; every Sync reads it afresh.
const underlayMTUMaxAge = 30 * time.Second

// underlayMTU is the MTU of the node interface holding the underlay
// address, read again when fresh is set or the cached value is older than
// underlayMTUMaxAge (reading it takes a handle in the node namespace and
// an address dump, a third of an attach's kernel work otherwise).
func (l *Linux) underlayMTU(ctx context.Context, fresh bool) int {
	l.mtuMu.Lock()
	defer l.mtuMu.Unlock()
	if fresh || l.mtu == 0 || time.Since(l.mtuRead) > underlayMTUMaxAge {
		l.mtu, l.mtuRead = l.readUnderlayMTU(ctx), time.Now()
	}
	return l.mtu
}

// readUnderlayMTU reads the MTU of the node interface holding the
// underlay address; 1500 when it cannot be found.
func (l *Linux) readUnderlayMTU(ctx context.Context) int {
	h, err := l.nodeHandle()
	if err != nil {
		l.log.WarnContext(ctx, "cannot read underlay mtu, assuming 1500", "err", err)
		return 1500
	}
	defer h.Close()
	fam := netlink.FAMILY_V4
	if !l.cfg.Underlay.Is4() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := kernelnet.Retry(func() ([]netlink.Addr, error) { return h.AddrList(nil, fam) })
	if err != nil {
		l.log.WarnContext(ctx, "cannot read underlay mtu, assuming 1500", "err", err)
		return 1500
	}
	for _, a := range addrs {
		if kernelnet.AddrOf(a.IP) != l.cfg.Underlay {
			continue
		}
		link, err := h.LinkByIndex(a.LinkIndex)
		if err != nil {
			break
		}
		return link.Attrs().MTU
	}
	l.log.WarnContext(ctx, "underlay address not found on any interface, assuming mtu 1500", "underlay", l.cfg.Underlay)
	return 1500
}

// acquireRouter opens n's router namespace for an Attach, setting it up
// first when this data plane has not (or it is gone), and holds its guard
// until release is called: shared, or exclusive when the namespace was
// created here (so that the Attach's undo may remove it again).
func (l *Linux) acquireRouter(ctx context.Context, n Network) (r *router, created bool, release func(), err error) {
	g := l.guard(n.VNI)
	name := l.routerName(n.VNI)
	for {
		g.mu.RLock()
		if g.ready.Load() {
			r, err := l.openRouter(name)
			if err == nil {
				return r, false, g.mu.RUnlock, nil
			}
			if !errors.Is(err, errNoRouter) {
				g.mu.RUnlock()
				return nil, false, nil, err
			}
		}
		g.mu.RUnlock()

		g.mu.Lock()
		if g.ready.Load() && netns.Exists(name) {
			g.mu.Unlock() // set up meanwhile by another Attach or Sync
			continue
		}
		r, created, err := l.ensureRouter(ctx, n, true)
		if err != nil {
			g.ready.Store(false)
			g.mu.Unlock()
			return nil, false, nil, err
		}
		g.ready.Store(true)
		if created {
			return r, true, g.mu.Unlock, nil
		}
		r.close()
		g.mu.Unlock()
	}
}

// ensureRouter makes sure the router namespace of n exists (creating it
// when create is set; else a missing one is errNoRouter) with its
// sysctls, lo and VXLAN device. created reports whether the namespace is
// new. On error nothing created here is left behind.
func (l *Linux) ensureRouter(ctx context.Context, n Network, create bool) (r *router, created bool, err error) {
	name := l.routerName(n.VNI)
	if !netns.Exists(name) {
		// Kept handles would keep a namespace deleted behind our back
		// alive, and its VXLAN device with it.
		l.routers.drop(name)
		if !create {
			return nil, false, fmt.Errorf("%s: %w", name, errNoRouter)
		}
		// A leftover file that is not a namespace mount is in the way.
		if err := netns.DeleteNamed(name); err != nil {
			return nil, false, err
		}
		if err := netns.NewNamed(name); err != nil {
			return nil, false, err
		}
		created = true
		l.changed(ctx, "created router namespace", "netns", name, "network", n.name(), "vni", n.VNI)
	}
	r, err = l.openRouter(name)
	if err != nil {
		if created {
			_ = netns.DeleteNamed(name)
		}
		return nil, false, err
	}
	defer func() {
		if err != nil {
			if created {
				l.removeRouter(ctx, r)
			} else {
				r.close()
			}
			r = nil
		}
	}()
	if err := l.ensureSysctls(ctx, r.path, name, routerSysctls); err != nil {
		return nil, false, err
	}
	lo, err := r.h.LinkByName("lo")
	if err != nil {
		return nil, false, fmt.Errorf("find lo in %s: %w", name, err)
	}
	if err := l.ensureUp(ctx, r.h, lo, name); err != nil {
		return nil, false, err
	}
	vx, err := l.ensureVXLAN(ctx, r, n)
	if err != nil {
		return nil, false, err
	}
	if err := l.ensureVTEPAddr(ctx, r, vx); err != nil {
		return nil, false, err
	}
	return r, created, nil
}

var routerSysctls = []kernelnet.Sysctl{
	{Key: "ipv4/ip_forward", Value: "1"},
	// New host veths inherit it (see configureHost).
	{Key: "ipv4/conf/default/proxy_arp", Value: "0"},
	{Key: "ipv6/conf/all/forwarding", Value: "1", Optional: true},
	{Key: "ipv6/conf/default/forwarding", Value: "1", Optional: true},
}

// ensureSysctls applies settings inside the namespace at path (named
// name), writing only values that differ.
func (l *Linux) ensureSysctls(ctx context.Context, path, name string, settings []kernelnet.Sysctl) error {
	var written []kernelnet.Sysctl
	err := netns.Do(path, func() (err error) {
		written, err = kernelnet.EnsureSysctls(settings)
		return err
	})
	for _, w := range written {
		l.changed(ctx, "set sysctl", "netns", name, "sysctl", w.Key+"="+w.Value)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (l *Linux) ensureUp(ctx context.Context, h *netlink.Handle, link netlink.Link, ns string) error {
	if link.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up in %s: %w", link.Attrs().Name, ns, err)
	}
	l.changed(ctx, "set link up", "netns", ns, "link", link.Attrs().Name)
	return nil
}

// ensureVXLAN makes sure network n's VXLAN device exists in the router
// namespace with the right identity, MTU and MAC, and is up. The device
// is created from the node namespace directly into the router namespace
// (IFLA_NET_NS_FD), so its UDP socket lives in the node namespace: the
// same result as creating it there and moving it, without a window where
// it is visible in the node namespace.
func (l *Linux) ensureVXLAN(ctx context.Context, r *router, n Network) (netlink.Link, error) {
	name := VXLANName(n.VNI)
	mtu := l.networkMTU(ctx, n)
	link, err := r.h.LinkByName(name)
	if err != nil && !kernelnet.IsLinkNotFound(err) {
		return nil, fmt.Errorf("find %s in %s: %w", name, r.name, err)
	}
	if link != nil {
		vx, ok := link.(*netlink.Vxlan)
		if !ok || vx.VxlanId != n.VNI || kernelnet.AddrOf(vx.SrcAddr) != l.cfg.Underlay || vx.Port != l.cfg.VXLANPort || vx.Learning {
			if err := r.h.LinkDel(link); err != nil && !kernelnet.IsLinkNotFound(err) {
				return nil, fmt.Errorf("delete mismatched %s in %s: %w", name, r.name, err)
			}
			l.changed(ctx, "deleted mismatched vxlan device", "netns", r.name, "link", name)
			link = nil
		}
	}
	if link == nil {
		node, err := l.nodeHandle()
		if err != nil {
			return nil, err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		attrs.MTU = mtu
		attrs.HardwareAddr = l.cfg.VTEPMAC
		attrs.Namespace = netlink.NsFd(r.ns)
		vx := &netlink.Vxlan{
			LinkAttrs: attrs,
			VxlanId:   n.VNI,
			SrcAddr:   l.cfg.Underlay.AsSlice(),
			Port:      l.cfg.VXLANPort,
			Learning:  false,
		}
		err = node.LinkAdd(vx)
		node.Close()
		if err != nil {
			return nil, fmt.Errorf("add vxlan %s (vni %d, local %s, port %d) for %s: %w", name, n.VNI, l.cfg.Underlay, l.cfg.VXLANPort, r.name, err)
		}
		l.changed(ctx, "created vxlan device", "netns", r.name, "link", name, "vni", n.VNI)
		link, err = r.h.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("find new %s in %s: %w", name, r.name, err)
		}
		if err := r.h.LinkSetIP6AddrGenMode(link, addrGenModeNone); err != nil {
			return nil, fmt.Errorf("set addrgenmode none on %s in %s: %w", name, r.name, err)
		}
	}
	if link.Attrs().MTU != mtu {
		if err := r.h.LinkSetMTU(link, mtu); err != nil {
			return nil, fmt.Errorf("set mtu %d on %s in %s: %w", mtu, name, r.name, err)
		}
		l.changed(ctx, "set vxlan mtu", "netns", r.name, "link", name, "mtu", mtu)
	}
	if link.Attrs().HardwareAddr.String() != l.cfg.VTEPMAC.String() {
		if err := r.h.LinkSetHardwareAddr(link, l.cfg.VTEPMAC); err != nil {
			return nil, fmt.Errorf("set mac %s on %s in %s: %w", l.cfg.VTEPMAC, name, r.name, err)
		}
		l.changed(ctx, "set vxlan mac", "netns", r.name, "link", name, "mac", l.cfg.VTEPMAC)
	}
	if err := l.ensureUp(ctx, r.h, link, r.name); err != nil {
		return nil, err
	}
	return link, nil
}

// ensureVTEPAddr makes the node's VTEP IP the only IPv4 address of the
// VXLAN device, as a /32: the router's source address.
func (l *Linux) ensureVTEPAddr(ctx context.Context, r *router, vx netlink.Link) error {
	want := hostPrefix(l.cfg.VTEPIP)
	addrs, err := kernelnet.Retry(func() ([]netlink.Addr, error) { return r.h.AddrList(vx, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("list addresses of %s in %s: %w", vx.Attrs().Name, r.name, err)
	}
	found := false
	for _, a := range addrs {
		p, _ := kernelnet.PrefixOf(a.IPNet)
		if p == want {
			found = true
			continue
		}
		if err := r.h.AddrDel(vx, &a); err != nil && !kernelnet.IsNotExist(err) {
			return fmt.Errorf("delete stale address %s from %s in %s: %w", p, vx.Attrs().Name, r.name, err)
		}
		l.changed(ctx, "deleted stale vtep address", "netns", r.name, "addr", p)
	}
	if found {
		return nil
	}
	if err := r.h.AddrAdd(vx, &netlink.Addr{IPNet: kernelnet.IPNetOf(want)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s in %s: %w", want, vx.Attrs().Name, r.name, err)
	}
	l.changed(ctx, "added vtep address", "netns", r.name, "addr", want)
	return nil
}

// removeRouter deletes the router namespace's interfaces (synchronously,
// so that the VNI and veth peers are released at once) and then the
// namespace. r is closed.
func (l *Linux) removeRouter(ctx context.Context, r *router) error {
	var errs []error
	links, err := kernelnet.Retry(r.h.LinkList)
	if err != nil {
		errs = append(errs, fmt.Errorf("list links in %s: %w", r.name, err))
	}
	for _, link := range links {
		if link.Attrs().Name == "lo" {
			continue
		}
		if err := r.h.LinkDel(link); err != nil && !kernelnet.IsLinkNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s in %s: %w", link.Attrs().Name, r.name, err))
			continue
		}
		l.changed(ctx, "deleted link", "netns", r.name, "link", link.Attrs().Name)
	}
	l.routers.drop(r.name)
	r.discard()
	if err := netns.DeleteNamed(r.name); err != nil {
		errs = append(errs, err)
	} else {
		l.changed(ctx, "deleted router namespace", "netns", r.name)
	}
	return errors.Join(errs...)
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
