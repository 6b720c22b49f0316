package overlay

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Defaults and limits of the network configuration.
const (
	// DefaultVTEPName is the VXLAN device dcos-net creates on every node.
	DefaultVTEPName = "vtep1024"
	// DefaultVNI is the VXLAN network identifier DC/OS hard-codes.
	DefaultVNI = 1024
	// DefaultVXLANPort is the UDP port DC/OS uses for VXLAN (not 4789).
	DefaultVXLANPort = 64000
	// MaxVNI is the largest 24-bit VXLAN network identifier.
	MaxVNI = 1<<24 - 1
	// MinMTU is the smallest vtep_mtu and overlay_mtu accepted, the DC/OS
	// installer's lower bound.
	MinMTU = 552
	// MaxMTU is the largest MTU accepted.
	MaxMTU = 65535
	// MaxOverlayNameLen is the longest overlay name: a Linux device name
	// holds 15 bytes, and the bridges are named m-<name> and d-<name>.
	MaxOverlayNameLen = 13
	// MaxIfNameLen is the longest Linux network device name (IFNAMSIZ-1).
	MaxIfNameLen = 15
	// MaxPrefix is the longest per-agent IPv4 prefix. The agent subnet is
	// split into a Mesos and a Docker half, and host-local (the IPAM of the
	// Mesos half) refuses a /31 range as "too small to allocate from"; a /30
	// half holds the gateway and one container.
	MaxPrefix = 29
	// MaxPrefix6 is the longest per-agent IPv6 prefix, for the same reason:
	// host-local refuses a /127, a /126 half holds the gateway and two
	// containers.
	MaxPrefix6 = 125
	// MinVTEPBits is the shortest vtep_subnet prefix: VTEP MACs carry the
	// low 24 bits of the VTEP address, which are unique only within a /8.
	MinVTEPBits = 8
)

// ReservedNames are the network names Mesos and Docker keep for themselves;
// no overlay may use them.
var ReservedNames = []string{"host", "bridge", "default", "none"}

// NetworkConfig is the overlay network configuration: the "network" object
// of the DC/OS master module config (/opt/mesosphere/etc/overlay/config/
// master.json), the same JSON DC/OS serves back in /overlay-master/state.
//
// VNI, VTEPName and VXLANPort are Weft extensions: DC/OS hard-codes them
// (1024, "vtep1024", 64000) and its parser ignores the keys. They are
// rendered only when they differ from those defaults, so a config that
// keeps them renders exactly as DC/OS's does.
//
// The string fields hold the JSON text. ParseNetworkConfig canonicalises
// the subnets (lower case, compressed IPv6) but keeps vtep_mac_oui as
// written, as DC/OS echoes it; the accessors (VTEPPrefix, OUI, ...) return
// the parsed values.
type NetworkConfig struct {
	// Overlays are the virtual networks; at least one.
	Overlays []OverlayInfo `json:"overlays"`
	// VNI is the VXLAN network identifier (Weft extension, default 1024).
	VNI int `json:"vni,omitempty"`
	// VTEPMACOUI is the OUI of VTEP MACs, "70:B3:D5:00:00:00": six bytes,
	// the low three zero.
	VTEPMACOUI string `json:"vtep_mac_oui"`
	// VTEPMTU is the VXLAN device's MTU; 0 leaves the kernel's.
	VTEPMTU int `json:"vtep_mtu,omitempty"`
	// VTEPName is the VXLAN device's name (Weft extension, default
	// "vtep1024").
	VTEPName string `json:"vtep_name,omitempty"`
	// VTEPSubnet is the IPv4 space of VTEP addresses, "44.128.0.0/20".
	VTEPSubnet string `json:"vtep_subnet"`
	// VTEPSubnet6 is the optional IPv6 space of VTEP addresses.
	VTEPSubnet6 string `json:"vtep_subnet6,omitempty"`
	// VXLANPort is the VXLAN UDP port (Weft extension, default 64000).
	VXLANPort int `json:"vxlan_port,omitempty"`
}

