package mesos

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// This file reproduces stout's protobuf::parse<T>(JSON::Object) over a
// small hand-written descriptor of each message Weft reads: the rules a
// Mesos agent applies to a CNI plugin's stdout, to the CNI config files
// and to the NetworkInfo JSON it receives.

type pbType int

const (
	pbString pbType = iota
	pbUint32
	pbEnum
	pbMessage
)

type pbField struct {
	name     string
	number   int
	typ      pbType
	repeated bool
	required bool
	msg      *pbDesc
	enum     []string
}

// pbDesc describes a message; fields are in declaration order.
type pbDesc struct {
	fields []pbField
}

func (d *pbDesc) field(name string) *pbField {
	for i := range d.fields {
		if d.fields[i].name == name {
			return &d.fields[i]
		}
	}
	return nil
}

// pbMsg is a parsed message: field name → string, uint32, *pbMsg, or a
// slice of those for repeated fields. Unknown enum values are dropped,
// like proto2 does for optional enums.
type pbMsg struct {
	desc *pbDesc
	vals map[string]any
}

func newPBMsg(d *pbDesc) *pbMsg { return &pbMsg{desc: d, vals: map[string]any{}} }

func (m *pbMsg) has(name string) bool {
	if m == nil {
		return false
	}
	_, ok := m.vals[name]
	return ok
}

func (m *pbMsg) str(name string) string {
	if m == nil {
		return ""
	}
	s, _ := m.vals[name].(string)
	return s
}

func (m *pbMsg) u32(name string) uint32 {
	if m == nil {
		return 0
	}
	n, _ := m.vals[name].(uint32)
	return n
}

func (m *pbMsg) strs(name string) []string {
	if m == nil {
		return nil
	}
	s, _ := m.vals[name].([]string)
	return s
}

func (m *pbMsg) msg(name string) *pbMsg {
	if m == nil {
		return nil
	}
	s, _ := m.vals[name].(*pbMsg)
	return s
}

func (m *pbMsg) msgs(name string) []*pbMsg {
	if m == nil {
		return nil
	}
	s, _ := m.vals[name].([]*pbMsg)
	return s
}

// pbOptions relaxes the stout rules where a consumer of /state documents
// needs it.
type pbOptions struct {
	// bareLabels accepts a JSON array for a field of type Labels, as in
	// the /state rendering of task and network labels.
	bareLabels bool
}

// pbParse parses obj into a message of type d and checks its required
// fields, like protobuf::parse<T>.
func pbParse(d *pbDesc, obj map[string]any, opts pbOptions) (*pbMsg, error) {
	m := newPBMsg(d)
	if err := pbParseInto(m, obj, opts); err != nil {
		return nil, err
	}
	if missing := pbMissing(m, ""); len(missing) > 0 {
		return nil, errors.New("Missing required fields: " + strings.Join(missing, ", "))
	}
	return m, nil
}

func pbParseInto(m *pbMsg, obj map[string]any, opts pbOptions) error {
	// JSON::Object is a std::map: fields are visited in key order.
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := m.desc.field(k)
		if f == nil {
			continue
		}
		if err := pbApply(m, f, obj[k], opts); err != nil {
			return err
		}
	}
	return nil
}

