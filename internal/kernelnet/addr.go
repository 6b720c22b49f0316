package kernelnet

import (
	"net"
	"net/netip"
)

// AddrOf converts a netlink address to a netip.Addr, unmapping
// IPv4-mapped IPv6 addresses; a nil or malformed ip gives the zero Addr.
func AddrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// PrefixOf converts a netlink network to a netip.Prefix (not masked). It
// reports false for nil, a malformed address or a non-canonical mask.
func PrefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a := AddrOf(n.IP)
	if !a.IsValid() {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}

// IPNetOf converts p to the *net.IPNet netlink wants (address not masked).
func IPNetOf(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