// OverlayInfo is one virtual network: its address spaces and the prefix
// length of the subnet each agent gets from them.
type OverlayInfo struct {
	// Enabled is nil when the key is absent, which means true; it is
	// always rendered ("enabled":true when nil), as DC/OS renders it.
	// ParseNetworkConfig and decoding set it.
	Enabled *bool `json:"enabled"`
	// Name is the network's name: the CNI network and Docker network
	// name, and the m-<name>/d-<name> bridge suffix.
	Name string `json:"name"`
	// Prefix is the length of each agent's IPv4 subnet, e.g. 24.
	Prefix int `json:"prefix,omitempty"`
	// Prefix6 is the length of each agent's IPv6 subnet, e.g. 80.
	Prefix6 int `json:"prefix6,omitempty"`
	// Subnet is the IPv4 space, e.g. "9.0.0.0/8".
	Subnet string `json:"subnet,omitempty"`
	// Subnet6 is the IPv6 space, e.g. "fd01:b::/64".
	Subnet6 string `json:"subnet6,omitempty"`
}

// boolPtr returns a pointer to a copy of b.
func boolPtr(b bool) *bool { return &b }

// IsEnabled reports whether the overlay is enabled (the default).
func (o OverlayInfo) IsEnabled() bool { return o.Enabled == nil || *o.Enabled }

// SubnetPrefix returns the parsed, masked IPv4 space, or the zero Prefix
// when Subnet is unset or invalid.
func (o OverlayInfo) SubnetPrefix() netip.Prefix { return parsedPrefix(o.Subnet, false) }

// Subnet6Prefix returns the parsed, masked IPv6 space, or the zero Prefix
// when Subnet6 is unset or invalid.
func (o OverlayInfo) Subnet6Prefix() netip.Prefix { return parsedPrefix(o.Subnet6, true) }

// overlayInfoJSON is OverlayInfo as rendered: enabled always present.
type overlayInfoJSON struct {
	Enabled bool   `json:"enabled"`
	Name    string `json:"name"`
	Prefix  int    `json:"prefix,omitempty"`
	Prefix6 int    `json:"prefix6,omitempty"`
	Subnet  string `json:"subnet,omitempty"`
	Subnet6 string `json:"subnet6,omitempty"`
}

// MarshalJSON renders the overlay with keys in alphabetical order and
// "enabled" always present.
func (o OverlayInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(overlayInfoJSON{
		Enabled: o.IsEnabled(), Name: o.Name, Prefix: o.Prefix, Prefix6: o.Prefix6,
		Subnet: o.Subnet, Subnet6: o.Subnet6,
	})
}

// UnmarshalJSON decodes without validation; an absent or null "enabled"
// becomes true.
func (o *OverlayInfo) UnmarshalJSON(data []byte) error {
	type plain OverlayInfo
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if p.Enabled == nil {
		p.Enabled = boolPtr(true)
	}
	*o = OverlayInfo(p)
	return nil
}

// DefaultDCOS returns the network DC/OS configures by default
// (dcos/dcos gen/calc.py), with the Weft defaults applied.
func DefaultDCOS() NetworkConfig {
	return NetworkConfig{
		VTEPSubnet:  "44.128.0.0/20",
		VTEPSubnet6: "fd01:a::/64",
		VTEPMACOUI:  "70:B3:D5:00:00:00",
		Overlays: []OverlayInfo{
			{Name: "dcos", Subnet: "9.0.0.0/8", Prefix: 24},
			{Name: "dcos6", Subnet6: "fd01:b::/64", Prefix6: 80},
		},
	}.WithDefaults()
}

// WithDefaults returns a copy with the defaults in place of zero values:
// VNI, VTEPName, VXLANPort, and Enabled of each overlay.
func (c NetworkConfig) WithDefaults() NetworkConfig {
	if c.VNI == 0 {
		c.VNI = DefaultVNI
	}
	if c.VTEPName == "" {
		c.VTEPName = DefaultVTEPName
	}
	if c.VXLANPort == 0 {
		c.VXLANPort = DefaultVXLANPort
	}
	if len(c.Overlays) == 0 {
		c.Overlays = nil
		return c
	}
	ovs := make([]OverlayInfo, len(c.Overlays))
	for i, o := range c.Overlays {
		o.Enabled = boolPtr(o.IsEnabled())
		ovs[i] = o
	}
	c.Overlays = ovs
	return c
}

