package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// MesosArgsKey is the key of the config's "args" object under which the
// Mesos network/cni isolator puts {"network_info": <NetworkInfo>}. Mesos
// never sets CNI_ARGS.
const MesosArgsKey = "org.apache.mesos"

// NetworkInfoPath is the JSON path of the Mesos NetworkInfo in the config;
// errors about it name fields below this path.
const NetworkInfoPath = "args." + MesosArgsKey + ".network_info"

// Label keys of a NetworkInfo that select what Weft attaches the container
// to. They are the Contrail Mesos labels (Marathon network labels); every
// label is also kept on the port.
const (
	// LabelNetworks names the network: a short name (resolved in the
	// project), an fq_name domain:project:network, or a uuid.
	LabelNetworks = "networks"
	// LabelProject is the project short names resolve in.
	LabelProject = "project-name"
	// LabelDomain is the domain of LabelProject.
	LabelDomain = "domain-name"
	// LabelSubnets is a comma-separated list of CIDRs of the network to
	// allocate from.
	LabelSubnets = "network-subnets"
	// LabelSecurityGroups is a comma-separated list of security group
	// fq_names to attach to the port.
	LabelSecurityGroups = "security-groups"
)

// Protocols of NetworkInfo.IPAddress (the protobuf enum names).
const (
	ProtocolIPv4 = "IPv4"
	ProtocolIPv6 = "IPv6"
)

// NetworkInfo is the Mesos NetworkInfo protobuf as the isolator renders it
// into the config's args (mesos.proto, NetworkInfo).
type NetworkInfo struct {
	// Name is the CNI network name.
	Name string `json:"name,omitempty"`
	// IPAddresses asks for addresses: one per entry, the given one when
	// IPAddress is set.
	IPAddresses []IPAddress `json:"ip_addresses,omitempty"`
	// Labels are the network labels, in order; on the wire they are
	// {"labels":[{"key","value"}]}.
	Labels []Label `json:"-"`
	// Groups are the network groups (not used by Weft).
	Groups []string `json:"groups,omitempty"`
	// PortMappings are host port mappings (not used by Weft; a wrapping
	// mesos-cni-port-mapper programs them).
	PortMappings []PortMapping `json:"port_mappings,omitempty"`

	// labelsPath is the JSON path of the label list, for error messages.
	labelsPath string
	// addrsPath is the JSON path of ip_addresses.
	addrsPath string
}

// IPAddress is NetworkInfo.IPAddress.
type IPAddress struct {
	// Protocol is ProtocolIPv4 or ProtocolIPv6; a missing protocol is IPv4
	// (the protobuf default), or the family of IPAddress when that is set.
	Protocol string `json:"protocol"`
	// IPAddress is a bare address (no prefix length), or empty for any.
	IPAddress string `json:"ip_address,omitempty"`
}

// Label is one mesos.Label.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// PortMapping is NetworkInfo.PortMapping.
type PortMapping struct {
	HostPort      uint32 `json:"host_port"`
	ContainerPort uint32 `json:"container_port"`
	Protocol      string `json:"protocol,omitempty"`
}

// Selection is what a NetworkInfo (and the standard args.cni) asks of Weft,
// validated: the AttachRequest fields that come from the container rather
// than from the node's configuration.
type Selection struct {
	// Network is the networks label, trimmed; empty when absent.
	Network string
	// Domain and Project are the domain-name and project-name labels;
	// empty when absent.
	Domain  string
	Project string
	// Subnets are the network-subnets CIDRs in canonical form.
	Subnets []string
	// SecurityGroups are the security-groups fq_names.
	SecurityGroups []string
	// IPs are explicit addresses asked for, in canonical form.
	IPs []string
	// Families has "ipv4" or "ipv6" for each address asked for without an
	// explicit address.
	Families []string
	// Labels are all labels; a later duplicate key wins.
	Labels map[string]string
}

// ParseNetworkInfo parses and validates the JSON of a NetworkInfo as Mesos
// renders it (the value of args["org.apache.mesos"].network_info). Errors
// are *FieldError naming the field below NetworkInfoPath. Unknown keys are
// ignored.
func ParseNetworkInfo(data []byte) (*NetworkInfo, error) {
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, &FieldError{Field: NetworkInfoPath, Msg: "is not valid JSON", Err: err}
	}
	ni, err := parseNetworkInfo(raw, NetworkInfoPath)
	if err != nil {
		return nil, err
	}
	if ni == nil {
		return &NetworkInfo{}, nil
	}
	if _, err := ni.Selection(); err != nil {
		return nil, err
	}
	return ni, nil
}

