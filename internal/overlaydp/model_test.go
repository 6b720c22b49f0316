package overlaydp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*State)
		want   string
	}{
		{"peer without mac", func(s *State) { s.Peers[0].MAC = nil }, "peers[0]: peer node2: mac: missing"},
		{"peer without vtep ip", func(s *State) { s.Peers[0].VTEPIP = netip.Addr{} }, "peer node2: vtep ip"},
		{"peer ipv6 vtep ip", func(s *State) { s.Peers[0].VTEPIP = addr("fd01:a::2") }, "peer node2: vtep ip"},
		{"peer without underlay", func(s *State) { s.Peers[0].Underlay = netip.Addr{} }, "peer node2: underlay"},
		{"vtep without name", func(s *State) { s.VTEP.Name = "" }, "vtep: name: missing"},
		{"vtep long name", func(s *State) { s.VTEP.Name = "vtep1024vtep1024" }, "vtep: name"},
		{"vtep vni", func(s *State) { s.VTEP.VNI = 0 }, "vtep: vni"},
		{"vtep port", func(s *State) { s.VTEP.Port = 70000 }, "vtep: port"},
		{"vtep multicast mac", func(s *State) { s.VTEP.MAC = mustMAC("01:00:5e:00:00:01") }, "vtep: mac"},
		{"vtep ipv6 ip", func(s *State) { s.VTEP.IP = pfx("fd01:a::1/64") }, "vtep: ip"},
		{"vtep mtu", func(s *State) { s.VTEP.MTU = 100 }, "vtep: mtu"},
		{"overlay without subnet", func(s *State) { s.Overlays[0].Subnet = netip.Prefix{} }, "overlay dcos: subnet"},
		{"agent subnet outside", func(s *State) { s.Overlays[0].AgentSubnet = pfx("10.0.0.0/24") }, "overlay dcos: agent subnet"},
		{"mesos half outside", func(s *State) { s.Overlays[0].MesosHalf = pfx("9.0.7.0/25") }, "overlay dcos: mesos half"},
		{"bridge prefix", func(s *State) { s.Overlays[0].MesosBridge = "br-dcos" }, "overlay dcos: mesos bridge"},
		{"half without bridge", func(s *State) { s.Overlays[0].MesosBridge = "" }, "overlay dcos: mesos half: set without a mesos bridge"},
		{"duplicate overlay", func(s *State) { s.Overlays[1].Name = "dcos" }, "name: duplicate"},
		{"shared bridge", func(s *State) { s.Overlays[1].MesosBridge = "m-dcos" }, "mesos bridge: m-dcos already used"},
		{"overlapping overlays", func(s *State) {
			s.Overlays = append(s.Overlays, Overlay{Name: "other", Subnet: pfx("9.1.0.0/16")})
		}, "overlaps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := dcosState(1, true, 2)
			tc.mutate(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			// Sync refuses it too, naming the same field.
			if err := NewFake().Sync(context.Background(), s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fake.Sync() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := dcosState(1, true, 2).Validate(); err != nil {
		t.Fatalf("valid state: %v", err)
	}
	if err := (State{}).Validate(); err != nil {
		t.Fatalf("empty state: %v", err)
	}
}

func TestPlanSkipsSelfAndConflicts(t *testing.T) {
	s := dcosState(1, true, 1, 2, 3)
	// A peer reusing node 2's VTEP IP with another MAC is skipped.
	bad := s.Peers[1]
	bad.Node, bad.MAC, bad.Underlay = "dup", mustMAC("70:b3:d5:80:00:09"), addr("198.18.0.9")
	bad.Subnets = []netip.Prefix{pfx("9.0.9.0/24")}
	s.Peers = append(s.Peers, bad)
	// A peer claiming this node's subnet loses that subnet.
	s.Peers[2].Subnets = append(s.Peers[2].Subnets, pfx("9.0.0.0/24"))
	p, warns := makePlan(s, 42)
	if len(p.neighs) != 4 || len(p.fdb) != 2 {
		t.Errorf("neighbours %v fdb %v: want node2 and node3 only", p.neighs, p.fdb)
	}
	if len(warns) != 2 {
		t.Errorf("warnings %q: want 2", warns)
	}
	var routes []string
	for _, r := range p.routes {
		routes = append(routes, fmtRoute(r.table, r.dst, r.via, "v"))
	}
	want := "route 9.0.1.0/24 via 44.128.0.2 dev v|route 9.0.2.0/24 via 44.128.0.3 dev v|route fd01:b:0:0:1::/80 via fd01:a::2 dev v|route fd01:b:0:0:2::/80 via fd01:a::3 dev v|route table 42 198.18.0.2/32 via 44.128.0.2 dev v|route table 42 198.18.0.3/32 via 44.128.0.3 dev v"
	if got := strings.Join(routes, "|"); got != want {
		t.Errorf("routes\n got %s\nwant %s", got, want)
	}
}

func TestEndpointNormalize(t *testing.T) {
	ep := Endpoint{ContainerID: "c1", IfName: "eth0", Netns: "/run/netns/x", Bridge: "m-dcos",
		IPs: []netip.Prefix{pfx("9.0.0.5/25")}, Gateways: []netip.Addr{addr("9.0.0.1")}, DefaultRoute: true}
	got, err := ep.normalize(1420)
	if err != nil {
		t.Fatal(err)
	}
	if got.HostIf != HostIfName("c1", "eth0") || len(got.HostIf) != 15 || !strings.HasPrefix(got.HostIf, "wo") {
		t.Errorf("host interface %q", got.HostIf)
	}
	if got.MAC.String() != EndpointMAC("c1", "eth0").String() || got.MAC[0]&3 != 2 {
		t.Errorf("mac %s: want a stable locally administered unicast MAC", got.MAC)
	}
	if got.MTU != 1420 {
		t.Errorf("mtu %d, want the bridge's 1420", got.MTU)
	}
	if HostIfName("c1", "eth1") == got.HostIf {
		t.Error("host interface names of two interfaces collide")
	}
	ep.Gateways = nil
	if _, err := ep.normalize(1420); err == nil || !strings.Contains(err.Error(), "gateways: no ipv4 gateway") {
		t.Errorf("default route without gateway: %v", err)
	}
	ep.Gateways = []netip.Addr{addr("9.0.0.1"), addr("9.0.0.2")}
	if _, err := ep.normalize(1420); err == nil || !strings.Contains(err.Error(), "gateways: more than one ipv4") {
		t.Errorf("two ipv4 gateways: %v", err)
	}
}

func TestFakeDump(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	if d, _ := f.Dump(ctx); d != "" {
		t.Fatalf("empty fake dumps %q", d)
	}
	if err := f.Sync(ctx, dcosState(1, true, 2, 3)); err != nil {
		t.Fatal(err)
	}
	d, err := f.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "fake_node1", d)

	// Peer 3 goes away: its entries go (the delete path).
	if err := f.Sync(ctx, dcosState(1, true, 2)); err != nil {
		t.Fatal(err)
	}
	d2, _ := f.Dump(ctx)
	for _, gone := range []string{"44.128.0.3", "198.18.0.3", "70:b3:d5:80:00:03", "9.0.2.0/24"} {
		if strings.Contains(d2, gone) {
			t.Errorf("dump still mentions %s after its peer left:\n%s", gone, d2)
		}
	}

	// Endpoints.
	ep := Endpoint{ContainerID: "c1", IfName: "eth0", Netns: "/run/netns/c1", Bridge: "m-dcos",
		IPs: []netip.Prefix{pfx("9.0.0.5/25")}, Gateways: []netip.Addr{addr("9.0.0.1")}, DefaultRoute: true}
	got, err := f.Attach(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Check(ctx, ep); err != nil {
		t.Errorf("check: %v", err)
	}
	if _, err := f.Attach(ctx, ep); err != nil {
		t.Errorf("second attach: %v", err)
	}
	if len(f.Endpoints()) != 1 || f.Endpoints()[0].HostIf != got.HostIf {
		t.Errorf("endpoints %v", f.Endpoints())
	}
	bad := ep
	bad.Bridge = "m-nope"
	if _, err := f.Attach(ctx, bad); err == nil {
		t.Error("attach to an unknown bridge succeeded")
	}
	for range 2 {
		if err := f.Detach(ctx, ep); err != nil {
			t.Errorf("detach: %v", err)
		}
	}
	if err := f.Check(ctx, ep); !errors.Is(err, ErrIncomplete) {
		t.Errorf("check after detach: %v", err)
	}

	// SetError makes Sync fail and keeps the state.
	boom := errors.New("boom")
	f.SetError(boom)
	if err := f.Sync(ctx, State{}); !errors.Is(err, boom) {
		t.Errorf("sync with error: %v", err)
	}
	f.SetError(nil)
	if err := f.Sync(ctx, State{}); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.Dump(ctx); d != "" {
		t.Errorf("dump after empty sync: %q", d)
	}
}
