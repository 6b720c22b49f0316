package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func fakeNets() (Network, Network) {
	blue := Network{UUID: "blue", VNI: 100, Subnets: []Subnet{{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}}}
	dual := Network{UUID: "dual", VNI: 300, MTU: 1400, Subnets: []Subnet{
		{Prefix: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
		{Prefix: netip.MustParsePrefix("fd00:1::/64"), Gateway: netip.MustParseAddr("fd00:1::1")},
	}}
	return blue, dual
}

func fakeRemote() Remote {
	return Remote{
		Node:     "node2",
		Underlay: netip.MustParseAddr("198.18.0.2"),
		VTEPIP:   netip.MustParseAddr("198.19.0.2"),
		VTEPMAC:  net.HardwareAddr{0x02, 0x77, 0x66, 0x74, 0x00, 0x02},
	}
}

const fakeGolden = `netns weft-vn100
  sysctl net.ipv4.ip_forward=1
  sysctl net.ipv6.conf.all.forwarding=1
  link lo type=device mtu=65536 up
  link vxlan100 type=vxlan vni=100 local=198.18.0.1 port=4789 learning=off mac=02:77:66:74:00:01 mtu=1450 up
  link wv62932c64c17e1 type=veth mac=f2:52:c4:25:c0:47 mtu=1450 up
  addr vxlan100 198.19.0.1/32
  route 10.0.0.10/32 via 198.19.0.2 dev vxlan100 onlink
  route 10.0.0.5/32 dev wv62932c64c17e1 scope link
  route 10.0.0.64/26 via 198.19.0.2 dev vxlan100 onlink
  neigh 10.0.0.5 dev wv62932c64c17e1 lladdr 02:00:00:00:00:05 permanent
  neigh 198.19.0.2 dev vxlan100 lladdr 02:77:66:74:00:02 permanent
  fdb 02:77:66:74:00:02 dev vxlan100 dst 198.18.0.2 self permanent
netns weft-vn300
  sysctl net.ipv4.ip_forward=1
  sysctl net.ipv6.conf.all.forwarding=1
  link lo type=device mtu=65536 up
  link vxlan300 type=vxlan vni=300 local=198.18.0.1 port=4789 learning=off mac=02:77:66:74:00:01 mtu=1400 up
  link wv0b94d5079d609 type=veth mac=6e:6a:25:89:74:ce mtu=1400 up
  addr vxlan300 198.19.0.1/32
  route 10.1.0.5/32 dev wv0b94d5079d609 scope link
  route 10.1.0.64/26 via 198.19.0.2 dev vxlan300 onlink
  route fd00:1::40/122 via fe80::77:66ff:fe74:2 dev vxlan300 onlink metric 1024
  route fd00:1::5/128 dev wv0b94d5079d609 metric 1024
  neigh 10.1.0.5 dev wv0b94d5079d609 lladdr 42:93:be:02:97:aa permanent
  neigh 198.19.0.2 dev vxlan300 lladdr 02:77:66:74:00:02 permanent
  neigh fd00:1::5 dev wv0b94d5079d609 lladdr 42:93:be:02:97:aa permanent
  neigh fe80::77:66ff:fe74:2 dev vxlan300 lladdr 02:77:66:74:00:02 permanent
  fdb 02:77:66:74:00:02 dev vxlan300 dst 198.18.0.2 self permanent
`

func TestFakeGolden(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	blue, dual := fakeNets()
	b, err := f.Attach(ctx, blue, Endpoint{ContainerID: "c1", IfName: "eth0", Netns: "/run/netns/c1",
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 5}, IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}})
	if err != nil {
		t.Fatal(err)
	}
	if b.HostIf != HostIfName("c1", "eth0") || b.MTU != 1450 || b.IPs[0].String() != "10.0.0.5/24" {
		t.Errorf("attach returned %+v", b)
	}
	g, err := f.Attach(ctx, dual, Endpoint{ContainerID: "c2", IfName: "eth0", Netns: "/run/netns/c2",
		IPs: []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24"), netip.MustParsePrefix("fd00:1::5/64")}})
	if err != nil {
		t.Fatal(err)
	}
	if g.MAC.String() != EndpointMAC("c2", "eth0").String() || g.MTU != 1400 {
		t.Errorf("attach returned %+v", g)
	}
	rb, rd := fakeRemote(), fakeRemote()
	rb.Prefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.64/26"), netip.MustParsePrefix("10.0.0.10/32")}
	rd.Prefixes = []netip.Prefix{netip.MustParsePrefix("10.1.0.64/26"), netip.MustParsePrefix("fd00:1::40/122")}
	s := State{Networks: []NetworkState{
		{Network: blue, Endpoints: []Endpoint{b}, Remotes: []Remote{rb}},
		{Network: dual, Endpoints: []Endpoint{g}, Remotes: []Remote{rd}},
	}}
	if err := f.Sync(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := f.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != fakeGolden {
		t.Errorf("dump:\n%s\nwant:\n%s", got, fakeGolden)
	}
	before := f.Changes()
	if err := f.Sync(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Attach(ctx, blue, b); err != nil {
		t.Errorf("repeated attach: %v", err)
	}
	if d := f.Changes() - before; d != 0 {
		t.Errorf("repeated sync and attach made %d changes", d)
	}
	if len(f.Endpoints()) != 2 || len(f.SyncedState().Networks) != 2 {
		t.Errorf("records: %d endpoints, %d networks", len(f.Endpoints()), len(f.SyncedState().Networks))
	}
	if err := f.Check(ctx, blue, b); err != nil {
		t.Errorf("check: %v", err)
	}
}

func TestFakeRules(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	blue, _ := fakeNets()
	ep := Endpoint{ContainerID: "c1", IfName: "eth0", Netns: "/run/netns/c1", IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24")}}
	if _, err := f.Attach(ctx, blue, ep); err != nil {
		t.Fatal(err)
	}
	// Same address on another endpoint.
	_, err := f.Attach(ctx, blue, Endpoint{ContainerID: "c2", IfName: "eth0", Netns: "/run/netns/c2", IPs: ep.IPs})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("duplicate address: %v", err)
	}
	// Same interface, other configuration.
	ep2 := ep
	ep2.IPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.6/24")}
	if _, err := f.Attach(ctx, blue, ep2); err == nil || !strings.Contains(err.Error(), "different configuration") {
		t.Errorf("changed attach: %v", err)
	}
	// Validation.
	for _, bad := range []Endpoint{
		{ContainerID: "c3", IfName: "eth0", Netns: "/x", IPs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}},
		{ContainerID: "c3", IfName: "eth0", Netns: "/x", IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		{ContainerID: "c3", IfName: "eth0", Netns: "", IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}},
		{ContainerID: "", IfName: "eth0", Netns: "/x", IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}},
		{ContainerID: "c3", IfName: "much-too-long-name", Netns: "/x", IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}},
		{ContainerID: "c3", IfName: "eth0", Netns: "/x", MTU: 9000, IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}},
	} {
		if _, err := f.Attach(ctx, blue, bad); err == nil {
			t.Errorf("attach %+v succeeded", bad)
		}
	}
	// Hook.
	f.AttachHook = func(Network, Endpoint) error { return errors.New("boom") }
	if _, err := f.Attach(ctx, blue, Endpoint{ContainerID: "c4", IfName: "eth0", Netns: "/x", IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}}); err == nil {
		t.Error("hook ignored")
	}
	f.AttachHook = nil
	// Detach is idempotent; a network leaves with its last endpoint.
	for range 2 {
		if err := f.Detach(ctx, blue, ep); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Check(ctx, blue, ep); !errors.Is(err, ErrIncomplete) {
		t.Errorf("check after detach: %v", err)
	}
	if d, _ := f.Dump(ctx); !strings.Contains(d, "weft-vn100") {
		t.Errorf("network gone before sync:\n%s", d)
	}
	if err := f.Sync(ctx, State{}); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.Dump(ctx); d != "" {
		t.Errorf("dump after empty sync:\n%s", d)
	}
}