// Enabled returns the enabled overlays, in configuration order.
func (c NetworkConfig) Enabled() []OverlayInfo {
	var out []OverlayInfo
	for _, o := range c.Overlays {
		if o.IsEnabled() {
			out = append(out, o)
		}
	}
	return out
}

// Overlay returns the overlay named name.
func (c NetworkConfig) Overlay(name string) (OverlayInfo, bool) {
	for _, o := range c.Overlays {
		if o.Name == name {
			return o, true
		}
	}
	return OverlayInfo{}, false
}

// VTEPPrefix returns the parsed, masked vtep_subnet, or the zero Prefix
// when it is unset or invalid.
func (c NetworkConfig) VTEPPrefix() netip.Prefix { return parsedPrefix(c.VTEPSubnet, false) }

// VTEPPrefix6 returns the parsed, masked vtep_subnet6, or the zero Prefix
// when it is unset or invalid.
func (c NetworkConfig) VTEPPrefix6() netip.Prefix { return parsedPrefix(c.VTEPSubnet6, true) }

// OUI returns the parsed vtep_mac_oui (six bytes), or nil when it is
// invalid.
func (c NetworkConfig) OUI() net.HardwareAddr {
	mac, err := parseOUI(c.VTEPMACOUI)
	if err != nil {
		return nil
	}
	return mac
}

// VNIOrDefault returns VNI, or DefaultVNI when it is zero.
func (c NetworkConfig) VNIOrDefault() int {
	if c.VNI == 0 {
		return DefaultVNI
	}
	return c.VNI
}

// VTEPNameOrDefault returns VTEPName, or DefaultVTEPName when it is empty.
func (c NetworkConfig) VTEPNameOrDefault() string {
	if c.VTEPName == "" {
		return DefaultVTEPName
	}
	return c.VTEPName
}

// parsedPrefix parses a subnet of the given family, masked; the zero
// Prefix when it is not one.
func parsedPrefix(s string, v6 bool) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Is4In6() || p.Addr().Is6() != v6 {
		return netip.Prefix{}
	}
	return p.Masked()
}

// networkConfigJSON is NetworkConfig as rendered.
type networkConfigJSON struct {
	Overlays    []OverlayInfo `json:"overlays"`
	VNI         int           `json:"vni,omitempty"`
	VTEPMACOUI  string        `json:"vtep_mac_oui"`
	VTEPMTU     int           `json:"vtep_mtu,omitempty"`
	VTEPName    string        `json:"vtep_name,omitempty"`
	VTEPSubnet  string        `json:"vtep_subnet"`
	VTEPSubnet6 string        `json:"vtep_subnet6,omitempty"`
	VXLANPort   int           `json:"vxlan_port,omitempty"`
}

