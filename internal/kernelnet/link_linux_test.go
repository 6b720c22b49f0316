//go:build linux

package kernelnet

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weft-sdn/weft/internal/kerneltest"
)

func TestIsVethPeer(t *testing.T) {
	veth := func(index, parent int) netlink.Link {
		return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: index, ParentIndex: parent}}
	}
	dummy := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: 3, ParentIndex: 2}}
	for _, tc := range []struct {
		name string
		a, b netlink.Link
		want bool
	}{
		{"pair", veth(2, 3), veth(3, 2), true},
		{"pair reversed", veth(3, 2), veth(2, 3), true},
		{"one way only", veth(2, 3), veth(3, 4), false},
		{"unrelated", veth(2, 5), veth(3, 6), false},
		{"not a veth", veth(2, 3), dummy, false},
	} {
		if got := IsVethPeer(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: IsVethPeer = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCheckLink checks lo of the test's own namespace (no root needed).
func TestCheckLink(t *testing.T) {
	h, err := netlink.NewHandle()
	if err != nil {
		t.Skipf("netlink: %v", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Skipf("no lo: %v", err)
	}
	have, err := GlobalAddrs(h, lo)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range have {
		if p.Addr().IsLinkLocalUnicast() {
			t.Errorf("GlobalAddrs(lo) has link-local %s", p)
		}
	}

	var missing []string
	miss := func(format string, args ...any) { missing = append(missing, format) }
	if !CheckLink(h, lo, lo.Attrs().HardwareAddr, lo.Attrs().MTU, have, miss) {
		t.Fatal("CheckLink(lo) could not list the addresses")
	}
	up := lo.Attrs().Flags&net.FlagUp != 0
	if up && len(missing) > 0 {
		t.Errorf("CheckLink(lo as it is) missed %q, want nothing", missing)
	}

	missing = nil
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	CheckLink(h, lo, other, lo.Attrs().MTU+1, append(slices.Clone(have), netip.MustParsePrefix("192.0.2.1/24")), miss)
	want := []string{"mac %s on %s (has %s)", "mtu %d on %s (has %d)", "address %s on %s"}
	if !up {
		want = append([]string{"interface %s up"}, want...)
	}
	if !slices.Equal(missing, want) {
		t.Errorf("CheckLink(lo, other mac, mtu and address) missed %q, want %q", missing, want)
	}
}

func TestOpenNetns(t *testing.T) {
	if _, _, err := OpenNetns("/nonexistent/netns"); err == nil {
		t.Error("OpenNetns of a missing path: no error")
	}
	kerneltest.RequireRoot(t)
	ns, h, err := OpenNetns("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer h.Close()
	if _, err := h.LinkByName("lo"); err != nil {
		t.Errorf("lo through the handle: %v", err)
	}
}
