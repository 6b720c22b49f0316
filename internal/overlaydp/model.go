package overlaydp

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Interface is the method set consumers (the agent) use. Linux and Fake
// implement it.
type Interface interface {
	// Sync reconciles the node with s; an empty s removes everything.
	Sync(ctx context.Context, s State) error
	// Dump prints the managed data plane as stable, sorted text.
	Dump(ctx context.Context) (string, error)
	// Teardown removes everything this package created.
	Teardown(ctx context.Context) error
	// Attach connects a container to an overlay's Mesos bridge.
	Attach(ctx context.Context, ep Endpoint) (Endpoint, error)
	// Detach removes an attachment; unknown ones succeed.
	Detach(ctx context.Context, ep Endpoint) error
	// Check verifies an attachment.
	Check(ctx context.Context, ep Endpoint) error
}

// Defaults.
const (
	// DefaultNFTTable is the nftables table (family inet) holding the NAT
	// rules.
	DefaultNFTTable = "weft-overlay"
	// DefaultRuleTable is the routing table of routes to peers' underlay
	// addresses (dcos-net uses 42).
	DefaultRuleTable = 42
	// RulePriority is the priority of the "from <overlay> lookup
	// <RuleTable>" rules: before the main table's 32766.
	RulePriority = 32000
	// Marker is the link alias put on every link this package creates
	// (the VTEP and the Mesos bridges), so that Teardown and Sync find
	// leftovers without touching links someone else made.
	Marker = "weft-overlay"
	// BridgePrefix starts the name of every Mesos bridge (DC/OS: m-<overlay>).
	BridgePrefix = "m-"
	// DefaultVXLANMTU is the MTU the kernel gives a VXLAN device without a
	// lower device when none is asked for.
	DefaultVXLANMTU = 1500
)

// VTEP is the node's VXLAN tunnel endpoint, shared by every overlay.
type VTEP struct {
	// Name of the VXLAN device (DC/OS: "vtep1024").
	Name string
	// VNI is the VXLAN network identifier (DC/OS: 1024).
	VNI int
	// Port is the UDP destination port (DC/OS: 64000).
	Port int
	// MTU of the device; 0 leaves the kernel's default (1500).
	MTU int
	// MAC is the device's MAC address (DC/OS: OUI + low 24 bits of IP).
	MAC net.HardwareAddr
	// IP is the VTEP's IPv4 address with the VTEP subnet's prefix length
	// (44.128.0.1/20).
	IP netip.Prefix
	// IP6 is the VTEP's IPv6 address (fd01:a::1/64); optional.
	IP6 netip.Prefix
	// Underlay is the node's underlay address, used as the VXLAN source
	// (local) address; optional (the kernel then picks one per packet).
	Underlay netip.Addr
}

// Overlay is one overlay network as this node sees it.
type Overlay struct {
	// Name of the overlay ("dcos").
	Name string
	// Subnet and Subnet6 are the overlay's whole address spaces (9.0.0.0/8,
	// fd01:b::/64); either may be the zero Prefix, not both.
	Subnet, Subnet6 netip.Prefix
	// AgentSubnet and AgentSubnet6 are this node's blocks of the overlay
	// (9.0.1.0/24, fd01:b::/80); optional (a node without a block still
	// reaches the overlay).
	AgentSubnet, AgentSubnet6 netip.Prefix
	// MesosBridge is the name of the Mesos bridge (m-<name>); "" when the
	// node has no Mesos bridge (DC/OS masters).
	MesosBridge string
	// MesosHalf and MesosHalf6 are the Mesos halves of the agent subnets
	// (9.0.1.0/25, fd01:b::/81); the bridge gets their first host address
	// with the half's prefix length (9.0.1.1/25) as the gateway.
	MesosHalf, MesosHalf6 netip.Prefix
	// MTU of the bridge (DC/OS overlay_mtu: 1420); 0 leaves the default.
	MTU int
	// NAT masquerades traffic from the overlay to anything outside every
	// overlay (DC/OS always does this for IPv4 overlays).
	NAT bool
}