// MarshalJSON renders the config with keys in alphabetical order, as
// DC/OS does. overlays is always present (an empty array when there is
// none); vni, vtep_name and vxlan_port are omitted when they hold the
// defaults.
func (c NetworkConfig) MarshalJSON() ([]byte, error) {
	j := networkConfigJSON(c)
	if j.Overlays == nil {
		j.Overlays = []OverlayInfo{}
	}
	if j.VNI == DefaultVNI {
		j.VNI = 0
	}
	if j.VTEPName == DefaultVTEPName {
		j.VTEPName = ""
	}
	if j.VXLANPort == DefaultVXLANPort {
		j.VXLANPort = 0
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes without validation (clients reading a master's
// state trust it) and applies the defaults. Use ParseNetworkConfig for a
// configuration file.
func (c *NetworkConfig) UnmarshalJSON(data []byte) error {
	var j networkConfigJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*c = NetworkConfig(j).WithDefaults()
	return nil
}

// ParseNetworkConfig parses and validates a network configuration: either a
// bare NetworkConfig object, or a DC/OS master module config file
// ({"replicated_log_dir":..., "zk":..., "network":{...}}), recognised by
// its "network" key; the other keys of such a file are ignored, as are
// unknown keys everywhere.
//
// The defaults are applied, then the rules of both the Mesos master module
// and the DC/OS installer are checked, plus Weft's (disjoint VTEP and
// overlay spaces, prefix lengths that leave each half usable). Subnets must
// be written in masked form (9.0.0.0/8, not 9.0.0.1/8): a value with host
// bits set is refused rather than silently changed. Valid subnets are
// rewritten in canonical form (fd01:b::/64 for FD01:B:0::/64).
//
// Errors are *FieldError naming the JSON path of the value, prefixed with
// "network." when the input was a master config file.
func ParseNetworkConfig(data []byte) (NetworkConfig, error) {
	top, err := decodeTop(data, "network config")
	if err != nil {
		return NetworkConfig{}, err
	}
	base, obj := "", top
	if raw, ok := top["network"]; ok {
		base = "network"
		if obj, err = decodeObject(raw, base); err != nil {
			return NetworkConfig{}, err
		}
		if obj == nil {
			return NetworkConfig{}, fieldErrorf(base, "is null; set the overlay network object {vtep_subnet, vtep_mac_oui, overlays}")
		}
	}
	c, err := decodeNetworkConfig(obj, base)
	if err != nil {
		return NetworkConfig{}, err
	}
	c = c.WithDefaults()
	if err := c.validate(base); err != nil {
		return NetworkConfig{}, err
	}
	return c.canonical(), nil
}

// decodeNetworkConfig reads the keys of a network object.
func decodeNetworkConfig(obj object, base string) (NetworkConfig, error) {
	var c NetworkConfig
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"vtep_subnet", &c.VTEPSubnet},
		{"vtep_subnet6", &c.VTEPSubnet6},
		{"vtep_mac_oui", &c.VTEPMACOUI},
	} {
		if _, err := obj.str(f.key, base, f.dst); err != nil {
			return c, err
		}
	}
	if ok, err := obj.str("vtep_name", base, &c.VTEPName); err != nil {
		return c, err
	} else if ok && c.VTEPName == "" {
		return c, fieldErrorf(join(base, "vtep_name"), "must not be empty; remove the key for the default %s", DefaultVTEPName)
	}
	// An explicit 0 is refused rather than taken for "unset".
	for _, f := range []struct {
		key  string
		dst  *int
		hint string
	}{
		{"vtep_mtu", &c.VTEPMTU, fmt.Sprintf("set %d-%d, or remove the key to keep the kernel's MTU", MinMTU, MaxMTU)},
		{"vni", &c.VNI, fmt.Sprintf("set 1-%d, or remove the key for the default %d", MaxVNI, DefaultVNI)},
		{"vxlan_port", &c.VXLANPort, fmt.Sprintf("set 1-65535, or remove the key for the default %d", DefaultVXLANPort)},
	} {
		if ok, err := obj.integer(f.key, base, f.dst); err != nil {
			return c, err
		} else if ok && *f.dst == 0 {
			return c, fieldErrorf(join(base, f.key), "0 is out of range; %s", f.hint)
		}
	}
	elems, err := obj.array("overlays", base)
	if err != nil {
		return c, err
	}
	for i, raw := range elems {
		path := index(join(base, "overlays"), i)
		o, err := decodeOverlayInfo(raw, path)
		if err != nil {
			return c, err
		}
		c.Overlays = append(c.Overlays, o)
	}
	return c, nil
}

// decodeOverlayInfo reads one element of overlays.
func decodeOverlayInfo(raw json.RawMessage, path string) (OverlayInfo, error) {
	var o OverlayInfo
	obj, err := decodeObject(raw, path)
	if err != nil {
		return o, err
	}
	if obj == nil {
		return o, fieldErrorf(path, "is null; each overlay must be an object such as {\"name\":\"dcos\",\"subnet\":\"9.0.0.0/8\",\"prefix\":24}")
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &o.Name}, {"subnet", &o.Subnet}, {"subnet6", &o.Subnet6}} {
		if _, err := obj.str(f.key, path, f.dst); err != nil {
			return o, err
		}
	}
	for _, f := range []struct {
		key string
		dst *int
	}{{"prefix", &o.Prefix}, {"prefix6", &o.Prefix6}} {
		if _, err := obj.integer(f.key, path, f.dst); err != nil {
			return o, err
		}
	}
	var enabled bool
	if ok, err := obj.boolean("enabled", path, &enabled); err != nil {
		return o, err
	} else if ok {
		o.Enabled = &enabled
	}
	return o, nil
}

