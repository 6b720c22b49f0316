package overlay

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// stateExample is the GET /overlay-master/state example of the reference
// (§7.1), verbatim but for the elided network overlays.
const stateExample = `{"agents":[{"ip":"10.0.0.5","overlays":[{
   "backend":{"vxlan":{"vni":1024,"vtep_ip":"44.128.0.2/20","vtep_ip6":"fd01:a::2/64","vtep_mac":"70:b3:d5:80:00:02","vtep_name":"vtep1024"}},
   "docker_bridge":{"ip":"9.0.1.128/25","name":"d-dcos"},
   "info":{"enabled":true,"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"},
   "mesos_bridge":{"ip":"9.0.1.0/25","name":"m-dcos"},
   "state":{"status":"STATUS_OK"},
   "subnet":"9.0.1.0/24"}]}],
 "network":{"overlays":[…],"vtep_mac_oui":"70:B3:D5:00:00:00","vtep_subnet":"44.128.0.0/20","vtep_subnet6":"fd01:a::/64"}}`

// dcosOverlaysJSON is DefaultDCOS's overlays as DC/OS renders them.
const dcosOverlaysJSON = `[{"enabled":true,"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"},{"enabled":true,"name":"dcos6","prefix6":80,"subnet6":"fd01:b::/64"}]`

func compactJSON(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatalf("compact: %v", err)
	}
	return buf.Bytes()
}

func exampleState() State {
	cfg := DefaultDCOS()
	ao := BuildAgentOverlay(cfg, cfg.Overlays[0], mustAddr("44.128.0.2"), mustAddr("fd01:a::2"), nil,
		mustPrefix("9.0.1.0/24"), netip.Prefix{}, true, true)
	ao.State = &OverlayState{Status: StatusOK}
	return State{Agents: []AgentInfo{{IP: "10.0.0.5", Overlays: []AgentOverlayInfo{ao}}}, Network: cfg}
}

func TestStateGolden(t *testing.T) {
	want := compactJSON(t, strings.Replace(stateExample, "[…]", dcosOverlaysJSON, 1))
	got, err := json.Marshal(exampleState())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("state:\n got %s\nwant %s", got, want)
	}
	// And back.
	s, err := DecodeState(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, exampleState()) {
		t.Errorf("decoded:\n%+v\nwant\n%+v", s, exampleState())
	}
	if a, ok := s.Agent("10.0.0.5"); !ok || a.Overlays[0].SubnetPrefix() != mustPrefix("9.0.1.0/24") {
		t.Errorf("Agent(10.0.0.5) = %+v, %v", a, ok)
	}
	if _, ok := s.Agent("10.0.0.6"); ok {
		t.Error("Agent(10.0.0.6) found")
	}
}

