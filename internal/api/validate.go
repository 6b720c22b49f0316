package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// MaxBodyBytes bounds every request body the controller reads.
const MaxBodyBytes = 1 << 20

// MaxVNI is the largest VXLAN network identifier.
const MaxVNI = 1<<24 - 1

// NewObject returns an empty object of the kind, or nil for an unknown kind.
func NewObject(k Kind) Object {
	switch k {
	case KindDomain:
		return &Domain{}
	case KindProject:
		return &Project{}
	case KindNetwork:
		return &Network{}
	case KindPort:
		return &Port{}
	case KindIPReservation:
		return &IPReservation{}
	case KindNode:
		return &Node{}
	case KindFloatingIPPool:
		return &FloatingIPPool{}
	case KindFloatingIP:
		return &FloatingIP{}
	case KindSecurityGroup:
		return &SecurityGroup{}
	case KindNetworkPolicy:
		return &NetworkPolicy{}
	case KindService:
		return &Service{}
	case KindBlock:
		return &Block{}
	}
	return nil
}

// DecodeObject strictly decodes a request body into an object of the kind:
// unknown fields, trailing data, wrong types and a mismatching "kind" are
// errors that name the field. It validates the object's own fields (not
// references to other objects) with Validate.
func DecodeObject(k Kind, body []byte) (Object, error) {
	obj := NewObject(k)
	if obj == nil {
		return nil, Invalid("kind", "unknown kind %q", k)
	}
	if err := DecodeStrict(body, obj); err != nil {
		return nil, err
	}
	m := obj.GetMeta()
	if m.Kind != "" && m.Kind != k {
		return nil, Invalid("kind", "kind %q does not match the collection (%s)", m.Kind, k)
	}
	m.Kind = k
	if err := Validate(obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// DecodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data, and turns decoder errors into *Error naming the
// field.
func DecodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return Invalid("", "request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Invalid("", "request body has data after the JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return Invalid(typeErr.Field, "must be %s, got JSON %s", typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return Invalid("", "malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Invalid("", "malformed JSON: unexpected end of body")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return Invalid(f, "unknown field %q", f)
	}
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) {
		return Invalid("", "bad time %q: use RFC 3339", timeErr.Value)
	}
	return Invalid("", "cannot decode body: %s", strings.TrimPrefix(msg, "json: "))
}

// ValidName reports whether s can be one segment of an fq_name.
func ValidName(s string) error {
	switch {
	case s == "":
		return errors.New("is required")
	case len(s) > 253:
		return fmt.Errorf("is %d characters long; the limit is 253", len(s))
	case strings.ContainsAny(s, ":/"):
		return fmt.Errorf("%q may not contain ':' or '/'", s)
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("%q may not contain spaces or control characters", s)
		}
	}
	return nil
}

// Depth is the number of fq_name segments of each kind.
func Depth(k Kind) int {
	switch k {
	case KindDomain, KindNode:
		return 1
	case KindProject:
		return 2
	case KindFloatingIPPool:
		return 4
	case KindFloatingIP:
		return 5
	case KindIPReservation, KindBlock:
		return 0
	}
	return 3
}

// ParentKind is the kind of a kind's parent ("" for roots).
func ParentKind(k Kind) Kind {
	switch k {
	case KindProject:
		return KindDomain
	case KindNetwork, KindPort, KindSecurityGroup, KindNetworkPolicy, KindService:
		return KindProject
	case KindFloatingIPPool:
		return KindNetwork
	case KindFloatingIP:
		return KindFloatingIPPool
	}
	return ""
}

// DefaultParent is the parent used when a body names neither fq_name nor
// parent.
func DefaultParent(k Kind) string {
	switch ParentKind(k) {
	case KindDomain:
		return DefaultDomain
	case KindProject:
		return DefaultProject
	}
	return ""
}

// NormalizeNames fills Name, Parent and FQName of m from whichever were
// given, and checks that they agree.
func NormalizeNames(m *Meta) error {
	depth := Depth(m.Kind)
	if m.FQName != "" {
		parts := strings.Split(m.FQName, ":")
		if len(parts) != depth {
			return Invalid("fq_name", "%q has %d parts; a %s fq_name has %d (%s)", m.FQName, len(parts), m.Kind, depth, fqShape(m.Kind))
		}
		for i, p := range parts {
			if err := ValidName(p); err != nil {
				return Invalid("fq_name", "part %d %v", i+1, err)
			}
		}
		name, parent := parts[len(parts)-1], strings.Join(parts[:len(parts)-1], ":")
		if m.Name != "" && m.Name != name {
			return Invalid("name", "%q does not match fq_name %q", m.Name, m.FQName)
		}
		if m.Parent != "" && m.Parent != parent {
			return Invalid("parent", "%q does not match fq_name %q", m.Parent, m.FQName)
		}
		m.Name, m.Parent = name, parent
		return nil
	}
	if err := ValidName(m.Name); err != nil {
		return Invalid("name", "%v", err)
	}
	if depth == 1 {
		if m.Parent != "" {
			return Invalid("parent", "a %s has no parent", m.Kind)
		}
		m.FQName = m.Name
		return nil
	}
	if m.Parent == "" {
		m.Parent = DefaultParent(m.Kind)
	}
	if m.Parent == "" {
		return Invalid("parent", "is required for a %s (%s)", m.Kind, fqShape(m.Kind))
	}
	parts := strings.Split(m.Parent, ":")
	if len(parts) != depth-1 {
		return Invalid("parent", "%q has %d parts; the parent of a %s has %d (%s)", m.Parent, len(parts), m.Kind, depth-1, fqShape(m.Kind))
	}
	for i, p := range parts {
		if err := ValidName(p); err != nil {
			return Invalid("parent", "part %d %v", i+1, err)
		}
	}
	m.FQName = m.Parent + ":" + m.Name
	return nil
}

func fqShape(k Kind) string {
	switch Depth(k) {
	case 1:
		return "name"
	case 2:
		return "domain:name"
	case 3:
		return "domain:project:name"
	case 4:
		return "domain:project:network:name"
	case 5:
		return "domain:project:network:pool:name"
	}
	return "none"
}

// Validate checks an object's own fields and fills defaults (names,
// network kind, gateways, ethertypes). It does not look at other objects.
func Validate(obj Object) error {
	m := obj.GetMeta()
	if err := NormalizeNames(m); err != nil {
		return err
	}
	for k := range m.Labels {
		if k == "" {
			return Invalid("labels", "label keys may not be empty")
		}
	}
	switch o := obj.(type) {
	case *Network:
		return validateNetwork(o)
	case *Port:
		return validatePort(o)
	case *Node:
		return validateNode(o)
	case *FloatingIP:
		if o.Address != "" {
			if _, err := ParseAddr(o.Address); err != nil {
				return Invalid("address", "%v", err)
			}
		}
		if o.FixedIP != "" {
			if _, err := ParseAddr(o.FixedIP); err != nil {
				return Invalid("fixed_ip", "%v", err)
			}
		}
	case *SecurityGroup:
		return validateSecurityGroup(o)
	case *NetworkPolicy:
		return validatePolicy(o)
	case *Service:
		return validateService(o)
	}
	return nil
}

// ParseAddr parses an IPv4 or IPv6 address without zone, in any textual
// form netip accepts, and returns it unmapped.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has a zone; zones are not allowed", s)
	}
	return a.Unmap(), nil
}