// Validate checks the config as ParseNetworkConfig does, on the values as
// they are (call WithDefaults first for a config built in code with zero
// values meaning "default"). Errors are *FieldError.
func (c NetworkConfig) Validate() error { return c.validate("") }

// space is an address space of the config, for the overlap checks.
type space struct {
	field  string
	prefix netip.Prefix
}

func (c NetworkConfig) validate(base string) error {
	path := func(key string) string { return join(base, key) }
	var spaces []space

	// VTEP addresses.
	if c.VTEPSubnet == "" {
		return fieldErrorf(path("vtep_subnet"), "is required; set the IPv4 space of VTEP addresses, e.g. \"44.128.0.0/20\"")
	}
	vtep, err := parseSubnet(path("vtep_subnet"), c.VTEPSubnet, false, "44.128.0.0/20", "vtep_subnet6")
	if err != nil {
		return err
	}
	if vtep.Bits() < MinVTEPBits {
		return fieldErrorf(path("vtep_subnet"), "%s is shorter than /%d; VTEP MACs are derived from the low 24 bits of the VTEP address, so use a /%d or longer prefix", vtep, MinVTEPBits, MinVTEPBits)
	}
	if vtep.Bits() > 30 {
		return fieldErrorf(path("vtep_subnet"), "%s holds no VTEP address once its network and broadcast addresses are excluded; use a /30 or shorter prefix", vtep)
	}
	spaces = append(spaces, space{path("vtep_subnet"), vtep})

	if c.VTEPMACOUI == "" {
		return fieldErrorf(path("vtep_mac_oui"), "is required; set an OUI with its low three bytes zero, e.g. \"70:B3:D5:00:00:00\"")
	}
	if _, err := parseOUI(c.VTEPMACOUI); err != nil {
		err.Field = path("vtep_mac_oui")
		return err
	}

	if c.VTEPSubnet6 != "" {
		vtep6, err := parseSubnet(path("vtep_subnet6"), c.VTEPSubnet6, true, "fd01:a::/64", "vtep_subnet")
		if err != nil {
			return err
		}
		if vtep6.Bits() > 127 {
			return fieldErrorf(path("vtep_subnet6"), "%s holds no VTEP address once its subnet-router anycast address is excluded; use a /127 or shorter prefix", vtep6)
		}
		spaces = append(spaces, space{path("vtep_subnet6"), vtep6})
	}

	// The VXLAN device.
	if c.VTEPMTU != 0 && (c.VTEPMTU < MinMTU || c.VTEPMTU > MaxMTU) {
		return fieldErrorf(path("vtep_mtu"), "%d is out of range; set %d-%d, or remove the key to keep the kernel's MTU", c.VTEPMTU, MinMTU, MaxMTU)
	}
	if c.VNI < 1 || c.VNI > MaxVNI {
		return fieldErrorf(path("vni"), "%d is out of range; set 1-%d (default %d)", c.VNI, MaxVNI, DefaultVNI)
	}
	if c.VXLANPort < 1 || c.VXLANPort > 65535 {
		return fieldErrorf(path("vxlan_port"), "%d is not a UDP port; set 1-65535 (default %d)", c.VXLANPort, DefaultVXLANPort)
	}
	if msg := checkIfName(c.VTEPName, MaxIfNameLen); msg != "" {
		return fieldErrorf(path("vtep_name"), "%q %s", c.VTEPName, msg)
	}

	// Overlays.
	if len(c.Overlays) == 0 {
		return fieldErrorf(path("overlays"), "no overlay is configured; specify at least one overlay, e.g. {\"name\":\"dcos\",\"subnet\":\"9.0.0.0/8\",\"prefix\":24}")
	}
	names := make(map[string]int, len(c.Overlays))
	for i, o := range c.Overlays {
		op := index(path("overlays"), i)
		if err := validateName(o.Name, join(op, "name")); err != nil {
			return err
		}
		if j, dup := names[o.Name]; dup {
			return fieldErrorf(join(op, "name"), "%q is also the name of %s; overlay names must be unique", o.Name, index(path("overlays"), j))
		}
		names[o.Name] = i
		for _, bridge := range []string{"m-" + o.Name, "d-" + o.Name} {
			if c.VTEPName == bridge {
				return fieldErrorf(path("vtep_name"), "%q is the name of overlay %s's bridge; choose another device name", c.VTEPName, o.Name)
			}
		}
		if o.Subnet == "" && o.Subnet6 == "" {
			return fieldErrorf(join(op, "subnet"), "overlay %s has neither subnet nor subnet6; set an IPv4 subnet (e.g. \"9.0.0.0/8\" with prefix 24), an IPv6 subnet6 (e.g. \"fd01:b::/64\" with prefix6 80), or both", o.Name)
		}
		if o.Subnet != "" {
			p, err := parseSubnet(join(op, "subnet"), o.Subnet, false, "9.0.0.0/8", "subnet6")
			if err != nil {
				return err
			}
			if err := checkAgentPrefix(join(op, "prefix"), "subnet", o.Prefix, p, MaxPrefix, 24); err != nil {
				return err
			}
			spaces = append(spaces, space{join(op, "subnet"), p})
		} else if o.Prefix != 0 {
			return fieldErrorf(join(op, "prefix"), "is set but subnet is not; set subnet or remove prefix")
		}
		if o.Subnet6 != "" {
			p, err := parseSubnet(join(op, "subnet6"), o.Subnet6, true, "fd01:b::/64", "subnet")
			if err != nil {
				return err
			}
			if err := checkAgentPrefix(join(op, "prefix6"), "subnet6", o.Prefix6, p, MaxPrefix6, 80); err != nil {
				return err
			}
			spaces = append(spaces, space{join(op, "subnet6"), p})
		} else if o.Prefix6 != 0 {
			return fieldErrorf(join(op, "prefix6"), "is set but subnet6 is not; set subnet6 or remove prefix6")
		}
	}

	// Address spaces must be disjoint: routes and the NAT exception
	// (ipset nomatch) are per space. The VTEP spaces come first, so the
	// overlay's field is the one named.
	for j := 1; j < len(spaces); j++ {
		for i := 0; i < j; i++ {
			if spaces[i].prefix.Overlaps(spaces[j].prefix) {
				return fieldErrorf(spaces[j].field, "%s overlaps %s %s; the VTEP subnets and the overlays' address spaces must not overlap", spaces[j].prefix, spaces[i].field, spaces[i].prefix)
			}
		}
	}
	return nil
}

