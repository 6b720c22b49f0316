package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
)

// The allocation rules of the DC/OS overlay master, as pure functions:
// lowest free first, from the bottom of the space, so that a freed address
// or subnet is the next one handed out. The used sets are maps of any value
// type (a master keeps VTEP address → agent, say); the cost of a call is
// O(len(used)), whatever the size of the space, so /64 IPv6 spaces are as
// cheap as /20 IPv4 ones.

// MAC returns the VTEP MAC of a VTEP address: the three bytes of the OUI
// followed by the low three bytes of the IPv4 address (70:b3:d5 +
// 44.128.0.1 = 70:b3:d5:80:00:01). Its String is lower-case. It returns
// nil when oui is shorter than three bytes or vtep is not IPv4 (an
// IPv4-mapped IPv6 address counts as IPv4).
func MAC(oui net.HardwareAddr, vtep netip.Addr) net.HardwareAddr {
	vtep = vtep.Unmap()
	if len(oui) < 3 || !vtep.Is4() {
		return nil
	}
	a := vtep.As4()
	return net.HardwareAddr{oui[0], oui[1], oui[2], a[1], a[2], a[3]}
}

// LowestFreeAddr returns the lowest address of space not in used, skipping
// the network address and, for IPv4, the broadcast address (for IPv6 only
// the subnet-router anycast address, the network address, is skipped: the
// first address of fd01:a::/64 is fd01:a::1). A full space gives an
// *ExhaustedError: "no free address in 10.0.0.0/30 (2 of 2 in use)".
// Entries of used outside space are ignored.
func LowestFreeAddr[V any](space netip.Prefix, used map[netip.Addr]V) (netip.Addr, error) {
	return lowestFreeAddr(space, used, "address", "")
}

// LowestFreeSubnet returns the lowest /bits subnet of space not in used.
// The keys of used must be masked prefixes (as netip.Prefix.Masked and this
// package return them); keys of another length or outside space are
// ignored. A full space gives an *ExhaustedError: "no free /24 subnet in
// 9.0.0.0/8 (65536 of 65536 in use)".
func LowestFreeSubnet[V any](space netip.Prefix, bits int, used map[netip.Prefix]V) (netip.Prefix, error) {
	return lowestFreeSubnet(space, bits, used, "")
}

// VTEPAddr allocates the lowest free VTEP IPv4 address of c's vtep_subnet:
// 44.128.0.1 for the first agent. Exhaustion gives an *ExhaustedError
// "no free VTEP address in 44.128.0.0/20 (4094 of 4094 in use)".
func VTEPAddr[V any](c NetworkConfig, used map[netip.Addr]V) (netip.Addr, error) {
	p := c.VTEPPrefix()
	if !p.IsValid() {
		return netip.Addr{}, fieldErrorf("vtep_subnet", "%q is not an IPv4 subnet", c.VTEPSubnet)
	}
	return lowestFreeAddr(p, used, "VTEP address", "")
}

// VTEPAddr6 allocates the lowest free VTEP IPv6 address of c's
// vtep_subnet6: fd01:a::1 for the first agent. It returns the zero Addr and
// no error when c has no vtep_subnet6.
func VTEPAddr6[V any](c NetworkConfig, used map[netip.Addr]V) (netip.Addr, error) {
	if c.VTEPSubnet6 == "" {
		return netip.Addr{}, nil
	}
	p := c.VTEPPrefix6()
	if !p.IsValid() {
		return netip.Addr{}, fieldErrorf("vtep_subnet6", "%q is not an IPv6 subnet", c.VTEPSubnet6)
	}
	return lowestFreeAddr(p, used, "VTEP IPv6 address", "")
}

