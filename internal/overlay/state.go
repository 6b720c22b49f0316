package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// OverlayStatus is the configuration status an agent reports for one
// overlay (the OverlayState.Status enum of the DC/OS modules, rendered by
// name).
type OverlayStatus string

// The statuses, with their protobuf numbers in the comments.
const (
	StatusInvalid     OverlayStatus = "STATUS_INVALID"     // 0
	StatusOK          OverlayStatus = "STATUS_OK"          // 1
	StatusFailed      OverlayStatus = "STATUS_FAILED"      // 2
	StatusConfiguring OverlayStatus = "STATUS_CONFIGURING" // 3
)

// statusByNumber maps the protobuf enum numbers to names.
var statusByNumber = []OverlayStatus{StatusInvalid, StatusOK, StatusFailed, StatusConfiguring}

// UnmarshalJSON accepts the name, or the enum number (0-3) that some
// protobuf JSON writers emit. Unknown names are kept as they are.
func (s *OverlayStatus) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil
	}
	var name string
	if err := json.Unmarshal(data, &name); err == nil {
		*s = OverlayStatus(name)
		return nil
	}
	var n int
	if err := json.Unmarshal(data, &n); err != nil || n < 0 || n >= len(statusByNumber) {
		return fmt.Errorf("overlay status %s is neither a status name nor 0-3", describe(data))
	}
	*s = statusByNumber[n]
	return nil
}

// State is the overlay master's state, as GET /overlay-master/state
// renders it: every agent's allocation and the current network config.
// Keys come out in alphabetical order, as in DC/OS; "agents" is always
// present (an empty array when there is none; DC/OS omits the key, and
// decoding accepts both).
type State struct {
	// Agents are the agents with an allocation, keyed by IP.
	Agents []AgentInfo `json:"agents"`
	// Network is the master's current configuration.
	Network NetworkConfig `json:"network"`
}

// AgentInfo is one agent's allocation: an element of State.Agents, and the
// body of the agent's GET /overlay-agent/overlay.
type AgentInfo struct {
	// ConfigurationAttempts is the agent's count of configuration rounds
	// (agent endpoint only).
	ConfigurationAttempts int `json:"configuration_attempts,omitempty"`
	// IP is the agent's address, the key of its allocation. Early
	// versions wrote "ip:port"; Addr strips the port.
	IP string `json:"ip"`
	// Overlays are the agent's overlays. Always rendered, [] when none.
	Overlays []AgentOverlayInfo `json:"overlays"`
}

// AgentOverlayInfo is one overlay on one agent.
type AgentOverlayInfo struct {
	// Backend is the agent's VXLAN endpoint, the same for all its overlays.
	Backend *BackendInfo `json:"backend,omitempty"`
	// DockerBridge is the d-<name> bridge with the upper half of the
	// agent subnet; absent when the agent has no Docker bridge (masters).
	DockerBridge *BridgeInfo `json:"docker_bridge,omitempty"`
	// Info is the overlay's configuration.
	Info OverlayInfo `json:"info"`
	// MesosBridge is the m-<name> bridge with the lower half of the agent
	// subnet; absent when the agent has no Mesos bridge (masters).
	MesosBridge *BridgeInfo `json:"mesos_bridge,omitempty"`
	// State is the configuration status the agent reported; absent until
	// it did.
	State *OverlayState `json:"state,omitempty"`
	// Subnet is the agent's IPv4 subnet of the overlay, "9.0.1.0/24".
	Subnet string `json:"subnet,omitempty"`
	// Subnet6 is the agent's IPv6 subnet of the overlay.
	Subnet6 string `json:"subnet6,omitempty"`
}

// BackendInfo is the tunnel backend of an agent; DC/OS has only VXLAN.
type BackendInfo struct {
	// VXLAN is the agent's VXLAN endpoint.
	VXLAN VXLANInfo `json:"vxlan"`
}

