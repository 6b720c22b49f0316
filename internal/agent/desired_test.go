package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/dataplane"
)

// renderState prints a desired state as stable text.
func renderState(s dataplane.State) string {
	var b strings.Builder
	for _, ns := range s.Networks {
		n := ns.Network
		fmt.Fprintf(&b, "network %s uuid=%s vni=%d mtu=%d\n", n.FQName, n.UUID, n.VNI, n.MTU)
		for _, sub := range n.Subnets {
			fmt.Fprintf(&b, "  subnet %s gw %s\n", sub.Prefix, sub.Gateway)
		}
		for _, ep := range ns.Endpoints {
			fmt.Fprintf(&b, "  endpoint %s/%s netns=%s host=%s mac=%s mtu=%d ips=%v\n", ep.ContainerID, ep.IfName, ep.Netns, ep.HostIf, ep.MAC, ep.MTU, ep.IPs)
		}
		for _, r := range ns.Remotes {
			fmt.Fprintf(&b, "  remote %s underlay=%s vtep=%s/%s prefixes=%v\n", r.Node, r.Underlay, r.VTEPIP, r.VTEPMAC, r.Prefixes)
		}
	}
	return b.String()
}

func TestDesiredStateGolden(t *testing.T) {
	const (
		netA = "aaaaaaaa-0000-4000-8000-000000000001"
		netB = "bbbbbbbb-0000-4000-8000-000000000002"
		netC = "cccccccc-0000-4000-8000-000000000003" // not in the cache
		fqA  = "default-domain:default-project:a"
		fqB  = "default-domain:default-project:b"
	)
	node := func(name, under, vtep, mac string) *api.Node {
		return &api.Node{Meta: api.Meta{Name: name, FQName: name}, UnderlayIP: under, VTEPIP: vtep, VTEPMAC: mac}
	}
	block := func(id, network, cidr, node string) *api.Block {
		return &api.Block{Meta: api.Meta{UUID: id}, Network: network, CIDR: cidr, Node: node}
	}
	res := func(id, network, addr, node string) *api.IPReservation {
		return &api.IPReservation{Meta: api.Meta{UUID: id}, Network: network, Address: addr, Node: node, Owner: "o-" + id}
	}
	snap := &Snapshot{
		Networks: map[string]*api.Network{
			netA: {Meta: api.Meta{UUID: netA, FQName: fqA}, VNI: 5001, MTU: 1400, Subnets: []api.Subnet{{CIDR: "10.1.0.0/16", Gateway: "10.1.0.1"}, {CIDR: "fd01::/64", Gateway: "fd01::1"}}},
			netB: {Meta: api.Meta{UUID: netB, FQName: fqB}, VNI: 5002, Subnets: []api.Subnet{{CIDR: "10.2.0.0/24", Gateway: "10.2.0.1"}}},
		},
		Nodes: map[string]*api.Node{
			"n1": node("n1", "198.18.0.1", "44.128.0.1", "70:b3:d5:80:00:01"),
			"n2": node("n2", "198.18.0.2", "44.128.0.2", "70:b3:d5:80:00:02"),
			"n3": node("n3", "198.18.0.3", "44.128.0.3", "70:b3:d5:80:00:03"),
			"n4": node("n4", "198.18.0.4", "44.128.0.4", "70:b3:d5:80:00:04"),
			"n5": node("n5", "198.18.0.5", "", ""), // no VTEP yet
		},
		Blocks: map[string]*api.Block{
			"b1": block("b1", fqA, "10.1.0.0/26", "n1"), // self
			"b2": block("b2", fqA, "10.1.1.0/26", "n2"),
			"b3": block("b3", fqA, "10.1.0.64/26", "n2"),
			"b4": block("b4", fqA, "10.1.0.128/26", "n3"),
			"b5": block("b5", fqB, "10.2.0.0/26", "n4"), // other network
			"b6": block("b6", fqA, "10.1.2.0/26", "n5"), // node without VTEP
			"b7": block("b7", fqA, "fd01::/122", "n3"),
			"b8": block("b8", fqA, "10.1.3.0/26", "gone"), // unknown node
		},
		Reservations: map[string]*api.IPReservation{
			"r1": res("r1", fqA, "10.1.0.70", "n2"),   // inside n2's block
			"r2": res("r2", fqA, "10.1.9.9", "n3"),    // exception of n3
			"r3": res("r3", fqA, "10.1.8.8", "n1"),    // self
			"r4": res("r4", fqA, "10.1.7.7", ""),      // no node
			"r5": res("r5", fqB, "10.2.0.99", "n2"),   // other network
			"r6": res("r6", fqA, "fd01::1:5", "n3"),   // IPv6 exception of n3
			"r7": res("r7", fqA, "10.1.0.129", "n3"),  // inside n3's block
			"r8": res("r8", fqA, "10.1.6.6", "n4"),    // n4's only address in a: exception
			"r9": res("r9", fqA, "10.1.9.9", "nodex"), // unknown node
		},
	}
	entries := []*Entry{
		{ContainerID: "c2", IfName: "eth0", Netns: "/run/netns/c2", NetworkUUID: netA, NetworkFQName: fqA, State: StateAttached,
			HostIf: "wv2", MAC: "02:00:00:00:00:02", IPs: []JournalIP{{Address: "10.1.0.3/16"}, {Address: "fd01::3/64"}}},
		{ContainerID: "c1", IfName: "eth0", Netns: "/run/netns/c1", NetworkUUID: netA, NetworkFQName: fqA, State: StateAttached,
			HostIf: "wv1", MAC: "02:00:00:00:00:01", MTU: 1300, IPs: []JournalIP{{Address: "10.1.0.2/16"}}},
		{ContainerID: "c3", IfName: "eth0", NetworkUUID: netA, NetworkFQName: fqA, State: StateReleasing,
			IPs: []JournalIP{{Address: "10.1.0.4/16"}}},
		{ContainerID: "vm", PortUUID: "dddddddd-0000-4000-8000-000000000004", NetworkUUID: netB, NetworkFQName: fqB, State: StateAttached, External: true,
			IPs: []JournalIP{{Address: "10.2.0.5/24"}}},
		{ContainerID: "c4", IfName: "eth0", Netns: "/run/netns/c4", NetworkUUID: netC, NetworkFQName: "d:p:c", VNI: 5003, NetworkMTU: 1450, State: StateAttached,
			Subnets: []JournalSubnet{{CIDR: "10.3.0.0/24", Gateway: "10.3.0.254"}, {CIDR: "10.4.0.0/24"}},
			HostIf:  "wv4", MAC: "02:00:00:00:00:04", IPs: []JournalIP{{Address: "10.3.0.2/24"}}},
	}
	const want = `network d:p:c uuid=cccccccc-0000-4000-8000-000000000003 vni=5003 mtu=1450
  subnet 10.3.0.0/24 gw 10.3.0.254
  subnet 10.4.0.0/24 gw 10.4.0.1
  endpoint c4/eth0 netns=/run/netns/c4 host=wv4 mac=02:00:00:00:00:04 mtu=0 ips=[10.3.0.2/24]
network default-domain:default-project:a uuid=aaaaaaaa-0000-4000-8000-000000000001 vni=5001 mtu=1400
  subnet 10.1.0.0/16 gw 10.1.0.1
  subnet fd01::/64 gw fd01::1
  endpoint c1/eth0 netns=/run/netns/c1 host=wv1 mac=02:00:00:00:00:01 mtu=1300 ips=[10.1.0.2/16]
  endpoint c2/eth0 netns=/run/netns/c2 host=wv2 mac=02:00:00:00:00:02 mtu=0 ips=[10.1.0.3/16 fd01::3/64]
  remote n2 underlay=198.18.0.2 vtep=44.128.0.2/70:b3:d5:80:00:02 prefixes=[10.1.0.64/26 10.1.1.0/26]
  remote n3 underlay=198.18.0.3 vtep=44.128.0.3/70:b3:d5:80:00:03 prefixes=[10.1.0.128/26 10.1.9.9/32 fd01::/122 fd01::1:5/128]
  remote n4 underlay=198.18.0.4 vtep=44.128.0.4/70:b3:d5:80:00:04 prefixes=[10.1.6.6/32]
`
	got := renderState(DesiredState("n1", snap, entries))
	if got != want {
		t.Fatalf("desired state:\n%s\nwant:\n%s", got, want)
	}
	// Order of the inputs does not matter.
	rev := make([]*Entry, len(entries))
	for i, e := range entries {
		rev[len(entries)-1-i] = e
	}
	if again := renderState(DesiredState("n1", snap, rev)); again != got {
		t.Fatalf("desired state depends on entry order:\n%s", again)
	}
	// Without local endpoints there is nothing to program.
	if s := DesiredState("n1", snap, nil); len(s.Networks) != 0 {
		t.Fatalf("state without endpoints: %+v", s)
	}
	// Networks kept without endpoints (lingering) have their remotes; one
	// the controller does not know (any more) is not kept.
	kept := DesiredState("n1", snap, nil, netA, netC)
	if len(kept.Networks) != 1 || kept.Networks[0].Network.UUID != netA || len(kept.Networks[0].Endpoints) != 0 || len(kept.Networks[0].Remotes) != 3 {
		t.Fatalf("kept networks: %s", renderState(kept))
	}
	if again := DesiredState("n1", snap, entries, netA); !statesEqual(again, DesiredState("n1", snap, entries)) {
		t.Fatalf("keeping a network with endpoints changed the state:\n%s", renderState(again))
	}
}