// Peer is another node of the overlays.
type Peer struct {
	// Node names the peer (for logs and errors).
	Node string
	// Underlay is the peer's underlay address (the VXLAN destination).
	Underlay netip.Addr
	// VTEPIP and VTEPIP6 are the peer's VTEP addresses (no prefix length);
	// VTEPIP6 is optional.
	VTEPIP, VTEPIP6 netip.Addr
	// MAC is the peer's VTEP MAC.
	MAC net.HardwareAddr
	// Subnets are the peer's agent subnets of every overlay, both
	// families; each is routed via the VTEP address of its family.
	Subnets []netip.Prefix
}

// State is the desired overlay data plane of the node. A State without
// overlays means: remove everything this package created.
type State struct {
	// VTEP is the node's tunnel endpoint (ignored without overlays).
	VTEP VTEP
	// Overlays are the overlays the node is part of.
	Overlays []Overlay
	// Peers are the other nodes.
	Peers []Peer
}

// Empty reports whether s asks for nothing.
func (s State) Empty() bool { return len(s.Overlays) == 0 }

// Endpoint is a Mesos container's interface on an overlay's Mesos bridge.
type Endpoint struct {
	// ContainerID and IfName identify the attachment (CNI).
	ContainerID, IfName string
	// Netns is the path of the container's network namespace.
	Netns string
	// Bridge is the Mesos bridge to attach to ("m-dcos").
	Bridge string
	// HostIf is the host end of the veth; derived from ContainerID and
	// IfName (HostIfName) when empty.
	HostIf string
	// MAC of the container interface; derived (EndpointMAC) when empty.
	MAC net.HardwareAddr
	// IPs are the container's addresses with the Mesos half's prefix
	// length (9.0.1.5/25, fd01:b::5/81).
	IPs []netip.Prefix
	// Gateways are the next hops of the default routes (the bridge's
	// addresses), at most one per family.
	Gateways []netip.Addr
	// MTU of both veth ends; 0 takes the bridge's.
	MTU int
	// DefaultRoute adds a default route per family via its gateway.
	DefaultRoute bool
}

// HostIfName is the stable name of the host end of a container's veth:
// "wo" and 13 hex digits of SHA-1 over the container id and interface
// name, 15 characters (the kernel's limit).
func HostIfName(containerID, ifName string) string {
	return "wo" + hex.EncodeToString(digest("weft/overlay-hostif", containerID, ifName))[:13]
}

// EndpointMAC is the stable, locally administered unicast MAC derived for
// a container interface that was given none.
func EndpointMAC(containerID, ifName string) net.HardwareAddr {
	b := digest("weft/overlay-mac", containerID, ifName)
	mac := net.HardwareAddr(slices.Clone(b[:6]))
	mac[0] = mac[0]&^1 | 2
	return mac
}

func digest(parts ...string) []byte {
	sum := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return sum[:]
}

// firstHost is the first host address of p (9.0.1.0/25 -> 9.0.1.1/25).
func firstHost(p netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(p.Masked().Addr().Next(), p.Bits())
}

func validLinkName(name string) error {
	if name == "" {
		return errors.New("missing")
	}
	if len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/ :\x00\t\n") {
		return fmt.Errorf("invalid link name %q", name)
	}
	return nil
}

func checkMAC(mac net.HardwareAddr) error {
	if len(mac) == 0 {
		return errors.New("missing")
	}
	if len(mac) != 6 {
		return fmt.Errorf("%q is not a 48-bit MAC", mac.String())
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("%s is a multicast MAC", mac)
	}
	if string(mac) == string(make([]byte, 6)) {
		return errors.New("all-zero MAC")
	}
	return nil
}

func checkMTU(mtu int) error {
	if mtu != 0 && (mtu < 552 || mtu > 65535) {
		return fmt.Errorf("%d outside 552..65535", mtu)
	}
	return nil
}

func isV4(p netip.Prefix) bool { return p.IsValid() && p.Addr().Is4() }
func isV6(p netip.Prefix) bool { return p.IsValid() && p.Addr().Is6() && !p.Addr().Is4In6() }

