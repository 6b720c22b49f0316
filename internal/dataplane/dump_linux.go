//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/kernelnet"
	"github.com/weft-sdn/weft/internal/netns"
)

// dumpSysctls are the sysctls printed by Dump.
var dumpSysctls = []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding"}

// Dump prints every router namespace of this Config as sorted text:
// forwarding sysctls, links (name, type, VXLAN identity, MAC, MTU, up),
// addresses, main-table routes, permanent neighbour entries and VXLAN FDB
// entries. It leaves out ifindexes, counters, lo's automatic addresses
// and dynamic neighbour entries, so two dumps of the same state are
// equal.
//
// Dump takes no lock: it is meant for a data plane at rest.
func (l *Linux) Dump(ctx context.Context) (string, error) {
	routers, err := l.ourRouters()
	if err != nil {
		return "", fmt.Errorf("dump: %w", err)
	}
	names := make([]string, 0, len(routers))
	for name := range routers {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return routers[a] - routers[b] })
	var b strings.Builder
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("dump: %w", err)
		}
		d, err := l.dumpRouter(name)
		if errors.Is(err, errNoRouter) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("dump: %w", err)
		}
		d.write(&b)
	}
	return b.String(), nil
}

func (l *Linux) dumpRouter(name string) (*nsDump, error) {
	r, err := l.openRouter(name)
	if err != nil {
		return nil, err
	}
	// Not kept for later: Dump is rare, often on a data plane made just
	// for it, and a kept handle keeps its namespace alive.
	defer r.discard()
	d := &nsDump{name: name}
	var sysctls []kernelnet.Sysctl
	err = netns.Do(r.path, func() (err error) {
		sysctls, err = kernelnet.ReadSysctls(dumpSysctls)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read sysctls in %s: %w", name, err)
	}
	for _, s := range sysctls {
		d.sysctls = append(d.sysctls, s.String())
	}

	links, err := kernelnet.Retry(r.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", name, err)
	}
	byIndex := map[int]string{}
	var vxlans []netlink.Link
	for _, link := range links {
		a := link.Attrs()
		byIndex[a.Index] = a.Name
		extra := ""
		if vx, ok := link.(*netlink.Vxlan); ok {
			extra = fmtVXLANExtra(vx.VxlanId, kernelnet.AddrOf(vx.SrcAddr), vx.Port, vx.Learning)
			vxlans = append(vxlans, link)
		}
		d.links = append(d.links, fmtLinkLine(a.Name, link.Type(), extra, a.HardwareAddr, a.MTU, a.Flags&net.FlagUp != 0))
	}
	dev := func(i int) string {
		if n, ok := byIndex[i]; ok {
			return n
		}
		return "ifindex" + strconv.Itoa(i)
	}

	addrs, err := kernelnet.Retry(func() ([]netlink.Addr, error) { return r.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses in %s: %w", name, err)
	}
	for _, a := range addrs {
		if dev(a.LinkIndex) == "lo" {
			continue
		}
		if p, ok := kernelnet.PrefixOf(a.IPNet); ok {
			d.addrs = append(d.addrs, fmt.Sprintf("addr %s %s", dev(a.LinkIndex), p))
		}
	}

	routes, err := kernelnet.Retry(func() ([]netlink.Route, error) {
		return r.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes in %s: %w", name, err)
	}
	for _, rt := range routes {
		p, ok := kernelnet.PrefixOf(rt.Dst)
		if !ok {
			continue
		}
		d.routes = append(d.routes, fmtRoute(p, kernelnet.AddrOf(rt.Gw), dev(rt.LinkIndex), scopeName(rt.Scope), rt.Flags&int(netlink.FLAG_ONLINK) != 0, rt.Priority, protoName(int(rt.Protocol))))
	}

	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		neighs, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(0, fam) })
		if err != nil {
			return nil, fmt.Errorf("list neighbours in %s: %w", name, err)
		}
		for _, nb := range neighs {
			if nb.State&netlink.NUD_PERMANENT == 0 {
				continue
			}
			d.neighs = append(d.neighs, fmtNeigh(kernelnet.AddrOf(nb.IP), dev(nb.LinkIndex), nb.HardwareAddr, "permanent"))
		}
	}
	for _, vx := range vxlans {
		fdb, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(vx.Attrs().Index, unix.AF_BRIDGE) })
		if err != nil {
			return nil, fmt.Errorf("list fdb of %s in %s: %w", vx.Attrs().Name, name, err)
		}
		for _, e := range fdb {
			d.fdb = append(d.fdb, fmtFDB(e.HardwareAddr, vx.Attrs().Name, kernelnet.AddrOf(e.IP), e.Flags&netlink.NTF_SELF != 0, neighStateName(e.State)))
		}
	}
	return d, nil
}

func scopeName(s netlink.Scope) string {
	switch s {
	case netlink.SCOPE_UNIVERSE:
		return "global"
	case netlink.SCOPE_LINK:
		return "link"
	case netlink.SCOPE_HOST:
		return "host"
	case netlink.SCOPE_SITE:
		return "site"
	case netlink.SCOPE_NOWHERE:
		return "nowhere"
	}
	return strconv.Itoa(int(s))
}

func protoName(p int) string {
	switch p {
	case unix.RTPROT_KERNEL:
		return "kernel"
	case unix.RTPROT_BOOT:
		return "boot"
	case unix.RTPROT_STATIC:
		return "static"
	}
	return strconv.Itoa(p)
}

func neighStateName(s int) string {
	switch {
	case s&netlink.NUD_PERMANENT != 0:
		return "permanent"
	case s&netlink.NUD_NOARP != 0:
		return "noarp"
	case s&netlink.NUD_REACHABLE != 0:
		return "reachable"
	case s&netlink.NUD_STALE != 0:
		return "stale"
	}
	return "state" + strconv.Itoa(s)
}
