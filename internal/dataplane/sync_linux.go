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
)

// Sync reconciles the node with s by difference. For each network in s
// it creates or repairs the router namespace and VXLAN device, puts back
// missing remote routes, neighbour and FDB entries and removes stale
// ones, and restores the host routes and neighbour entries of desired
// endpoints whose host veth exists (it never creates or deletes veths:
// that is Attach and Detach). Router namespaces of networks absent from s
// are removed once no endpoint veth is left in them. A Sync with nothing
// to do changes nothing (see Changes). Errors of one network do not stop
// the others; they are joined.
func (l *Linux) Sync(ctx context.Context, s State) error {
	if err := validateState(s); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	start := l.changes.Load()
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

func (l *Linux) syncNetwork(ctx context.Context, ns NetworkState) error {
	n := ns.Network
	r, _, err := l.ensureRouter(ctx, n)
	if err != nil {
		return err
	}
	defer r.close()
	vx, err := r.h.LinkByName(VXLANName(n.VNI))
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", VXLANName(n.VNI), r.name, err)
	}
	plan, warns := planRemotes(ns, l.cfg)
	for _, w := range warns {
		l.log.WarnContext(ctx, "sync: "+w, "network", n.name())
	}

	routes := make([]wantRoute, 0, len(plan.routes))
	for _, pre := range slices.SortedFunc(maps.Keys(plan.routes), comparePrefix) {
		routes = append(routes, wantRoute{dst: pre, via: plan.routes[pre], link: vx})
	}
	owned := []netlink.Link{vx}
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
		host, err := r.h.LinkByName(ep.HostIf)
		if isLinkNotFound(err) {
			l.log.DebugContext(ctx, "sync: endpoint has no host veth", "netns", r.name, "hostif", ep.HostIf, "container", ep.ContainerID)
			continue
		}
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", ep.HostIf, r.name, err)
		}
		if host.Type() != "veth" || slices.ContainsFunc(owned, func(o netlink.Link) bool { return o.Attrs().Index == host.Attrs().Index }) {
			l.log.WarnContext(ctx, "sync: skipping endpoint with unusable host interface", "netns", r.name, "hostif", ep.HostIf, "type", host.Type())
			continue
		}
		owned = append(owned, host)
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

	var errs []error
	if err := l.reconcileRoutes(ctx, r, routes, owned, true); err != nil {
		errs = append(errs, err)
	}
	if err := l.reconcileNeighs(ctx, r, vx, plan.neighs, true); err != nil {
		errs = append(errs, err)
	}
	for _, e := range eps {
		if err := l.reconcileNeighs(ctx, r, e.link, e.neighs, true); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.reconcileFDB(ctx, r, vx, plan); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
		Dst:       ipnetOf(w.dst),
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
	if rt.LinkIndex != w.link.Attrs().Index || addrOf(rt.Gw) != w.via || rt.Priority != defaultMetric(w.dst) || rt.Protocol != unix.RTPROT_STATIC {
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

// reconcileRoutes makes the main table of r hold want. Routes on owned
// links that are not wanted are deleted when prune is set; routes that
// differ from what is wanted are replaced.
func (l *Linux) reconcileRoutes(ctx context.Context, r *router, want []wantRoute, owned []netlink.Link, prune bool) error {
	have, err := retry(func() ([]netlink.Route, error) {
		return r.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("list routes in %s: %w", r.name, err)
	}
	isOwned := map[int]bool{}
	for _, o := range owned {
		isOwned[o.Attrs().Index] = true
	}
	byDst := map[netip.Prefix]wantRoute{}
	for _, w := range want {
		byDst[w.dst] = w
	}
	done := map[netip.Prefix]bool{}
	var errs []error
	for _, rt := range have {
		if !isOwned[rt.LinkIndex] {
			continue
		}
		p, ok := prefixOf(rt.Dst)
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
		if err := r.h.RouteDel(&rt); err != nil && !isNotExist(err) {
			errs = append(errs, fmt.Errorf("delete route %s dev ifindex %d in %s: %w", p, rt.LinkIndex, r.name, err))
			continue
		}
		l.changed(ctx, "deleted route", "netns", r.name, "dst", p, "via", addrOf(rt.Gw), "ifindex", rt.LinkIndex)
	}
	for _, w := range want {
		if done[w.dst] {
			continue
		}
		if err := r.h.RouteReplace(w.route()); err != nil {
			errs = append(errs, fmt.Errorf("add route %s in %s: %w", w, r.name, err))
			continue
		}
		done[w.dst] = true
		l.changed(ctx, "added route", "netns", r.name, "route", w.String())
	}
	return errors.Join(errs...)
}

// reconcileNeighs makes want the permanent neighbour entries of link;
// other permanent entries are deleted when prune is set. Dynamic entries
// are left alone.
func (l *Linux) reconcileNeighs(ctx context.Context, r *router, link netlink.Link, want map[netip.Addr]net.HardwareAddr, prune bool) error {
	have, err := retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(link.Attrs().Index, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list neighbours of %s in %s: %w", link.Attrs().Name, r.name, err)
	}
	done := map[netip.Addr]bool{}
	var errs []error
	for _, nb := range have {
		if nb.Family != netlink.FAMILY_V4 && nb.Family != netlink.FAMILY_V6 {
			continue
		}
		ip := addrOf(nb.IP)
		mac, wanted := want[ip]
		perm := nb.State&netlink.NUD_PERMANENT != 0
		if wanted && perm && nb.HardwareAddr.String() == mac.String() {
			done[ip] = true
			continue
		}
		if wanted || !perm || !prune {
			continue // replaced below, or not ours to remove
		}
		if err := r.h.NeighDel(&nb); err != nil && !isNotExist(err) {
			errs = append(errs, fmt.Errorf("delete neighbour %s dev %s in %s: %w", ip, link.Attrs().Name, r.name, err))
			continue
		}
		l.changed(ctx, "deleted neighbour", "netns", r.name, "ip", ip, "link", link.Attrs().Name)
	}
	for _, ip := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if done[ip] {
			continue
		}
		if err := l.setNeigh(ctx, r.h, r.name, link, ip, want[ip]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reconcileFDB makes the VXLAN device's FDB hold exactly one permanent
// entry per remote VTEP MAC pointing at the remote's underlay address.
func (l *Linux) reconcileFDB(ctx context.Context, r *router, vx netlink.Link, plan remotePlan) error {
	have, err := retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(vx.Attrs().Index, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("list fdb of %s in %s: %w", vx.Attrs().Name, r.name, err)
	}
	done := map[string]bool{}
	var errs []error
	for _, e := range have {
		key := e.HardwareAddr.String()
		dst := addrOf(e.IP)
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
		if err := r.h.NeighDel(&del); err != nil && !isNotExist(err) {
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
		r, err := l.openRouter(name)
		if errors.Is(err, errNoRouter) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		links, err := retry(r.h.LinkList)
		if err != nil {
			r.close()
			errs = append(errs, fmt.Errorf("list links in %s: %w", name, err))
			continue
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
			continue
		}
		if err := l.removeRouter(ctx, r); err != nil {
			errs = append(errs, err)
			continue
		}
		l.log.InfoContext(ctx, "removed router namespace", "netns", name)
	}
	return errors.Join(errs...)
}

// Teardown deletes every router namespace of this Config, with its VXLAN
// device and veths (so container ends disappear too). Used by tests and
// `weft lab down`.
func (l *Linux) Teardown(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	routers, err := l.ourRouters()
	if err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(routers)) {
		r, err := l.openRouter(name)
		if errors.Is(err, errNoRouter) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("teardown: %w", err))
			continue
		}
		if err := l.removeRouter(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("teardown: %w", err))
		}
	}
	return errors.Join(errs...)
}
