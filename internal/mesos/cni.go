package mesos

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// CNIResult is a CNI plugin's ADD output as the Mesos network/cni
// isolator sees it: spec.proto's NetworkInfo, the CNI 0.1.0/0.2.0 result
// shape. Anything else in the output (cniVersion, interfaces, ips, a
// top-level routes list) is ignored, so a 0.3.0+ result parses but has no
// address.
type CNIResult struct {
	IP4 *IPConfig
	IP6 *IPConfig
	DNS *DNS
}

// IPConfig is spec.proto's IPConfig: IP is required and, for ip4, must be
// a CIDR ("10.10.0.36/16").
type IPConfig struct {
	IP      string
	Gateway string
	Routes  []Route
}

// Route is spec.proto's Route; Dst is required.
type Route struct {
	Dst string
	GW  string
}

// DNS is spec.proto's DNS, also used by --default_container_dns.
type DNS struct {
	Nameservers []string
	Domain      string
	Search      []string
	Options     []string
}

// NetworkConfig is what the isolator parses out of each file of the CNI
// config directory (spec.proto NetworkConfig); the file keeps its other
// keys.
type NetworkConfig struct {
	Name string
	Type string
	IPAM *IPAMConfig
	DNS  *DNS
}

// IPAMConfig is NetworkConfig.IPAM: Type is required when ipam is present.
type IPAMConfig struct {
	Type   string
	Routes []Route
}

// ParseCNIResult parses a plugin's stdout exactly like the isolator's
// spec::parseNetworkInfo. Errors read "JSON parse failed: …" or
// "Protobuf parse failed: …" (for example "Protobuf parse failed: Missing
// required fields: ip4.ip").
func ParseCNIResult(data []byte) (*CNIResult, error) {
	obj, err := DecodeObject(data)
	if err != nil {
		return nil, errors.New("JSON parse failed: " + err.Error())
	}
	m, err := pbParse(cniNetworkInfoDesc, obj, pbOptions{})
	if err != nil {
		return nil, errors.New("Protobuf parse failed: " + err.Error())
	}
	return &CNIResult{
		IP4: ipConfigFromPB(m.msg("ip4")),
		IP6: ipConfigFromPB(m.msg("ip6")),
		DNS: dnsFromPB(m.msg("dns")),
	}, nil
}

// ParseNetworkConfig parses a CNI network configuration file like the
// isolator's spec::parseNetworkConfig: name and type are required, ipam
// is optional but needs a type when present, other keys are ignored. A
// conflist (no top-level type) fails.
func ParseNetworkConfig(data []byte) (*NetworkConfig, error) {
	obj, err := DecodeObject(data)
	if err != nil {
		return nil, errors.New("JSON parse failed: " + err.Error())
	}
	m, err := pbParse(networkConfigDesc, obj, pbOptions{})
	if err != nil {
		return nil, errors.New("Protobuf parse failed: " + err.Error())
	}
	nc := &NetworkConfig{Name: m.str("name"), Type: m.str("type"), DNS: dnsFromPB(m.msg("dns"))}
	if ipam := m.msg("ipam"); ipam != nil {
		nc.IPAM = &IPAMConfig{Type: ipam.str("type"), Routes: routesFromPB(ipam.msgs("routes"))}
	}
	return nc, nil
}

func ipConfigFromPB(m *pbMsg) *IPConfig {
	if m == nil {
		return nil
	}
	return &IPConfig{IP: m.str("ip"), Gateway: m.str("gateway"), Routes: routesFromPB(m.msgs("routes"))}
}

func routesFromPB(ms []*pbMsg) []Route {
	var out []Route
	for _, r := range ms {
		out = append(out, Route{Dst: r.str("dst"), GW: r.str("gw")})
	}
	return out
}

func dnsFromPB(m *pbMsg) *DNS {
	if m == nil {
		return nil
	}
	return &DNS{
		Nameservers: m.strs("nameservers"),
		Domain:      m.str("domain"),
		Search:      m.strs("search"),
		Options:     m.strs("options"),
	}
}

// IPAddresses returns the addresses the isolator reports for this result
// in ContainerStatus.network_infos[].ip_addresses: the ip4 address without
// its prefix length, then ip6 exactly as returned (prefix kept, a TODO in
// Mesos). A 0.3.0+ result yields none. An ip4.ip that is not an IPv4 CIDR
// fails with "Unable to parse the IP address <ip> for the container: …".
func (r *CNIResult) IPAddresses() ([]IPAddress, error) {
	if r == nil {
		return nil, nil
	}
	var out []IPAddress
	if r.IP4 != nil {
		addr, _, err := ParseIPv4Network(r.IP4.IP)
		if err != nil {
			return nil, fmt.Errorf("Unable to parse the IP address %s for the container: %w", r.IP4.IP, err)
		}
		out = append(out, IPAddress{Protocol: IPv4, IPAddress: addr.String()})
	}
	if r.IP6 != nil {
		out = append(out, IPAddress{Protocol: IPv6, IPAddress: r.IP6.IP})
	}
	return out, nil
}