// OverlaySubnet allocates the lowest free /prefix agent subnet of the
// overlay's IPv4 space: 9.0.0.0/24 for the first agent on DC/OS's dcos.
// It returns the zero Prefix and no error when the overlay has no IPv4
// space. Exhaustion gives an *ExhaustedError "no free /24 subnet in overlay
// dcos 9.0.0.0/8 (65536 of 65536 in use)".
func OverlaySubnet[V any](o OverlayInfo, used map[netip.Prefix]V) (netip.Prefix, error) {
	if o.Subnet == "" {
		return netip.Prefix{}, nil
	}
	p := o.SubnetPrefix()
	if !p.IsValid() {
		return netip.Prefix{}, fieldErrorf("subnet", "overlay %s: %q is not an IPv4 subnet", o.Name, o.Subnet)
	}
	return lowestFreeSubnet(p, o.Prefix, used, o.Name)
}

// OverlaySubnet6 allocates the lowest free /prefix6 agent subnet of the
// overlay's IPv6 space: fd01:b::/80 for the first agent on DC/OS's dcos6.
// It returns the zero Prefix and no error when the overlay has no IPv6
// space.
func OverlaySubnet6[V any](o OverlayInfo, used map[netip.Prefix]V) (netip.Prefix, error) {
	if o.Subnet6 == "" {
		return netip.Prefix{}, nil
	}
	p := o.Subnet6Prefix()
	if !p.IsValid() {
		return netip.Prefix{}, fieldErrorf("subnet6", "overlay %s: %q is not an IPv6 subnet", o.Name, o.Subnet6)
	}
	return lowestFreeSubnet(p, o.Prefix6, used, o.Name)
}

func lowestFreeAddr[V any](space netip.Prefix, used map[netip.Addr]V, what, overlay string) (netip.Addr, error) {
	if !space.IsValid() {
		return netip.Addr{}, errors.New("invalid address space")
	}
	space = space.Masked()
	total := AddrCapacity(space)
	if total > 0 {
		first, last := space.Addr().Next(), lastAddr(space)
		if space.Addr().Is4() {
			last = last.Prev() // the broadcast address
		}
		// Each step past a used address consumes one entry of used, so the
		// loop ends within len(used)+1 steps.
		for a := first; ; a = a.Next() {
			if _, taken := used[a]; !taken {
				return a, nil
			}
			if a == last {
				break
			}
		}
	}
	var n uint64
	for a := range used {
		if space.Contains(a) && a != space.Addr() && !(a.Is4() && a == lastAddr(space)) {
			n++
		}
	}
	return netip.Addr{}, &ExhaustedError{What: what, Overlay: overlay, Space: space, Used: n, Total: total}
}

func lowestFreeSubnet[V any](space netip.Prefix, bits int, used map[netip.Prefix]V, overlay string) (netip.Prefix, error) {
	if !space.IsValid() {
		return netip.Prefix{}, errors.New("invalid address space")
	}
	space = space.Masked()
	width := space.Addr().BitLen()
	if bits < space.Bits() || bits > width {
		return netip.Prefix{}, fmt.Errorf("cannot allocate /%d subnets from %s: the length must be %d-%d", bits, space, space.Bits(), width)
	}
	for a := space.Addr(); ; {
		p := netip.PrefixFrom(a, bits)
		if _, taken := used[p]; !taken {
			return p, nil
		}
		next, ok := addPow2(a, width-bits)
		if !ok || !space.Contains(next) {
			break
		}
		a = next
	}
	var n uint64
	for p := range used {
		if p.Bits() == bits && p.Masked() == p && space.Contains(p.Addr()) {
			n++
		}
	}
	return netip.Prefix{}, &ExhaustedError{What: fmt.Sprintf("/%d subnet", bits), Overlay: overlay, Space: space, Used: n, Total: Capacity(space, bits), Bits: bits}
}

