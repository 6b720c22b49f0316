package ipam

import (
	"fmt"
	"math/big"
	"net/netip"
	"strings"

	"github.com/weft-sdn/weft/internal/api"
)

// Network is what the IPAM needs to know of a network. Subnets are expected
// to have been validated by the API layer (parseable, non-overlapping);
// the IPAM still refuses unparseable ones.
type Network struct {
	// UUID names the network in keys.
	UUID string
	// FQName is the network's fq_name, recorded in reservations and blocks
	// and used in messages.
	FQName string
	// Subnets are tried in order.
	Subnets []api.Subnet
}

// name is how messages name the network.
func (n Network) name() string {
	if n.FQName != "" {
		return n.FQName
	}
	return n.UUID
}

// subnet is a parsed api.Subnet.
type subnet struct {
	prefix    netip.Prefix
	family    string
	gateway   netip.Addr // invalid when none
	network   netip.Addr // invalid when the network address is usable (/31, /32, /127, /128)
	broadcast netip.Addr // IPv4 only, invalid when usable
	blockBits int
}

// reason returns why a is not assignable in s, or "" when it is.
func (s *subnet) reason(a netip.Addr) string {
	switch a {
	case s.network:
		return "the network address"
	case s.gateway:
		return "the gateway"
	case s.broadcast:
		return "the broadcast address"
	}
	return ""
}

// special reports whether a is the network, gateway or broadcast address.
func (s *subnet) special(a netip.Addr) bool {
	return a == s.network || a == s.gateway || a == s.broadcast
}

// usable returns the number of assignable addresses of the subnet.
func (s *subnet) usable() *big.Int {
	n := prefixSize(s.prefix)
	for _, a := range []netip.Addr{s.network, s.gateway, s.broadcast} {
		if a.IsValid() && s.prefix.Contains(a) {
			n.Sub(n, big.NewInt(1))
		}
	}
	if n.Sign() < 0 {
		n.SetInt64(0)
	}
	return n
}

// blockFor returns the aligned block of s containing a.
func (s *subnet) blockFor(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, s.blockBits).Masked()
}

// parseSubnets validates the network and parses its subnets. def4 and def6
// are the default block prefix lengths.
func parseSubnets(n Network, def4, def6 int) ([]*subnet, error) {
	if n.UUID == "" {
		return nil, api.Invalid("network", "network has no uuid")
	}
	if strings.ContainsAny(n.UUID, "/\x00") {
		return nil, api.Invalid("network", "network uuid %q contains '/' or NUL", n.UUID)
	}
	subs := make([]*subnet, 0, len(n.Subnets))
	for i, sn := range n.Subnets {
		p, err := parsePrefix(sn.CIDR)
		if err != nil {
			return nil, api.Invalid(fmt.Sprintf("subnets[%d].cidr", i), "network %s: %v", n.name(), err)
		}
		if p.Addr().Zone() != "" {
			return nil, api.Invalid(fmt.Sprintf("subnets[%d].cidr", i), "network %s: cidr %q has a zone", n.name(), sn.CIDR)
		}
		s := &subnet{prefix: p, family: familyOf(p.Addr())}
		bitLen := p.Addr().BitLen()
		if s.family == FamilyIPv4 {
			if p.Bits() <= 30 {
				s.network = p.Addr()
				s.broadcast = lastAddr(p)
			}
		} else if p.Bits() <= 126 {
			s.network = p.Addr()
		}
		if sn.Gateway != "" {
			gw, err := parseAddress(sn.Gateway)
			if err != nil {
				return nil, api.Invalid(fmt.Sprintf("subnets[%d].gateway", i), "network %s: %v", n.name(), err)
			}
			if p.Contains(gw) {
				s.gateway = gw
			}
		} else if s.network.IsValid() {
			s.gateway = s.network.Next()
		}
		s.blockBits = sn.BlockPrefix
		if s.blockBits == 0 {
			s.blockBits = def4
			if s.family == FamilyIPv6 {
				s.blockBits = def6
			}
		}
		if s.blockBits < p.Bits() {
			s.blockBits = p.Bits()
		}
		if s.blockBits > bitLen {
			return nil, api.Invalid(fmt.Sprintf("subnets[%d].block_prefix", i), "network %s: block prefix /%d is longer than an %s address", n.name(), sn.BlockPrefix, familyLabel(s.family))
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// ofFamily returns the subnets of one family, in order.
func ofFamily(subs []*subnet, fam string) []*subnet {
	var out []*subnet
	for _, s := range subs {
		if s.family == fam {
			out = append(out, s)
		}
	}
	return out
}

// cidrList joins the CIDRs of subs for messages.
func cidrList(subs []*subnet) string {
	parts := make([]string, len(subs))
	for i, s := range subs {
		parts[i] = s.prefix.String()
	}
	return strings.Join(parts, ", ")
}