// ParseIPv4Network parses "a.b.c.d/len" like stout's
// net::IP::Network::parse(value, AF_INET), with its error texts.
func ParseIPv4Network(s string) (netip.Addr, int, error) {
	tokens := strings.Split(s, "/")
	if len(tokens) != 2 {
		return netip.Addr{}, 0, fmt.Errorf("Unexpected number of '/' detected: %d", len(tokens))
	}
	addr, err := netip.ParseAddr(tokens[0])
	if err != nil || !addr.Is4() || addr.Zone() != "" {
		return netip.Addr{}, 0, fmt.Errorf("Failed to parse the IP address: Failed to parse IPv4: %s", tokens[0])
	}
	prefix, ok := numifyInt(tokens[1])
	if !ok {
		return netip.Addr{}, 0, errors.New("Subnet prefix is not a number")
	}
	if prefix < 0 {
		return netip.Addr{}, 0, errors.New("Subnet prefix is negative")
	}
	if prefix > 32 {
		return netip.Addr{}, 0, errors.New("IPv4 subnet prefix is larger than 32")
	}
	return addr, prefix, nil
}

// numifyInt is stout's numify<int>: boost::lexical_cast<int> (optional
// sign, decimal digits) with a fallback for 0x/-0x hexadecimal.
func numifyInt(s string) (int, bool) {
	body := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if body != "" && strings.Trim(body, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 32)
		return int(n), err == nil
	}
	neg := strings.HasPrefix(s, "-")
	h := strings.TrimPrefix(s, "-")
	if strings.HasPrefix(h, "0x") || strings.HasPrefix(h, "0X") {
		digits := h[2:]
		if digits == "" || strings.ContainsAny(digits, "+-") {
			return 0, false
		}
		n, err := strconv.ParseInt(digits, 16, 32)
		if err != nil {
			return 0, false
		}
		if neg {
			n = -n
		}
		return int(n), true
	}
	return 0, false
}

// Merge appends o's repeated fields to d and takes o's domain if set, like
// protobuf MergeFrom, which the isolator uses to combine the DNS of all
// networks of a container.
func (d *DNS) Merge(o DNS) {
	d.Nameservers = append(d.Nameservers, o.Nameservers...)
	if o.Domain != "" {
		d.Domain = o.Domain
	}
	d.Search = append(d.Search, o.Search...)
	d.Options = append(d.Options, o.Options...)
}

// ResolvConf renders d like the isolator's formatResolverConfig: domain,
// search, options, then one nameserver line each.
func (d DNS) ResolvConf() string {
	var b strings.Builder
	if d.Domain != "" {
		b.WriteString("domain " + d.Domain + "\n")
	}
	if len(d.Search) > 0 {
		b.WriteString("search")
		for _, s := range d.Search {
			b.WriteString(" " + s)
		}
		b.WriteString("\n")
	}
	if len(d.Options) > 0 {
		b.WriteString("options")
		for _, o := range d.Options {
			b.WriteString(" " + o)
		}
		b.WriteString("\n")
	}
	for _, ns := range d.Nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	return b.String()
}

// ContainerDNSInfo is the agent's --default_container_dns value
// (messages/flags.proto ContainerDNSInfo); only the Mesos entries matter
// to the network/cni isolator.
type ContainerDNSInfo struct {
	Mesos []ContainerDNSMesosInfo
}

// ContainerDNSMesosInfo is one ContainerDNSInfo.MesosInfo: NetworkMode is
// "HOST" or "CNI"; a CNI entry without NetworkName is the default for
// every CNI network not listed by name.
type ContainerDNSMesosInfo struct {
	NetworkMode string
	NetworkName string
	DNS         DNS
}

// ParseContainerDNSInfo parses a --default_container_dns JSON value with
// the stout protobuf rules.
func ParseContainerDNSInfo(data []byte) (*ContainerDNSInfo, error) {
	obj, err := DecodeObject(data)
	if err != nil {
		return nil, err
	}
	m, err := pbParse(containerDNSInfoDesc, obj, pbOptions{})
	if err != nil {
		return nil, err
	}
	out := &ContainerDNSInfo{}
	for _, e := range m.msgs("mesos") {
		info := ContainerDNSMesosInfo{NetworkMode: e.str("network_mode"), NetworkName: e.str("network_name")}
		if d := dnsFromPB(e.msg("dns")); d != nil {
			info.DNS = *d
		}
		out.Mesos = append(out.Mesos, info)
	}
	return out, nil
}

// CNIDefaults returns the per-network and the global DNS defaults for CNI
// networks, as the isolator derives them at start-up (a later entry for
// the same network replaces an earlier one).
func (c *ContainerDNSInfo) CNIDefaults() (perNetwork map[string]DNS, global *DNS) {
	perNetwork = map[string]DNS{}
	if c == nil {
		return perNetwork, nil
	}
	for _, e := range c.Mesos {
		if e.NetworkMode != "CNI" {
			continue
		}
		if e.NetworkName == "" {
			d := e.DNS
			global = &d
		} else {
			perNetwork[e.NetworkName] = e.DNS
		}
	}
	return perNetwork, global
}
