package overlay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/cni"
)

// keysSorted checks that every object of a JSON document has its keys in
// strictly increasing order, as DC/OS renders them.
func keysSorted(data []byte) error {
	type frame struct {
		obj, wantKey bool
		last         string
		n            int
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string)
			if top.n > 0 && k <= top.last {
				return fmt.Errorf("key %q after %q", k, top.last)
			}
			top.last, top.n, top.wantKey = k, top.n+1, false
			continue
		}
		if top != nil && top.obj {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

func TestKeysSorted(t *testing.T) {
	if err := keysSorted([]byte(`{"a":[{"b":1,"c":{}}],"b":{"x":[1,{"y":2,"z":3}]},"c":null}`)); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{`{"b":1,"a":2}`, `{"a":{"d":1,"c":2}}`, `[{"a":1,"a":2}]`, `{"a":[{"z":1,"y":1}]}`} {
		if keysSorted([]byte(bad)) == nil {
			t.Errorf("%s passes", bad)
		}
	}
}

// checkFieldError asserts what every parse error must be.
func checkFieldError(t *testing.T, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v (%T) is not a *FieldError", err, err)
	}
	if fe.Msg == "" || (fe.Msg[0] >= 'A' && fe.Msg[0] <= 'Z') {
		t.Fatalf("message %q is empty or capitalised", fe.Msg)
	}
}

