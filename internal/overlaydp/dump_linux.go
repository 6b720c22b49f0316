//go:build linux

package overlaydp

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/kernelnet"
)

// Dump prints what this package manages in the namespace, in the format
// described at dumpText: the VTEP (kind, VNI, port, local, learning, TTL,
// MAC, MTU, alias, up) and the marked Mesos bridges, their global
// addresses, the permanent neighbour and FDB entries on the VTEP, the
// VTEP's routes in the main and rule tables (not the kernel's connected
// ones), the rules to the rule table, the forwarding sysctls and the NAT
// table as nft lists it. Nothing managed dumps as "".
func (l *Linux) Dump(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("dump: %w", err)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.h == nil {
		return "", errors.New("dump: data plane closed")
	}
	d, err := l.dump(ctx)
	if err != nil {
		return "", fmt.Errorf("dump: %w", err)
	}
	return d.String(), nil
}

func (l *Linux) dump(ctx context.Context) (*dumpText, error) {
	d := &dumpText{}
	links, err := kernelnet.Retry(l.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var ours []netlink.Link
	for _, link := range links {
		a := link.Attrs()
		up := a.Flags&net.FlagUp != 0
		switch {
		case l.ourVTEP(link):
			vx := link.(*netlink.Vxlan)
			d.links = append(d.links, fmtVXLAN(a.Name, vx.VxlanId, vx.Port, kernelnet.AddrOf(vx.SrcAddr), vx.Learning, vx.TTL, a.HardwareAddr, a.MTU, a.Alias, up))
			if err := l.dumpVTEP(d, link); err != nil {
				return nil, err
			}
		case l.ourBridge(link):
			d.links = append(d.links, fmtBridge(a.Name, a.MTU, a.Alias, up))
		default:
			continue
		}
		ours = append(ours, link)
	}
	for _, link := range ours {
		addrs, err := kernelnet.Retry(func() ([]netlink.Addr, error) { return l.h.AddrList(link, netlink.FAMILY_ALL) })
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
		}
		for _, a := range addrs {
			if p, ok := kernelnet.PrefixOf(a.IPNet); ok && !p.Addr().IsLinkLocalUnicast() {
				d.addrs = append(d.addrs, fmtAddr(link.Attrs().Name, p))
			}
		}
	}
	rules, err := kernelnet.Retry(func() ([]netlink.Rule, error) {
		return l.h.RuleListFiltered(netlink.FAMILY_ALL, &netlink.Rule{Table: l.opts.RuleTable}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	for _, ru := range rules {
		if p, ok := kernelnet.PrefixOf(ru.Src); ok {
			d.rules = append(d.rules, fmtRule(ru.Priority, p, ru.Table))
		} else {
			d.rules = append(d.rules, fmt.Sprintf("rule %d lookup %d", ru.Priority, ru.Table))
		}
	}
	nft, err := l.listNAT(ctx)
	if err != nil {
		return nil, err
	}
	d.nft = nft
	var sysctls []kernelnet.Sysctl
	err = l.inNetns(func() (err error) {
		sysctls, err = kernelnet.ReadSysctls([]string{sysctlForward4, sysctlForward6})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read sysctls: %w", err)
	}
	for _, s := range sysctls {
		d.sysctls = append(d.sysctls, s.String())
	}
	return d, nil
}

// dumpVTEP adds the VTEP's permanent neighbour and FDB entries and its
// managed routes.
func (l *Linux) dumpVTEP(d *dumpText, vtep netlink.Link) error {
	name, idx := vtep.Attrs().Name, vtep.Attrs().Index
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		neighs, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return l.h.NeighList(idx, fam) })
		if err != nil {
			return fmt.Errorf("list neighbours of %s: %w", name, err)
		}
		for _, nb := range neighs {
			if nb.State&netlink.NUD_PERMANENT != 0 {
				d.neighs = append(d.neighs, fmtNeigh(kernelnet.AddrOf(nb.IP), name, nb.HardwareAddr))
			}
		}
	}
	fdb, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return l.h.NeighList(idx, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("list fdb of %s: %w", name, err)
	}
	for _, e := range fdb {
		if e.State&netlink.NUD_PERMANENT != 0 && e.LinkIndex == idx {
			d.fdb = append(d.fdb, fmtFDB(e.HardwareAddr, name, kernelnet.AddrOf(e.IP)))
		}
	}
	routes, err := l.vtepRoutes(vtep)
	if err != nil {
		return err
	}
	for _, rt := range routes {
		dst, _ := kernelnet.PrefixOf(rt.Dst)
		d.routes = append(d.routes, fmtRoute(rt.Table, dst, kernelnet.AddrOf(rt.Gw), name))
	}
	return nil
}
