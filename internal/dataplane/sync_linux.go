//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/kernelnet"
)

// Sync reconciles the node with s by difference. For each network in s
// it creates or repairs the router namespace and VXLAN device, puts back
// missing remote routes, neighbour and FDB entries and removes stale
// ones, and restores the host routes and neighbour entries of desired
// endpoints whose host veth exists and is up (it never creates or
// deletes veths: that is Attach and Detach; a withdrawn endpoint stays
// withdrawn). Router namespaces of networks absent from s are removed
// once no endpoint veth is left in them. A Sync with nothing to do
// changes nothing (see Changes). Errors of one network do not stop the
// others; they are joined.
//
// Sync works from one dump per kind and namespace, without blocking
// endpoint operations: a network's namespace is only held exclusively
// while it is created or removed, and an endpoint only while one of its
// routes or neighbour entries is repaired.
func (l *Linux) Sync(ctx context.Context, s State) error {
	if err := validateState(s); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	start := l.changes.Load()
	l.underlayMTU(ctx, true)
	var errs []error
	want := map[int]bool{}
	for _, ns := range s.Networks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		want[ns.Network.VNI] = true
		if err := l.syncNetwork(ctx, ns); err != nil {
			errs = append(errs, fmt.Errorf("sync network %s: %w", ns.Network.name(), err))
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := l.pruneRouters(ctx, want); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	changes := l.changes.Load() - start
	level := slogLevel(changes > 0 || err != nil)
	l.log.Log(ctx, level, "sync done", "networks", len(s.Networks), "changes", changes, "err", err)
	return err
}

// syncRouter sets n's router namespace up for Sync and returns it with
// its guard held shared until release: the namespace is created under the
// exclusive guard and repaired under the shared one (endpoint operations
// never touch the namespace's sysctls, lo or VXLAN device).
func (l *Linux) syncRouter(ctx context.Context, n Network) (*router, func(), error) {
	g := l.guard(n.VNI)
	for {
		g.mu.RLock()
		r, _, err := l.ensureRouter(ctx, n, false)
		if err == nil {
			g.ready.Store(true)
			return r, g.mu.RUnlock, nil
		}
		g.mu.RUnlock()
		if !errors.Is(err, errNoRouter) {
			return nil, nil, err
		}
		g.mu.Lock()
		r, _, err = l.ensureRouter(ctx, n, true)
		g.ready.Store(err == nil)
		g.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
		r.close()
	}
}

func (l *Linux) syncNetwork(ctx context.Context, ns NetworkState) error {
	n := ns.Network
	r, release, err := l.syncRouter(ctx, n)
	if err != nil {
		return err
	}
	defer release()
	defer r.close()
	links, err := kernelnet.Retry(r.h.LinkList)
	if err != nil {
		return fmt.Errorf("list links in %s: %w", r.name, err)
	}
	byName := make(map[string]netlink.Link, len(links))
	for _, link := range links {
		byName[link.Attrs().Name] = link
	}
	vx, ok := byName[VXLANName(n.VNI)]
	if !ok {
		return fmt.Errorf("find %s in %s: not found", VXLANName(n.VNI), r.name)
	}
	plan, warns := planRemotes(ns, l.cfg)
	for _, w := range warns {
		l.log.WarnContext(ctx, "sync: "+w, "network", n.name())
	}

	routes := make([]wantRoute, 0, len(plan.routes))
	for _, pre := range slices.SortedFunc(maps.Keys(plan.routes), netip.Prefix.Compare) {
		routes = append(routes, wantRoute{dst: pre, via: plan.routes[pre], link: vx})
	}
	owned := map[int]netlink.Link{vx.Attrs().Index: vx}
	type epNeighs struct {
		link   netlink.Link
		neighs map[netip.Addr]net.HardwareAddr
	}
	var eps []epNeighs
	claimed := map[netip.Addr]string{}
	netMTU := l.networkMTU(ctx, n)
	for _, ep := range ns.Endpoints {
		ep, _, err := ep.normalize(n, netMTU)
		if err != nil {
			l.log.WarnContext(ctx, "sync: skipping invalid endpoint", "network", n.name(), "err", err)
			continue
		}
		host, ok := byName[ep.HostIf]
		if !ok {
			l.log.DebugContext(ctx, "sync: endpoint has no host veth", "netns", r.name, "hostif", ep.HostIf, "container", ep.ContainerID)
			continue
		}
		if _, dup := owned[host.Attrs().Index]; dup || host.Type() != "veth" {
			l.log.WarnContext(ctx, "sync: skipping endpoint with unusable host interface", "netns", r.name, "hostif", ep.HostIf, "type", host.Type())
			continue
		}
		if host.Attrs().Flags&net.FlagUp == 0 {
			// Withdrawn (or downed by hand): the kernel keeps no routes on a
			// down link, and only Attach brings an endpoint back.
			l.log.DebugContext(ctx, "sync: endpoint host veth is down; leaving it alone", "netns", r.name, "hostif", ep.HostIf, "container", ep.ContainerID)
			continue
		}
		owned[host.Attrs().Index] = host
		e := epNeighs{link: host, neighs: map[netip.Addr]net.HardwareAddr{}}
		for _, ip := range ep.IPs {
			a := ip.Addr()
			if other, ok := claimed[a]; ok {
				l.log.WarnContext(ctx, "sync: address claimed by two endpoints", "netns", r.name, "addr", a, "hostif", ep.HostIf, "other", other)
				continue
			}
			claimed[a] = ep.HostIf
			routes = append(routes, wantRoute{dst: hostPrefix(a), link: host})
			e.neighs[a] = ep.MAC
		}
		eps = append(eps, e)
	}

	haveRoutes, err := listTable(r.h, unix.RT_TABLE_MAIN)
	if err != nil {
		return fmt.Errorf("list routes in %s: %w", r.name, err)
	}
	haveNeighs, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(0, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list neighbours in %s: %w", r.name, err)
	}
	neighsOf := map[int][]netlink.Neigh{}
	for _, nb := range haveNeighs {
		neighsOf[nb.LinkIndex] = append(neighsOf[nb.LinkIndex], nb)
	}

	// Routes: every deletion before any addition, so that an address
	// moving between links is never routed twice. The VXLAN device's are
	// Sync's alone; an endpoint's are changed under its lock.
	isOwned := func(i int) bool { _, ok := owned[i]; return ok }
	dels, adds := planRoutes(haveRoutes, routes, isOwned, true)
	delsOf := map[int][]netlink.Route{}
	for _, rt := range dels {
		delsOf[rt.LinkIndex] = append(delsOf[rt.LinkIndex], rt)
	}
	addsOf := map[int][]wantRoute{}
	for _, w := range adds {
		addsOf[w.link.Attrs().Index] = append(addsOf[w.link.Attrs().Index], w)
	}
	var errs []error
	for _, i := range slices.Sorted(maps.Keys(delsOf)) {
		errs = append(errs, l.onLink(ctx, r, owned[i], vx, func() error { return l.deleteRoutes(ctx, r, delsOf[i]) }))
	}
	for _, i := range slices.Sorted(maps.Keys(addsOf)) {
		errs = append(errs, l.onLink(ctx, r, owned[i], vx, func() error { return l.replaceRoutes(ctx, r, addsOf[i]) }))
	}
	// Neighbour entries.
	vdels, vadds := planNeighs(neighsOf[vx.Attrs().Index], plan.neighs, true)
	errs = append(errs, l.applyNeighs(ctx, r, vx, vdels, vadds, plan.neighs))
	for _, e := range eps {
		ndels, nadds := planNeighs(neighsOf[e.link.Attrs().Index], e.neighs, true)
		if len(ndels)+len(nadds) == 0 {
			continue
		}
		errs = append(errs, l.onLink(ctx, r, e.link, vx, func() error {
			return l.applyNeighs(ctx, r, e.link, ndels, nadds, e.neighs)
		}))
	}
	if err := l.reconcileFDB(ctx, r, vx, plan); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// onLink runs fn for changes on link: directly for the VXLAN device vx,
// which only Sync changes; for an endpoint's host veth under the
// endpoint's lock, and only when the veth is still there and up (an
// Attach, Withdraw or Detach may have run since the dumps Sync works
// from, and is left to stand).
func (l *Linux) onLink(ctx context.Context, r *router, link, vx netlink.Link, fn func() error) error {
	if link.Attrs().Index == vx.Attrs().Index {
		return fn()
	}
	name := link.Attrs().Name
	unlock := l.endpoints.Lock(name)
	defer unlock()
	cur, err := r.h.LinkByIndex(link.Attrs().Index)
	if err != nil && !kernelnet.IsLinkNotFound(err) {
		return fmt.Errorf("find %s in %s: %w", name, r.name, err)
	}
	if err != nil || cur.Attrs().Name != name || cur.Attrs().Flags&net.FlagUp == 0 {
		l.log.DebugContext(ctx, "sync: endpoint changed meanwhile; leaving it alone", "netns", r.name, "hostif", name)
		return nil
	}
	return fn()
}

// wantRoute is a desired route in a router namespace: dst via via (if
// valid, onlink) or directly (scope link) on link.
type wantRoute struct {
	dst  netip.Prefix
	via  netip.Addr
	link netlink.Link
}

func (w wantRoute) route() *netlink.Route {
	rt := &netlink.Route{
		LinkIndex: w.link.Attrs().Index,
		Dst:       kernelnet.IPNetOf(w.dst),
		Table:     unix.RT_TABLE_MAIN,
		Protocol:  unix.RTPROT_STATIC,
		Priority:  defaultMetric(w.dst),
	}
	if w.via.IsValid() {
		rt.Gw = w.via.AsSlice()
		rt.Flags = int(netlink.FLAG_ONLINK)
	} else if w.dst.Addr().Is4() {
		rt.Scope = netlink.SCOPE_LINK
	}
	return rt
}

func (w wantRoute) matches(rt netlink.Route) bool {
	if rt.LinkIndex != w.link.Attrs().Index || kernelnet.AddrOf(rt.Gw) != w.via || rt.Priority != defaultMetric(w.dst) || rt.Protocol != unix.RTPROT_STATIC {
		return false
	}
	if w.via.IsValid() {
		return rt.Flags&int(netlink.FLAG_ONLINK) != 0
	}
	return w.dst.Addr().Is6() || rt.Scope == netlink.SCOPE_LINK
}

func (w wantRoute) String() string {
	if w.via.IsValid() {
		return fmt.Sprintf("%s via %s dev %s onlink", w.dst, w.via, w.link.Attrs().Name)
	}
	return fmt.Sprintf("%s dev %s", w.dst, w.link.Attrs().Name)
}

// planRoutes compares the main table (have) with want: routes on owned
// links that differ from what is wanted are deleted and the wanted route
// added again; routes on owned links that are not wanted are deleted when
// prune is set. One route per destination is wanted (the last of want).
func planRoutes(have []netlink.Route, want []wantRoute, owned func(ifindex int) bool, prune bool) (dels []netlink.Route, adds []wantRoute) {
	byDst := map[netip.Prefix]wantRoute{}
	for _, w := range want {
		byDst[w.dst] = w
	}
	done := map[netip.Prefix]bool{}
	for _, rt := range have {
		if !owned(rt.LinkIndex) {
			continue
		}
		p, ok := kernelnet.PrefixOf(rt.Dst)
		if !ok {
			continue
		}
		w, wanted := byDst[p]
		if wanted && !done[p] && w.matches(rt) {
			done[p] = true
			continue
		}
		if !wanted && !prune {
			continue
		}
		dels = append(dels, rt)
	}
	for _, w := range want {
		if !done[w.dst] {
			done[w.dst] = true
			adds = append(adds, byDst[w.dst])
		}
	}
	return dels, adds
}

// deleteRoutes deletes routes from r (already gone is fine).
func (l *Linux) deleteRoutes(ctx context.Context, r *router, routes []netlink.Route) error {
	var errs []error
	for _, rt := range routes {
		p, _ := kernelnet.PrefixOf(rt.Dst)
		if err := r.h.RouteDel(&rt); err != nil && !kernelnet.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete route %s dev ifindex %d in %s: %w", p, rt.LinkIndex, r.name, err))
			continue
		}
		l.changed(ctx, "deleted route", "netns", r.name, "dst", p, "via", kernelnet.AddrOf(rt.Gw), "ifindex", rt.LinkIndex)
	}
	return errors.Join(errs...)
}

// replaceRoutes adds (or replaces) routes in r.
func (l *Linux) replaceRoutes(ctx context.Context, r *router, want []wantRoute) error {
	var errs []error
	for _, w := range want {
		if err := r.h.RouteReplace(w.route()); err != nil {
			errs = append(errs, fmt.Errorf("add route %s in %s: %w", w, r.name, err))
			continue
		}
		l.changed(ctx, "added route", "netns", r.name, "route", w.String())
	}
	return errors.Join(errs...)
}

// planNeighs compares the neighbour entries of one link (have) with want:
// missing or different permanent entries are set; other permanent entries
// are deleted when prune is set. Dynamic entries are left alone.
func planNeighs(have []netlink.Neigh, want map[netip.Addr]net.HardwareAddr, prune bool) (dels []netlink.Neigh, adds []netip.Addr) {
	done := map[netip.Addr]bool{}
	for _, nb := range have {
		if nb.Family != netlink.FAMILY_V4 && nb.Family != netlink.FAMILY_V6 {
			continue
		}
		ip := kernelnet.AddrOf(nb.IP)
		mac, wanted := want[ip]
		perm := nb.State&netlink.NUD_PERMANENT != 0
		if wanted && perm && nb.HardwareAddr.String() == mac.String() {
			done[ip] = true
			continue
		}
		if wanted || !perm || !prune {
			continue // replaced below, or not ours to remove
		}
		dels = append(dels, nb)
	}
	for _, ip := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if !done[ip] {
			adds = append(adds, ip)
		}
	}
	return dels, adds
}