// VXLANInfo is an agent's VXLAN endpoint (VTEP).
type VXLANInfo struct {
	// VNI is the VXLAN network identifier, 1024.
	VNI int `json:"vni"`
	// VTEPIP is the VTEP IPv4 address with vtep_subnet's length,
	// "44.128.0.1/20".
	VTEPIP string `json:"vtep_ip"`
	// VTEPIP6 is the VTEP IPv6 address with vtep_subnet6's length.
	VTEPIP6 string `json:"vtep_ip6,omitempty"`
	// VTEPMAC is the VTEP device's MAC, lower-case, derived by MAC.
	VTEPMAC string `json:"vtep_mac"`
	// VTEPMTU is the VTEP device's MTU when the config sets one.
	VTEPMTU int `json:"vtep_mtu,omitempty"`
	// VTEPName is the VTEP device's name, "vtep1024".
	VTEPName string `json:"vtep_name"`
}

// BridgeInfo is a bridge of an agent and the half subnet(s) it serves, in
// CIDR form (a subnet, not the gateway address).
type BridgeInfo struct {
	// IP is the IPv4 half, "9.0.1.0/25".
	IP string `json:"ip,omitempty"`
	// IP6 is the IPv6 half.
	IP6 string `json:"ip6,omitempty"`
	// Name is m-<overlay> or d-<overlay>.
	Name string `json:"name"`
}

// OverlayState is an agent's configuration status of one overlay.
type OverlayState struct {
	// Error holds the failure messages joined with ";" (agent endpoint
	// only; the master keeps the status alone).
	Error string `json:"error,omitempty"`
	// Status is one of the Status constants.
	Status OverlayStatus `json:"status"`
}

// MarshalJSON renders agents as [] when there is none.
func (s State) MarshalJSON() ([]byte, error) {
	type plain State
	if s.Agents == nil {
		s.Agents = []AgentInfo{}
	}
	return json.Marshal(plain(s))
}

// UnmarshalJSON decodes without validation, normalising an empty agents
// array to nil and applying the network defaults.
func (s *State) UnmarshalJSON(data []byte) error {
	type plain State
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if len(p.Agents) == 0 {
		p.Agents = nil
	}
	p.Network = p.Network.WithDefaults()
	*s = State(p)
	return nil
}

// MarshalJSON renders overlays as [] when there is none.
func (a AgentInfo) MarshalJSON() ([]byte, error) {
	type plain AgentInfo
	if a.Overlays == nil {
		a.Overlays = []AgentOverlayInfo{}
	}
	return json.Marshal(plain(a))
}

// UnmarshalJSON decodes without validation, normalising an empty overlays
// array to nil.
func (a *AgentInfo) UnmarshalJSON(data []byte) error {
	type plain AgentInfo
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if len(p.Overlays) == 0 {
		p.Overlays = nil
	}
	*a = AgentInfo(p)
	return nil
}

// UnmarshalJSON decodes without validation; an absent "info" still comes
// out enabled, as DC/OS's default says.
func (o *AgentOverlayInfo) UnmarshalJSON(data []byte) error {
	type plain AgentOverlayInfo
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if p.Info.Enabled == nil {
		p.Info.Enabled = boolPtr(true)
	}
	*o = AgentOverlayInfo(p)
	return nil
}

// DecodeState decodes the body of GET /overlay-master/state (or of POST
// /overlay-master/agents/delete). Unknown keys are ignored; nothing is
// validated.
func DecodeState(data []byte) (State, error) {
	var s State
	if isNull(data) {
		return s, errors.New("decode overlay master state: body is empty or null")
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return State{}, fmt.Errorf("decode overlay master state: %w", err)
	}
	return s, nil
}

// DecodeAgentInfo decodes the body of GET /overlay-agent/overlay. Unknown
// keys are ignored; nothing is validated.
func DecodeAgentInfo(data []byte) (AgentInfo, error) {
	var a AgentInfo
	if isNull(data) {
		return a, errors.New("decode overlay agent info: body is empty or null")
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return AgentInfo{}, fmt.Errorf("decode overlay agent info: %w", err)
	}
	return a, nil
}

