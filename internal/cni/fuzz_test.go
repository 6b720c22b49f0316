package cni

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// Seed NetworkInfo shapes: what Marathon, the Docker-style frameworks, the
// Contrail SPEC and Mesos 1.4 state documents send.
var networkInfoSeeds = []string{
	`{"ip_addresses":[{"protocol":"IPv4"}],"labels":{"labels":[{"key":"networks","value":"blue"}]},"name":"dcos","port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}`,
	`{"ip_addresses":[{"protocol":"IPv4"}],"labels":{"labels":[{"key":"networks","value":"blue-network"},{"key":"network-subnets","value":"5.5.5.0/24"},{"key":"project-name","value":"default"},{"key":"domain-name","value":"default-domain"}]},"name":"contrail-cni-plugin"}`,
	`{"groups":["prod"],"ip_addresses":[{"ip_address":"9.0.1.7"}],"name":"dcos"}`,
	`{"ip_addresses":[{}],"name":"dcos6"}`,
	`{"ip_addresses":[{"protocol":"IPv4"},{"protocol":"IPv6","ip_address":"fd01:b::2:8000:0:1"}],"name":"dcos6"}`,
	`{"labels":{"labels":[{"key":"security-groups","value":"default-domain:default-project:security_groups_mesos"},{"key":"floating-ips","value":"default-domain:default-project:__public__:__fip_pool_public__(10.66.77.123)"}]}}`,
	`{"labels":[{"key":"networks","value":"default-domain:mesos-default:mesos-default-pod-task-network"}]}`,
	`{"ip_addresses":[{"protocol":2}],"labels":{"labels":[{"key":"project-name","value":"acme:web"}]}}`,
	`{"ip_addresses":[{"protocol":"IPv5","ip_address":"x"}]}`,
	`{}`,
	`null`,
	`[]`,
}

func FuzzParseNetworkInfo(f *testing.F) {
	for _, s := range networkInfoSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		ni, err := ParseNetworkInfo([]byte(data))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error %v does not name a field", err)
			}
			return
		}
		sel, err := ni.Selection()
		if err != nil {
			t.Fatalf("parsed NetworkInfo fails Selection: %v", err)
		}
		checkSelection(t, sel)
		// Rendering and parsing again gives the same request.
		b, err := json.Marshal(ni)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		ni2, err := ParseNetworkInfo(b)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		sel2, _ := ni2.Selection()
		if !reflect.DeepEqual(sel, sel2) {
			t.Fatalf("round trip changed the selection:\n%+v\n%+v", sel, sel2)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add(string(readFixture(f, fixtureContrailConf)))
	f.Add(string(readFixture(f, fixtureUCRBridge)))
	f.Add(specContrailStdin)
	f.Add(dcosOverlayStdin)
	for _, ni := range networkInfoSeeds {
		f.Add(`{"cniVersion":"0.2.0","name":"weft","type":"weft-cni","args":{"org.apache.mesos":{"network_info":` + ni + `}}}`)
	}
	f.Add(`{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","weft":{"socket":"/run/weft/agent.sock","network":"red","project":"d:p","timeout":"5s","log-level":"debug","mtu":1450,"dns":{"nameservers":["10.0.0.2"]}},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`)
	f.Add(`{"name":"n","args":{"cni":{"ips":["10.0.0.9/24"],"labels":[{"key":"networks","value":"x"}]}},"contrail":{"poll-timeout":"5","poll-retries":15,"mesos-port":6991,"log-level":4}}`)
	f.Add(`{"name":`)
	f.Fuzz(func(t *testing.T, data string) {
		conf, err := ParseConfig([]byte(data))
		lenient, lerr := parseLenient([]byte(data))
		if err != nil {
			if e := configError(err); e.Code != CodeInvalidConfig && e.Code != CodeDecodingFailure {
				t.Fatalf("config error code %d: %v", e.Code, e)
			}
			return
		}
		if lerr != nil || len(lenient.Warnings) != 0 {
			t.Fatalf("strict parse succeeded, lenient did not: %v %v", lerr, lenient.Warnings)
		}
		if conf.Name == "" || conf.Socket == "" || conf.Timeout <= 0 || conf.Project == "" {
			t.Fatalf("incomplete config: %+v", conf)
		}
		checkSelection(t, conf.Selection)
		req := conf.AttachRequest("cid", "eth0", "/ns")
		if _, err := json.Marshal(req); err != nil {
			t.Fatalf("request does not encode: %v", err)
		}
		if req.Project == "" || req.CNINetwork != conf.Name {
			t.Fatalf("request = %+v", req)
		}
	})
}

// checkSelection checks the invariants of a validated Selection.
func checkSelection(t *testing.T, sel Selection) {
	t.Helper()
	for _, s := range sel.Subnets {
		if p, err := netip.ParsePrefix(s); err != nil || p.Masked() != p {
			t.Fatalf("subnet %q", s)
		}
	}
	for _, s := range sel.IPs {
		if _, err := netip.ParseAddr(s); err != nil {
			t.Fatalf("ip %q", s)
		}
	}
	for _, fam := range sel.Families {
		if fam != "ipv4" && fam != "ipv6" {
			t.Fatalf("family %q", fam)
		}
	}
	if err := checkNetworkRef(sel.Network); err != nil {
		t.Fatalf("network %q: %v", sel.Network, err)
	}
}
