package dataplane

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Interface is the method set the agent consumes. Linux and Fake
// implement it.
type Interface interface {
	// Attach gives a container an interface on a network (CNI ADD) and
	// returns the endpoint with HostIf, MAC and MTU filled in.
	Attach(ctx context.Context, n Network, ep Endpoint) (Endpoint, error)
	// Withdraw takes an attachment out of service at once (its host
	// routes and neighbour entries go, its host veth goes down) without
	// waiting for the kernel to destroy the veth; Detach finishes it.
	// Unknown ones succeed.
	Withdraw(ctx context.Context, n Network, ep Endpoint) error
	// Detach removes an attachment (CNI DEL); unknown ones succeed.
	Detach(ctx context.Context, n Network, ep Endpoint) error
	// Check verifies an attachment (CNI CHECK).
	Check(ctx context.Context, n Network, ep Endpoint) error
	// Sync reconciles the node with the desired state.
	Sync(ctx context.Context, s State) error
	// Dump prints the data plane as stable, sorted text.
	Dump(ctx context.Context) (string, error)
	// Teardown removes everything the data plane created.
	Teardown(ctx context.Context) error
}

var (
	_ Interface = (*Fake)(nil)
	_ Interface = (*Linux)(nil)
)

// ErrIncomplete is wrapped by Check errors that list missing pieces.
var ErrIncomplete = errors.New("attachment incomplete")

// Defaults of Config.
const (
	DefaultNamePrefix = "weft-"
	DefaultVXLANPort  = 4789
)

// MaxVNI is the largest VXLAN network identifier.
const MaxVNI = 1<<24 - 1