// Validate checks s and returns an error naming the offending field.
func (s State) Validate() error {
	if s.Empty() {
		return nil
	}
	if err := s.VTEP.validate(); err != nil {
		return err
	}
	names := map[string]bool{}
	bridges := map[string]string{}
	var spaces []netip.Prefix
	for i, o := range s.Overlays {
		if err := o.validate(); err != nil {
			return fmt.Errorf("overlays[%d]: %w", i, err)
		}
		if names[o.Name] {
			return fmt.Errorf("overlays[%d]: name: duplicate %q", i, o.Name)
		}
		names[o.Name] = true
		if o.MesosBridge != "" {
			if other, ok := bridges[o.MesosBridge]; ok {
				return fmt.Errorf("overlay %s: mesos bridge: %s already used by overlay %s", o.Name, o.MesosBridge, other)
			}
			bridges[o.MesosBridge] = o.Name
		}
		for _, p := range []netip.Prefix{o.Subnet, o.Subnet6} {
			if !p.IsValid() {
				continue
			}
			for _, q := range spaces {
				if p.Overlaps(q) {
					return fmt.Errorf("overlay %s: subnet %s overlaps %s of another overlay", o.Name, p, q)
				}
			}
			spaces = append(spaces, p.Masked())
		}
	}
	for i, p := range s.Peers {
		if err := p.validate(); err != nil {
			return fmt.Errorf("peers[%d]: %w", i, err)
		}
	}
	return nil
}

func (v VTEP) validate() error {
	if err := validLinkName(v.Name); err != nil {
		return fmt.Errorf("vtep: name: %w", err)
	}
	if v.VNI < 1 || v.VNI > 1<<24-1 {
		return fmt.Errorf("vtep: vni: %d outside 1..16777215", v.VNI)
	}
	if v.Port < 1 || v.Port > 65535 {
		return fmt.Errorf("vtep: port: %d outside 1..65535", v.Port)
	}
	if err := checkMTU(v.MTU); err != nil {
		return fmt.Errorf("vtep: mtu: %w", err)
	}
	if err := checkMAC(v.MAC); err != nil {
		return fmt.Errorf("vtep: mac: %w", err)
	}
	if !isV4(v.IP) {
		return fmt.Errorf("vtep: ip: %v is not an IPv4 address with prefix length", v.IP)
	}
	if v.IP6.IsValid() && !isV6(v.IP6) {
		return fmt.Errorf("vtep: ip6: %v is not an IPv6 address with prefix length", v.IP6)
	}
	if v.Underlay.IsValid() && v.Underlay.IsUnspecified() {
		return errors.New("vtep: underlay: unspecified address")
	}
	return nil
}

func (o Overlay) validate() error {
	if o.Name == "" {
		return errors.New("name: missing")
	}
	pre := "overlay " + o.Name + ": "
	if !o.Subnet.IsValid() && !o.Subnet6.IsValid() {
		return errors.New(pre + "subnet: neither subnet nor subnet6 set")
	}
	if o.Subnet.IsValid() && !isV4(o.Subnet) {
		return fmt.Errorf(pre+"subnet: %s is not IPv4", o.Subnet)
	}
	if o.Subnet6.IsValid() && !isV6(o.Subnet6) {
		return fmt.Errorf(pre+"subnet6: %s is not IPv6", o.Subnet6)
	}
	within := func(field string, p, outer netip.Prefix, outerField string) error {
		if !p.IsValid() {
			return nil
		}
		if !outer.IsValid() || p.Bits() < outer.Bits() || !outer.Contains(p.Addr()) {
			return fmt.Errorf(pre+"%s: %s not inside %s %v", field, p, outerField, outer)
		}
		return nil
	}
	for _, c := range []struct {
		field      string
		p, outer   netip.Prefix
		outerField string
	}{
		{"agent subnet", o.AgentSubnet, o.Subnet, "subnet"},
		{"agent subnet6", o.AgentSubnet6, o.Subnet6, "subnet6"},
		{"mesos half", o.MesosHalf, o.AgentSubnet, "agent subnet"},
		{"mesos half6", o.MesosHalf6, o.AgentSubnet6, "agent subnet6"},
	} {
		if err := within(c.field, c.p, c.outer, c.outerField); err != nil {
			return err
		}
	}
	if o.MesosBridge != "" {
		if err := validLinkName(o.MesosBridge); err != nil {
			return fmt.Errorf(pre+"mesos bridge: %w", err)
		}
		if !strings.HasPrefix(o.MesosBridge, BridgePrefix) {
			return fmt.Errorf(pre+"mesos bridge: %q does not start with %q", o.MesosBridge, BridgePrefix)
		}
		for _, h := range []netip.Prefix{o.MesosHalf, o.MesosHalf6} {
			if h.IsValid() && h.Bits() >= h.Addr().BitLen()-1 {
				return fmt.Errorf(pre+"mesos half: %s has no room for a gateway and hosts", h)
			}
		}
	} else if o.MesosHalf.IsValid() || o.MesosHalf6.IsValid() {
		return errors.New(pre + "mesos half: set without a mesos bridge")
	}
	if err := checkMTU(o.MTU); err != nil {
		return fmt.Errorf(pre+"mtu: %w", err)
	}
	return nil
}

