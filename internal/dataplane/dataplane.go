// Package dataplane programs Weft's Linux data plane for `virtual`
// networks: a router namespace per network per node holding the network's
// VXLAN device and the host ends of container veths, /32 routes to local
// containers, and a route + neighbour + FDB entry per remote node's block
// (flannel's vxlan design). Isolation between networks is structural: each
// network routes in its own namespace, so subnets may overlap.
//
// Two implementations share the method set the agent consumes: Linux
// (netlink, in the node's network namespace) and Fake (in memory). Both
// print their state as stable text with Dump, so tests compare whole states.
package dataplane

import (
	"net"
	"net/netip"
)

// Network is one virtual network as the node sees it.
type Network struct {
	// UUID identifies the network; FQName is for logs and dumps.
	UUID   string
	FQName string
	// VNI of the network's VXLAN device.
	VNI int
	// MTU of container interfaces and the VXLAN device; 0 picks the
	// underlay MTU minus the VXLAN overhead.
	MTU int
	// Subnets of the network with their gateways (the address containers
	// route through; answered by the router namespace).
	Subnets []Subnet
}

// Subnet is a subnet of a network and its gateway.
type Subnet struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// Endpoint is a local container interface on a network.
type Endpoint struct {
	ContainerID string
	IfName      string
	// Netns is the path of the container's network namespace.
	Netns string
	// HostIf is the name of the veth end in the router namespace; derived
	// from ContainerID and IfName when empty.
	HostIf string
	// MAC of the container interface; derived when empty.
	MAC net.HardwareAddr
	// IPs with the subnet's prefix length (10.0.0.5/24).
	IPs []netip.Prefix
	MTU int
}

// Remote is another node with addresses on a network: its VXLAN endpoint
// and the prefixes (blocks and /32 exceptions) it routes.
type Remote struct {
	Node     string
	Underlay netip.Addr
	VTEPIP   netip.Addr
	VTEPMAC  net.HardwareAddr
	Prefixes []netip.Prefix
}

// NetworkState is the desired state of one network on this node.
type NetworkState struct {
	Network   Network
	Endpoints []Endpoint
	Remotes   []Remote
}

// State is the whole desired state of the node's virtual networks. A
// network absent from State, with no endpoint left, is torn down by Sync.
type State struct {
	Networks []NetworkState
}
