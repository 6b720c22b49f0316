package overlaydp

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Dump text, shared by Linux and Fake. One line per object, in sections
// (links, addresses, neighbours, FDB, routes, rules, sysctls, nft), lines
// sorted within each section except nft's, which keeps nft's order:
//
//	link vtep1024 type=vxlan vni=1024 port=64000 local=198.18.0.1 learning=on ttl=0 mac=70:b3:d5:80:00:01 mtu=1500 alias=weft-overlay up
//	link m-dcos type=bridge mtu=1420 alias=weft-overlay up
//	addr m-dcos 9.0.1.1/25
//	addr vtep1024 44.128.0.1/20
//	neigh 44.128.0.2 dev vtep1024 lladdr 70:b3:d5:80:00:02 permanent
//	fdb 70:b3:d5:80:00:02 dev vtep1024 dst 198.18.0.2 self permanent
//	route 9.0.0.0/24 via 44.128.0.2 dev vtep1024
//	route table 42 198.18.0.2/32 via 44.128.0.2 dev vtep1024
//	rule 32000 from 9.0.0.0/8 lookup 42
//	sysctl net.ipv4.ip_forward=1
//	nft table inet weft-overlay {
//	nft comment "weft overlay nat 0123456789abcdef"
//	...
//
// Nothing managed (no VTEP, bridge, rule, table-42 route or nft table)
// dumps as "".
type dumpText struct {
	links, addrs, neighs, fdb, routes, rules, sysctls []string
	nft                                               []string
}

func (d *dumpText) String() string {
	if len(d.links)+len(d.addrs)+len(d.neighs)+len(d.fdb)+len(d.routes)+len(d.rules)+len(d.nft) == 0 {
		return ""
	}
	var b strings.Builder
	for _, sec := range [][]string{d.links, d.addrs, d.neighs, d.fdb, d.routes, d.rules, d.sysctls} {
		s := slices.Clone(sec)
		slices.Sort(s)
		for _, l := range s {
			b.WriteString(l + "\n")
		}
	}
	for _, l := range d.nft {
		b.WriteString("nft " + l + "\n")
	}
	return b.String()
}

func fmtVXLAN(name string, vni, port int, local netip.Addr, learning bool, ttl int, mac net.HardwareAddr, mtu int, alias string, up bool) string {
	l := "off"
	if learning {
		l = "on"
	}
	loc := "-"
	if local.IsValid() {
		loc = local.String()
	}
	return fmt.Sprintf("link %s type=vxlan vni=%d port=%d local=%s learning=%s ttl=%d mac=%s mtu=%d%s%s",
		name, vni, port, loc, l, ttl, mac, mtu, fmtAlias(alias), fmtUp(up))
}

func fmtBridge(name string, mtu int, alias string, up bool) string {
	return fmt.Sprintf("link %s type=bridge mtu=%d%s%s", name, mtu, fmtAlias(alias), fmtUp(up))
}

func fmtAlias(a string) string {
	if a == "" {
		return ""
	}
	return " alias=" + a
}

func fmtUp(up bool) string {
	if up {
		return " up"
	}
	return " down"
}

func fmtAddr(dev string, p netip.Prefix) string { return fmt.Sprintf("addr %s %s", dev, p) }

func fmtNeigh(ip netip.Addr, dev string, mac net.HardwareAddr) string {
	return fmt.Sprintf("neigh %s dev %s lladdr %s permanent", ip, dev, mac)
}

func fmtFDB(mac net.HardwareAddr, dev string, dst netip.Addr) string {
	return fmt.Sprintf("fdb %s dev %s dst %s self permanent", mac, dev, dst)
}

func fmtRoute(table int, dst netip.Prefix, via netip.Addr, dev string) string {
	t := ""
	if table != 0 && table != mainTable {
		t = fmt.Sprintf("table %d ", table)
	}
	v := ""
	if via.IsValid() {
		v = " via " + via.String()
	}
	return fmt.Sprintf("route %s%s%s dev %s", t, dst, v, dev)
}

func fmtRule(prio int, src netip.Prefix, table int) string {
	return fmt.Sprintf("rule %d from %s lookup %d", prio, src, table)
}

// mainTable is the kernel's main routing table (RT_TABLE_MAIN).
const mainTable = 254

// Sysctls Sync sets and Dump prints (relative to /proc/sys/net).
const (
	sysctlForward4 = "ipv4/ip_forward"
	sysctlForward6 = "ipv6/conf/all/forwarding"
)