// Addr returns the agent's IP address, without the port early versions
// appended ("10.0.3.204:5051").
func (a AgentInfo) Addr() (netip.Addr, error) {
	if ip, err := netip.ParseAddr(a.IP); err == nil {
		return ip, nil
	}
	ap, err := netip.ParseAddrPort(a.IP)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("agent ip %q is not an IP address: %w", a.IP, err)
	}
	return ap.Addr(), nil
}

// Agent returns the agent whose IP is ip.
func (s State) Agent(ip string) (AgentInfo, bool) {
	for _, a := range s.Agents {
		if a.IP == ip {
			return a, true
		}
	}
	return AgentInfo{}, false
}

// SubnetPrefix returns the parsed agent IPv4 subnet, or the zero Prefix.
func (o AgentOverlayInfo) SubnetPrefix() netip.Prefix { return parsedPrefix(o.Subnet, false) }

// Subnet6Prefix returns the parsed agent IPv6 subnet, or the zero Prefix.
func (o AgentOverlayInfo) Subnet6Prefix() netip.Prefix { return parsedPrefix(o.Subnet6, true) }

// BuildAgentOverlay builds the allocation of overlay ov on one agent as the
// DC/OS master does:
//   - backend: vni, vtep_name and vtep_mtu from cfg; vtep_ip(6) = vtep4
//     (vtep6) with the length of cfg's vtep_subnet(6), omitted when the
//     address is the zero Addr; vtep_mac = mac, or MAC(cfg.OUI(), vtep4)
//     when mac is nil;
//   - subnet, subnet6: the agent subnets (zero Prefix: none);
//   - when mesosBridge or dockerBridge is set, each subnet is split with
//     Halves: m-<name> gets the lower halves if mesosBridge, d-<name> the
//     upper ones if dockerBridge, in ip (IPv4) and ip6 (IPv6). A master
//     (both false) gets its subnet and no bridge.
//
// State is left nil: it appears when the agent reports.
func BuildAgentOverlay(cfg NetworkConfig, ov OverlayInfo, vtep4, vtep6 netip.Addr, mac net.HardwareAddr,
	subnet4, subnet6 netip.Prefix, mesosBridge, dockerBridge bool) AgentOverlayInfo {
	ov.Enabled = boolPtr(ov.IsEnabled())
	if mac == nil {
		mac = MAC(cfg.OUI(), vtep4)
	}
	vx := VXLANInfo{
		VNI:      cfg.VNIOrDefault(),
		VTEPMAC:  mac.String(),
		VTEPMTU:  cfg.VTEPMTU,
		VTEPName: cfg.VTEPNameOrDefault(),
	}
	if vtep4.IsValid() {
		vx.VTEPIP = netip.PrefixFrom(vtep4, prefixBits(cfg.VTEPPrefix(), vtep4)).String()
	}
	if vtep6.IsValid() {
		vx.VTEPIP6 = netip.PrefixFrom(vtep6, prefixBits(cfg.VTEPPrefix6(), vtep6)).String()
	}
	out := AgentOverlayInfo{Backend: &BackendInfo{VXLAN: vx}, Info: ov}
	if subnet4.IsValid() {
		subnet4 = subnet4.Masked()
		out.Subnet = subnet4.String()
	}
	if subnet6.IsValid() {
		subnet6 = subnet6.Masked()
		out.Subnet6 = subnet6.String()
	}
	if !subnet4.IsValid() && !subnet6.IsValid() {
		return out
	}
	m4, d4 := Halves(subnet4)
	m6, d6 := Halves(subnet6)
	if mesosBridge {
		out.MesosBridge = &BridgeInfo{Name: "m-" + ov.Name, IP: prefixString(m4), IP6: prefixString(m6)}
	}
	if dockerBridge {
		out.DockerBridge = &BridgeInfo{Name: "d-" + ov.Name, IP: prefixString(d4), IP6: prefixString(d6)}
	}
	return out
}

// prefixBits returns the length of space, or the full length of a when
// space is invalid or does not hold a.
func prefixBits(space netip.Prefix, a netip.Addr) int {
	if space.IsValid() && space.Contains(a) {
		return space.Bits()
	}
	return a.BitLen()
}