func TestNames(t *testing.T) {
	if got := RouterNamespace("wt3f9a-n1-", 4096); got != "wt3f9a-n1-vn4096" {
		t.Errorf("RouterNamespace = %q", got)
	}
	for _, c := range []struct {
		name string
		vni  int
		ok   bool
	}{
		{"weft-vn100", 100, true},
		{"weft-vn0100", 0, false},
		{"weft-vn0", 0, false},
		{"weft-vn16777216", 0, false},
		{"weft-vnx", 0, false},
		{"weft-vn100x", 0, false},
		{"other-vn100", 0, false},
	} {
		vni, ok := parseRouterNamespace("weft-", c.name)
		if vni != c.vni || ok != c.ok {
			t.Errorf("parseRouterNamespace(%q) = %d, %v", c.name, vni, ok)
		}
	}
	h := HostIfName("0123456789abcdef0123456789abcdef", "eth0")
	if len(h) != 15 || !strings.HasPrefix(h, "wv") || h != HostIfName("0123456789abcdef0123456789abcdef", "eth0") || h == HostIfName("0123456789abcdef0123456789abcdef", "eth1") {
		t.Errorf("HostIfName = %q", h)
	}
	m := EndpointMAC("c", "eth0")
	if m[0]&1 != 0 || m[0]&2 == 0 {
		t.Errorf("EndpointMAC %s is not local unicast", m)
	}
	if ll := LinkLocalFromMAC(net.HardwareAddr{0x02, 0x57, 0x46, 0x54, 0x00, 0x02}); ll.String() != "fe80::57:46ff:fe54:2" {
		t.Errorf("LinkLocalFromMAC = %s", ll)
	}
}
