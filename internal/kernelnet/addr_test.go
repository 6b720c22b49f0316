package kernelnet

import (
	"net"
	"net/netip"
	"testing"
)

func TestPrefixOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *net.IPNet
		want netip.Prefix
		ok   bool
	}{
		{"nil", nil, netip.Prefix{}, false},
		{"ipv4", &net.IPNet{IP: net.IPv4(10, 1, 2, 3).To4(), Mask: net.CIDRMask(24, 32)}, netip.MustParsePrefix("10.1.2.3/24"), true},
		{"ipv4 in 16 bytes, 128-bit mask", &net.IPNet{IP: net.IPv4(10, 1, 2, 3), Mask: net.CIDRMask(120, 128)}, netip.MustParsePrefix("10.1.2.3/24"), true},
		{"ipv6", &net.IPNet{IP: net.ParseIP("fd00::1"), Mask: net.CIDRMask(64, 128)}, netip.MustParsePrefix("fd00::1/64"), true},
		{"malformed ip", &net.IPNet{IP: net.IP{1, 2, 3}, Mask: net.CIDRMask(24, 32)}, netip.Prefix{}, false},
		{"non-canonical mask", &net.IPNet{IP: net.IPv4(10, 0, 0, 1).To4(), Mask: net.IPMask{255, 0, 255, 0}}, netip.Prefix{}, false},
		{"no mask", &net.IPNet{IP: net.IPv4(10, 0, 0, 1).To4()}, netip.Prefix{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := PrefixOf(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("PrefixOf(%v) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
			if !ok {
				return
			}
			if back, _ := PrefixOf(IPNetOf(got)); back != got {
				t.Errorf("PrefixOf(IPNetOf(%v)) = %v", got, back)
			}
		})
	}
}

func TestAddrOf(t *testing.T) {
	for _, tc := range []struct {
		in   net.IP
		want netip.Addr
	}{
		{nil, netip.Addr{}},
		{net.IP{1, 2, 3}, netip.Addr{}},
		{net.IPv4(192, 0, 2, 1), netip.MustParseAddr("192.0.2.1")}, // IPv4-mapped: unmapped
		{net.ParseIP("2001:db8::1"), netip.MustParseAddr("2001:db8::1")},
	} {
		if got := AddrOf(tc.in); got != tc.want {
			t.Errorf("AddrOf(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
