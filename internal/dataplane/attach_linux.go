//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/kernelnet"
	"github.com/weft-sdn/weft/internal/netns"
)

// Attach gives the container at ep.Netns an interface ep.IfName on
// network n: a veth whose other end (ep.HostIf) sits in the network's
// router namespace, created if needed. It returns ep with HostIf, MAC,
// MTU and IPs (with their subnets' prefix lengths) filled in.
//
// Attach is idempotent: an existing attachment with the same
// configuration succeeds (missing routes or neighbour entries are put
// back, a withdrawn one is brought back); one with a different
// configuration is an error. When Attach fails, everything it created is
// removed again.
func (l *Linux) Attach(ctx context.Context, n Network, ep Endpoint) (_ Endpoint, err error) {
	if err := ctx.Err(); err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	if err := n.validate(); err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	macGiven, mtuGiven := len(ep.MAC) > 0, ep.MTU > 0
	ep, addrs, err := ep.normalize(n, l.networkMTU(ctx, n))
	if err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	what := ep.ContainerID + "/" + ep.IfName
	if ep.Netns == "" {
		return ep, fmt.Errorf("attach %s: missing netns", what)
	}
	cns, ch, err := kernelnet.OpenNetns(ep.Netns)
	if err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	defer cns.Close()
	defer ch.Close()

	r, createdNS, release, err := l.acquireRouter(ctx, n)
	if err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	defer release()
	unlock := l.endpoints.Lock(ep.HostIf)
	defer unlock()
	createdVeth := false
	defer func() {
		if err == nil {
			r.close()
			return
		}
		// Undo: deleting the host veth removes its peer and every route
		// and neighbour entry on either end.
		if createdVeth {
			if c, cerr := ch.LinkByName(ep.IfName); cerr == nil {
				if derr := l.removeSourceRules(ctx, ch, ep.Netns, c); derr != nil {
					l.log.ErrorContext(ctx, "undo attach: remove source rules", "netns", ep.Netns, "err", derr)
				}
			}
			derr := r.h.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ep.HostIf}})
			switch {
			case derr == nil:
				l.changed(ctx, "undo attach: deleted veth", "netns", r.name, "link", ep.HostIf)
			case !kernelnet.IsLinkNotFound(derr):
				l.log.ErrorContext(ctx, "undo attach: delete veth", "netns", r.name, "link", ep.HostIf, "err", derr)
			}
		}
		if createdNS {
			// The guard is held exclusively (see acquireRouter).
			l.guard(n.VNI).ready.Store(false)
			if derr := l.removeRouter(ctx, r); derr != nil {
				l.log.ErrorContext(ctx, "undo attach: remove router namespace", "netns", r.name, "err", derr)
			}
		} else {
			r.close()
		}
	}()
	if err := l.hook("router"); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}

	host, err := r.h.LinkByName(ep.HostIf)
	if err != nil && !kernelnet.IsLinkNotFound(err) {
		return ep, fmt.Errorf("attach %s: find %s in %s: %w", what, ep.HostIf, r.name, err)
	}
	cl, err := ch.LinkByName(ep.IfName)
	if err != nil && !kernelnet.IsLinkNotFound(err) {
		return ep, fmt.Errorf("attach %s: find %s in %s: %w", what, ep.IfName, ep.Netns, err)
	}
	if host != nil && cl != nil && kernelnet.IsVethPeer(host, cl) {
		// Existing attachment: same configuration or an error. A MAC or
		// MTU that was not asked for is whatever the interface has.
		if !macGiven {
			ep.MAC = cl.Attrs().HardwareAddr
		}
		if !mtuGiven {
			ep.MTU = cl.Attrs().MTU
		}
		if diff := l.attachmentDiff(ch, cl, ep); diff != "" {
			return ep, fmt.Errorf("attach %s: %s in %s is already attached with a different configuration: %s", what, ep.IfName, ep.Netns, diff)
		}
		if err := l.configureHost(ctx, r, host, false); err != nil {
			return ep, fmt.Errorf("attach %s: %w", what, err)
		}
		if err := l.configureContainer(ctx, ch, cl, ep, addrs, host.Attrs().HardwareAddr, false); err != nil {
			return ep, fmt.Errorf("attach %s: %w", what, err)
		}
		if err := l.ensureEndpointRoutes(ctx, r, host, ep); err != nil {
			return ep, fmt.Errorf("attach %s: %w", what, err)
		}
		l.log.InfoContext(ctx, "attachment already present", "container", ep.ContainerID, "ifname", ep.IfName, "netns", r.name, "hostif", ep.HostIf)
		return ep, nil
	}
	if cl != nil {
		return ep, fmt.Errorf("attach %s: interface %s already exists in %s", what, ep.IfName, ep.Netns)
	}
	if host != nil {
		// Its peer is gone or elsewhere (a re-created sandbox): replace it.
		if err := r.h.LinkDel(host); err != nil && !kernelnet.IsLinkNotFound(err) {
			return ep, fmt.Errorf("attach %s: delete stale %s in %s: %w", what, ep.HostIf, r.name, err)
		}
		l.changed(ctx, "deleted stale host veth", "netns", r.name, "link", ep.HostIf)
		l.log.WarnContext(ctx, "replaced stale host veth", "netns", r.name, "link", ep.HostIf, "container", ep.ContainerID)
	}
	if err := l.checkAddrsFree(r, ep); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}

	// A new pair: nothing is on it yet, so nothing needs listing before
	// it is configured.
	hmac := hostMAC(ep.ContainerID, ep.IfName)
	veth := netlink.NewVeth(netlink.NewLinkAttrs())
	veth.Name = ep.HostIf
	veth.MTU = ep.MTU
	veth.HardwareAddr = hmac
	veth.PeerName = ep.IfName
	veth.PeerHardwareAddr = ep.MAC
	veth.PeerMTU = uint32(ep.MTU)
	veth.PeerNamespace = netlink.NsFd(cns)
	if err := r.h.LinkAdd(veth); err != nil {
		return ep, fmt.Errorf("attach %s: add veth %s in %s (peer %s in %s): %w", what, ep.HostIf, r.name, ep.IfName, ep.Netns, err)
	}
	createdVeth = true
	l.changed(ctx, "created veth", "netns", r.name, "link", ep.HostIf, "peer", ep.IfName, "container_netns", ep.Netns)
	if err := l.hook("veth"); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	// LinkAdd looked the new link's index up already.
	host = veth
	if veth.Index == 0 {
		if host, err = r.h.LinkByName(ep.HostIf); err != nil {
			return ep, fmt.Errorf("attach %s: find new %s in %s: %w", what, ep.HostIf, r.name, err)
		}
	}
	if err := r.h.LinkSetIP6AddrGenMode(host, addrGenModeNone); err != nil {
		return ep, fmt.Errorf("attach %s: set addrgenmode none on %s in %s: %w", what, ep.HostIf, r.name, err)
	}
	if err := l.configureHost(ctx, r, host, true); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	if err := l.hook("host"); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	if cl, err = ch.LinkByName(ep.IfName); err != nil {
		return ep, fmt.Errorf("attach %s: find new %s in %s: %w", what, ep.IfName, ep.Netns, err)
	}
	if err := l.configureContainer(ctx, ch, cl, ep, addrs, hmac, true); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	if err := l.hook("container"); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	if err := l.addEndpointRoutes(ctx, r, host, ep); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	if err := l.hook("routes"); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	l.log.InfoContext(ctx, "attached", "container", ep.ContainerID, "ifname", ep.IfName, "network", n.name(), "netns", r.name, "hostif", ep.HostIf, "ips", ep.IPs)
	return ep, nil
}

