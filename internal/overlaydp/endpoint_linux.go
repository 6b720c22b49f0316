//go:build linux

package overlaydp

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

// Attach connects the container at ep.Netns to the Mesos bridge
// ep.Bridge: a veth whose host end (ep.HostIf) is a port of the bridge
// (up, hairpin on) and whose container end is ep.IfName (ep.MAC, ep.MTU,
// ep.IPs, up), with lo up and, with ep.DefaultRoute, a default route per
// family via its gateway. It returns ep with HostIf, MAC and MTU filled.
//
// Attach is idempotent: an existing attachment with the same MAC and MTU
// is completed (missing addresses and routes are added); one with
// another MAC or MTU is an error. When Attach fails, the veth it created
// is removed.
func (l *Linux) Attach(ctx context.Context, ep Endpoint) (_ Endpoint, err error) {
	if err := ctx.Err(); err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.h == nil {
		return ep, errors.New("attach: data plane closed")
	}
	br, err := l.h.LinkByName(ep.Bridge)
	if err != nil || br.Type() != "bridge" {
		return ep, fmt.Errorf("attach %s/%s: bridge %q not found", ep.ContainerID, ep.IfName, ep.Bridge)
	}
	macGiven, mtuGiven := len(ep.MAC) > 0, ep.MTU > 0
	if ep, err = ep.normalize(br.Attrs().MTU); err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	what := ep.ContainerID + "/" + ep.IfName
	unlock := l.endpoints.Lock(ep.HostIf)
	defer unlock()

	cns, ch, err := kernelnet.OpenNetns(ep.Netns)
	if err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	defer cns.Close()
	defer ch.Close()

	host, err := l.h.LinkByName(ep.HostIf)
	if err != nil && !kernelnet.IsLinkNotFound(err) {
		return ep, fmt.Errorf("attach %s: find %s: %w", what, ep.HostIf, err)
	}
	cl, err := ch.LinkByName(ep.IfName)
	if err != nil && !kernelnet.IsLinkNotFound(err) {
		return ep, fmt.Errorf("attach %s: find %s in %s: %w", what, ep.IfName, ep.Netns, err)
	}
	if host != nil && cl != nil && kernelnet.IsVethPeer(host, cl) {
		if !macGiven {
			ep.MAC = cl.Attrs().HardwareAddr
		}
		if !mtuGiven {
			ep.MTU = cl.Attrs().MTU
		}
		var d []string
		if got := cl.Attrs().HardwareAddr.String(); got != ep.MAC.String() {
			d = append(d, fmt.Sprintf("mac %s, want %s", got, ep.MAC))
		}
		if got := cl.Attrs().MTU; got != ep.MTU {
			d = append(d, fmt.Sprintf("mtu %d, want %d", got, ep.MTU))
		}
		if len(d) > 0 {
			return ep, fmt.Errorf("attach %s: %s in %s is already attached with a different configuration: %s", what, ep.IfName, ep.Netns, strings.Join(d, "; "))
		}
		if err := l.configureHost(ctx, host, br); err != nil {
			return ep, fmt.Errorf("attach %s: %w", what, err)
		}
		if err := l.configureContainer(ctx, ch, cl, ep); err != nil {
			return ep, fmt.Errorf("attach %s: %w", what, err)
		}
		l.log.InfoContext(ctx, "attachment already present", "container", ep.ContainerID, "ifname", ep.IfName, "hostif", ep.HostIf, "bridge", ep.Bridge)
		return ep, nil
	}
	if cl != nil {
		return ep, fmt.Errorf("attach %s: interface %s already exists in %s", what, ep.IfName, ep.Netns)
	}
	if host != nil {
		// Its peer is gone or elsewhere (a re-created sandbox): replace it.
		if err := l.h.LinkDel(host); err != nil && !kernelnet.IsLinkNotFound(err) {
			return ep, fmt.Errorf("attach %s: delete stale %s: %w", what, ep.HostIf, err)
		}
		l.changed(ctx, "deleted stale host veth", "link", ep.HostIf, "container", ep.ContainerID)
	}

	veth := netlink.NewVeth(netlink.NewLinkAttrs())
	veth.Name = ep.HostIf
	veth.MTU = ep.MTU
	veth.PeerName = ep.IfName
	veth.PeerHardwareAddr = ep.MAC
	veth.PeerMTU = uint32(ep.MTU)
	veth.PeerNamespace = netlink.NsFd(cns)
	if err := l.h.LinkAdd(veth); err != nil {
		return ep, fmt.Errorf("attach %s: add veth %s (peer %s in %s): %w", what, ep.HostIf, ep.IfName, ep.Netns, err)
	}
	l.changed(ctx, "created veth", "link", ep.HostIf, "peer", ep.IfName, "container_netns", ep.Netns)
	defer func() {
		if err == nil {
			return
		}
		if derr := l.h.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ep.HostIf}}); derr != nil && !kernelnet.IsLinkNotFound(derr) {
			l.log.ErrorContext(ctx, "undo attach: delete veth", "link", ep.HostIf, "err", derr)
			return
		}
		l.changed(ctx, "undo attach: deleted veth", "link", ep.HostIf)
	}()
	if host, err = l.h.LinkByName(ep.HostIf); err != nil {
		return ep, fmt.Errorf("attach %s: find new %s: %w", what, ep.HostIf, err)
	}
	if err := l.configureHost(ctx, host, br); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	if cl, err = ch.LinkByName(ep.IfName); err != nil {
		return ep, fmt.Errorf("attach %s: find new %s in %s: %w", what, ep.IfName, ep.Netns, err)
	}
	if err := l.configureContainer(ctx, ch, cl, ep); err != nil {
		return ep, fmt.Errorf("attach %s: %w", what, err)
	}
	l.log.InfoContext(ctx, "attached", "container", ep.ContainerID, "ifname", ep.IfName, "hostif", ep.HostIf, "bridge", ep.Bridge, "ips", ep.IPs)
	return ep, nil
}