// ParseSubnet parses a CIDR that must be a network address (host bits
// zero), with room for at least one host besides network, gateway and
// broadcast.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (want e.g. 10.0.0.0/24 or fd00::/64)", s)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q has a zone; zones are not allowed", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped prefix; write it as IPv4", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, m)
	}
	limit := 30
	if p.Addr().Is6() {
		limit = 126
	}
	if p.Bits() > limit {
		return netip.Prefix{}, fmt.Errorf("%q is too small for a subnet (the longest prefix is /%d)", s, limit)
	}
	return p, nil
}

// Family of an address or prefix: "ipv4" or "ipv6".
func Family(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// LastAddr returns the highest address of p.
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		lo := i * 8
		switch {
		case lo >= bits:
			b[i] = 0xff
		case lo+8 > bits:
			b[i] |= byte(0xff >> (bits - lo))
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// DefaultGateway is the first host address of p.
func DefaultGateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

func validateNetwork(n *Network) error {
	switch n.NetworkKind {
	case "":
		n.NetworkKind = NetworkVirtual
	case NetworkVirtual, NetworkOverlay:
	default:
		return Invalid("network_kind", "%q is not a network kind (virtual or overlay)", n.NetworkKind)
	}
	if n.VNI < 0 || n.VNI > MaxVNI {
		return Invalid("vni", "%d is out of range (1-%d, or 0 to let the controller choose)", n.VNI, MaxVNI)
	}
	if n.MTU != 0 && (n.MTU < 576 || n.MTU > 9000) {
		return Invalid("mtu", "%d is out of range (576-9000, or 0 for the agent's default)", n.MTU)
	}
	if len(n.Subnets) == 0 {
		return Invalid("subnets", "a network needs at least one subnet")
	}
	prefixes := make([]netip.Prefix, len(n.Subnets))
	for i := range n.Subnets {
		s := &n.Subnets[i]
		field := fmt.Sprintf("subnets[%d]", i)
		p, err := ParseSubnet(s.CIDR)
		if err != nil {
			return Invalid(field+".cidr", "%v", err)
		}
		s.CIDR = p.String()
		prefixes[i] = p
		for j := range i {
			if prefixes[j].Overlaps(p) {
				return Invalid(field+".cidr", "%s overlaps subnets[%d] %s of the same network", p, j, prefixes[j])
			}
		}
		if n.MTU != 0 && n.MTU < 1280 && p.Addr().Is6() {
			return Invalid("mtu", "%d is below the IPv6 minimum of 1280 (subnet %s)", n.MTU, p)
		}
		if s.Gateway == "" {
			s.Gateway = DefaultGateway(p).String()
		} else {
			gw, err := ParseAddr(s.Gateway)
			if err != nil {
				return Invalid(field+".gateway", "%v", err)
			}
			switch {
			case !p.Contains(gw):
				return Invalid(field+".gateway", "%s is outside subnet %s", gw, p)
			case gw == p.Addr():
				return Invalid(field+".gateway", "%s is the network address of %s", gw, p)
			case gw.Is4() && gw == LastAddr(p):
				return Invalid(field+".gateway", "%s is the broadcast address of %s", gw, p)
			}
			s.Gateway = gw.String()
		}
		if s.BlockPrefix != 0 {
			limit := 32
			if p.Addr().Is6() {
				limit = 128
			}
			switch {
			case s.BlockPrefix < p.Bits():
				return Invalid(field+".block_prefix", "/%d is shorter than the subnet %s; a block must fit inside its subnet", s.BlockPrefix, p)
			case s.BlockPrefix > limit:
				return Invalid(field+".block_prefix", "/%d is longer than an address (/%d)", s.BlockPrefix, limit)
			}
		}
	}
	return nil
}

func validatePort(p *Port) error {
	if p.Network == "" {
		return Invalid("network", "is required (uuid or fq_name of a network)")
	}
	if len(p.Interface) > 15 {
		return Invalid("interface", "%q is longer than 15 characters", p.Interface)
	}
	if p.MAC != "" {
		hw, err := net.ParseMAC(p.MAC)
		if err != nil || len(hw) != 6 {
			return Invalid("mac", "%q is not a MAC address (xx:xx:xx:xx:xx:xx)", p.MAC)
		}
		p.MAC = hw.String()
	}
	for i, ip := range p.IPs {
		a, err := ParseAddr(ip.Address)
		if err != nil {
			return Invalid(fmt.Sprintf("ips[%d].address", i), "%v", err)
		}
		p.IPs[i].Address = a.String()
		if ip.Subnet != "" {
			if _, err := netip.ParsePrefix(ip.Subnet); err != nil {
				return Invalid(fmt.Sprintf("ips[%d].subnet", i), "%q is not a CIDR", ip.Subnet)
			}
		}
		if ip.Gateway != "" {
			if _, err := ParseAddr(ip.Gateway); err != nil {
				return Invalid(fmt.Sprintf("ips[%d].gateway", i), "%v", err)
			}
		}
	}
	for i, sg := range p.SecurityGroups {
		if n := len(strings.Split(sg, ":")); n != 3 {
			return Invalid(fmt.Sprintf("security_groups[%d]", i), "%q is not a security group fq_name (domain:project:name)", sg)
		}
	}
	return nil
}

func validateNode(n *Node) error {
	if n.UnderlayIP == "" {
		return Invalid("underlay_ip", "is required")
	}
	a, err := ParseAddr(n.UnderlayIP)
	if err != nil {
		return Invalid("underlay_ip", "%v", err)
	}
	n.UnderlayIP = a.String()
	if n.VTEPIP != "" {
		a, err := ParseAddr(n.VTEPIP)
		if err != nil {
			return Invalid("vtep_ip", "%v", err)
		}
		n.VTEPIP = a.String()
	}
	if n.VTEPMAC != "" {
		hw, err := net.ParseMAC(n.VTEPMAC)
		if err != nil || len(hw) != 6 {
			return Invalid("vtep_mac", "%q is not a MAC address", n.VTEPMAC)
		}
		n.VTEPMAC = hw.String()
	}
	if n.VTEPIP6 != "" {
		a, err := ParseAddr(n.VTEPIP6)
		if err != nil || !a.Is6() {
			return Invalid("vtep_ip6", "%q is not an IPv6 address", n.VTEPIP6)
		}
		n.VTEPIP6 = a.String()
	}
	for i, o := range n.Overlays {
		for field, v := range map[string]string{"subnet": o.Subnet, "subnet6": o.Subnet6, "overlay_subnet": o.OverlaySubnet, "overlay_subnet6": o.OverlaySubnet6} {
			if v == "" {
				continue
			}
			if _, err := ParseSubnet(v); err != nil {
				return Invalid(fmt.Sprintf("overlays[%d].%s", i, field), "%v", err)
			}
		}
		switch o.Status {
		case "", OverlayOK, OverlayFailed, OverlayConfiguring:
		default:
			return Invalid(fmt.Sprintf("overlays[%d].status", i), "%q is not OK, FAILED or CONFIGURING", o.Status)
		}
	}
	return nil
}

// ValidProtocol normalises a rule protocol: any, tcp, udp, icmp, icmp6 or a
// number 0-255.
func ValidProtocol(p string) (string, error) {
	switch q := strings.ToLower(p); q {
	case "", "any", "all":
		return "any", nil
	case "tcp", "udp", "icmp", "icmp6", "sctp":
		return q, nil
	default:
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 || n > 255 {
			return "", fmt.Errorf("%q is not a protocol (any, tcp, udp, icmp, icmp6, sctp or 0-255)", p)
		}
		return q, nil
	}
}

func validatePorts(field, proto string, lo, hi int) error {
	if lo == 0 && hi == 0 {
		return nil
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return Invalid(field+".port_min", "ports need protocol tcp, udp or sctp (protocol is %s)", proto)
	}
	if lo < 1 || lo > 65535 {
		return Invalid(field+".port_min", "%d is out of range (1-65535)", lo)
	}
	if hi == 0 {
		return nil
	}
	if hi < lo || hi > 65535 {
		return Invalid(field+".port_max", "%d is out of range (%d-65535)", hi, lo)
	}
	return nil
}

func validateSecurityGroup(sg *SecurityGroup) error {
	for i := range sg.Rules {
		r := &sg.Rules[i]
		field := fmt.Sprintf("rules[%d]", i)
		if r.Direction != DirectionIngress && r.Direction != DirectionEgress {
			return Invalid(field+".direction", "%q is not a direction (ingress or egress)", r.Direction)
		}
		switch r.EtherType {
		case "":
			r.EtherType = EtherTypeIPv4
		case EtherTypeIPv4, EtherTypeIPv6:
		default:
			return Invalid(field+".ethertype", "%q is not an ethertype (IPv4 or IPv6)", r.EtherType)
		}
		proto, err := ValidProtocol(r.Protocol)
		if err != nil {
			return Invalid(field+".protocol", "%v", err)
		}
		r.Protocol = proto
		if err := validatePorts(field, proto, r.PortMin, r.PortMax); err != nil {
			return err
		}
		if r.PortMin != 0 && r.PortMax == 0 {
			r.PortMax = r.PortMin
		}
		if r.RemoteCIDR != "" && r.RemoteGroup != "" {
			return Invalid(field+".remote_group", "give remote_cidr or remote_group, not both")
		}
		if r.RemoteCIDR != "" {
			p, err := netip.ParsePrefix(r.RemoteCIDR)
			if err != nil {
				return Invalid(field+".remote_cidr", "%q is not a CIDR", r.RemoteCIDR)
			}
			if p.Addr().Is4() != (r.EtherType == EtherTypeIPv4) {
				return Invalid(field+".remote_cidr", "%s does not match ethertype %s", p, r.EtherType)
			}
			r.RemoteCIDR = p.Masked().String()
		}
		if r.RemoteGroup != "" && len(strings.Split(r.RemoteGroup, ":")) != 3 {
			return Invalid(field+".remote_group", "%q is not a security group fq_name (domain:project:name)", r.RemoteGroup)
		}
	}
	return nil
}

func validatePolicy(np *NetworkPolicy) error {
	for i := range np.Rules {
		r := &np.Rules[i]
		field := fmt.Sprintf("rules[%d]", i)
		if r.Source == "" {
			return Invalid(field+".source", "is required (a network fq_name or \"any\")")
		}
		if r.Destination == "" {
			return Invalid(field+".destination", "is required (a network fq_name or \"any\")")
		}
		switch r.Direction {
		case "":
			r.Direction = "<>"
		case "<>", ">":
		default:
			return Invalid(field+".direction", "%q is not a direction (\"<>\" both ways or \">\" source to destination)", r.Direction)
		}
		proto, err := ValidProtocol(r.Protocol)
		if err != nil {
			return Invalid(field+".protocol", "%v", err)
		}
		r.Protocol = proto
		if err := validatePorts(field, proto, r.PortMin, r.PortMax); err != nil {
			return err
		}
	}
	return nil
}

func validateService(s *Service) error {
	if s.Port < 1 || s.Port > 65535 {
		return Invalid("port", "%d is out of range (1-65535)", s.Port)
	}
	switch p := strings.ToLower(s.Protocol); p {
	case "":
		s.Protocol = "tcp"
	case "tcp", "udp":
		s.Protocol = p
	default:
		return Invalid("protocol", "%q is not a VIP protocol (tcp or udp)", s.Protocol)
	}
	if s.VIP != "" {
		a, err := ParseAddr(s.VIP)
		if err != nil {
			return Invalid("vip", "%v", err)
		}
		s.VIP = a.String()
	}
	for i, b := range s.Backends {
		a, err := ParseAddr(b.Address)
		if err != nil {
			return Invalid(fmt.Sprintf("backends[%d].address", i), "%v", err)
		}
		s.Backends[i].Address = a.String()
		if b.Port < 1 || b.Port > 65535 {
			return Invalid(fmt.Sprintf("backends[%d].port", i), "%d is out of range (1-65535)", b.Port)
		}
	}
	return nil
}

// IsUUID reports whether s is a uuid in its canonical 8-4-4-4-12
// hexadecimal form (resource references are a uuid or a name).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch i {
		case 8, 13, 18, 23:
			if ch != '-' {
				return false
			}
		default:
			if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F') {
				return false
			}
		}
	}
	return true
}