func TestBuildAgentOverlay(t *testing.T) {
	cfg := DefaultDCOS()
	cfg.VTEPMTU = 1450
	tests := []struct {
		name          string
		ov            OverlayInfo
		s4, s6        string
		mesos, docker bool
		want          string
	}{
		{"master: subnet, no bridges", cfg.Overlays[0], "9.0.0.0/24", "", false, false,
			`{"backend":{"vxlan":{"vni":1024,"vtep_ip":"44.128.0.1/20","vtep_ip6":"fd01:a::1/64","vtep_mac":"70:b3:d5:80:00:01","vtep_mtu":1450,"vtep_name":"vtep1024"}},"info":{"enabled":true,"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"},"subnet":"9.0.0.0/24"}`},
		{"dcos6: ip6 halves", cfg.Overlays[1], "", "fd01:b:0:0:1::/80", true, true,
			`{"backend":{"vxlan":{"vni":1024,"vtep_ip":"44.128.0.1/20","vtep_ip6":"fd01:a::1/64","vtep_mac":"70:b3:d5:80:00:01","vtep_mtu":1450,"vtep_name":"vtep1024"}},"docker_bridge":{"ip6":"fd01:b::1:8000:0:0/81","name":"d-dcos6"},"info":{"enabled":true,"name":"dcos6","prefix6":80,"subnet6":"fd01:b::/64"},"mesos_bridge":{"ip6":"fd01:b:0:0:1::/81","name":"m-dcos6"},"subnet6":"fd01:b:0:0:1::/80"}`},
		{"dual stack, mesos only", OverlayInfo{Name: "ds", Subnet: "10.0.0.0/8", Prefix: 24, Subnet6: "fd02::/64", Prefix6: 80}, "10.0.3.0/24", "fd02::/80", true, false,
			`{"backend":{"vxlan":{"vni":1024,"vtep_ip":"44.128.0.1/20","vtep_ip6":"fd01:a::1/64","vtep_mac":"70:b3:d5:80:00:01","vtep_mtu":1450,"vtep_name":"vtep1024"}},"info":{"enabled":true,"name":"ds","prefix":24,"prefix6":80,"subnet":"10.0.0.0/8","subnet6":"fd02::/64"},"mesos_bridge":{"ip":"10.0.3.0/25","ip6":"fd02::/81","name":"m-ds"},"subnet":"10.0.3.0/24","subnet6":"fd02::/80"}`},
		{"no subnet (allocate_subnet false)", cfg.Overlays[0], "", "", true, true,
			`{"backend":{"vxlan":{"vni":1024,"vtep_ip":"44.128.0.1/20","vtep_ip6":"fd01:a::1/64","vtep_mac":"70:b3:d5:80:00:01","vtep_mtu":1450,"vtep_name":"vtep1024"}},"info":{"enabled":true,"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s4, s6 netip.Prefix
			if tt.s4 != "" {
				s4 = mustPrefix(tt.s4)
			}
			if tt.s6 != "" {
				s6 = mustPrefix(tt.s6)
			}
			ao := BuildAgentOverlay(cfg, tt.ov, mustAddr("44.128.0.1"), mustAddr("fd01:a::1"), nil, s4, s6, tt.mesos, tt.docker)
			got, err := json.Marshal(ao)
			if err != nil {
				t.Fatal(err)
			}
			want := compactJSON(t, tt.want)
			// Compared as values; the bytes too (canonical IPv6 text, RFC 5952).
			var w AgentOverlayInfo
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ao, w) || !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
	// Explicit MAC, no VTEP IPv6, Weft extensions.
	c2 := DefaultDCOS()
	c2.VNI, c2.VTEPName = 42, "weft0"
	ao := BuildAgentOverlay(c2, c2.Overlays[0], mustAddr("44.128.0.9"), netip.Addr{}, mustMAC(t, "02:00:00:00:00:09"), netip.Prefix{}, netip.Prefix{}, false, false)
	vx := ao.Backend.VXLAN
	if vx.VNI != 42 || vx.VTEPName != "weft0" || vx.VTEPMAC != "02:00:00:00:00:09" || vx.VTEPIP6 != "" || vx.VTEPIP != "44.128.0.9/20" {
		t.Errorf("vxlan = %+v", vx)
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecodeAgentInfo(t *testing.T) {
	in := `{"ip":"10.0.3.204:5051","configuration_attempts":2,"extra":true,"overlays":[
	  {"info":{"name":"dcos","subnet":"9.0.0.0/8","prefix":24},"subnet":"9.0.3.0/24",
	   "state":{"status":"STATUS_FAILED","error":"docker: failed;iptables: failed"}},
	  {"info":{"name":"dcos6","subnet6":"fd01:b::/64","prefix6":80,"enabled":false},"state":{"status":3}}]}`
	a, err := DecodeAgentInfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if ip, err := a.Addr(); err != nil || ip != mustAddr("10.0.3.204") {
		t.Errorf("Addr = %s, %v", ip, err)
	}
	if a.ConfigurationAttempts != 2 || len(a.Overlays) != 2 {
		t.Fatalf("decoded %+v", a)
	}
	o := a.Overlays[0]
	if o.State.Status != StatusFailed || o.State.Error != "docker: failed;iptables: failed" || !o.Info.IsEnabled() || o.Info.Enabled == nil {
		t.Errorf("overlay 0 = %+v / %+v", o, o.State)
	}
	if s := a.Overlays[1].State.Status; s != StatusConfiguring || s.Number() != 3 || s.String() != "STATUS_CONFIGURING" {
		t.Errorf("status by number: %v", s)
	}
	if a.Overlays[1].Info.IsEnabled() {
		t.Error("enabled:false lost")
	}
	out, _ := json.Marshal(a)
	if !bytes.HasPrefix(out, []byte(`{"configuration_attempts":2,"ip":"10.0.3.204:5051","overlays":[{"info":{"enabled":true,`)) {
		t.Errorf("marshal: %s", out)
	}
	if OverlayStatus("X").Number() != -1 {
		t.Error("unknown status number")
	}

	for _, bad := range []string{``, `null`, `[]`, `{"ip":3}`, `{"overlays":[{"state":{"status":7}}]}`, `{"overlays":[{"state":{"status":true}}]}`} {
		if _, err := DecodeAgentInfo([]byte(bad)); err == nil {
			t.Errorf("no error decoding %q", bad)
		}
	}
	for _, tc := range []struct{ ip, want string }{{"10.0.0.5", "10.0.0.5"}, {"fd00::5", "fd00::5"}, {"[fd00::5]:5051", "fd00::5"}} {
		if got, err := (AgentInfo{IP: tc.ip}).Addr(); err != nil || got.String() != tc.want {
			t.Errorf("Addr(%s) = %s, %v", tc.ip, got, err)
		}
	}
	if _, err := (AgentInfo{IP: "agent1"}).Addr(); err == nil {
		t.Error("Addr of a host name")
	}
}

func TestDecodeStateDCOSShapes(t *testing.T) {
	// DC/OS omits empty repeated fields: no agents, an agent without
	// overlays.
	s, err := DecodeState([]byte(`{"network":` + dcosDefaultNetwork + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Agents != nil || !reflect.DeepEqual(s.Network, DefaultDCOS()) {
		t.Errorf("decoded %+v", s)
	}
	out, _ := json.Marshal(s)
	if !bytes.HasPrefix(out, []byte(`{"agents":[],"network":{"overlays":[`)) {
		t.Errorf("marshal: %s", out)
	}
	a, err := DecodeAgentInfo([]byte(`{"ip":"10.0.0.1"}`))
	if err != nil || a.Overlays != nil {
		t.Fatalf("%+v %v", a, err)
	}
	if out, _ := json.Marshal(a); string(out) != `{"ip":"10.0.0.1","overlays":[]}` {
		t.Errorf("marshal: %s", out)
	}
	for _, bad := range []string{``, `null`, `"x"`, `{"agents":{}}`, `{"network":{"vni":"x"}}`} {
		if _, err := DecodeState([]byte(bad)); err == nil {
			t.Errorf("no error decoding %q", bad)
		}
	}
}

func TestReservations(t *testing.T) {
	cfg := DefaultDCOS()
	var s State
	s.Network = cfg
	for i, ip := range []string{"10.0.0.5", "10.0.0.6"} {
		v4 := mustAddr("44.128.0.1")
		v6 := mustAddr("fd01:a::1")
		for range i {
			v4, v6 = v4.Next(), v6.Next()
		}
		sub := netip.PrefixFrom(mustAddr("9.0.0.0"), 24)
		sub6 := mustPrefix("fd01:b::/80")
		if i == 1 {
			sub, sub6 = mustPrefix("9.0.1.0/24"), mustPrefix("fd01:b:0:0:1::/80")
		}
		// Both overlays carry the same backend: reserved once, no error
		// (dcos/dcos-mesos-modules#119, #123).
		s.Agents = append(s.Agents, AgentInfo{IP: ip, Overlays: []AgentOverlayInfo{
			BuildAgentOverlay(cfg, cfg.Overlays[0], v4, v6, nil, sub, netip.Prefix{}, true, true),
			BuildAgentOverlay(cfg, cfg.Overlays[1], v4, v6, nil, netip.Prefix{}, sub6, true, true),
		}})
	}
	r, err := s.Reservations()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.VTEP) != 2 || len(r.VTEP6) != 2 || len(r.Subnets["dcos"]) != 2 || len(r.Subnets6["dcos6"]) != 2 {
		t.Fatalf("reservations %+v", r)
	}
	// The third agent gets the next of everything.
	if a, _ := VTEPAddr(cfg, r.VTEP); a != mustAddr("44.128.0.3") {
		t.Errorf("next VTEP %s", a)
	}
	if a, _ := VTEPAddr6(cfg, r.VTEP6); a != mustAddr("fd01:a::3") {
		t.Errorf("next VTEP6 %s", a)
	}
	if p, _ := OverlaySubnet(cfg.Overlays[0], r.Subnets["dcos"]); p != mustPrefix("9.0.2.0/24") {
		t.Errorf("next dcos subnet %s", p)
	}
	if p, _ := OverlaySubnet6(cfg.Overlays[1], r.Subnets6["dcos6"]); p != mustPrefix("fd01:b:0:0:2::/80") {
		t.Errorf("next dcos6 subnet %s", p)
	}

	bad := func(mutate func(*State)) error {
		c := State{Network: s.Network}
		b, _ := json.Marshal(s)
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		mutate(&c)
		_, err := c.Reservations()
		return err
	}
	tests := []struct {
		name, field string
		mutate      func(*State)
	}{
		{"agent twice", "agents[1].ip", func(s *State) { s.Agents[1].IP = s.Agents[0].IP }},
		{"shared vtep", "agents[1].overlays[0].backend.vxlan.vtep_ip", func(s *State) {
			s.Agents[1].Overlays[0].Backend.VXLAN.VTEPIP = "44.128.0.1/20"
		}},
		{"shared vtep6", "agents[1].overlays[0].backend.vxlan.vtep_ip6", func(s *State) {
			s.Agents[1].Overlays[0].Backend.VXLAN.VTEPIP6 = "fd01:a::1/64"
		}},
		{"shared subnet", "agents[1].overlays[0].subnet", func(s *State) { s.Agents[1].Overlays[0].Subnet = "9.0.0.0/24" }},
		{"shared subnet6", "agents[1].overlays[1].subnet6", func(s *State) { s.Agents[1].Overlays[1].Subnet6 = "fd01:b::/80" }},
		{"bad vtep", "agents[0].overlays[0].backend.vxlan.vtep_ip", func(s *State) { s.Agents[0].Overlays[0].Backend.VXLAN.VTEPIP = "x" }},
		{"bad subnet", "agents[0].overlays[0].subnet", func(s *State) { s.Agents[0].Overlays[0].Subnet = "9.0.0.1/24" }},
	}
	for _, tt := range tests {
		err := bad(tt.mutate)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: %v, want field %s", tt.name, err, tt.field)
		}
	}
}