// configureHost makes host a port of br with hairpin on, and up.
func (l *Linux) configureHost(ctx context.Context, host, br netlink.Link) error {
	name := host.Attrs().Name
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := l.h.LinkSetMaster(host, br); err != nil {
			return fmt.Errorf("attach %s to %s: %w", name, br.Attrs().Name, err)
		}
		l.changed(ctx, "attached veth to bridge", "link", name, "bridge", br.Attrs().Name)
	}
	hairpin := false
	if pi, err := l.h.LinkGetProtinfo(host); err == nil {
		hairpin = pi.Hairpin
	}
	if !hairpin {
		if err := l.h.LinkSetHairpin(host, true); err != nil {
			return fmt.Errorf("set hairpin on %s: %w", name, err)
		}
		l.changed(ctx, "set hairpin", "link", name)
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		if err := l.h.LinkSetUp(host); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
		l.changed(ctx, "set link up", "link", name)
	}
	return nil
}

// configureContainer brings lo and cl up and adds ep's missing addresses
// and default routes.
func (l *Linux) configureContainer(ctx context.Context, ch *netlink.Handle, cl netlink.Link, ep Endpoint) error {
	lo, err := ch.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", ep.Netns, err)
	}
	for _, link := range []netlink.Link{lo, cl} {
		if link.Attrs().Flags&net.FlagUp != 0 {
			continue
		}
		if err := ch.LinkSetUp(link); err != nil {
			return fmt.Errorf("set %s up in %s: %w", link.Attrs().Name, ep.Netns, err)
		}
		l.changed(ctx, "set link up", "container_netns", ep.Netns, "link", link.Attrs().Name)
	}
	have, err := kernelnet.GlobalAddrs(ch, cl)
	if err != nil {
		return fmt.Errorf("%w in %s", err, ep.Netns)
	}
	for _, p := range ep.IPs {
		if slices.Contains(have, p) {
			continue
		}
		a := &netlink.Addr{IPNet: kernelnet.IPNetOf(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := ch.AddrAdd(cl, a); err != nil {
			return fmt.Errorf("add address %s to %s in %s: %w", p, ep.IfName, ep.Netns, err)
		}
		l.changed(ctx, "added container address", "container_netns", ep.Netns, "link", ep.IfName, "addr", p)
	}
	if !ep.DefaultRoute {
		return nil
	}
	routes, err := kernelnet.Retry(func() ([]netlink.Route, error) { return ch.RouteList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list routes in %s: %w", ep.Netns, err)
	}
	for _, gw := range ep.Gateways {
		if !slices.ContainsFunc(ep.IPs, func(p netip.Prefix) bool { return p.Addr().Is4() == gw.Is4() }) {
			continue
		}
		if hasDefault(routes, cl, gw) {
			continue
		}
		rt := &netlink.Route{LinkIndex: cl.Attrs().Index, Dst: kernelnet.IPNetOf(defaultPrefix(gw)), Gw: gw.AsSlice()}
		if !slices.ContainsFunc(ep.IPs, func(p netip.Prefix) bool { return p.Masked().Contains(gw) }) {
			rt.Flags = int(netlink.FLAG_ONLINK)
		}
		if err := ch.RouteReplace(rt); err != nil {
			return fmt.Errorf("add default route via %s dev %s in %s: %w", gw, ep.IfName, ep.Netns, err)
		}
		l.changed(ctx, "set container default route", "container_netns", ep.Netns, "via", gw, "link", ep.IfName)
	}
	return nil
}

func defaultPrefix(gw netip.Addr) netip.Prefix {
	if gw.Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}

// hasDefault reports whether routes hold a default route via gw dev cl.
func hasDefault(routes []netlink.Route, cl netlink.Link, gw netip.Addr) bool {
	return slices.ContainsFunc(routes, func(rt netlink.Route) bool {
		p, ok := kernelnet.PrefixOf(rt.Dst)
		isDefault := rt.Dst == nil || (ok && p.Bits() == 0)
		return isDefault && rt.LinkIndex == cl.Attrs().Index && kernelnet.AddrOf(rt.Gw) == gw
	})
}

// Detach removes ep's veth (both ends). A missing veth or container
// namespace is success.
func (l *Linux) Detach(ctx context.Context, ep Endpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	ep, err := ep.withNames()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.h == nil {
		return errors.New("detach: data plane closed")
	}
	unlock := l.endpoints.Lock(ep.HostIf)
	defer unlock()
	host, err := l.h.LinkByName(ep.HostIf)
	switch {
	case kernelnet.IsLinkNotFound(err):
		// The container end may still exist without it: only a veth,
		// and only when its peer is gone, so another attachment's
		// interface of the same name is safe.
		if ep.Netns == "" || !netns.IsNetns(ep.Netns) {
			return nil
		}
		cns, ch, err := kernelnet.OpenNetns(ep.Netns)
		if err != nil {
			return nil
		}
		defer cns.Close()
		defer ch.Close()
		cl, err := ch.LinkByName(ep.IfName)
		if err != nil || cl.Type() != "veth" {
			return nil
		}
		if err := ch.LinkDel(cl); err != nil && !kernelnet.IsLinkNotFound(err) {
			return fmt.Errorf("detach %s/%s: delete %s in %s: %w", ep.ContainerID, ep.IfName, ep.IfName, ep.Netns, err)
		}
		l.changed(ctx, "deleted container veth", "container_netns", ep.Netns, "link", ep.IfName)
		return nil
	case err != nil:
		return fmt.Errorf("detach %s/%s: find %s: %w", ep.ContainerID, ep.IfName, ep.HostIf, err)
	case host.Type() != "veth":
		return fmt.Errorf("detach %s/%s: %s is a %s, not a veth", ep.ContainerID, ep.IfName, ep.HostIf, host.Type())
	}
	if err := l.h.LinkDel(host); err != nil && !kernelnet.IsLinkNotFound(err) {
		return fmt.Errorf("detach %s/%s: delete %s: %w", ep.ContainerID, ep.IfName, ep.HostIf, err)
	}
	l.changed(ctx, "deleted veth", "link", ep.HostIf)
	l.log.InfoContext(ctx, "detached", "container", ep.ContainerID, "ifname", ep.IfName, "hostif", ep.HostIf)
	return nil
}

// Check verifies ep's attachment (CNI CHECK): the host veth (a port of
// the bridge, up), and in the container the interface (up, MAC, MTU), its
// addresses and, with DefaultRoute, the default routes. The error wraps
// ErrIncomplete and names everything missing.
func (l *Linux) Check(ctx context.Context, ep Endpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.h == nil {
		return errors.New("check: data plane closed")
	}
	var missing []string
	miss := func(format string, args ...any) { missing = append(missing, fmt.Sprintf(format, args...)) }
	bridgeMTU := 1500
	br, err := l.h.LinkByName(ep.Bridge)
	if err != nil || br.Type() != "bridge" {
		miss("bridge %s", ep.Bridge)
		br = nil
	} else {
		bridgeMTU = br.Attrs().MTU
	}
	macGiven, mtuGiven := len(ep.MAC) > 0, ep.MTU > 0
	if ep, err = ep.normalize(bridgeMTU); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	what := ep.ContainerID + "/" + ep.IfName
	unlock := l.endpoints.Lock(ep.HostIf)
	defer unlock()

	host, err := l.h.LinkByName(ep.HostIf)
	switch {
	case err != nil:
		miss("host interface %s", ep.HostIf)
	default:
		if host.Attrs().Flags&net.FlagUp == 0 {
			miss("host interface %s up", ep.HostIf)
		}
		if br != nil && host.Attrs().MasterIndex != br.Attrs().Index {
			miss("host interface %s on bridge %s", ep.HostIf, ep.Bridge)
		}
	}
	if !netns.IsNetns(ep.Netns) {
		miss("container netns %s", ep.Netns)
	} else {
		cns, ch, err := kernelnet.OpenNetns(ep.Netns)
		if err != nil {
			return fmt.Errorf("check %s: %w", what, err)
		}
		defer cns.Close()
		defer ch.Close()
		if cl, err := ch.LinkByName(ep.IfName); err != nil {
			miss("interface %s in %s", ep.IfName, ep.Netns)
		} else {
			if !macGiven {
				ep.MAC = cl.Attrs().HardwareAddr
			}
			if !mtuGiven {
				ep.MTU = cl.Attrs().MTU
			}
			checkContainer(ch, cl, host, ep, miss)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("check %s: %w: missing %s", what, ErrIncomplete, strings.Join(missing, "; "))
	}
	return nil
}

func checkContainer(ch *netlink.Handle, cl, host netlink.Link, ep Endpoint, miss func(string, ...any)) {
	if host != nil && !kernelnet.IsVethPeer(host, cl) {
		miss("veth pair %s/%s", ep.HostIf, ep.IfName)
	}
	if !kernelnet.CheckLink(ch, cl, ep.MAC, ep.MTU, ep.IPs, miss) || !ep.DefaultRoute {
		return
	}
	routes, err := kernelnet.Retry(func() ([]netlink.Route, error) { return ch.RouteList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		miss("routes of %s (%v)", ep.Netns, err)
		return
	}
	for _, gw := range ep.Gateways {
		if slices.ContainsFunc(ep.IPs, func(p netip.Prefix) bool { return p.Addr().Is4() == gw.Is4() }) && !hasDefault(routes, cl, gw) {
			miss("default route via %s dev %s", gw, ep.IfName)
		}
	}
}