func pbApply(m *pbMsg, f *pbField, v any, opts pbOptions) error {
	switch x := v.(type) {
	case nil:
		return nil
	case map[string]any:
		if f.typ != pbMessage {
			return fmt.Errorf("Not expecting a JSON object for field '%s'", f.name)
		}
		if f.repeated {
			sub := newPBMsg(f.msg)
			m.vals[f.name] = append(m.msgs(f.name), sub)
			return pbParseInto(sub, x, opts)
		}
		sub := m.msg(f.name)
		if sub == nil {
			sub = newPBMsg(f.msg)
			m.vals[f.name] = sub
		}
		return pbParseInto(sub, x, opts)
	case string:
		switch f.typ {
		case pbString:
			if f.repeated {
				m.vals[f.name] = append(m.strs(f.name), x)
			} else {
				m.vals[f.name] = x
			}
		case pbEnum:
			known := false
			for _, e := range f.enum {
				if e == x {
					known = true
					break
				}
			}
			if !known {
				if f.required {
					return fmt.Errorf("Failed to find enum for '%s'", x)
				}
				return nil
			}
			if f.repeated {
				m.vals[f.name] = append(m.strs(f.name), x)
			} else {
				m.vals[f.name] = x
			}
		default:
			return fmt.Errorf("Not expecting a JSON string for field '%s'", f.name)
		}
		return nil
	case json.Number:
		if f.typ != pbUint32 {
			return fmt.Errorf("Not expecting a JSON number for field '%s'", f.name)
		}
		n := jsonNumberToUint32(x)
		if f.repeated {
			s, _ := m.vals[f.name].([]uint32)
			m.vals[f.name] = append(s, n)
		} else {
			m.vals[f.name] = n
		}
		return nil
	case []any:
		if opts.bareLabels && f.typ == pbMessage && f.msg == labelsDesc && !f.repeated {
			return pbApply(m, f, map[string]any{"labels": x}, opts)
		}
		if !f.repeated {
			return fmt.Errorf("Not expecting a JSON array for field '%s'", f.name)
		}
		for _, e := range x {
			if err := pbApply(m, f, e, opts); err != nil {
				return err
			}
		}
		return nil
	case bool:
		return fmt.Errorf("Not expecting a JSON boolean for field '%s'", f.name)
	default:
		return fmt.Errorf("unexpected JSON value %T for field '%s'", v, f.name)
	}
}

// jsonNumberToUint32 converts like stout's Number::as<uint32_t>(): an
// int64 literal wraps modulo 2^32, a double is truncated.
func jsonNumberToUint32(n json.Number) uint32 {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return uint32(i)
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	switch {
	case math.IsNaN(f):
		return 0
	case f >= 0 && f < 1<<32:
		return uint32(f)
	case math.Abs(f) < 1<<63:
		return uint32(int64(f))
	default:
		return 0
	}
}

// pbMissing lists the unset required fields like protobuf's
// InitializationErrorString: this message's required fields in
// declaration order, then sub-messages in field-number order.
func pbMissing(m *pbMsg, prefix string) []string {
	var out []string
	for _, f := range m.desc.fields {
		if f.required && !m.has(f.name) {
			out = append(out, prefix+f.name)
		}
	}
	fields := make([]pbField, 0, len(m.desc.fields))
	for _, f := range m.desc.fields {
		if f.typ == pbMessage && m.has(f.name) {
			fields = append(fields, f)
		}
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].number < fields[j].number })
	for _, f := range fields {
		if f.repeated {
			for i, sub := range m.msgs(f.name) {
				out = append(out, pbMissing(sub, fmt.Sprintf("%s%s[%d].", prefix, f.name, i))...)
			}
		} else {
			out = append(out, pbMissing(m.msg(f.name), prefix+f.name+".")...)
		}
	}
	return out
}