// parseNetworkInfo decodes a NetworkInfo object at path; null gives nil.
func parseNetworkInfo(raw json.RawMessage, path string) (*NetworkInfo, error) {
	m, err := decodeObject(raw, path)
	if err != nil || m == nil {
		return nil, err
	}
	ni := &NetworkInfo{addrsPath: joinPath(path, "ip_addresses")}
	if ni.Name, err = decodeString(m["name"], joinPath(path, "name")); err != nil {
		return nil, err
	}
	if ni.IPAddresses, err = parseIPAddresses(m["ip_addresses"], ni.addrsPath); err != nil {
		return nil, err
	}
	if ni.Labels, ni.labelsPath, err = parseLabels(m["labels"], joinPath(path, "labels")); err != nil {
		return nil, err
	}
	if ni.Groups, err = decodeStringList(m["groups"], joinPath(path, "groups")); err != nil {
		return nil, err
	}
	if ni.PortMappings, err = parsePortMappings(m["port_mappings"], joinPath(path, "port_mappings")); err != nil {
		return nil, err
	}
	return ni, nil
}

// parseIPAddresses decodes and validates NetworkInfo.ip_addresses.
func parseIPAddresses(raw json.RawMessage, path string) ([]IPAddress, error) {
	elems, err := decodeArray(raw, path)
	if err != nil {
		return nil, err
	}
	var out []IPAddress
	for i, e := range elems {
		p := indexPath(path, i)
		m, err := decodeObject(e, p)
		if err != nil {
			return nil, err
		}
		proto, err := parseProtocol(m["protocol"], joinPath(p, "protocol"))
		if err != nil {
			return nil, err
		}
		addrPath := joinPath(p, "ip_address")
		text, err := decodeString(m["ip_address"], addrPath)
		if err != nil {
			return nil, err
		}
		text = strings.TrimSpace(text)
		if text != "" {
			addr, err := parseAddr(text, addrPath)
			if err != nil {
				return nil, err
			}
			family := ProtocolIPv4
			if addr.Is6() {
				family = ProtocolIPv6
			}
			switch {
			case proto == "":
				proto = family
			case proto != family:
				return nil, fieldErrorf(addrPath, "%s is an %s address but protocol is %s", text, family, proto)
			}
			text = addr.String()
		}
		if proto == "" {
			proto = ProtocolIPv4
		}
		out = append(out, IPAddress{Protocol: proto, IPAddress: text})
	}
	return out, nil
}

// parseProtocol decodes an IPAddress.protocol: the enum name, in any case,
// or its number (1 IPv4, 2 IPv6). Missing gives "".
func parseProtocol(raw json.RawMessage, path string) (string, error) {
	if kindOf(raw) == kindNumber {
		n, _, err := decodeInt(raw, path, false)
		if err != nil {
			return "", err
		}
		switch n {
		case 1:
			return ProtocolIPv4, nil
		case 2:
			return ProtocolIPv6, nil
		}
		return "", fieldErrorf(path, "must be IPv4 or IPv6, not %d", n)
	}
	s, err := decodeString(raw, path)
	if err != nil {
		return "", err
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return "", nil
	case "ipv4":
		return ProtocolIPv4, nil
	case "ipv6":
		return ProtocolIPv6, nil
	}
	return "", fieldErrorf(path, "must be IPv4 or IPv6, not %q", s)
}

// parseAddr parses a bare IP address (no prefix, no zone).
func parseAddr(text, path string) (netip.Addr, error) {
	if strings.Contains(text, "/") {
		return netip.Addr{}, fieldErrorf(path, "%q must be a bare address without a prefix length", text)
	}
	addr, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, &FieldError{Field: path, Msg: fmt.Sprintf("%q is not an IP address", text), Err: err}
	}
	if addr.Zone() != "" {
		return netip.Addr{}, fieldErrorf(path, "%q must not have a zone", text)
	}
	return addr.Unmap(), nil
}