// attachmentDiff describes how the container interface cl differs from
// ep ("" when it matches): MAC, MTU and the set of global addresses.
func (l *Linux) attachmentDiff(ch *netlink.Handle, cl netlink.Link, ep Endpoint) string {
	var diffs []string
	if got := cl.Attrs().HardwareAddr.String(); got != ep.MAC.String() {
		diffs = append(diffs, fmt.Sprintf("mac %s, want %s", got, ep.MAC))
	}
	if got := cl.Attrs().MTU; got != ep.MTU {
		diffs = append(diffs, fmt.Sprintf("mtu %d, want %d", got, ep.MTU))
	}
	have, err := kernelnet.GlobalAddrs(ch, cl)
	if err != nil {
		return err.Error()
	}
	want := slices.Clone(ep.IPs)
	slices.SortFunc(want, netip.Prefix.Compare)
	slices.SortFunc(have, netip.Prefix.Compare)
	if !slices.Equal(have, want) {
		diffs = append(diffs, fmt.Sprintf("addresses %v, want %v", have, want))
	}
	return strings.Join(diffs, "; ")
}

// checkAddrsFree fails when an address of ep is already routed to another
// interface of the router namespace (another endpoint holds it): the
// main-table route the kernel would use for it is a host route on
// another interface. (Two Attaches racing for one address are caught by
// addEndpointRoutes: the second host route is refused.)
func (l *Linux) checkAddrsFree(r *router, ep Endpoint) error {
	for _, ip := range ep.IPs {
		dst := hostPrefix(ip.Addr())
		routes, err := r.h.RouteGetWithOptions(ip.Addr().AsSlice(), &netlink.RouteGetOptions{FIBMatch: true})
		if err != nil {
			if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) || kernelnet.IsNotExist(err) {
				continue // no route at all
			}
			return fmt.Errorf("look up the route to %s in %s: %w", dst, r.name, err)
		}
		for _, rt := range routes {
			if p, ok := kernelnet.PrefixOf(rt.Dst); !ok || p != dst || rt.Table != unix.RT_TABLE_MAIN {
				continue
			}
			name := fmt.Sprintf("ifindex %d", rt.LinkIndex)
			if link, err := r.h.LinkByIndex(rt.LinkIndex); err == nil {
				if link.Attrs().Name == ep.HostIf {
					continue
				}
				name = link.Attrs().Name
			}
			return fmt.Errorf("address %s already in use by %s in %s", ip.Addr(), name, r.name)
		}
	}
	return nil
}

