//go:build linux

package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// LabUnderlay is the underlay subnet of lab nodes (RFC 2544 benchmarking
// space): node i gets LabUnderlay's address .i.
var LabUnderlay = netip.MustParsePrefix("198.18.0.0/24")

// Lab is an emulated cluster on one machine: a "fabric" namespace holding
// a bridge, and node namespaces each joined to the bridge by a veth that
// carries the node's underlay address. Every namespace it creates starts
// with Prefix, so Close (and anything else matching the prefix) removes
// it all.
type Lab struct {
	// Prefix starts the name of every namespace of the lab.
	Prefix string
	// Fabric is the name of the namespace holding the bridge.
	Fabric string
	// Nodes are the emulated nodes, in creation order.
	Nodes []LabNode
}

// LabNode is one emulated node.
type LabNode struct {
	// Name of the node's namespace; Path is its bind mount.
	Name string
	Path string
	// Link is the node's underlay interface ("eth0").
	Link string
	// Underlay is the node's underlay address with its prefix length.
	Underlay netip.Prefix
}

// labBridge is the name of the fabric's bridge.
const labBridge = "br0"

// NewLab creates the fabric and n nodes. On error it removes whatever it
// created.
func NewLab(prefix string, n int) (lab *Lab, err error) {
	if prefix == "" {
		return nil, errors.New("lab: empty prefix")
	}
	lab = &Lab{Prefix: prefix, Fabric: prefix + "fabric"}
	defer func() {
		if err != nil {
			_ = lab.Close()
			lab = nil
		}
	}()
	if err := NewNamed(lab.Fabric); err != nil {
		return nil, err
	}
	h, err := NewHandle(Path(lab.Fabric))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := loUp(h); err != nil {
		return nil, fmt.Errorf("lab fabric: %w", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = labBridge
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("add bridge %s in %s: %w", labBridge, lab.Fabric, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("set %s up in %s: %w", labBridge, lab.Fabric, err)
	}
	for range n {
		if _, err := lab.AddNode(); err != nil {
			return nil, err
		}
	}
	return lab, nil
}

// AddNode creates the next node namespace, <prefix>node<i>, joined to the
// fabric bridge by a veth (eth0 in the node, n<i> in the fabric) with
// underlay address 198.18.0.<i>/24.
func (l *Lab) AddNode() (LabNode, error) {
	i := len(l.Nodes) + 1
	if i > 254 {
		return LabNode{}, errors.New("lab: at most 254 nodes")
	}
	a := LabUnderlay.Addr().As4()
	a[3] = byte(i)
	node := LabNode{
		Name:     fmt.Sprintf("%snode%d", l.Prefix, i),
		Link:     "eth0",
		Underlay: netip.PrefixFrom(netip.AddrFrom4(a), LabUnderlay.Bits()),
	}
	node.Path = Path(node.Name)
	if err := NewNamed(node.Name); err != nil {
		return LabNode{}, err
	}
	l.Nodes = append(l.Nodes, node)

	fh, err := NewHandle(Path(l.Fabric))
	if err != nil {
		return LabNode{}, err
	}
	defer fh.Close()
	nsh, err := Open(node.Path)
	if err != nil {
		return LabNode{}, err
	}
	defer nsh.Close()
	fabIf := fmt.Sprintf("n%d", i)
	veth := netlink.NewVeth(netlink.NewLinkAttrs())
	veth.Name = fabIf
	veth.MTU = 1500
	veth.PeerName = node.Link
	veth.PeerNamespace = netlink.NsFd(nsh)
	if err := fh.LinkAdd(veth); err != nil {
		return LabNode{}, fmt.Errorf("add veth %s in %s: %w", fabIf, l.Fabric, err)
	}
	br, err := fh.LinkByName(labBridge)
	if err != nil {
		return LabNode{}, fmt.Errorf("find %s in %s: %w", labBridge, l.Fabric, err)
	}
	fl, err := fh.LinkByName(fabIf)
	if err != nil {
		return LabNode{}, fmt.Errorf("find %s in %s: %w", fabIf, l.Fabric, err)
	}
	if err := fh.LinkSetMaster(fl, br); err != nil {
		return LabNode{}, fmt.Errorf("attach %s to %s in %s: %w", fabIf, labBridge, l.Fabric, err)
	}
	if err := fh.LinkSetUp(fl); err != nil {
		return LabNode{}, fmt.Errorf("set %s up in %s: %w", fabIf, l.Fabric, err)
	}

	nh, err := NewHandle(node.Path)
	if err != nil {
		return LabNode{}, err
	}
	defer nh.Close()
	if err := loUp(nh); err != nil {
		return LabNode{}, fmt.Errorf("lab node %s: %w", node.Name, err)
	}
	nl, err := nh.LinkByName(node.Link)
	if err != nil {
		return LabNode{}, fmt.Errorf("find %s in %s: %w", node.Link, node.Name, err)
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(node.Underlay)}
	if err := nh.AddrAdd(nl, addr); err != nil {
		return LabNode{}, fmt.Errorf("add address %s to %s in %s: %w", node.Underlay, node.Link, node.Name, err)
	}
	if err := nh.LinkSetUp(nl); err != nil {
		return LabNode{}, fmt.Errorf("set %s up in %s: %w", node.Link, node.Name, err)
	}
	return node, nil
}

// AddContainer creates an empty namespace <prefix>c-<name> with lo up, as
// a container runtime would, and returns its path.
func (l *Lab) AddContainer(name string) (string, error) {
	ns := l.Prefix + "c-" + name
	if err := NewNamed(ns); err != nil {
		return "", err
	}
	h, err := NewHandle(Path(ns))
	if err != nil {
		return "", err
	}
	defer h.Close()
	if err := loUp(h); err != nil {
		return "", fmt.Errorf("lab container %s: %w", ns, err)
	}
	return Path(ns), nil
}

// Close deletes every namespace whose name starts with the lab's prefix,
// including ones the lab did not create itself (router namespaces of data
// planes using a longer prefix). It is safe to call more than once.
func (l *Lab) Close() error {
	names, err := List(l.Prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		errs = append(errs, DeleteNamed(name))
	}
	l.Nodes = nil
	return errors.Join(errs...)
}

func loUp(h *netlink.Handle) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