func (p Peer) validate() error {
	pre := "peer " + p.Node + ": "
	if p.Node == "" {
		pre = "peer: "
	}
	if !p.Underlay.IsValid() || p.Underlay.IsUnspecified() {
		return fmt.Errorf(pre+"underlay: invalid %v", p.Underlay)
	}
	if !p.VTEPIP.IsValid() || !p.VTEPIP.Unmap().Is4() {
		return fmt.Errorf(pre+"vtep ip: %v is not an IPv4 address", p.VTEPIP)
	}
	if p.VTEPIP6.IsValid() && (!p.VTEPIP6.Is6() || p.VTEPIP6.Is4In6()) {
		return fmt.Errorf(pre+"vtep ip6: %v is not an IPv6 address", p.VTEPIP6)
	}
	if err := checkMAC(p.MAC); err != nil {
		return fmt.Errorf(pre+"mac: %w", err)
	}
	for _, s := range p.Subnets {
		if !s.IsValid() {
			return fmt.Errorf(pre+"subnets: invalid %v", s)
		}
	}
	return nil
}

// Planned objects: what the node should hold for a State. Linux and Fake
// both work from a plan, so they agree on what a State means.

type planRoute struct {
	dst   netip.Prefix
	via   netip.Addr
	table int // 0 = main
}

type planBridge struct {
	name  string
	mtu   int
	addrs []netip.Prefix
}

type plan struct {
	empty     bool
	vtep      VTEP
	vtepAddrs []netip.Prefix
	bridges   []planBridge
	neighs    map[netip.Addr]net.HardwareAddr // VTEP address -> MAC
	fdb       map[string]netip.Addr           // MAC string -> underlay
	macs      map[string]net.HardwareAddr
	routes    []planRoute
	rules     []netip.Prefix // from <prefix> lookup <table>
	ipv6      bool           // any IPv6 overlay: forwarding on
	nat       natPlan
}