// configureHost sets up the router-side veth end: no proxy ARP, up. A
// new veth (fresh) takes the namespace's default proxy_arp, which
// ensureRouter keeps at 0, so only an existing one is checked.
func (l *Linux) configureHost(ctx context.Context, r *router, host netlink.Link, fresh bool) error {
	if !fresh {
		name := host.Attrs().Name
		if err := l.ensureSysctls(ctx, r.path, r.name, []kernelnet.Sysctl{{Key: "ipv4/conf/" + name + "/proxy_arp", Value: "0"}}); err != nil {
			return err
		}
	}
	return l.ensureUp(ctx, r.h, host, r.name)
}

// configureContainer sets up the container end cl: up, addresses without
// prefix routes, a permanent neighbour entry per gateway, a route per
// subnet via its gateway and a default route per family when the
// container has none.
//
// A new interface (fresh) holds no address or neighbour entry yet, so
// those are not listed first.
func (l *Linux) configureContainer(ctx context.Context, ch *netlink.Handle, cl netlink.Link, ep Endpoint, addrs []epAddr, gwMAC net.HardwareAddr, fresh bool) error {
	unlock := l.containers.Lock(ep.Netns)
	defer unlock()
	if err := l.ensureUp(ctx, ch, cl, ep.Netns); err != nil {
		return err
	}
	var have []netip.Prefix
	if !fresh {
		var err error
		if have, err = kernelnet.GlobalAddrs(ch, cl); err != nil {
			return fmt.Errorf("%w in %s", err, ep.Netns)
		}
	}
	for _, a := range addrs {
		if slices.Contains(have, a.IP) {
			continue
		}
		flags := unix.IFA_F_NOPREFIXROUTE
		if a.IP.Addr().Is6() {
			flags |= unix.IFA_F_NODAD
		}
		if err := ch.AddrAdd(cl, &netlink.Addr{IPNet: kernelnet.IPNetOf(a.IP), Flags: flags}); err != nil {
			return fmt.Errorf("add address %s to %s in %s: %w", a.IP, ep.IfName, ep.Netns, err)
		}
		l.changed(ctx, "added container address", "netns", ep.Netns, "link", ep.IfName, "addr", a.IP)
	}

	// One gateway entry and subnet route per subnet, in address order.
	var subnets []Subnet
	for _, a := range addrs {
		if !slices.Contains(subnets, a.Subnet) {
			subnets = append(subnets, a.Subnet)
		}
	}
	for _, s := range subnets {
		set := l.ensureNeigh
		if fresh {
			set = l.setNeigh
		}
		if err := set(ctx, ch, ep.Netns, cl, s.Gateway, gwMAC); err != nil {
			return err
		}
	}
	routes, err := listTable(ch, unix.RT_TABLE_MAIN)
	if err != nil {
		return fmt.Errorf("list routes in %s: %w", ep.Netns, err)
	}
	for _, s := range subnets {
		if err := l.ensureContainerRoute(ctx, ch, ep, cl, unix.RT_TABLE_MAIN, &routes, s.Prefix, s.Gateway); err != nil {
			return err
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		var famSubnets []Subnet
		for _, s := range subnets {
			if family(s.Gateway) == fam {
				famSubnets = append(famSubnets, s)
			}
		}
		if len(famSubnets) == 0 {
			continue
		}
		gw := famSubnets[0].Gateway
		def := defaultPrefix(fam)
		switch via := defaultLink(routes, fam); via {
		case 0:
			if err := l.ensureContainerRoute(ctx, ch, ep, cl, unix.RT_TABLE_MAIN, &routes, def, gw); err != nil {
				return err
			}
		case cl.Attrs().Index:
			// Ours already.
		default:
			// Another interface has the default route: replies from this
			// interface's addresses must still leave through it (the
			// subnets may even overlap), so route them from a table of
			// their own.
			table := containerTable(cl)
			troutes, err := listTable(ch, table)
			if err != nil {
				return fmt.Errorf("list routes of table %d in %s: %w", table, ep.Netns, err)
			}
			for _, s := range famSubnets {
				if err := l.ensureContainerRoute(ctx, ch, ep, cl, table, &troutes, s.Prefix, s.Gateway); err != nil {
					return err
				}
			}
			if err := l.ensureContainerRoute(ctx, ch, ep, cl, table, &troutes, def, gw); err != nil {
				return err
			}
			for _, a := range addrs {
				if family(a.IP.Addr()) == fam {
					if err := l.ensureSourceRule(ctx, ch, ep, a.IP.Addr(), table); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// Source routing of secondary container interfaces: table
// containerTableBase+ifindex, selected by a rule per address at
// sourceRulePriority (before the main table).
const (
	containerTableBase = 1000000
	sourceRulePriority = 30000
)

func containerTable(cl netlink.Link) int { return containerTableBase + cl.Attrs().Index }

func listTable(h *netlink.Handle, table int) ([]netlink.Route, error) {
	return kernelnet.Retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	})
}

func defaultPrefix(fam int) netip.Prefix {
	if fam == netlink.FAMILY_V6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

// defaultLink is the interface of the preferred default route of fam in
// routes, 0 when there is none.
func defaultLink(routes []netlink.Route, fam int) int {
	best, link := -1, 0
	for _, rt := range routes {
		p, ok := kernelnet.PrefixOf(rt.Dst)
		if !ok || p.Bits() != 0 || family(p.Addr()) != fam {
			continue
		}
		if best < 0 || rt.Priority < best {
			best, link = rt.Priority, rt.LinkIndex
			if link == 0 {
				link = -1 // multipath or unreachable: someone's default
			}
		}
	}
	return link
}

// ensureSourceRule adds "from ip lookup table" unless present.
func (l *Linux) ensureSourceRule(ctx context.Context, ch *netlink.Handle, ep Endpoint, ip netip.Addr, table int) error {
	rules, err := kernelnet.Retry(func() ([]netlink.Rule, error) { return ch.RuleList(family(ip)) })
	if err != nil {
		return fmt.Errorf("list rules in %s: %w", ep.Netns, err)
	}
	src := hostPrefix(ip)
	for _, ru := range rules {
		if p, ok := kernelnet.PrefixOf(ru.Src); ok && p == src && ru.Table == table {
			return nil
		}
	}
	ru := netlink.NewRule()
	ru.Family = family(ip)
	ru.Src = kernelnet.IPNetOf(src)
	ru.Table = table
	ru.Priority = sourceRulePriority
	if err := ch.RuleAdd(ru); err != nil {
		return fmt.Errorf("add rule from %s lookup %d in %s: %w", src, table, ep.Netns, err)
	}
	l.changed(ctx, "added source rule", "netns", ep.Netns, "from", src, "table", table)
	return nil
}

// removeSourceRules deletes the rules pointing at cl's table (its routes
// go away with the interface; rules would not).
func (l *Linux) removeSourceRules(ctx context.Context, ch *netlink.Handle, ns string, cl netlink.Link) error {
	table := containerTable(cl)
	rules, err := kernelnet.Retry(func() ([]netlink.Rule, error) { return ch.RuleList(netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list rules in %s: %w", ns, err)
	}
	var errs []error
	for _, ru := range rules {
		if ru.Table != table {
			continue
		}
		if err := ch.RuleDel(&ru); err != nil && !kernelnet.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete rule lookup %d in %s: %w", table, ns, err))
			continue
		}
		l.changed(ctx, "deleted source rule", "netns", ns, "table", table)
	}
	return errors.Join(errs...)
}

func hasDefault(routes []netlink.Route, fam int) bool {
	for _, rt := range routes {
		p, ok := kernelnet.PrefixOf(rt.Dst)
		if ok && p.Bits() == 0 && family(p.Addr()) == fam {
			return true
		}
	}
	return false
}

// ensureContainerRoute adds dst via gw dev cl onlink to table unless
// present. When
// another interface already routes dst (overlapping networks in one
// container), the route gets the lowest free metric so both coexist; the
// first one wins unless the sender binds to an interface.
func (l *Linux) ensureContainerRoute(ctx context.Context, ch *netlink.Handle, ep Endpoint, cl netlink.Link, table int, routes *[]netlink.Route, dst netip.Prefix, gw netip.Addr) error {
	used := map[int]bool{}
	for _, rt := range *routes {
		p, ok := kernelnet.PrefixOf(rt.Dst)
		if !ok || p != dst {
			continue
		}
		if rt.LinkIndex == cl.Attrs().Index && kernelnet.AddrOf(rt.Gw) == gw {
			return nil
		}
		used[rt.Priority] = true
	}
	metric := 0
	if dst.Addr().Is6() {
		metric = 1024 // the kernel's default for IPv6
	}
	for used[metric] {
		metric++
	}
	rt := netlink.Route{
		LinkIndex: cl.Attrs().Index,
		Dst:       kernelnet.IPNetOf(dst),
		Gw:        gw.AsSlice(),
		Flags:     int(netlink.FLAG_ONLINK),
		Priority:  metric,
		Protocol:  unix.RTPROT_STATIC,
		Table:     table,
	}
	if err := ch.RouteAdd(&rt); err != nil {
		return fmt.Errorf("add route %s via %s dev %s table %d in %s: %w", dst, gw, ep.IfName, table, ep.Netns, err)
	}
	*routes = append(*routes, rt)
	l.changed(ctx, "added container route", "netns", ep.Netns, "dst", dst, "via", gw, "link", ep.IfName, "table", table, "metric", metric)
	return nil
}

// ensureNeigh makes ip -> mac a permanent neighbour entry on link.
func (l *Linux) ensureNeigh(ctx context.Context, h *netlink.Handle, ns string, link netlink.Link, ip netip.Addr, mac net.HardwareAddr) error {
	neighs, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return h.NeighList(link.Attrs().Index, family(ip)) })
	if err != nil {
		return fmt.Errorf("list neighbours of %s in %s: %w", link.Attrs().Name, ns, err)
	}
	for _, nb := range neighs {
		if kernelnet.AddrOf(nb.IP) == ip && nb.HardwareAddr.String() == mac.String() && nb.State&netlink.NUD_PERMANENT != 0 {
			return nil
		}
	}
	return l.setNeigh(ctx, h, ns, link, ip, mac)
}

func (l *Linux) setNeigh(ctx context.Context, h *netlink.Handle, ns string, link netlink.Link, ip netip.Addr, mac net.HardwareAddr) error {
	nb := &netlink.Neigh{
		LinkIndex:    link.Attrs().Index,
		Family:       family(ip),
		State:        netlink.NUD_PERMANENT,
		IP:           ip.AsSlice(),
		HardwareAddr: mac,
	}
	if err := h.NeighSet(nb); err != nil {
		return fmt.Errorf("set neighbour %s lladdr %s dev %s in %s: %w", ip, mac, link.Attrs().Name, ns, err)
	}
	l.changed(ctx, "set neighbour", "netns", ns, "ip", ip, "lladdr", mac, "link", link.Attrs().Name)
	return nil
}

// addEndpointRoutes adds a host route and a permanent neighbour entry per
// address of ep on its new host veth. The routes are added exclusively: a
// host route to the address on another interface (an Attach racing for
// the same address) makes it fail.
func (l *Linux) addEndpointRoutes(ctx context.Context, r *router, host netlink.Link, ep Endpoint) error {
	for _, ip := range ep.IPs {
		w := wantRoute{dst: hostPrefix(ip.Addr()), link: host}
		if err := r.h.RouteAdd(w.route()); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("address %s already in use in %s", ip.Addr(), r.name)
			}
			return fmt.Errorf("add route %s in %s: %w", w, r.name, err)
		}
		l.changed(ctx, "added route", "netns", r.name, "route", w.String())
	}
	for _, ip := range ep.IPs {
		if err := l.setNeigh(ctx, r.h, r.name, host, ip.Addr(), ep.MAC); err != nil {
			return err
		}
	}
	return nil
}

// ensureEndpointRoutes puts a host route and a permanent neighbour entry
// per address of ep on its host veth, from fresh dumps. Other routes and
// entries on the veth are left alone (Sync prunes them).
func (l *Linux) ensureEndpointRoutes(ctx context.Context, r *router, host netlink.Link, ep Endpoint) error {
	var routes []wantRoute
	neighs := map[netip.Addr]net.HardwareAddr{}
	for _, ip := range ep.IPs {
		routes = append(routes, wantRoute{dst: hostPrefix(ip.Addr()), link: host})
		neighs[ip.Addr()] = ep.MAC
	}
	have, err := listTable(r.h, unix.RT_TABLE_MAIN)
	if err != nil {
		return fmt.Errorf("list routes in %s: %w", r.name, err)
	}
	dels, adds := planRoutes(have, routes, func(i int) bool { return i == host.Attrs().Index }, false)
	if err := errors.Join(l.deleteRoutes(ctx, r, dels), l.replaceRoutes(ctx, r, adds)); err != nil {
		return err
	}
	haveNeighs, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(host.Attrs().Index, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list neighbours of %s in %s: %w", host.Attrs().Name, r.name, err)
	}
	ndels, nadds := planNeighs(haveNeighs, neighs, false)
	return l.applyNeighs(ctx, r, host, ndels, nadds, neighs)
}

// openHostVeth opens n's router namespace and finds ep's host veth in it.
// A missing namespace or veth is (nil, nil, nil); otherwise the caller
// closes r.
func (l *Linux) openHostVeth(ctx context.Context, op string, n Network, ep Endpoint) (*router, netlink.Link, error) {
	name := l.routerName(n.VNI)
	r, err := l.openRouter(name)
	if errors.Is(err, errNoRouter) {
		l.log.DebugContext(ctx, op+": no router namespace", "netns", name, "hostif", ep.HostIf)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", op, ep.HostIf, err)
	}
	link, err := r.h.LinkByName(ep.HostIf)
	if kernelnet.IsLinkNotFound(err) {
		r.close()
		l.log.DebugContext(ctx, op+": no host veth", "netns", name, "hostif", ep.HostIf)
		return nil, nil, nil
	}
	if err != nil {
		r.close()
		return nil, nil, fmt.Errorf("%s: find %s in %s: %w", op, ep.HostIf, name, err)
	}
	if link.Type() != "veth" {
		r.close()
		return nil, nil, fmt.Errorf("%s: %s in %s is a %s, not a veth", op, ep.HostIf, name, link.Type())
	}
	return r, link, nil
}

// Withdraw takes the attachment of ep to n out of service without
// deleting its veth: the host veth goes down, which makes the kernel drop
// its routes and neighbour entries at once, so no traffic reaches or
// leaves the container through it. Deleting a veth waits for an RCU grace
// period (tens of milliseconds); Withdraw does not, and Detach (or the
// deletion of the container's namespace) finishes the job later. Sync
// leaves a withdrawn endpoint alone even when it is still desired; Attach
// brings it back. A missing router namespace or host veth is success.
func (l *Linux) Withdraw(ctx context.Context, n Network, ep Endpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	ep, err := endpointHostIf("withdraw", n, ep)
	if err != nil {
		return err
	}
	unlock := l.endpoints.Lock(ep.HostIf)
	defer unlock()
	r, link, err := l.openHostVeth(ctx, "withdraw", n, ep)
	if err != nil || link == nil {
		return err
	}
	defer r.close()
	if link.Attrs().Flags&net.FlagUp != 0 {
		if err := r.h.LinkSetDown(link); err != nil && !kernelnet.IsLinkNotFound(err) {
			return fmt.Errorf("withdraw: set %s down in %s: %w", ep.HostIf, r.name, err)
		}
		l.changed(ctx, "set link down", "netns", r.name, "link", ep.HostIf)
	}
	l.log.InfoContext(ctx, "withdrawn", "container", ep.ContainerID, "ifname", ep.IfName, "netns", r.name, "hostif", ep.HostIf)
	return nil
}

// Detach removes the attachment of ep to n: it deletes the host veth,
// which removes the container end and every route and neighbour entry on
// both. A missing router namespace, host veth or container netns is
// success.
func (l *Linux) Detach(ctx context.Context, n Network, ep Endpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	ep, err := endpointHostIf("detach", n, ep)
	if err != nil {
		return err
	}
	unlock := l.endpoints.Lock(ep.HostIf)
	defer unlock()
	r, link, err := l.openHostVeth(ctx, "detach", n, ep)
	if err != nil || link == nil {
		return err
	}
	defer r.close()
	// Source rules of a secondary interface outlive it: remove them while
	// the container end still identifies its table.
	if ep.Netns != "" && ep.IfName != "" && netns.IsNetns(ep.Netns) {
		if ch, err := netns.NewHandle(ep.Netns); err == nil {
			if cl, err := ch.LinkByName(ep.IfName); err == nil && kernelnet.IsVethPeer(link, cl) {
				if err := l.removeSourceRules(ctx, ch, ep.Netns, cl); err != nil {
					l.log.WarnContext(ctx, "detach: remove source rules", "netns", ep.Netns, "err", err)
				}
			}
			ch.Close()
		}
	}
	if err := r.h.LinkDel(link); err != nil && !kernelnet.IsLinkNotFound(err) {
		return fmt.Errorf("detach: delete %s in %s: %w", ep.HostIf, r.name, err)
	}
	l.changed(ctx, "deleted veth", "netns", r.name, "link", ep.HostIf)
	l.log.InfoContext(ctx, "detached", "container", ep.ContainerID, "ifname", ep.IfName, "netns", r.name, "hostif", ep.HostIf)
	return nil
}

// Check verifies the attachment of ep to n (CNI CHECK): the router
// namespace and its VXLAN device, the host veth with a route and
// neighbour entry per address, and in the container the interface (up,
// MAC, MTU), its addresses, gateway neighbour entries, subnet routes and
// a default route per family. The error names everything missing.
func (l *Linux) Check(ctx context.Context, n Network, ep Endpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if err := n.validate(); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	macGiven, mtuGiven := len(ep.MAC) > 0, ep.MTU > 0
	ep, addrs, err := ep.normalize(n, l.networkMTU(ctx, n))
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	unlock := l.endpoints.Lock(ep.HostIf)
	defer unlock()
	what := ep.ContainerID + "/" + ep.IfName
	var missing []string
	miss := func(format string, args ...any) { missing = append(missing, fmt.Sprintf(format, args...)) }

	var ch *netlink.Handle
	switch {
	case ep.Netns == "":
		miss("container netns")
	case !netns.IsNetns(ep.Netns):
		miss("container netns %s", ep.Netns)
	default:
		if ch, err = netns.NewHandle(ep.Netns); err != nil {
			return fmt.Errorf("check %s: %w", what, err)
		}
		defer ch.Close()
		// A MAC or MTU that was not asked for is whatever the interface
		// has.
		if cl, err := ch.LinkByName(ep.IfName); err == nil {
			if !macGiven {
				ep.MAC = cl.Attrs().HardwareAddr
			}
			if !mtuGiven {
				ep.MTU = cl.Attrs().MTU
			}
		}
	}

	name := l.routerName(n.VNI)
	var hmac net.HardwareAddr
	r, err := l.openRouter(name)
	switch {
	case errors.Is(err, errNoRouter):
		miss("router namespace %s", name)
	case err != nil:
		return fmt.Errorf("check %s: %w", what, err)
	default:
		defer r.close()
		if vx, err := r.h.LinkByName(VXLANName(n.VNI)); err != nil {
			miss("vxlan device %s in %s", VXLANName(n.VNI), name)
		} else if vx.Attrs().Flags&net.FlagUp == 0 {
			miss("vxlan device %s up in %s", VXLANName(n.VNI), name)
		}
		host, err := r.h.LinkByName(ep.HostIf)
		if err != nil {
			miss("host interface %s in %s", ep.HostIf, name)
			break
		}
		hmac = host.Attrs().HardwareAddr
		if host.Attrs().Flags&net.FlagUp == 0 {
			miss("host interface %s up in %s", ep.HostIf, name)
		}
		routes, err := kernelnet.Retry(func() ([]netlink.Route, error) { return r.h.RouteList(host, netlink.FAMILY_ALL) })
		if err != nil {
			return fmt.Errorf("check %s: list routes in %s: %w", what, name, err)
		}
		neighs, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(host.Attrs().Index, netlink.FAMILY_ALL) })
		if err != nil {
			return fmt.Errorf("check %s: list neighbours in %s: %w", what, name, err)
		}
		for _, ip := range ep.IPs {
			dst := hostPrefix(ip.Addr())
			if !slices.ContainsFunc(routes, func(rt netlink.Route) bool { p, _ := kernelnet.PrefixOf(rt.Dst); return p == dst }) {
				miss("route %s dev %s in %s", dst, ep.HostIf, name)
			}
			if !slices.ContainsFunc(neighs, func(nb netlink.Neigh) bool {
				return kernelnet.AddrOf(nb.IP) == ip.Addr() && nb.HardwareAddr.String() == ep.MAC.String() && nb.State&netlink.NUD_PERMANENT != 0
			}) {
				miss("neighbour %s lladdr %s dev %s in %s", ip.Addr(), ep.MAC, ep.HostIf, name)
			}
		}
	}

	if ch != nil {
		l.checkContainer(ch, ep, addrs, hmac, miss)
	}
	if len(missing) > 0 {
		return fmt.Errorf("check %s: %w: missing %s", what, ErrIncomplete, strings.Join(missing, "; "))
	}
	return nil
}

