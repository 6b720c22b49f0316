package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// Address families.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
	FamilyDual = "dual"
)

// Default block prefix lengths (api.Subnet.BlockPrefix when zero).
const (
	DefaultBlockPrefix4 = 26
	DefaultBlockPrefix6 = 122
)

// familyOf returns FamilyIPv4 or FamilyIPv6 for a valid address.
func familyOf(a netip.Addr) string {
	if a.Is4() {
		return FamilyIPv4
	}
	return FamilyIPv6
}

// familyLabel is the human spelling of a family in messages.
func familyLabel(fam string) string {
	if fam == FamilyIPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// parseAddress parses an address as given by a client: an IPv4 or IPv6
// address without zone and without surrounding spaces. The result is in
// canonical netip form, which is also the form used in keys.
func parseAddress(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, errors.New("empty address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("parse address %q: %w", s, err)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("parse address %q: zones are not allowed", s)
	}
	return a, nil
}

// parsePrefix parses a CIDR and returns it masked to its network address.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse cidr %q: %w", s, err)
	}
	return p.Masked(), nil
}

// parseBlockCIDR parses the CIDR of a block, which must be exactly a
// network address and prefix length (no host bits set).
func parseBlockCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse cidr %q: %w", s, err)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("cidr %q has host bits set (block is %s)", s, p.Masked())
	}
	return p, nil
}

// blockName is the key segment of a block: its CIDR with '/' replaced by
// '_'.
func blockName(p netip.Prefix) string {
	return strings.Replace(p.String(), "/", "_", 1)
}

// parseBlockName reverses blockName.
func parseBlockName(s string) (netip.Prefix, error) {
	i := strings.LastIndexByte(s, '_')
	if i < 0 {
		return netip.Prefix{}, fmt.Errorf("block name %q: no '_' separator", s)
	}
	return parseBlockCIDR(s[:i] + "/" + s[i+1:])
}

// lastAddr returns the last address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		lo := i * 8
		switch {
		case lo >= bits:
			b[i] = 0xff
		case lo+8 > bits:
			b[i] |= 0xff >> (bits - lo)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// prefixSize returns the number of addresses in p.
func prefixSize(p netip.Prefix) *big.Int {
	return new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
}

// randomAddr returns a uniformly random address inside p.
func randomAddr(p netip.Prefix, r *rand.Rand) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		lo := i * 8
		var host byte
		switch {
		case lo >= bits:
			host = 0xff
		case lo+8 > bits:
			host = 0xff >> (bits - lo)
		default:
			continue
		}
		b[i] |= byte(r.Uint32()) & host
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// nextPrefix returns the prefix of the same length right after p, and false
// when p is the last one of its address space.
func nextPrefix(p netip.Prefix) (netip.Prefix, bool) {
	next := lastAddr(p).Next()
	if !next.IsValid() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(next, p.Bits()), true
}

// containsPrefix reports whether outer contains all of inner.
func containsPrefix(outer, inner netip.Prefix) bool {
	return inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}