// Config configures a data plane.
type Config struct {
	// NodeNetns is the path of the node's network namespace, where VXLAN
	// sockets live; "" is the namespace of the calling process.
	NodeNetns string
	// NamePrefix starts the name of every namespace this data plane
	// creates (default "weft-"); distinct prefixes keep several emulated
	// nodes on one machine apart.
	NamePrefix string
	// VXLANPort is the UDP port of VXLAN devices (default 4789).
	VXLANPort int
	// Underlay is the node's underlay address (the VXLAN local address).
	Underlay netip.Addr
	// VTEPIP is this node's VTEP address (IPv4), put on every VXLAN
	// device as a /32.
	VTEPIP netip.Addr
	// VTEPMAC is the MAC address of every VXLAN device of this node.
	VTEPMAC net.HardwareAddr
	// Log receives debug and info records; nil discards them.
	Log *slog.Logger
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// withDefaults validates cfg and fills its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.NamePrefix == "" {
		c.NamePrefix = DefaultNamePrefix
	}
	if !prefixRE.MatchString(c.NamePrefix) {
		return c, fmt.Errorf("invalid name prefix %q: want 1-64 of [A-Za-z0-9_.-]", c.NamePrefix)
	}
	if c.VXLANPort == 0 {
		c.VXLANPort = DefaultVXLANPort
	}
	if c.VXLANPort < 1 || c.VXLANPort > 65535 {
		return c, fmt.Errorf("invalid vxlan port %d", c.VXLANPort)
	}
	if !c.Underlay.IsValid() || c.Underlay.IsUnspecified() {
		return c, errors.New("missing underlay address")
	}
	c.Underlay = c.Underlay.Unmap()
	if !c.VTEPIP.IsValid() || !c.VTEPIP.Unmap().Is4() {
		return c, fmt.Errorf("invalid vtep ip %v: want an IPv4 address", c.VTEPIP)
	}
	c.VTEPIP = c.VTEPIP.Unmap()
	if err := checkUnicastMAC(c.VTEPMAC); err != nil {
		return c, fmt.Errorf("invalid vtep mac: %w", err)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func checkUnicastMAC(mac net.HardwareAddr) error {
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

// RouterNamespace is the name of the router namespace of network vni:
// <prefix>vn<vni>.
func RouterNamespace(prefix string, vni int) string {
	return prefix + "vn" + strconv.Itoa(vni)
}

// parseRouterNamespace returns the VNI of a router namespace name made
// with prefix, or false when name is not one.
func parseRouterNamespace(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"vn")
	if !ok {
		return 0, false
	}
	vni, err := strconv.Atoi(rest)
	if err != nil || vni < 1 || vni > MaxVNI || strconv.Itoa(vni) != rest {
		return 0, false
	}
	return vni, true
}

// VXLANName is the name of network vni's VXLAN device inside its router
// namespace.
func VXLANName(vni int) string { return "vxlan" + strconv.Itoa(vni) }

func digest(parts ...string) []byte {
	sum := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return sum[:]
}

// HostIfName is the stable name of the router-side veth of a container
// interface: "wv" and 13 hex digits (52 bits) of SHA-1 over the container
// id and interface name; 15 characters, the kernel's limit.
func HostIfName(containerID, ifName string) string {
	return "wv" + hex.EncodeToString(digest("weft/hostif", containerID, ifName))[:13]
}

// EndpointMAC is the stable, locally administered unicast MAC derived
// for a container interface that was given none.
func EndpointMAC(containerID, ifName string) net.HardwareAddr {
	return localMAC(digest("weft/mac", containerID, ifName))
}

// hostMAC is the MAC of the router-side veth (what containers resolve
// their gateways to).
func hostMAC(containerID, ifName string) net.HardwareAddr {
	return localMAC(digest("weft/host-mac", containerID, ifName))
}

func localMAC(b []byte) net.HardwareAddr {
	mac := net.HardwareAddr(slices.Clone(b[:6]))
	mac[0] = mac[0]&^1 | 2
	return mac
}

// LinkLocalFromMAC is the EUI-64 IPv6 link-local address of mac, used as
// the next hop of IPv6 routes towards the remote VTEP owning mac.
func LinkLocalFromMAC(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8] = mac[0] ^ 2
	a[9], a[10] = mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// vxlanOverhead is the encapsulation overhead over an underlay address:
// outer IP + UDP + VXLAN + inner Ethernet.
func vxlanOverhead(underlay netip.Addr) int {
	if underlay.Is6() && !underlay.Is4In6() {
		return 70
	}
	return 50
}

// validate checks a network's identity and subnets.
func (n Network) validate() error {
	if n.VNI < 1 || n.VNI > MaxVNI {
		return fmt.Errorf("network %s: invalid vni %d", n.name(), n.VNI)
	}
	if n.MTU < 0 || (n.MTU > 0 && n.MTU < 576) || n.MTU > 65535 {
		return fmt.Errorf("network %s: invalid mtu %d", n.name(), n.MTU)
	}
	for _, s := range n.Subnets {
		if !s.Prefix.IsValid() {
			return fmt.Errorf("network %s: invalid subnet %v", n.name(), s.Prefix)
		}
		if !s.Gateway.IsValid() || !s.Prefix.Contains(s.Gateway.Unmap()) {
			return fmt.Errorf("network %s: gateway %v outside subnet %s", n.name(), s.Gateway, s.Prefix)
		}
	}
	return nil
}

func (n Network) name() string {
	if n.FQName != "" {
		return n.FQName
	}
	if n.UUID != "" {
		return n.UUID
	}
	return "vni " + strconv.Itoa(n.VNI)
}

func (n Network) subnetFor(a netip.Addr) (Subnet, bool) {
	best := -1
	var sub Subnet
	for _, s := range n.Subnets {
		p := s.Prefix.Masked()
		if p.Contains(a) && p.Bits() > best {
			best, sub = p.Bits(), Subnet{Prefix: p, Gateway: s.Gateway.Unmap()}
		}
	}
	return sub, best >= 0
}

// endpointHostIf validates n's VNI for op and returns ep with HostIf
// derived when it was not given.
func endpointHostIf(op string, n Network, ep Endpoint) (Endpoint, error) {
	if n.VNI < 1 || n.VNI > MaxVNI {
		return ep, fmt.Errorf("%s: network %s: invalid vni %d", op, n.name(), n.VNI)
	}
	if ep.HostIf == "" {
		if ep.ContainerID == "" || ep.IfName == "" {
			return ep, fmt.Errorf("%s: need a host interface or a container id and interface name", op)
		}
		ep.HostIf = HostIfName(ep.ContainerID, ep.IfName)
	}
	return ep, nil
}

// epAddr is one container address with its subnet.
type epAddr struct {
	IP     netip.Prefix // address with the subnet's prefix length
	Subnet Subnet
}

// normalize validates ep against n and fills HostIf, MAC and MTU (netMTU
// is the network's effective MTU). It returns the addresses with their
// subnets, in ep's order.
func (ep Endpoint) normalize(n Network, netMTU int) (Endpoint, []epAddr, error) {
	if ep.ContainerID == "" {
		return ep, nil, errors.New("endpoint: missing container id")
	}
	if ep.IfName == "" || len(ep.IfName) > 15 || strings.ContainsAny(ep.IfName, "/ :\x00") || ep.IfName == "." || ep.IfName == ".." {
		return ep, nil, fmt.Errorf("endpoint %s: invalid interface name %q", ep.ContainerID, ep.IfName)
	}
	if ep.HostIf == "" {
		ep.HostIf = HostIfName(ep.ContainerID, ep.IfName)
	}
	if len(ep.HostIf) > 15 || strings.ContainsAny(ep.HostIf, "/ :\x00") {
		return ep, nil, fmt.Errorf("endpoint %s/%s: invalid host interface name %q", ep.ContainerID, ep.IfName, ep.HostIf)
	}
	if len(ep.MAC) == 0 {
		ep.MAC = EndpointMAC(ep.ContainerID, ep.IfName)
	} else if err := checkUnicastMAC(ep.MAC); err != nil {
		return ep, nil, fmt.Errorf("endpoint %s/%s: %w", ep.ContainerID, ep.IfName, err)
	}
	if ep.MTU == 0 {
		ep.MTU = netMTU
	}
	if ep.MTU < 576 || ep.MTU > netMTU {
		return ep, nil, fmt.Errorf("endpoint %s/%s: mtu %d outside 576..%d (network mtu)", ep.ContainerID, ep.IfName, ep.MTU, netMTU)
	}
	if len(ep.IPs) == 0 {
		return ep, nil, fmt.Errorf("endpoint %s/%s: no addresses", ep.ContainerID, ep.IfName)
	}
	addrs := make([]epAddr, 0, len(ep.IPs))
	ips := make([]netip.Prefix, 0, len(ep.IPs))
	seen := map[netip.Addr]bool{}
	for _, p := range ep.IPs {
		a := p.Addr().Unmap()
		if !p.IsValid() {
			return ep, nil, fmt.Errorf("endpoint %s/%s: invalid address %v", ep.ContainerID, ep.IfName, p)
		}
		s, ok := n.subnetFor(a)
		if !ok {
			return ep, nil, fmt.Errorf("endpoint %s/%s: address %s outside the subnets of network %s", ep.ContainerID, ep.IfName, a, n.name())
		}
		if a == s.Gateway {
			return ep, nil, fmt.Errorf("endpoint %s/%s: address %s is the gateway of %s", ep.ContainerID, ep.IfName, a, s.Prefix)
		}
		if seen[a] {
			return ep, nil, fmt.Errorf("endpoint %s/%s: duplicate address %s", ep.ContainerID, ep.IfName, a)
		}
		seen[a] = true
		ip := netip.PrefixFrom(a, s.Prefix.Bits())
		ips = append(ips, ip)
		addrs = append(addrs, epAddr{IP: ip, Subnet: s})
	}
	ep.IPs = ips
	return ep, addrs, nil
}

// hostPrefix is a as a /32 or /128.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// remotePlan is the desired VXLAN side of one network: routes to remote
// prefixes, neighbour entries for their next hops and FDB entries for the
// remote VTEPs.
type remotePlan struct {
	routes map[netip.Prefix]netip.Addr     // prefix -> next hop
	neighs map[netip.Addr]net.HardwareAddr // next hop -> remote VTEP MAC
	fdb    map[string]netip.Addr           // remote VTEP MAC (string) -> underlay
	macs   map[string]net.HardwareAddr     // MAC string -> MAC
	owner  map[netip.Prefix]string         // prefix -> remote node, for logs
}

// planRemotes computes the remote side of ns. Remotes or prefixes that
// conflict with earlier ones are skipped and reported as warnings.
func planRemotes(ns NetworkState, cfg Config) (remotePlan, []string) {
	p := remotePlan{
		routes: map[netip.Prefix]netip.Addr{},
		neighs: map[netip.Addr]net.HardwareAddr{},
		fdb:    map[string]netip.Addr{},
		macs:   map[string]net.HardwareAddr{},
		owner:  map[netip.Prefix]string{},
	}
	var warns []string
	for _, r := range ns.Remotes {
		if err := r.validate(); err != nil {
			warns = append(warns, err.Error())
			continue
		}
		vtep := r.VTEPIP.Unmap()
		key := r.VTEPMAC.String()
		if r.Underlay.Unmap() == cfg.Underlay || key == cfg.VTEPMAC.String() || vtep == cfg.VTEPIP {
			warns = append(warns, fmt.Sprintf("remote %s: underlay, vtep ip or vtep mac is this node's; skipped", r.Node))
			continue
		}
		if u, ok := p.fdb[key]; ok && u != r.Underlay.Unmap() {
			warns = append(warns, fmt.Sprintf("remote %s: vtep mac %s already used by underlay %s; skipped", r.Node, key, u))
			continue
		}
		if m, ok := p.neighs[vtep]; ok && m.String() != key {
			warns = append(warns, fmt.Sprintf("remote %s: vtep ip %s already used by mac %s; skipped", r.Node, vtep, m))
			continue
		}
		var v6 bool
		added := false
		for _, pre := range r.Prefixes {
			pre, ok := normPrefix(pre)
			if !ok {
				warns = append(warns, fmt.Sprintf("remote %s: invalid prefix %v; skipped", r.Node, pre))
				continue
			}
			if o, ok := p.owner[pre]; ok {
				warns = append(warns, fmt.Sprintf("remote %s: prefix %s already routed to %s; skipped", r.Node, pre, o))
				continue
			}
			via := vtep
			if pre.Addr().Is6() {
				via = LinkLocalFromMAC(r.VTEPMAC)
				v6 = true
			}
			p.routes[pre] = via
			p.owner[pre] = r.Node
			added = true
		}
		if !added {
			continue
		}
		p.neighs[vtep] = r.VTEPMAC
		if v6 {
			p.neighs[LinkLocalFromMAC(r.VTEPMAC)] = r.VTEPMAC
		}
		p.fdb[key] = r.Underlay.Unmap()
		p.macs[key] = r.VTEPMAC
	}
	return p, warns
}

// normPrefix unmaps IPv4-mapped prefixes and masks host bits.
func normPrefix(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return p, false
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return p, false
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

func (r Remote) validate() error {
	if !r.Underlay.IsValid() || r.Underlay.IsUnspecified() {
		return fmt.Errorf("remote %s: invalid underlay %v", r.Node, r.Underlay)
	}
	if !r.VTEPIP.IsValid() || !r.VTEPIP.Unmap().Is4() {
		return fmt.Errorf("remote %s: invalid vtep ip %v: want IPv4", r.Node, r.VTEPIP)
	}
	if err := checkUnicastMAC(r.VTEPMAC); err != nil {
		return fmt.Errorf("remote %s: invalid vtep mac: %w", r.Node, err)
	}
	return nil
}

// validateState checks every network of s and that VNIs are unique.
func validateState(s State) error {
	seen := map[int]string{}
	for _, ns := range s.Networks {
		if err := ns.Network.validate(); err != nil {
			return err
		}
		if o, ok := seen[ns.Network.VNI]; ok {
			return fmt.Errorf("networks %s and %s share vni %d", o, ns.Network.name(), ns.Network.VNI)
		}
		seen[ns.Network.VNI] = ns.Network.name()
	}
	return nil
}

// Dump line formatting shared by Linux and Fake, so that the two can be
// compared.

func fmtLinkLine(name, typ string, extra string, mac net.HardwareAddr, mtu int, up bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "link %s type=%s", name, typ)
	if extra != "" {
		b.WriteString(" " + extra)
	}
	if len(mac) > 0 {
		fmt.Fprintf(&b, " mac=%s", mac)
	}
	fmt.Fprintf(&b, " mtu=%d", mtu)
	if up {
		b.WriteString(" up")
	} else {
		b.WriteString(" down")
	}
	return b.String()
}

func fmtVXLANExtra(vni int, local netip.Addr, port int, learning bool) string {
	l := "off"
	if learning {
		l = "on"
	}
	return fmt.Sprintf("vni=%d local=%s port=%d learning=%s", vni, local, port, l)
}

// fmtRoute prints a route. scope is printed for IPv4 only; metric when
// non-zero; proto when not "static".
func fmtRoute(dst netip.Prefix, via netip.Addr, dev, scope string, onlink bool, metric int, proto string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "route %s", dst)
	if via.IsValid() {
		fmt.Fprintf(&b, " via %s", via)
	}
	fmt.Fprintf(&b, " dev %s", dev)
	if dst.Addr().Is4() && scope != "" && scope != "global" {
		fmt.Fprintf(&b, " scope %s", scope)
	}
	if onlink {
		b.WriteString(" onlink")
	}
	if metric != 0 {
		fmt.Fprintf(&b, " metric %d", metric)
	}
	if proto != "static" {
		fmt.Fprintf(&b, " proto %s", proto)
	}
	return b.String()
}