// Descriptors of the messages Weft parses.
var (
	// spec.proto (the network/cni isolator).
	routeDesc = &pbDesc{fields: []pbField{
		{name: "dst", number: 1, typ: pbString, required: true},
		{name: "gw", number: 2, typ: pbString},
	}}
	dnsDesc = &pbDesc{fields: []pbField{
		{name: "nameservers", number: 1, typ: pbString, repeated: true},
		{name: "domain", number: 2, typ: pbString},
		{name: "search", number: 3, typ: pbString, repeated: true},
		{name: "options", number: 4, typ: pbString, repeated: true},
	}}
	ipConfigDesc = &pbDesc{fields: []pbField{
		{name: "ip", number: 1, typ: pbString, required: true},
		{name: "gateway", number: 2, typ: pbString},
		{name: "routes", number: 3, typ: pbMessage, repeated: true, msg: routeDesc},
	}}
	ipamDesc = &pbDesc{fields: []pbField{
		{name: "type", number: 1, typ: pbString, required: true},
		{name: "routes", number: 2, typ: pbMessage, repeated: true, msg: routeDesc},
	}}
	networkConfigDesc = &pbDesc{fields: []pbField{
		{name: "name", number: 1, typ: pbString, required: true},
		{name: "type", number: 2, typ: pbString, required: true},
		{name: "ipam", number: 3, typ: pbMessage, msg: ipamDesc},
		{name: "dns", number: 4, typ: pbMessage, msg: dnsDesc},
	}}
	cniNetworkInfoDesc = &pbDesc{fields: []pbField{
		{name: "ip4", number: 1, typ: pbMessage, msg: ipConfigDesc},
		{name: "ip6", number: 2, typ: pbMessage, msg: ipConfigDesc},
		{name: "dns", number: 3, typ: pbMessage, msg: dnsDesc},
	}}

	// mesos.proto.
	labelDesc = &pbDesc{fields: []pbField{
		{name: "key", number: 1, typ: pbString, required: true},
		{name: "value", number: 2, typ: pbString},
	}}
	labelsDesc = &pbDesc{fields: []pbField{
		{name: "labels", number: 1, typ: pbMessage, repeated: true, msg: labelDesc},
	}}
	ipAddressDesc = &pbDesc{fields: []pbField{
		{name: "protocol", number: 1, typ: pbEnum, enum: []string{string(IPv4), string(IPv6)}},
		{name: "ip_address", number: 2, typ: pbString},
	}}
	portMappingDesc = &pbDesc{fields: []pbField{
		{name: "host_port", number: 1, typ: pbUint32, required: true},
		{name: "container_port", number: 2, typ: pbUint32, required: true},
		{name: "protocol", number: 3, typ: pbString},
	}}
	networkInfoDesc = &pbDesc{fields: []pbField{
		{name: "ip_addresses", number: 5, typ: pbMessage, repeated: true, msg: ipAddressDesc},
		{name: "name", number: 6, typ: pbString},
		{name: "groups", number: 3, typ: pbString, repeated: true},
		{name: "labels", number: 4, typ: pbMessage, msg: labelsDesc},
		{name: "port_mappings", number: 7, typ: pbMessage, repeated: true, msg: portMappingDesc},
	}}

	// messages/flags.proto (--default_container_dns).
	containerDNSMesosDesc = &pbDesc{fields: []pbField{
		{name: "network_mode", number: 1, typ: pbEnum, required: true, enum: []string{"UNKNOWN", "HOST", "CNI"}},
		{name: "network_name", number: 2, typ: pbString},
		{name: "dns", number: 3, typ: pbMessage, msg: dnsDesc},
	}}
	containerDNSDockerDNSDesc = &pbDesc{fields: []pbField{
		{name: "nameservers", number: 1, typ: pbString, repeated: true},
		{name: "search", number: 2, typ: pbString, repeated: true},
		{name: "options", number: 3, typ: pbString, repeated: true},
	}}
	containerDNSDockerDesc = &pbDesc{fields: []pbField{
		{name: "network_mode", number: 1, typ: pbEnum, required: true, enum: []string{"UNKNOWN", "HOST", "BRIDGE", "USER"}},
		{name: "network_name", number: 2, typ: pbString},
		{name: "dns", number: 3, typ: pbMessage, msg: containerDNSDockerDNSDesc},
	}}
	containerDNSInfoDesc = &pbDesc{fields: []pbField{
		{name: "mesos", number: 1, typ: pbMessage, repeated: true, msg: containerDNSMesosDesc},
		{name: "docker", number: 2, typ: pbMessage, repeated: true, msg: containerDNSDockerDesc},
	}}
)