func FuzzParseNetworkConfig(f *testing.F) {
	f.Add([]byte(dcosDefaultNetwork))
	f.Add([]byte(dcosMasterJSON))
	f.Add([]byte(`{"vtep_subnet":"44.128.0.0/20","vtep_mac_oui":"70:b3:d5:00:00:00","vtep_mtu":1450,"vni":4096,"vtep_name":"weft0","vxlan_port":4789,"overlays":[{"name":"a","subnet":"10.1.0.0/16","prefix":24,"enabled":false},{"name":"b","subnet6":"FD00::/48","prefix6":64}]}`))
	f.Add([]byte(`{"vtep_subnet":"10.0.0.0/30","vtep_mac_oui":"02:00:00:00:00:00","overlays":[{"name":"dcos","subnet":"9.0.0.0/23","prefix":24}]}`))
	f.Add([]byte(`{"network":{"vtep_subnet":"44.128.0.0/20","vtep_mac_oui":"70:B3:D5:00:00:01","overlays":[]}}`))
	f.Add([]byte(strings.Replace(stateExample, "[…]", dcosOverlaysJSON, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseNetworkConfig(data)
		if err != nil {
			checkFieldError(t, err)
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		if !c.VTEPPrefix().IsValid() || c.OUI() == nil || len(c.Overlays) == 0 {
			t.Fatalf("parsed config has invalid parts: %+v", c)
		}
		for _, o := range c.Overlays {
			if o.Enabled == nil || (o.Subnet != "") != o.SubnetPrefix().IsValid() || (o.Subnet6 != "") != o.Subnet6Prefix().IsValid() {
				t.Fatalf("overlay %+v", o)
			}
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := keysSorted(out); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		again, err := ParseNetworkConfig(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip:\n%+v\n%+v", c, again)
		}
		// The lenient decoder agrees on valid configs.
		var lenient NetworkConfig
		if err := json.Unmarshal(out, &lenient); err != nil || !reflect.DeepEqual(lenient, c) {
			t.Fatalf("json.Unmarshal: %v\n%+v\n%+v", err, lenient, c)
		}
		// The first allocations always succeed on a valid config.
		if _, err := VTEPAddr(c, map[netip.Addr]struct{}{}); err != nil {
			t.Fatalf("first VTEP: %v", err)
		}
		for _, o := range c.Overlays {
			if _, err := OverlaySubnet(o, map[netip.Prefix]struct{}{}); err != nil {
				t.Fatalf("first subnet of %s: %v", o.Name, err)
			}
			if _, err := OverlaySubnet6(o, map[netip.Prefix]struct{}{}); err != nil {
				t.Fatalf("first subnet6 of %s: %v", o.Name, err)
			}
		}
	})
}

func FuzzParseAgentConfig(f *testing.F) {
	f.Add([]byte(dcosAgentJSON))
	f.Add([]byte(dcosAgentMasterJSON))
	f.Add([]byte(`{"cni_dir":"/etc/cni/../cni/net.d/","network_config":{"overlay_mtu":552,"command_timeout":1,"enable_ipv6":false}}`))
	f.Add([]byte(`{"cni_dir":"relative","max_configuration_attempts":-1}`))
	for _, name := range []string{"agent_modules.json.in", "master_modules.json.in"} {
		if data, err := os.ReadFile(fixtures + "overlay/dcos-mesos-modules/" + name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The modules parser must not panic on anything.
		_, _ = ModuleConfigPaths(data)
		c, err := ParseAgentConfig(data)
		if err != nil {
			checkFieldError(t, err)
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := keysSorted(out); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		again, err := ParseAgentConfig(out)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip of %s: %v\n%+v\n%+v", out, err, c, again)
		}
	})
}

// stateSeeds are the seeds of the State and AgentInfo fuzzers.
func stateSeeds() []string {
	return []string{
		strings.Replace(stateExample, "[…]", dcosOverlaysJSON, 1),
		`{"network":` + dcosDefaultNetwork + `}`,
		`{"ip":"10.0.3.204:5051","configuration_attempts":2,"overlays":[{"info":{"name":"dcos","subnet":"9.0.0.0/8","prefix":24},"subnet":"9.0.3.0/24","state":{"status":"STATUS_FAILED","error":"docker: failed"}},{"info":{"name":"dcos6","enabled":false},"state":{"status":3}}]}`,
		`{"agents":[{"ip":"10.0.0.1","overlays":[{"backend":{},"state":{},"mesos_bridge":{"name":"m-x","ip6":"fd01:b::/81"}}]}],"network":null}`,
		`{"agents":[],"network":{"vni":0,"overlays":[null]}}`,
	}
}

func FuzzDecodeState(f *testing.F) {
	for _, s := range stateSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeState(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := keysSorted(out); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		again, err := DecodeState(out)
		if err != nil {
			t.Fatalf("decode of %s: %v", out, err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip of %s:\n%+v\n%+v", out, s, again)
		}
		if out2, _ := json.Marshal(again); !bytes.Equal(out, out2) {
			t.Fatalf("marshal not stable:\n%s\n%s", out, out2)
		}
		// Must not panic, whatever the state holds.
		if r, err := s.Reservations(); err == nil {
			_, _ = VTEPAddr(s.Network, r.VTEP)
			_, _ = VTEPAddr6(s.Network, r.VTEP6)
			for _, o := range s.Network.Overlays {
				_, _ = OverlaySubnet(o, r.Subnets[o.Name])
				_, _ = OverlaySubnet6(o, r.Subnets6[o.Name])
			}
		} else {
			checkFieldError(t, err)
		}
	})
}

func FuzzDecodeAgentInfo(f *testing.F) {
	for _, s := range stateSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAgentInfo(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := keysSorted(out); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		again, err := DecodeAgentInfo(out)
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip of %s: %v\n%+v\n%+v", out, err, a, again)
		}
		_, _ = a.Addr()
		// Rendering the CNI configs of whatever the agent reports must not
		// panic; what renders is JSON, and weft-cni accepts its own.
		for _, o := range a.Overlays {
			for _, mode := range []CNIMode{CNIModeBridge, CNIModeWeft} {
				conf, err := MesosCNIConfig(CNIOptions{Mode: mode, Overlay: o})
				if err != nil {
					continue
				}
				if !json.Valid(conf) || bytes.ContainsRune(conf, '\n') {
					t.Fatalf("config %q", conf)
				}
				if mode == CNIModeWeft {
					if _, err := cni.ParseConfig(conf); err != nil {
						t.Fatalf("weft-cni refuses %s: %v", conf, err)
					}
				}
			}
		}
	})
}