// makePlan computes the plan of a validated state. Peers or subnets that
// conflict with the node or earlier peers are skipped and reported.
func makePlan(s State, ruleTable int) (plan, []string) {
	p := plan{
		neighs: map[netip.Addr]net.HardwareAddr{},
		fdb:    map[string]netip.Addr{},
		macs:   map[string]net.HardwareAddr{},
	}
	if s.Empty() {
		p.empty = true
		return p, nil
	}
	v := s.VTEP
	v.IP = netip.PrefixFrom(v.IP.Addr().Unmap(), v.IP.Bits())
	v.Underlay = v.Underlay.Unmap()
	p.vtep = v
	p.vtepAddrs = append(p.vtepAddrs, v.IP)
	if v.IP6.IsValid() {
		p.vtepAddrs = append(p.vtepAddrs, v.IP6)
	}
	var local []netip.Prefix
	for _, o := range s.Overlays {
		if o.Subnet.IsValid() {
			p.rules = append(p.rules, o.Subnet.Masked())
			p.nat.overlays4 = append(p.nat.overlays4, o.Subnet.Masked())
			if o.NAT {
				p.nat.masq4 = append(p.nat.masq4, o.Subnet.Masked())
			}
		}
		if o.Subnet6.IsValid() {
			p.ipv6 = true
			p.nat.overlays6 = append(p.nat.overlays6, o.Subnet6.Masked())
			if o.NAT {
				p.nat.masq6 = append(p.nat.masq6, o.Subnet6.Masked())
			}
		}
		for _, a := range []netip.Prefix{o.AgentSubnet, o.AgentSubnet6} {
			if a.IsValid() {
				local = append(local, a.Masked())
			}
		}
		if o.MesosBridge != "" {
			b := planBridge{name: o.MesosBridge, mtu: o.MTU}
			for _, h := range []netip.Prefix{o.MesosHalf, o.MesosHalf6} {
				if h.IsValid() {
					b.addrs = append(b.addrs, firstHost(h))
				}
			}
			p.bridges = append(p.bridges, b)
		}
	}
	p.nat.sort()
	slices.SortFunc(p.rules, netip.Prefix.Compare)
	slices.SortFunc(p.bridges, func(a, b planBridge) int { return strings.Compare(a.name, b.name) })

	var warns []string
	routed := map[netip.Prefix]string{}
	for _, l := range local {
		routed[l] = "this node"
	}
	underlays := map[netip.Addr]bool{}
	for _, peer := range s.Peers {
		name := peer.Node
		under := peer.Underlay.Unmap()
		vip := peer.VTEPIP.Unmap()
		key := peer.MAC.String()
		if (v.Underlay.IsValid() && under == v.Underlay) || vip == v.IP.Addr() || (v.IP6.IsValid() && peer.VTEPIP6 == v.IP6.Addr()) || key == v.MAC.String() {
			// This node itself, as listed among the nodes: not a peer.
			continue
		}
		if u, ok := p.fdb[key]; ok && u != under {
			warns = append(warns, fmt.Sprintf("peer %s: vtep mac %s already used by underlay %s; skipped", name, key, u))
			continue
		}
		if m, ok := p.neighs[vip]; ok && m.String() != key {
			warns = append(warns, fmt.Sprintf("peer %s: vtep ip %s already used by mac %s; skipped", name, vip, m))
			continue
		}
		v6 := peer.VTEPIP6.IsValid() && v.IP6.IsValid()
		p.neighs[vip] = peer.MAC
		if v6 {
			p.neighs[peer.VTEPIP6] = peer.MAC
		}
		p.fdb[key] = under
		p.macs[key] = peer.MAC
		for _, sub := range peer.Subnets {
			sub = netip.PrefixFrom(sub.Addr().Unmap(), sub.Bits()).Masked()
			via := vip
			if sub.Addr().Is6() {
				if !v6 {
					warns = append(warns, fmt.Sprintf("peer %s: subnet %s: no IPv6 VTEP address on both ends; skipped", name, sub))
					continue
				}
				via = peer.VTEPIP6
			}
			if o, ok := routed[sub]; ok {
				warns = append(warns, fmt.Sprintf("peer %s: subnet %s already routed to %s; skipped", name, sub, o))
				continue
			}
			routed[sub] = name
			p.routes = append(p.routes, planRoute{dst: sub, via: via})
		}
		if len(p.rules) > 0 && under.Is4() && !underlays[under] {
			underlays[under] = true
			p.routes = append(p.routes, planRoute{dst: netip.PrefixFrom(under, 32), via: vip, table: ruleTable})
		}
	}
	slices.SortFunc(p.routes, func(a, b planRoute) int {
		if a.table != b.table {
			return a.table - b.table
		}
		return a.dst.Compare(b.dst)
	})
	return p, warns
}

func (p plan) bridgeNames() []string {
	var out []string
	for _, b := range p.bridges {
		out = append(out, b.name)
	}
	return out
}