// prefixString returns p in CIDR form, "" for the zero Prefix.
func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// Reservations are the addresses and subnets a State has allocated, as
// used sets for VTEPAddr, VTEPAddr6, OverlaySubnet and OverlaySubnet6. The
// values are the agents' IPs.
type Reservations struct {
	// VTEP and VTEP6 map VTEP addresses to agents.
	VTEP, VTEP6 map[netip.Addr]string
	// Subnets and Subnets6 map overlay name → agent subnet → agent.
	Subnets, Subnets6 map[string]map[netip.Prefix]string
}

// Reservations collects what the state has allocated, as the DC/OS master
// does when it recovers from its log. An agent's VTEP addresses are taken
// from all its overlays (they share one backend; DC/OS once reserved only
// the first overlay's IPv6, dcos/dcos-mesos-modules#123). The same VTEP
// address or subnet held by two agents, an agent listed twice, or an
// unparsable value is an error: DC/OS demotes the master on such a state.
func (s State) Reservations() (Reservations, error) {
	r := Reservations{
		VTEP: map[netip.Addr]string{}, VTEP6: map[netip.Addr]string{},
		Subnets: map[string]map[netip.Prefix]string{}, Subnets6: map[string]map[netip.Prefix]string{},
	}
	seen := map[string]bool{}
	for i, a := range s.Agents {
		path := index("agents", i)
		if seen[a.IP] {
			return Reservations{}, fieldErrorf(join(path, "ip"), "agent %s is listed twice", a.IP)
		}
		seen[a.IP] = true
		for j, o := range a.Overlays {
			op := index(join(path, "overlays"), j)
			if o.Backend != nil {
				vx := o.Backend.VXLAN
				if err := reserveAddr(r.VTEP, vx.VTEPIP, false, a.IP, join(op, "backend.vxlan.vtep_ip")); err != nil {
					return Reservations{}, err
				}
				if err := reserveAddr(r.VTEP6, vx.VTEPIP6, true, a.IP, join(op, "backend.vxlan.vtep_ip6")); err != nil {
					return Reservations{}, err
				}
			}
			if err := reservePrefix(r.Subnets, o.Info.Name, o.Subnet, false, a.IP, join(op, "subnet")); err != nil {
				return Reservations{}, err
			}
			if err := reservePrefix(r.Subnets6, o.Info.Name, o.Subnet6, true, a.IP, join(op, "subnet6")); err != nil {
				return Reservations{}, err
			}
		}
	}
	return r, nil
}

// reserveAddr records the address of a CIDR-form VTEP address for agent.
func reserveAddr(m map[netip.Addr]string, cidr string, v6 bool, agent, field string) error {
	if cidr == "" {
		return nil
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || p.Addr().Is6() != v6 || p.Addr().Is4In6() {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q is not an %s address in CIDR form", cidr, family(v6)), Err: err}
	}
	if owner, ok := m[p.Addr()]; ok && owner != agent {
		return fieldErrorf(field, "%s is also the VTEP address of agent %s", p.Addr(), owner)
	}
	m[p.Addr()] = agent
	return nil
}

// reservePrefix records an agent subnet of overlay name for agent.
func reservePrefix(m map[string]map[netip.Prefix]string, name, cidr string, v6 bool, agent, field string) error {
	if cidr == "" {
		return nil
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || p.Addr().Is6() != v6 || p.Addr().Is4In6() || p.Masked() != p {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q is not an %s subnet", cidr, family(v6)), Err: err}
	}
	if m[name] == nil {
		m[name] = map[netip.Prefix]string{}
	}
	if owner, ok := m[name][p]; ok {
		return fieldErrorf(field, "%s of overlay %s is also allocated to agent %s", p, name, owner)
	}
	m[name][p] = agent
	return nil
}

// family names an address family.
func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// String returns the status name.
func (s OverlayStatus) String() string { return string(s) }

// Number returns the protobuf enum number of s, or -1 for an unknown name.
func (s OverlayStatus) Number() int {
	for i, v := range statusByNumber {
		if v == s {
			return i
		}
	}
	return -1
}