// parseLabels decodes mesos.Labels: {"labels":[{"key","value"}]} as in a
// NetworkInfo, or the bare array that /state documents use. It returns the
// path of the list for error messages.
func parseLabels(raw json.RawMessage, path string) ([]Label, string, error) {
	listRaw, listPath := raw, path
	if kindOf(raw) != kindArray {
		m, err := decodeObject(raw, path)
		if err != nil {
			return nil, "", fieldErrorf(path, "must be an object {\"labels\":[...]}, not %s", kindOf(raw))
		}
		listRaw, listPath = m["labels"], joinPath(path, "labels")
	}
	elems, err := decodeArray(listRaw, listPath)
	if err != nil {
		return nil, "", err
	}
	var out []Label
	for i, e := range elems {
		p := indexPath(listPath, i)
		m, err := decodeObject(e, p)
		if err != nil {
			return nil, "", err
		}
		var l Label
		if l.Key, err = decodeString(m["key"], joinPath(p, "key")); err != nil {
			return nil, "", err
		}
		if l.Value, err = decodeString(m["value"], joinPath(p, "value")); err != nil {
			return nil, "", err
		}
		out = append(out, l)
	}
	return out, listPath, nil
}

// parsePortMappings decodes NetworkInfo.port_mappings.
func parsePortMappings(raw json.RawMessage, path string) ([]PortMapping, error) {
	elems, err := decodeArray(raw, path)
	if err != nil {
		return nil, err
	}
	var out []PortMapping
	for i, e := range elems {
		p := indexPath(path, i)
		m, err := decodeObject(e, p)
		if err != nil {
			return nil, err
		}
		var pm PortMapping
		for _, f := range []struct {
			key string
			dst *uint32
		}{{"host_port", &pm.HostPort}, {"container_port", &pm.ContainerPort}} {
			n, _, err := decodeInt(m[f.key], joinPath(p, f.key), false)
			if err != nil {
				return nil, err
			}
			if n < 0 || n > 65535 {
				return nil, fieldErrorf(joinPath(p, f.key), "%d is not a port number", n)
			}
			*f.dst = uint32(n)
		}
		if pm.Protocol, err = decodeString(m["protocol"], joinPath(p, "protocol")); err != nil {
			return nil, err
		}
		out = append(out, pm)
	}
	return out, nil
}

// MarshalJSON renders the NetworkInfo as Mesos does, labels wrapped in
// {"labels":[...]}.
func (ni NetworkInfo) MarshalJSON() ([]byte, error) {
	type plain NetworkInfo
	type labels struct {
		Labels []Label `json:"labels"`
	}
	out := struct {
		plain
		Labels *labels `json:"labels,omitempty"`
	}{plain: plain(ni)}
	if len(ni.Labels) > 0 {
		out.Labels = &labels{Labels: ni.Labels}
	}
	return json.Marshal(out)
}

// labelRef is a label with the JSON path of its element.
type labelRef struct {
	Label
	path string
}

// addrRef is an address request with the JSON path of its element.
type addrRef struct {
	IPAddress
	path string
}

// labelRefs returns the labels with their paths.
func (ni *NetworkInfo) labelRefs() []labelRef {
	base := ni.labelsPath
	if base == "" {
		base = NetworkInfoPath + ".labels.labels"
	}
	out := make([]labelRef, 0, len(ni.Labels))
	for i, l := range ni.Labels {
		out = append(out, labelRef{Label: l, path: indexPath(base, i)})
	}
	return out
}

// addrRefs returns the address requests with their paths.
func (ni *NetworkInfo) addrRefs() []addrRef {
	base := ni.addrsPath
	if base == "" {
		base = NetworkInfoPath + ".ip_addresses"
	}
	out := make([]addrRef, 0, len(ni.IPAddresses))
	for i, a := range ni.IPAddresses {
		out = append(out, addrRef{IPAddress: a, path: indexPath(base, i)})
	}
	return out
}

// Selection validates the labels and addresses and returns what they ask
// for.
func (ni *NetworkInfo) Selection() (Selection, error) {
	if ni == nil {
		return Selection{}, nil
	}
	return buildSelection(ni.labelRefs(), ni.addrRefs())
}