func fmtNeigh(ip netip.Addr, dev string, mac net.HardwareAddr, state string) string {
	return fmt.Sprintf("neigh %s dev %s lladdr %s %s", ip, dev, mac, state)
}

func fmtFDB(mac net.HardwareAddr, dev string, dst netip.Addr, self bool, state string) string {
	s := fmt.Sprintf("fdb %s dev %s", mac, dev)
	if dst.IsValid() {
		s += " dst " + dst.String()
	}
	if self {
		s += " self"
	}
	return s + " " + state
}

// nsDump collects the lines of one router namespace.
type nsDump struct {
	name                                       string
	sysctls, links, addrs, routes, neighs, fdb []string
}

func (d *nsDump) write(b *strings.Builder) {
	fmt.Fprintf(b, "netns %s\n", d.name)
	for _, sec := range [][]string{d.sysctls, d.links, d.addrs, d.routes, d.neighs, d.fdb} {
		s := slices.Clone(sec)
		slices.Sort(s)
		for _, l := range s {
			fmt.Fprintf(b, "  %s\n", l)
		}
	}
}

// slogLevel is Info when something happened, Debug otherwise.
func slogLevel(eventful bool) slog.Level {
	if eventful {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// defaultMetric is the metric the kernel gives a route without one.
func defaultMetric(p netip.Prefix) int {
	if p.Addr().Is6() {
		return 1024
	}
	return 0
}
