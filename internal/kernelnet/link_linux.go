//go:build linux

package kernelnet

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/netns"
)

// OpenNetns opens the network namespace at path and a netlink handle in
// it; close both when done. The namespace handle stays open so that links
// can be moved into it (netlink.NsFd).
func OpenNetns(path string) (vnetns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.Open(path)
	if err != nil {
		return ns, nil, err
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return vnetns.None(), nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return ns, h, nil
}

// IsVethPeer reports whether a and b are the two ends of one veth.
func IsVethPeer(a, b netlink.Link) bool {
	if a.Type() != "veth" || b.Type() != "veth" {
		return false
	}
	return a.Attrs().ParentIndex == b.Attrs().Index && b.Attrs().ParentIndex == a.Attrs().Index
}

// GlobalAddrs lists the addresses of link, leaving out link-local ones
// (unicast only: fe80::/10 and 169.254.0.0/16).
func GlobalAddrs(h *netlink.Handle, link netlink.Link) ([]netip.Prefix, error) {
	addrs, err := Retry(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := PrefixOf(a.IPNet); ok && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p)
		}
	}
	return out, nil
}

// CheckLink checks an endpoint's interface link (found through h) for a
// CNI CHECK: up, with the MAC address mac, the MTU mtu and every one of
// ips among its global addresses. It reports each thing missing to miss,
// in that order, and returns false when the addresses could not be listed
// (reported too), after which nothing more about the link can be checked.
func CheckLink(h *netlink.Handle, link netlink.Link, mac net.HardwareAddr, mtu int, ips []netip.Prefix, miss func(format string, args ...any)) bool {
	name := link.Attrs().Name
	if link.Attrs().Flags&net.FlagUp == 0 {
		miss("interface %s up", name)
	}
	if got := link.Attrs().HardwareAddr.String(); got != mac.String() {
		miss("mac %s on %s (has %s)", mac, name, got)
	}
	if link.Attrs().MTU != mtu {
		miss("mtu %d on %s (has %d)", mtu, name, link.Attrs().MTU)
	}
	have, err := GlobalAddrs(h, link)
	if err != nil {
		miss("addresses of %s (%v)", name, err)
		return false
	}
	for _, p := range ips {
		if !slices.Contains(have, p) {
			miss("address %s on %s", p, name)
		}
	}
	return true
}