// checkAgentPrefix checks the per-agent prefix length bits of the overlay
// space p, whose key is subnetKey.
func checkAgentPrefix(field, subnetKey string, bits int, p netip.Prefix, maxBits, example int) error {
	switch {
	case p.Bits() > maxBits:
		return fieldErrorf(field[:strings.LastIndexByte(field, '.')+1]+subnetKey, "%s is too small to give each agent a subnet with a Mesos and a Docker half; use a /%d or shorter prefix", p, maxBits)
	case bits == 0:
		return fieldErrorf(field, "is required with %s; set the length of each agent's subnet, %d-%d (e.g. %d)", subnetKey, p.Bits(), maxBits, max(example, p.Bits()))
	case bits < p.Bits():
		return fieldErrorf(field, "/%d is shorter than the overlay's %s; set %d-%d", bits, p, p.Bits(), maxBits)
	case bits > maxBits:
		return fieldErrorf(field, "/%d is too long: each agent subnet is split into a Mesos and a Docker half, which must hold the gateway and at least one container; set %d-%d", bits, p.Bits(), maxBits)
	}
	return nil
}

// parseSubnet parses a CIDR of one family in masked form. example is a
// valid value for the message; other is the key of the other family.
func parseSubnet(field, s string, v6 bool, example, other string) (netip.Prefix, error) {
	fam, otherFam := "IPv4", "IPv6"
	if v6 {
		fam, otherFam = otherFam, fam
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, &FieldError{Field: field, Msg: fmt.Sprintf("%q is not a CIDR; write an %s subnet such as %s", s, fam, example), Err: err}
	}
	switch {
	case p.Addr().Is4In6():
		return netip.Prefix{}, fieldErrorf(field, "%s is an IPv4-mapped IPv6 subnet; write an %s subnet such as %s", s, fam, example)
	case p.Addr().Is6() != v6:
		return netip.Prefix{}, fieldErrorf(field, "%s is %s; write an %s subnet such as %s here (%s subnets go in %s)", s, otherFam, fam, example, otherFam, other)
	case p.Masked() != p:
		return netip.Prefix{}, fieldErrorf(field, "%s has host bits set; write %s", s, p.Masked())
	}
	return p, nil
}