// buildSelection maps labels and address requests to a Selection. Later
// labels override earlier ones with the same key.
func buildSelection(labels []labelRef, addrs []addrRef) (Selection, error) {
	var sel Selection
	last := map[string]labelRef{}
	for _, l := range labels {
		if l.Key == "" {
			continue
		}
		if sel.Labels == nil {
			sel.Labels = map[string]string{}
		}
		sel.Labels[l.Key] = l.Value
		last[l.Key] = l
	}
	valuePath := func(l labelRef) string { return joinPath(l.path, "value") }

	if l, ok := last[LabelNetworks]; ok {
		// An empty value is no choice: the configured or default network.
		v := strings.TrimSpace(l.Value)
		if err := checkNetworkRef(v); v != "" && err != nil {
			return Selection{}, fieldErrorf(valuePath(l), "label %q: %v", LabelNetworks, err)
		}
		sel.Network = v
	}
	if l, ok := last[LabelDomain]; ok {
		v := strings.TrimSpace(l.Value)
		if strings.Contains(v, ":") || strings.ContainsAny(v, " \t,") {
			return Selection{}, fieldErrorf(valuePath(l), "label %q: %q must be a domain name, without ':'", LabelDomain, l.Value)
		}
		sel.Domain = v
	}
	if l, ok := last[LabelProject]; ok {
		v := strings.TrimSpace(l.Value)
		if strings.ContainsAny(v, " \t,") {
			return Selection{}, fieldErrorf(valuePath(l), "label %q: %q must be a project name", LabelProject, l.Value)
		}
		if dom, proj, ok := strings.Cut(v, ":"); ok {
			// domain:project in project-name: accept it when it agrees
			// with domain-name.
			if dom == "" || proj == "" || strings.Contains(proj, ":") {
				return Selection{}, fieldErrorf(valuePath(l), "label %q: %q must be a project name or domain:project", LabelProject, l.Value)
			}
			if sel.Domain != "" && sel.Domain != dom {
				return Selection{}, fieldErrorf(valuePath(l), "label %q: domain %q contradicts label %q=%q", LabelProject, dom, LabelDomain, sel.Domain)
			}
			sel.Domain, v = dom, proj
		}
		sel.Project = v
	}
	if l, ok := last[LabelSubnets]; ok {
		for item := range strings.SplitSeq(l.Value, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return Selection{}, &FieldError{Field: valuePath(l), Msg: fmt.Sprintf("label %q: %q is not a CIDR", LabelSubnets, item), Err: err}
			}
			if p.Addr().Zone() != "" {
				return Selection{}, fieldErrorf(valuePath(l), "label %q: %q must not have a zone", LabelSubnets, item)
			}
			if p.Masked() != p {
				return Selection{}, fieldErrorf(valuePath(l), "label %q: %q has host bits set (did you mean %s?)", LabelSubnets, item, p.Masked())
			}
			sel.Subnets = append(sel.Subnets, p.String())
		}
	}
	if l, ok := last[LabelSecurityGroups]; ok {
		for item := range strings.SplitSeq(l.Value, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if strings.ContainsAny(item, " \t") || strings.Contains(":"+item+":", "::") {
				return Selection{}, fieldErrorf(valuePath(l), "label %q: %q is not a security group fq_name (domain:project:name)", LabelSecurityGroups, item)
			}
			sel.SecurityGroups = append(sel.SecurityGroups, item)
		}
	}
	for _, a := range addrs {
		if a.IPAddress.IPAddress != "" {
			sel.IPs = append(sel.IPs, a.IPAddress.IPAddress)
			continue
		}
		switch a.Protocol {
		case ProtocolIPv6:
			sel.Families = append(sel.Families, "ipv6")
		case ProtocolIPv4, "":
			sel.Families = append(sel.Families, "ipv4")
		default:
			return Selection{}, fieldErrorf(joinPath(a.path, "protocol"), "must be IPv4 or IPv6, not %q", a.Protocol)
		}
	}
	return sel, nil
}

// checkNetworkRef validates a networks label value: a short name or uuid,
// or a three-part fq_name.
func checkNetworkRef(v string) error {
	switch {
	case strings.Contains(v, ","):
		return fmt.Errorf("%q names more than one network; one NetworkInfo attaches one interface", v)
	case strings.ContainsAny(v, " \t\n"):
		return fmt.Errorf("%q must not contain white space", v)
	case strings.Contains(v, ":"):
		parts := strings.Split(v, ":")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return fmt.Errorf("%q must be a network name or an fq_name domain:project:network", v)
		}
	}
	return nil
}