// applyNeighs deletes the neighbour entries dels of link and sets the
// entries of want at adds (see planNeighs).
func (l *Linux) applyNeighs(ctx context.Context, r *router, link netlink.Link, dels []netlink.Neigh, adds []netip.Addr, want map[netip.Addr]net.HardwareAddr) error {
	var errs []error
	for _, nb := range dels {
		ip := kernelnet.AddrOf(nb.IP)
		if err := r.h.NeighDel(&nb); err != nil && !kernelnet.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete neighbour %s dev %s in %s: %w", ip, link.Attrs().Name, r.name, err))
			continue
		}
		l.changed(ctx, "deleted neighbour", "netns", r.name, "ip", ip, "link", link.Attrs().Name)
	}
	for _, ip := range adds {
		if err := l.setNeigh(ctx, r.h, r.name, link, ip, want[ip]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reconcileFDB makes the VXLAN device's FDB hold exactly one permanent
// entry per remote VTEP MAC pointing at the remote's underlay address.
func (l *Linux) reconcileFDB(ctx context.Context, r *router, vx netlink.Link, plan remotePlan) error {
	have, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(vx.Attrs().Index, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("list fdb of %s in %s: %w", vx.Attrs().Name, r.name, err)
	}
	done := map[string]bool{}
	var errs []error
	for _, e := range have {
		key := e.HardwareAddr.String()
		dst := kernelnet.AddrOf(e.IP)
		want, wanted := plan.fdb[key]
		if wanted && !done[key] && want == dst && e.State&netlink.NUD_PERMANENT != 0 {
			done[key] = true
			continue
		}
		del := netlink.Neigh{
			LinkIndex:    vx.Attrs().Index,
			Family:       unix.AF_BRIDGE,
			Flags:        netlink.NTF_SELF,
			HardwareAddr: e.HardwareAddr,
			IP:           e.IP,
		}
		if err := r.h.NeighDel(&del); err != nil && !kernelnet.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete fdb %s dst %s dev %s in %s: %w", key, dst, vx.Attrs().Name, r.name, err))
			continue
		}
		l.changed(ctx, "deleted fdb entry", "netns", r.name, "mac", key, "dst", dst)
	}
	for _, key := range slices.Sorted(maps.Keys(plan.fdb)) {
		if done[key] {
			continue
		}
		dst := plan.fdb[key]
		e := &netlink.Neigh{
			LinkIndex:    vx.Attrs().Index,
			Family:       unix.AF_BRIDGE,
			Flags:        netlink.NTF_SELF,
			State:        netlink.NUD_PERMANENT,
			HardwareAddr: plan.macs[key],
			IP:           dst.AsSlice(),
		}
		if err := r.h.NeighSet(e); err != nil {
			errs = append(errs, fmt.Errorf("add fdb %s dst %s dev %s in %s: %w", key, dst, vx.Attrs().Name, r.name, err))
			continue
		}
		l.changed(ctx, "added fdb entry", "netns", r.name, "mac", key, "dst", dst)
	}
	return errors.Join(errs...)
}

// pruneRouters removes the router namespaces of networks not in want that
// have no endpoint veth left.
func (l *Linux) pruneRouters(ctx context.Context, want map[int]bool) error {
	routers, err := l.ourRouters()
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(routers)) {
		if want[routers[name]] {
			continue
		}
		if err := l.pruneRouter(ctx, name, routers[name]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pruneRouter removes the router namespace name of network vni unless an
// endpoint veth is left in it. It holds the guard exclusively, so that no
// Attach is half-way through the namespace.
func (l *Linux) pruneRouter(ctx context.Context, name string, vni int) error {
	g := l.guard(vni)
	g.mu.Lock()
	defer g.mu.Unlock()
	r, err := l.openRouter(name)
	if errors.Is(err, errNoRouter) {
		return nil
	}
	if err != nil {
		return err
	}
	links, err := kernelnet.Retry(r.h.LinkList)
	if err != nil {
		r.close()
		return fmt.Errorf("list links in %s: %w", name, err)
	}
	veths := 0
	for _, link := range links {
		if link.Type() == "veth" {
			veths++
		}
	}
	if veths > 0 {
		r.close()
		l.log.InfoContext(ctx, "keeping router namespace of a removed network until its endpoints detach", "netns", name, "endpoints", veths)
		return nil
	}
	g.ready.Store(false)
	if err := l.removeRouter(ctx, r); err != nil {
		return err
	}
	l.log.InfoContext(ctx, "removed router namespace", "netns", name)
	return nil
}

// Teardown deletes every router namespace of this Config, with its VXLAN
// device and veths (so container ends disappear too). Used by tests and
// `weft lab down`.
func (l *Linux) Teardown(ctx context.Context) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	routers, err := l.ourRouters()
	if err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(routers)) {
		if err := l.teardownRouter(ctx, name, routers[name]); err != nil {
			errs = append(errs, fmt.Errorf("teardown: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (l *Linux) teardownRouter(ctx context.Context, name string, vni int) error {
	g := l.guard(vni)
	g.mu.Lock()
	defer g.mu.Unlock()
	r, err := l.openRouter(name)
	if errors.Is(err, errNoRouter) {
		return nil
	}
	if err != nil {
		return err
	}
	g.ready.Store(false)
	return l.removeRouter(ctx, r)
}
