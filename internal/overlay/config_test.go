package overlay

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fixtures is shared/fixtures, read-only test data.
const fixtures = "../../../shared/fixtures/"

// dcosDefaultNetwork is DC/OS's default network JSON (dcos/dcos
// gen/calc.py, reference §2.1).
const dcosDefaultNetwork = `{"vtep_subnet":"44.128.0.0/20","vtep_subnet6":"fd01:a::/64","vtep_mac_oui":"70:B3:D5:00:00:00",
 "overlays":[{"name":"dcos","subnet":"9.0.0.0/8","prefix":24},
             {"name":"dcos6","subnet6":"fd01:b::/64","prefix6":80}]}`

// dcosMasterJSON is the master module config DC/OS generates.
const dcosMasterJSON = `{"replicated_log_dir":"/var/lib/dcos/mesos/master/","zk":{"url":"zk://127.0.0.1:2181/mesos","quorum":1},"network":` + dcosDefaultNetwork + `}`

func TestDefaultDCOS(t *testing.T) {
	d := DefaultDCOS()
	if err := d.Validate(); err != nil {
		t.Fatalf("DefaultDCOS does not validate: %v", err)
	}
	for _, in := range []string{dcosDefaultNetwork, dcosMasterJSON} {
		c, err := ParseNetworkConfig([]byte(in))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		if !reflect.DeepEqual(c, d) {
			t.Errorf("parsed DC/OS default = %+v, want DefaultDCOS %+v", c, d)
		}
	}
	if d.VNI != 1024 || d.VTEPName != "vtep1024" || d.VXLANPort != 64000 {
		t.Errorf("Weft defaults: vni %d name %q port %d", d.VNI, d.VTEPName, d.VXLANPort)
	}
	if got := d.VTEPPrefix().String(); got != "44.128.0.0/20" {
		t.Errorf("VTEPPrefix = %s", got)
	}
	if got := d.VTEPPrefix6().String(); got != "fd01:a::/64" {
		t.Errorf("VTEPPrefix6 = %s", got)
	}
	if got := d.OUI().String(); got != "70:b3:d5:00:00:00" {
		t.Errorf("OUI = %s", got)
	}
	if got := d.Overlays[0].SubnetPrefix().String(); got != "9.0.0.0/8" {
		t.Errorf("dcos SubnetPrefix = %s", got)
	}
	if got := d.Overlays[1].Subnet6Prefix().String(); got != "fd01:b::/64" {
		t.Errorf("dcos6 Subnet6Prefix = %s", got)
	}
	if d.Overlays[1].SubnetPrefix().IsValid() {
		t.Error("dcos6 has an IPv4 space")
	}
	// DC/OS renders it with keys sorted, enabled present, no Weft keys.
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"overlays":[{"enabled":true,"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"},{"enabled":true,"name":"dcos6","prefix6":80,"subnet6":"fd01:b::/64"}],"vtep_mac_oui":"70:B3:D5:00:00:00","vtep_subnet":"44.128.0.0/20","vtep_subnet6":"fd01:a::/64"}`
	if string(out) != want {
		t.Errorf("marshal:\n got %s\nwant %s", out, want)
	}
}

func TestParseNetworkConfigDefaultsAndExtensions(t *testing.T) {
	in := `{"vtep_subnet":"44.128.0.0/20","vtep_mac_oui":"70:b3:d5:00:00:00","vtep_mtu":1450,
		"vni":4096,"vtep_name":"weft0","vxlan_port":4789,"unknown":{"ignored":[1,2]},
		"overlays":[{"name":"a","subnet":"10.1.0.0/16","prefix":24,"enabled":false,"comment":"x"},
		            {"name":"b","subnet6":"FD00:0:0:0::/48","prefix6":64}]}`
	c, err := ParseNetworkConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.VNI != 4096 || c.VTEPName != "weft0" || c.VXLANPort != 4789 || c.VTEPMTU != 1450 {
		t.Errorf("extensions: %+v", c)
	}
	if c.Overlays[0].IsEnabled() || !c.Overlays[1].IsEnabled() || c.Overlays[1].Enabled == nil {
		t.Errorf("enabled: %v %v", c.Overlays[0].Enabled, c.Overlays[1].Enabled)
	}
	if got := c.Overlays[1].Subnet6; got != "fd00::/48" {
		t.Errorf("subnet6 not canonical: %q", got)
	}
	if en := c.Enabled(); len(en) != 1 || en[0].Name != "b" {
		t.Errorf("Enabled() = %+v", en)
	}
	if o, ok := c.Overlay("a"); !ok || o.Subnet != "10.1.0.0/16" {
		t.Errorf("Overlay(a) = %+v %v", o, ok)
	}
	if _, ok := c.Overlay("zz"); ok {
		t.Error("Overlay(zz) found")
	}
	out, _ := json.Marshal(c)
	const want = `{"overlays":[{"enabled":false,"name":"a","prefix":24,"subnet":"10.1.0.0/16"},{"enabled":true,"name":"b","prefix6":64,"subnet6":"fd00::/48"}],"vni":4096,"vtep_mac_oui":"70:b3:d5:00:00:00","vtep_mtu":1450,"vtep_name":"weft0","vtep_subnet":"44.128.0.0/20","vxlan_port":4789}`
	if string(out) != want {
		t.Errorf("marshal:\n got %s\nwant %s", out, want)
	}
	again, err := ParseNetworkConfig(out)
	if err != nil || !reflect.DeepEqual(again, c) {
		t.Errorf("re-parse: %v\n%+v\n%+v", err, again, c)
	}
}

// TestParseNetworkConfigErrors covers every rule; each case names the
// field the error must carry.
func TestParseNetworkConfigErrors(t *testing.T) {
	// base returns the DC/OS default with one key of the network object
	// replaced (or removed, for a nil value).
	base := func(key string, value any) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(dcosDefaultNetwork), &m); err != nil {
			t.Fatal(err)
		}
		if value == nil {
			delete(m, key)
		} else {
			m[key] = value
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	ovs := func(list ...string) []any {
		var out []any
		for _, s := range list {
			var v any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			out = append(out, v)
		}
		return out
	}
	const dcos = `{"name":"dcos","subnet":"9.0.0.0/8","prefix":24}`
	tests := []struct {
		name, in, field, msg string
	}{
		{"not json", `{`, "", "not a JSON object"},
		{"array", `[]`, "", "not a JSON object"},
		{"null", `null`, "", "null"},
		{"network null", `{"network":null}`, "network", "is null"},
		{"network not object", `{"network":3}`, "network", "must be a JSON object"},
		{"master file field path", `{"network":{"vtep_mac_oui":"70:B3:D5:00:00:00","overlays":[` + dcos + `]}}`, "network.vtep_subnet", "is required"},
		{"vtep_subnet missing", base("vtep_subnet", nil), "vtep_subnet", "is required"},
		{"vtep_subnet type", base("vtep_subnet", 3), "vtep_subnet", "must be a string"},
		{"vtep_subnet not cidr", base("vtep_subnet", "44.128.0.0"), "vtep_subnet", "is not a CIDR"},
		{"vtep_subnet ipv6", base("vtep_subnet", "fd01:a::/64"), "vtep_subnet", "is IPv6"},
		{"vtep_subnet mapped", base("vtep_subnet", "::ffff:44.128.0.0/116"), "vtep_subnet", "IPv4-mapped"},
		{"vtep_subnet host bits", base("vtep_subnet", "44.128.0.1/20"), "vtep_subnet", "write 44.128.0.0/20"},
		{"vtep_subnet shorter than /8", base("vtep_subnet", "44.0.0.0/7"), "vtep_subnet", "low 24 bits"},
		{"vtep_subnet /31", base("vtep_subnet", "44.128.0.0/31"), "vtep_subnet", "no VTEP address"},
		{"vtep_mac_oui missing", base("vtep_mac_oui", nil), "vtep_mac_oui", "is required"},
		{"vtep_mac_oui five bytes", base("vtep_mac_oui", "70:B3:D5:00:00"), "vtep_mac_oui", "six colon-separated"},
		{"vtep_mac_oui dashes", base("vtep_mac_oui", "70-B3-D5-00-00-00"), "vtep_mac_oui", "six colon-separated"},
		{"vtep_mac_oui not hex", base("vtep_mac_oui", "70:B3:DX:00:00:00"), "vtep_mac_oui", "six colon-separated"},
		{"vtep_mac_oui low bytes", base("vtep_mac_oui", "70:B3:D5:00:00:01"), "vtep_mac_oui", "low three bytes"},
		{"vtep_mac_oui multicast", base("vtep_mac_oui", "71:B3:D5:00:00:00"), "vtep_mac_oui", "multicast"},
		{"vtep_subnet6 ipv4", base("vtep_subnet6", "10.0.0.0/8"), "vtep_subnet6", "is IPv4"},
		{"vtep_subnet6 bad", base("vtep_subnet6", "fd01:a::/129"), "vtep_subnet6", "is not a CIDR"},
		{"vtep_subnet6 host bits", base("vtep_subnet6", "fd01:a::1/64"), "vtep_subnet6", "host bits"},
		{"vtep_subnet6 /128", base("vtep_subnet6", "fd01:a::/128"), "vtep_subnet6", "no VTEP address"},
		{"vtep_mtu small", base("vtep_mtu", 551), "vtep_mtu", "out of range"},
		{"vtep_mtu zero", base("vtep_mtu", 0), "vtep_mtu", "out of range"},
		{"vtep_mtu large", base("vtep_mtu", 65536), "vtep_mtu", "out of range"},
		{"vtep_mtu float", base("vtep_mtu", 1500.5), "vtep_mtu", "must be an integer, not 1500.5"},
		{"vtep_mtu huge", base("vtep_mtu", 1e12), "vtep_mtu", "out of range"},
		{"vni zero", base("vni", 0), "vni", "out of range"},
		{"vni large", base("vni", 1<<24), "vni", "out of range"},
		{"vni negative", base("vni", -1), "vni", "out of range"},
		{"vxlan_port zero", base("vxlan_port", 0), "vxlan_port", "out of range"},
		{"vxlan_port large", base("vxlan_port", 65536), "vxlan_port", "not a UDP port"},
		{"vtep_name empty", base("vtep_name", ""), "vtep_name", "must not be empty"},
		{"vtep_name long", base("vtep_name", "vtep-0123456789a"), "vtep_name", "at most 15"},
		{"vtep_name chars", base("vtep_name", "vtep/1"), "vtep_name", "only letters"},
		{"vtep_name bridge", base("vtep_name", "m-dcos"), "vtep_name", "bridge"},
		{"overlays missing", base("overlays", nil), "overlays", "specify at least one overlay"},
		{"overlays empty", base("overlays", []any{}), "overlays", "specify at least one overlay"},
		{"overlays not array", base("overlays", "dcos"), "overlays", "must be an array"},
		{"overlay null", base("overlays", []any{nil}), "overlays[0]", "is null"},
		{"overlay not object", base("overlays", []any{"dcos"}), "overlays[0]", "must be a JSON object"},
		{"name missing", base("overlays", ovs(dcos, `{"subnet":"10.0.0.0/8","prefix":24}`)), "overlays[1].name", "is required"},
		{"name type", base("overlays", ovs(`{"name":1}`)), "overlays[0].name", "must be a string"},
		{"name long", base("overlays", ovs(`{"name":"abcdefghijklmn","subnet":"10.0.0.0/8","prefix":24}`)), "overlays[0].name", "at most 13"},
		{"name 13 ok, chars bad", base("overlays", ovs(`{"name":"dc os","subnet":"10.0.0.0/8","prefix":24}`)), "overlays[0].name", "only letters"},
		{"name starts with dot", base("overlays", ovs(`{"name":".dcos","subnet":"10.0.0.0/8","prefix":24}`)), "overlays[0].name", "start with a letter"},
		{"name reserved host", base("overlays", ovs(`{"name":"host","subnet":"10.0.0.0/8","prefix":24}`)), "overlays[0].name", "reserved"},
		{"name reserved bridge", base("overlays", ovs(`{"name":"bridge","subnet":"10.0.0.0/8","prefix":24}`)), "overlays[0].name", "reserved"},
		{"name reserved default", base("overlays", ovs(`{"name":"default","subnet":"10.0.0.0/8","prefix":24}`)), "overlays[0].name", "reserved"},
		{"name reserved none", base("overlays", ovs(`{"name":"none","subnet":"10.0.0.0/8","prefix":24}`)), "overlays[0].name", "reserved"},
		{"name duplicate", base("overlays", ovs(dcos, `{"name":"dcos","subnet":"10.0.0.0/8","prefix":24}`)), "overlays[1].name", "also the name of overlays[0]"},
		{"enabled type", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.0/8","prefix":24,"enabled":"yes"}`)), "overlays[0].enabled", "true or false"},
		{"no subnet", base("overlays", ovs(`{"name":"dcos"}`)), "overlays[0].subnet", "neither subnet nor subnet6"},
		{"subnet ipv6", base("overlays", ovs(`{"name":"dcos","subnet":"fd01:b::/64","prefix":24}`)), "overlays[0].subnet", "is IPv6"},
		{"subnet host bits", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.1/8","prefix":24}`)), "overlays[0].subnet", "write 9.0.0.0/8"},
		{"subnet not cidr", base("overlays", ovs(`{"name":"dcos","subnet":"nine","prefix":24}`)), "overlays[0].subnet", "not a CIDR"},
		{"subnet too small", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.0/30","prefix":30}`)), "overlays[0].subnet", "too small"},
		{"prefix missing", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.0/8"}`)), "overlays[0].prefix", "is required with subnet"},
		{"prefix zero", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.0/8","prefix":0}`)), "overlays[0].prefix", "is required with subnet"},
		{"prefix type", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.0/8","prefix":"24"}`)), "overlays[0].prefix", "must be an integer"},
		{"prefix shorter than subnet", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.0/16","prefix":8}`)), "overlays[0].prefix", "shorter than the overlay's 9.0.0.0/16"},
		{"prefix too long", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.0/8","prefix":30}`)), "overlays[0].prefix", "set 8-29"},
		{"prefix without subnet", base("overlays", ovs(`{"name":"dcos6","subnet6":"fd01:b::/64","prefix6":80,"prefix":24}`)), "overlays[0].prefix", "subnet is not"},
		{"subnet6 ipv4", base("overlays", ovs(`{"name":"dcos6","subnet6":"9.0.0.0/8","prefix6":80}`)), "overlays[0].subnet6", "is IPv4"},
		{"subnet6 host bits", base("overlays", ovs(`{"name":"dcos6","subnet6":"fd01:b::1/64","prefix6":80}`)), "overlays[0].subnet6", "host bits"},
		{"prefix6 missing", base("overlays", ovs(`{"name":"dcos6","subnet6":"fd01:b::/64"}`)), "overlays[0].prefix6", "is required with subnet6"},
		{"prefix6 shorter", base("overlays", ovs(`{"name":"dcos6","subnet6":"fd01:b::/64","prefix6":48}`)), "overlays[0].prefix6", "shorter"},
		{"prefix6 too long", base("overlays", ovs(`{"name":"dcos6","subnet6":"fd01:b::/64","prefix6":126}`)), "overlays[0].prefix6", "set 64-125"},
		{"prefix6 without subnet6", base("overlays", ovs(`{"name":"dcos","subnet":"9.0.0.0/8","prefix":24,"prefix6":80}`)), "overlays[0].prefix6", "subnet6 is not"},
		{"overlap overlays v4", base("overlays", ovs(dcos, `{"name":"b","subnet":"9.1.0.0/16","prefix":24}`)), "overlays[1].subnet", "overlaps overlays[0].subnet 9.0.0.0/8"},
		{"overlap overlays v6", base("overlays", ovs(`{"name":"a","subnet6":"fd01:b::/64","prefix6":80}`, `{"name":"b","subnet6":"fd01:b::/48","prefix6":80}`)), "overlays[1].subnet6", "overlaps overlays[0].subnet6"},
		{"overlap with a disabled overlay", base("overlays", ovs(`{"name":"a","subnet":"9.0.0.0/8","prefix":24,"enabled":false}`, `{"name":"b","subnet":"9.0.0.0/8","prefix":24}`)), "overlays[1].subnet", "overlaps overlays[0].subnet"},
		{"overlap vtep", base("overlays", ovs(`{"name":"a","subnet":"44.0.0.0/8","prefix":24}`)), "overlays[0].subnet", "overlaps vtep_subnet 44.128.0.0/20"},
		{"overlap vtep6", base("overlays", ovs(`{"name":"a","subnet6":"fd01:a::/64","prefix6":80}`)), "overlays[0].subnet6", "overlaps vtep_subnet6 fd01:a::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNetworkConfig([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error for %s", tt.in)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FieldError", err, err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if tt.field != "" && !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("error %q does not start with its field", err)
			}
			if m := err.Error(); m != "" && fe.Msg[0] >= 'A' && fe.Msg[0] <= 'Z' {
				t.Errorf("message %q is not lower-case", fe.Msg)
			}
			if ae := fe.APIError(); ae.Field != fe.Field || ae.Code != 400 {
				t.Errorf("APIError = %+v", ae)
			}
		})
	}
}

func TestParseNetworkConfigAccepts(t *testing.T) {
	for _, in := range []string{
		// 13-character name, dual-stack overlay, prefix at the limits.
		`{"vtep_subnet":"10.0.0.0/30","vtep_mac_oui":"02:00:00:00:00:00","overlays":[{"name":"abcdefghijk.m","subnet":"9.0.0.0/24","prefix":29,"subnet6":"fd00::/125","prefix6":125}]}`,
		// /8 VTEP subnet, disabled overlay only, explicit nulls as absence.
		`{"vtep_subnet":"44.0.0.0/8","vtep_subnet6":null,"vtep_mac_oui":"70:B3:D5:00:00:00","vni":null,"overlays":[{"name":"x_1-2","subnet":"9.0.0.0/8","prefix":8,"enabled":false}]}`,
		// vtep_subnet6 /127.
		`{"vtep_subnet":"44.128.0.0/20","vtep_subnet6":"fd01:a::/127","vtep_mac_oui":"70:B3:D5:00:00:00","overlays":[{"name":"dcos6","subnet6":"fd01:b::/64","prefix6":80}]}`,
	} {
		if _, err := ParseNetworkConfig([]byte(in)); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := NetworkConfig{VTEPSubnet: "44.128.0.0/20", VTEPMACOUI: "70:B3:D5:00:00:00",
		Overlays: []OverlayInfo{{Name: "dcos", Subnet: "9.0.0.0/8", Prefix: 24}}}
	var fe *FieldError
	if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "vni" {
		t.Errorf("Validate without defaults = %v, want a vni error", err)
	}
	if err := c.WithDefaults().Validate(); err != nil {
		t.Errorf("Validate with defaults: %v", err)
	}
	if c.Overlays[0].Enabled != nil {
		t.Error("WithDefaults changed the caller's overlays")
	}
	if !c.Overlays[0].IsEnabled() {
		t.Error("nil Enabled is not enabled")
	}
	if c.VNIOrDefault() != DefaultVNI || c.VTEPNameOrDefault() != DefaultVTEPName {
		t.Error("OrDefault accessors")
	}
}

func TestUnmarshalNetworkConfigLenient(t *testing.T) {
	var c NetworkConfig
	// Invalid, yet decodes: clients reading a master's state do not
	// validate it.
	if err := json.Unmarshal([]byte(`{"vtep_subnet":"bad","overlays":[{"name":"x"}]}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.VNI != DefaultVNI || !c.Overlays[0].IsEnabled() || c.Overlays[0].Enabled == nil || c.VTEPPrefix().IsValid() {
		t.Errorf("decoded %+v", c)
	}
	if c.OUI() != nil {
		t.Error("OUI of an empty vtep_mac_oui is not nil")
	}
}