// Halves splits an agent subnet into its two halves: the lower one for the
// Mesos bridge, the upper one for the Docker bridge (9.0.1.0/24 →
// 9.0.1.0/25 and 9.0.1.128/25; fd01:b:0:0:1::/80 → /81 halves). It returns
// zero Prefixes when p is invalid or a single address.
func Halves(p netip.Prefix) (mesos, docker netip.Prefix) {
	if !p.IsValid() || p.Bits() >= p.Addr().BitLen() {
		return netip.Prefix{}, netip.Prefix{}
	}
	p = p.Masked()
	bits := p.Bits() + 1
	upper, _ := addPow2(p.Addr(), p.Addr().BitLen()-bits)
	return netip.PrefixFrom(p.Addr(), bits), netip.PrefixFrom(upper, bits)
}

// Gateway returns the first host address of a subnet, the address the
// bridge plugin (host-local) gives the bridge: 9.0.1.1 for 9.0.1.0/25,
// 9.0.1.129 for 9.0.1.128/25. It returns the zero Addr when p is invalid or
// has no address after its network address.
func Gateway(p netip.Prefix) netip.Addr {
	if !p.IsValid() {
		return netip.Addr{}
	}
	p = p.Masked()
	g := p.Addr().Next()
	if !g.IsValid() || !p.Contains(g) {
		return netip.Addr{}
	}
	return g
}

// Capacity returns the number of /bits subnets in space, saturated at
// math.MaxUint64; 0 when bits is not between space's length and the
// address width.
func Capacity(space netip.Prefix, bits int) uint64 {
	if !space.IsValid() || bits < space.Bits() || bits > space.Addr().BitLen() {
		return 0
	}
	return pow2(bits - space.Bits())
}

// AddrCapacity returns the number of allocatable addresses of space as
// LowestFreeAddr counts them (all but the network address, and for IPv4
// the broadcast address), saturated at math.MaxUint64.
func AddrCapacity(space netip.Prefix) uint64 {
	if !space.IsValid() {
		return 0
	}
	host := space.Addr().BitLen() - space.Bits()
	if space.Addr().Is4() {
		if host < 2 {
			return 0
		}
		return pow2(host) - 2
	}
	if host == 0 {
		return 0
	}
	if host >= 64 {
		return math.MaxUint64
	}
	return pow2(host) - 1
}

// pow2 returns 2^n saturated at math.MaxUint64.
func pow2(n int) uint64 {
	if n >= 64 {
		return math.MaxUint64
	}
	return 1 << n
}

// toU128 returns an address as a 128-bit number (IPv4 in the low 32 bits).
func toU128(a netip.Addr) (hi, lo uint64) {
	if a.Is4() {
		b := a.As4()
		return 0, uint64(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// fromU128 is the inverse of toU128.
func fromU128(hi, lo uint64, is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// addPow2 returns a + 2^shift; ok is false when that overflows the
// address width.
func addPow2(a netip.Addr, shift int) (netip.Addr, bool) {
	hi, lo := toU128(a)
	if a.Is4() {
		if shift >= 32 || lo+1<<shift > math.MaxUint32 {
			return netip.Addr{}, false
		}
		return fromU128(0, lo+1<<shift, true), true
	}
	if shift >= 128 {
		return netip.Addr{}, false
	}
	if shift >= 64 {
		h := hi + 1<<(shift-64)
		if h < hi {
			return netip.Addr{}, false
		}
		return fromU128(h, lo, false), true
	}
	l := lo + 1<<shift
	h := hi
	if l < lo {
		h++
		if h == 0 {
			return netip.Addr{}, false
		}
	}
	return fromU128(h, l, false), true
}

// lastAddr returns the last address of p (all host bits set).
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	hi, lo := toU128(p.Addr())
	host := p.Addr().BitLen() - p.Bits()
	switch {
	case host == 0:
	case host >= 128:
		hi, lo = math.MaxUint64, math.MaxUint64
	case host >= 64:
		lo = math.MaxUint64
		hi |= 1<<(host-64) - 1
	default:
		lo |= 1<<host - 1
	}
	return fromU128(hi, lo, p.Addr().Is4())
}
