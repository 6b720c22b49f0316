// Package overlaydp is the Linux data plane of DC/OS-compatible `overlay`
// networks on one node.
//
// It programs, in the node's network namespace, what dcos-net programs on a
// DC/OS node, so that Weft nodes and DC/OS nodes can share an overlay:
//
//   - one VXLAN device for the node (DC/OS: vtep1024, VNI 1024, UDP port
//     64000, learning on, the node's VTEP MAC and address);
//   - a Mesos bridge per overlay (m-<name>) holding the gateway address of
//     the Mesos half of the node's agent subnet;
//   - per remote node (peer): a permanent neighbour entry for its VTEP
//     address, a permanent FDB entry sending its VTEP MAC to its underlay
//     address, a route per agent subnet via its VTEP address, and a route to
//     its underlay address in table 42, selected by a "from <overlay> lookup
//     42" rule per IPv4 overlay;
//   - masquerading of traffic leaving the overlays, in one nftables table.
//
// Unlike dcos-net, Sync removes what is no longer desired: a peer that went
// away loses its routes, neighbour and FDB entries.
//
// Two implementations share the method set consumers need (Interface):
// Linux, which talks netlink and nft, and Fake, an in-memory stand-in that
// prints the same Dump text for the same state.
package overlaydp