func (l *Linux) checkContainer(ch *netlink.Handle, ep Endpoint, addrs []epAddr, hmac net.HardwareAddr, miss func(string, ...any)) {
	cl, err := ch.LinkByName(ep.IfName)
	if err != nil {
		miss("interface %s in %s", ep.IfName, ep.Netns)
		return
	}
	// ep.IPs are the addresses of addrs, in order (see normalize).
	if !kernelnet.CheckLink(ch, cl, ep.MAC, ep.MTU, ep.IPs, miss) {
		return
	}
	routes, err := kernelnet.Retry(func() ([]netlink.Route, error) {
		return ch.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		miss("routes of %s (%v)", ep.Netns, err)
		return
	}
	neighs, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return ch.NeighList(cl.Attrs().Index, netlink.FAMILY_ALL) })
	if err != nil {
		miss("neighbours of %s (%v)", ep.IfName, err)
		return
	}
	seen := map[Subnet]bool{}
	for _, a := range addrs {
		s := a.Subnet
		if seen[s] {
			continue
		}
		seen[s] = true
		if !slices.ContainsFunc(neighs, func(nb netlink.Neigh) bool {
			return kernelnet.AddrOf(nb.IP) == s.Gateway && nb.State&netlink.NUD_PERMANENT != 0 && (hmac == nil || nb.HardwareAddr.String() == hmac.String())
		}) {
			miss("gateway neighbour %s dev %s", s.Gateway, ep.IfName)
		}
		if !slices.ContainsFunc(routes, func(rt netlink.Route) bool {
			p, _ := kernelnet.PrefixOf(rt.Dst)
			return p == s.Prefix && rt.LinkIndex == cl.Attrs().Index && kernelnet.AddrOf(rt.Gw) == s.Gateway
		}) {
			miss("route %s via %s dev %s", s.Prefix, s.Gateway, ep.IfName)
		}
		if !hasDefault(routes, family(s.Gateway)) {
			miss("default route (%s)", familyName(s.Gateway))
		}
	}
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}
