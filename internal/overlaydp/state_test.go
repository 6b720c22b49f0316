package overlaydp

import (
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/<name>.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// dcosNode describes lab node i (1 or 2) of a DC/OS-like cluster: VTEP
// 44.128.0.i/20 and fd01:a::i/64, MAC 70:b3:d5:80:00:0i, underlay
// 198.18.0.i, agent subnets 9.0.(i-1).0/24 and fd01:b::(i-1):0:0:0/80.
type dcosNode struct {
	underlay          netip.Addr
	vtep, vtep6       netip.Prefix
	mac               net.HardwareAddr
	agent, agent6     netip.Prefix
	mesos, mesos6     netip.Prefix
	gateway, gateway6 netip.Addr
}

func dcosNodeN(i int) dcosNode {
	b := byte(i)
	n := dcosNode{
		underlay: netip.AddrFrom4([4]byte{198, 18, 0, b}),
		vtep:     netip.PrefixFrom(netip.AddrFrom4([4]byte{44, 128, 0, b}), 20),
		vtep6:    netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x01, 0, 0x0a, 15: b}), 64),
		mac:      net.HardwareAddr{0x70, 0xb3, 0xd5, 0x80, 0, b},
		agent:    netip.PrefixFrom(netip.AddrFrom4([4]byte{9, 0, b - 1, 0}), 24),
		agent6:   netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x01, 0, 0x0b, 9: b - 1}), 80),
	}
	n.mesos = netip.PrefixFrom(n.agent.Addr(), 25)
	n.mesos6 = netip.PrefixFrom(n.agent6.Addr(), 81)
	n.gateway = n.mesos.Addr().Next()
	n.gateway6 = n.mesos6.Addr().Next()
	return n
}

// dcosState is node i's desired state with the other nodes of peers as
// peers.
func dcosState(i int, nat bool, peers ...int) State {
	n := dcosNodeN(i)
	s := State{
		VTEP: VTEP{Name: "vtep1024", VNI: 1024, Port: 64000, MTU: 1500, MAC: n.mac, IP: n.vtep, IP6: n.vtep6, Underlay: n.underlay},
		Overlays: []Overlay{
			{Name: "dcos", Subnet: pfx("9.0.0.0/8"), AgentSubnet: n.agent, MesosBridge: "m-dcos", MesosHalf: n.mesos, MTU: 1420, NAT: nat},
			{Name: "dcos6", Subnet6: pfx("fd01:b::/64"), AgentSubnet6: n.agent6, MesosBridge: "m-dcos6", MesosHalf6: n.mesos6, MTU: 1420, NAT: nat},
		},
	}
	for _, j := range peers {
		p := dcosNodeN(j)
		s.Peers = append(s.Peers, Peer{
			Node: "node" + string(rune('0'+j)), Underlay: p.underlay, VTEPIP: p.vtep.Addr(), VTEPIP6: p.vtep6.Addr(), MAC: p.mac,
			Subnets: []netip.Prefix{p.agent, p.agent6},
		})
	}
	return s
}
