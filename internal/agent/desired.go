package agent

import (
	"cmp"
	"context"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/dataplane"
)

// DataPlane is what the agent needs of the node's data plane; the Linux
// and fake implementations of package dataplane provide it.
type DataPlane interface {
	// Attach creates the endpoint's interface on the network and returns
	// it completed (host interface name, MAC).
	Attach(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) (dataplane.Endpoint, error)
	// Withdraw takes the endpoint out of service at once without waiting
	// for its interface to be destroyed; a missing netns or link is not an
	// error.
	Withdraw(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error
	// Detach removes the endpoint; a missing netns or link is not an error.
	Detach(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error
	// Check reports whether the endpoint is as it should be.
	Check(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error
	// Sync makes the whole data plane match the desired state.
	Sync(ctx context.Context, s dataplane.State) error
	// Dump prints the data plane's state as stable text.
	Dump(ctx context.Context) (string, error)
	// Teardown removes everything the data plane created.
	Teardown(ctx context.Context) error
}

// DesiredState computes the data plane the node should have: one entry
// per virtual network with at least one local endpoint (attached,
// agent-made journal entries; overlay attachments are the overlay data
// plane's), or listed in keep (uuids) and known to snap, holding
// those endpoints and, as remotes, every other node with blocks in the
// network (routes to its blocks) or with reservations outside its blocks
// (host routes, /32 or /128, to those exceptions). Other networks are
// left out, which tears them down. The result is sorted, so equal inputs
// give equal states.
func DesiredState(self string, snap *Snapshot, entries []*Entry, keep ...string) dataplane.State {
	type netAcc struct {
		net dataplane.Network
		eps []dataplane.Endpoint
	}
	nets := map[string]*netAcc{}
	for _, e := range entries {
		if e.External || e.State != StateAttached || e.Bridge != "" {
			continue // overlay attachments live on the overlay data plane
		}
		acc, ok := nets[e.NetworkUUID]
		if !ok {
			acc = &netAcc{net: dataplaneNetwork(snap.Networks[e.NetworkUUID], e)}
			nets[e.NetworkUUID] = acc
		}
		acc.eps = append(acc.eps, endpointOf(e))
	}
	for _, uuid := range keep {
		if n := snap.Networks[uuid]; n != nil && nets[uuid] == nil {
			nets[uuid] = &netAcc{net: dataplaneNetwork(n, nil)}
		}
	}

	// Index blocks and reservations by network fq_name and node.
	type nodeNet struct{ node, network string }
	blocks := map[nodeNet][]netip.Prefix{}
	for _, b := range snap.Blocks {
		if b.Node == "" || b.Node == self {
			continue
		}
		p, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			continue
		}
		k := nodeNet{b.Node, b.Network}
		blocks[k] = append(blocks[k], p.Masked())
	}
	exceptions := map[nodeNet][]netip.Prefix{}
	for _, r := range snap.Reservations {
		if r.Node == "" || r.Node == self {
			continue
		}
		a, err := netip.ParseAddr(r.Address)
		if err != nil {
			continue
		}
		k := nodeNet{r.Node, r.Network}
		if slices.ContainsFunc(blocks[k], func(p netip.Prefix) bool { return p.Contains(a) }) {
			continue
		}
		exceptions[k] = append(exceptions[k], netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}

	var out dataplane.State
	for _, acc := range nets {
		ns := dataplane.NetworkState{Network: acc.net, Endpoints: acc.eps}
		slices.SortFunc(ns.Endpoints, func(a, b dataplane.Endpoint) int {
			return cmp.Or(strings.Compare(a.ContainerID, b.ContainerID), strings.Compare(a.IfName, b.IfName))
		})
		remotes := map[string]*dataplane.Remote{}
		add := func(node string, ps []netip.Prefix) {
			if len(ps) == 0 {
				return
			}
			r, ok := remotes[node]
			if !ok {
				n := snap.Nodes[node]
				if n == nil {
					return // not registered (any more): nowhere to send to
				}
				r = remoteOf(n)
				if r == nil {
					return
				}
				remotes[node] = r
			}
			r.Prefixes = append(r.Prefixes, ps...)
		}
		for k, ps := range blocks {
			if k.network == acc.net.FQName {
				add(k.node, ps)
			}
		}
		for k, ps := range exceptions {
			if k.network == acc.net.FQName {
				add(k.node, ps)
			}
		}
		for _, r := range remotes {
			slices.SortFunc(r.Prefixes, comparePrefix)
			r.Prefixes = slices.Compact(r.Prefixes)
			ns.Remotes = append(ns.Remotes, *r)
		}
		slices.SortFunc(ns.Remotes, func(a, b dataplane.Remote) int { return strings.Compare(a.Node, b.Node) })
		out.Networks = append(out.Networks, ns)
	}
	slices.SortFunc(out.Networks, func(a, b dataplane.NetworkState) int {
		return cmp.Or(strings.Compare(a.Network.FQName, b.Network.FQName), strings.Compare(a.Network.UUID, b.Network.UUID))
	})
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// dataplaneNetwork describes a network for the data plane: from the
// controller's object when the cache has it, else from what the journal
// entry recorded at attach time.
func dataplaneNetwork(n *api.Network, e *Entry) dataplane.Network {
	if n != nil {
		out := dataplane.Network{UUID: n.UUID, FQName: n.FQName, VNI: n.VNI, MTU: n.MTU}
		for _, s := range n.Subnets {
			if sub, ok := dataplaneSubnet(s.CIDR, s.Gateway); ok {
				out.Subnets = append(out.Subnets, sub)
			}
		}
		return out
	}
	out := dataplane.Network{UUID: e.NetworkUUID, FQName: e.NetworkFQName, VNI: e.VNI, MTU: e.NetworkMTU}
	for _, s := range e.Subnets {
		if sub, ok := dataplaneSubnet(s.CIDR, s.Gateway); ok {
			out.Subnets = append(out.Subnets, sub)
		}
	}
	return out
}

func dataplaneSubnet(cidr, gateway string) (dataplane.Subnet, bool) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return dataplane.Subnet{}, false
	}
	gw, err := netip.ParseAddr(gateway)
	if err != nil {
		gw = api.DefaultGateway(p)
	}
	return dataplane.Subnet{Prefix: p.Masked(), Gateway: gw}, true
}

// endpointOf is the data-plane endpoint of a journal entry.
func endpointOf(e *Entry) dataplane.Endpoint {
	ep := dataplane.Endpoint{ContainerID: e.ContainerID, IfName: e.IfName, Netns: e.Netns, HostIf: e.HostIf, MTU: e.MTU}
	if hw, err := net.ParseMAC(e.MAC); err == nil {
		ep.MAC = hw
	}
	for _, ip := range e.IPs {
		if p, err := netip.ParsePrefix(ip.Address); err == nil {
			ep.IPs = append(ep.IPs, p)
		}
	}
	return ep
}

// remoteOf is the VXLAN endpoint of a node, or nil when the node has no
// usable VTEP yet.
func remoteOf(n *api.Node) *dataplane.Remote {
	under, err1 := netip.ParseAddr(n.UnderlayIP)
	vtep, err2 := netip.ParseAddr(n.VTEPIP)
	mac, err3 := net.ParseMAC(n.VTEPMAC)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil
	}
	return &dataplane.Remote{Node: n.FQName, Underlay: under, VTEPIP: vtep, VTEPMAC: mac}
}

// remotesEqual reports whether two desired states have the same networks
// with the same remotes: whether they differ in local endpoints only.
func remotesEqual(a, b dataplane.State) bool {
	if len(a.Networks) != len(b.Networks) {
		return false
	}
	for i := range a.Networks {
		x, y := a.Networks[i], b.Networks[i]
		if !reflect.DeepEqual(x.Network, y.Network) || !reflect.DeepEqual(x.Remotes, y.Remotes) {
			return false
		}
	}
	return true
}