// parseOUI parses an OUI written as six colon-separated hex bytes with the
// low three zero. The Field of the error is left empty.
func parseOUI(s string) (net.HardwareAddr, *FieldError) {
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return nil, fieldErrorf("", "%q is not six colon-separated bytes; write an OUI such as \"70:B3:D5:00:00:00\"", s)
	}
	mac := make(net.HardwareAddr, 6)
	for i, part := range parts {
		b, err := strconv.ParseUint(part, 16, 8)
		if err != nil || len(part) != 2 {
			return nil, fieldErrorf("", "%q is not six colon-separated bytes; write an OUI such as \"70:B3:D5:00:00:00\"", s)
		}
		mac[i] = byte(b)
	}
	if mac[3] != 0 || mac[4] != 0 || mac[5] != 0 {
		return nil, fieldErrorf("", "%q sets the low three bytes, which come from each VTEP's address; write %02X:%02X:%02X:00:00:00", s, mac[0], mac[1], mac[2])
	}
	if mac[0]&1 != 0 {
		return nil, fieldErrorf("", "%q is a multicast OUI (lowest bit of the first byte set), which Linux refuses as a device address; use a unicast OUI such as \"70:B3:D5:00:00:00\"", s)
	}
	return mac, nil
}

// validateName checks an overlay name.
func validateName(name, field string) error {
	if name == "" {
		return fieldErrorf(field, "is required; name the overlay, e.g. \"dcos\"")
	}
	if msg := checkIfName(name, MaxOverlayNameLen); msg != "" {
		if len(name) > MaxOverlayNameLen {
			msg += " (the bridges m-<name> and d-<name> must fit the 15-byte Linux device name)"
		}
		return fieldErrorf(field, "%q %s", name, msg)
	}
	for _, r := range ReservedNames {
		if name == r {
			return fieldErrorf(field, "%q is reserved by Mesos and Docker (%s); choose another name", name, strings.Join(ReservedNames, ", "))
		}
	}
	return nil
}

// checkIfName returns what is wrong with a device or network name, or "".
// Names start with a letter or digit and hold letters, digits, '-', '_'
// and '.': valid as a Linux device name, a CNI network name and a Docker
// network name.
func checkIfName(name string, maxLen int) string {
	if name == "" {
		return "is empty; set a name"
	}
	if len(name) > maxLen {
		return fmt.Sprintf("is %d bytes long; use at most %d", len(name), maxLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return "must start with a letter or a digit"
		}
		if !alnum && c != '-' && c != '_' && c != '.' {
			return "may hold only letters, digits, '-', '_' and '.'"
		}
	}
	return ""
}

// canonical rewrites the subnets of a validated config in canonical form.
func (c NetworkConfig) canonical() NetworkConfig {
	c.VTEPSubnet = c.VTEPPrefix().String()
	if c.VTEPSubnet6 != "" {
		c.VTEPSubnet6 = c.VTEPPrefix6().String()
	}
	for i := range c.Overlays {
		o := &c.Overlays[i]
		if o.Subnet != "" {
			o.Subnet = o.SubnetPrefix().String()
		}
		if o.Subnet6 != "" {
			o.Subnet6 = o.Subnet6Prefix().String()
		}
	}
	return c
}
