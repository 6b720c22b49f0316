package cni

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
)

// labelsJSON renders key/value pairs as Mesos renders NetworkInfo.labels.
func labelsJSON(kv ...string) string {
	var ls []Label
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, Label{Key: kv[i], Value: kv[i+1]})
	}
	b, _ := json.Marshal(map[string]any{"labels": ls})
	return string(b)
}

func TestLabelMapping(t *testing.T) {
	tests := []struct {
		name   string
		labels string // NetworkInfo.labels JSON; "" for none
		weft   string // weft object; "" for none
		// want: Network, Project, Subnets, SecurityGroups of the request
		network, project string
		subnets, sgs     []string
	}{
		{name: "no labels, no config: default task network", project: DefaultProject},
		{name: "no labels, weft.network", weft: `{"network":"red"}`, network: "red", project: DefaultProject},
		{name: "no labels, weft.network and project", weft: `{"network":"red","project":"d1:p1"}`, network: "red", project: "d1:p1"},
		{name: "short name", labels: labelsJSON("networks", "blue"), network: "blue", project: DefaultProject},
		{name: "short name wins over weft.network", labels: labelsJSON("networks", "blue"), weft: `{"network":"red","project":"d1:p1"}`,
			network: "blue", project: "d1:p1"},
		{name: "fq name", labels: labelsJSON("networks", "default-domain:default:blue-network"),
			network: "default-domain:default:blue-network", project: DefaultProject},
		{name: "uuid", labels: labelsJSON("networks", "6f0b8c7e-1d0b-4a5e-9d6c-2b7b7c1e8a11"),
			network: "6f0b8c7e-1d0b-4a5e-9d6c-2b7b7c1e8a11", project: DefaultProject},
		{name: "empty networks value: default", labels: labelsJSON("networks", " "), weft: `{"network":"red"}`, network: "red", project: DefaultProject},
		{name: "project-name only", labels: labelsJSON("networks", "blue", "project-name", "web"),
			network: "blue", project: "default-domain:web"},
		{name: "domain-name only", labels: labelsJSON("networks", "blue", "domain-name", "acme"),
			network: "blue", project: "acme:default-project"},
		{name: "both, over weft.project", labels: labelsJSON("networks", "blue", "project-name", "web", "domain-name", "acme"),
			weft: `{"project":"d1:p1"}`, network: "blue", project: "acme:web"},
		{name: "project-name as domain:project", labels: labelsJSON("project-name", "acme:web"), project: "acme:web"},
		{name: "project-name domain:project agreeing with domain-name", labels: labelsJSON("domain-name", "acme", "project-name", "acme:web"), project: "acme:web"},
		{name: "subnets", labels: labelsJSON("networks", "blue", "network-subnets", " 5.5.5.0/24,,fd00:5::/64 "),
			network: "blue", project: DefaultProject, subnets: []string{"5.5.5.0/24", "fd00:5::/64"}},
		{name: "security groups", labels: labelsJSON("security-groups", "default-domain:default-project:security_groups_mesos, d:p:web"),
			project: DefaultProject, sgs: []string{"default-domain:default-project:security_groups_mesos", "d:p:web"}},
		{name: "everything", labels: labelsJSON("networks", "blue-network", "network-subnets", "5.5.5.0/24", "project-name", "default",
			"domain-name", "default-domain", "security-groups", "default-domain:default:sg1",
			"floating-ips", "default-domain:default-project:__public__:__fip_pool_public__(10.66.77.123)"),
			network: "blue-network", project: "default-domain:default", subnets: []string{"5.5.5.0/24"}, sgs: []string{"default-domain:default:sg1"}},
		{name: "later duplicate wins", labels: labelsJSON("networks", "blue", "networks", "green"), network: "green", project: DefaultProject},
		{name: "bare label array", labels: `[{"key":"networks","value":"blue"}]`, network: "blue", project: DefaultProject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni := `{"ip_addresses":[{"protocol":"IPv4"}],"name":"contrail-cni-plugin"`
			if tt.labels != "" {
				ni += `,"labels":` + tt.labels
			}
			ni += "}"
			base := `{"cniVersion":"0.2.0","name":"contrail-cni-plugin","type":"contrail-cni-plugin"`
			if tt.weft != "" {
				base += `,"weft":` + tt.weft
			}
			base += "}"
			conf, err := ParseConfig(injectMesosArgs(t, []byte(base), ni))
			if err != nil {
				t.Fatal(err)
			}
			req := conf.AttachRequest("cid", "eth0", "/ns")
			if req.Network != tt.network || req.Project != tt.project ||
				!reflect.DeepEqual(req.Subnets, tt.subnets) || !reflect.DeepEqual(req.SecurityGroups, tt.sgs) {
				t.Errorf("request network=%q project=%q subnets=%v sgs=%v\nwant network=%q project=%q subnets=%v sgs=%v",
					req.Network, req.Project, req.Subnets, req.SecurityGroups, tt.network, tt.project, tt.subnets, tt.sgs)
			}
			// Every label is kept.
			for _, l := range conf.NetworkInfo.Labels {
				if _, ok := req.Labels[l.Key]; !ok {
					t.Errorf("label %q not in request labels %v", l.Key, req.Labels)
				}
			}
		})
	}
}

func TestIPAddresses(t *testing.T) {
	tests := []struct {
		name     string
		addrs    string
		ips      []string
		families []string
		parsed   []IPAddress
	}{
		{name: "none", addrs: `[]`},
		{name: "missing protocol is IPv4 (Mesos 1.4 renders {})", addrs: `[{}]`, families: []string{"ipv4"},
			parsed: []IPAddress{{Protocol: ProtocolIPv4}}},
		{name: "explicit IPv4", addrs: `[{"protocol":"IPv4"}]`, families: []string{"ipv4"}, parsed: []IPAddress{{Protocol: ProtocolIPv4}}},
		{name: "explicit IPv6", addrs: `[{"protocol":"IPv6"}]`, families: []string{"ipv6"}, parsed: []IPAddress{{Protocol: ProtocolIPv6}}},
		{name: "dual stack", addrs: `[{"protocol":"IPv4"},{"protocol":"IPv6"}]`, families: []string{"ipv4", "ipv6"}},
		{name: "lower case and enum numbers", addrs: `[{"protocol":"ipv6"},{"protocol":1},{"protocol":2}]`, families: []string{"ipv6", "ipv4", "ipv6"}},
		{name: "explicit address", addrs: `[{"protocol":"IPv4","ip_address":"9.0.1.7"}]`, ips: []string{"9.0.1.7"},
			parsed: []IPAddress{{Protocol: ProtocolIPv4, IPAddress: "9.0.1.7"}}},
		{name: "docker style address without protocol", addrs: `[{"ip_address":"9.0.1.7"}]`, ips: []string{"9.0.1.7"}},
		{name: "IPv6 address without protocol takes its family", addrs: `[{"ip_address":"FD00::0007"}]`, ips: []string{"fd00::7"},
			parsed: []IPAddress{{Protocol: ProtocolIPv6, IPAddress: "fd00::7"}}},
		{name: "mixed", addrs: `[{"protocol":"IPv4","ip_address":"9.0.1.7"},{"protocol":"IPv6"}]`, ips: []string{"9.0.1.7"}, families: []string{"ipv6"}},
		{name: "null protocol and empty address", addrs: `[{"protocol":null,"ip_address":""}]`, families: []string{"ipv4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni, err := ParseNetworkInfo([]byte(`{"name":"dcos","ip_addresses":` + tt.addrs + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if tt.parsed != nil && !reflect.DeepEqual(ni.IPAddresses, tt.parsed) {
				t.Errorf("parsed = %+v, want %+v", ni.IPAddresses, tt.parsed)
			}
			sel, err := ni.Selection()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sel.IPs, tt.ips) || !reflect.DeepEqual(sel.Families, tt.families) {
				t.Errorf("ips=%v families=%v, want %v %v", sel.IPs, sel.Families, tt.ips, tt.families)
			}
		})
	}
}

func TestArgsCNI(t *testing.T) {
	stdin := `{"name":"n","args":{"cni":{"ips":["10.0.0.9/24","fd00::9"],"labels":[{"key":"networks","value":"from-cni"},{"key":"team","value":"a"}]},
		"org.apache.mesos":{"network_info":{"ip_addresses":[{"protocol":"IPv4","ip_address":"10.0.0.8"}],"labels":{"labels":[{"key":"networks","value":"from-mesos"}]}}}}}`
	conf, err := ParseConfig([]byte(stdin))
	if err != nil {
		t.Fatal(err)
	}
	req := conf.AttachRequest("c", "eth0", "/ns")
	want := api.AttachRequest{ContainerID: "c", IfName: "eth0", Netns: "/ns", CNINetwork: "n", Network: "from-mesos",
		Project: DefaultProject, IPs: []string{"10.0.0.8", "10.0.0.9", "fd00::9"},
		Labels: map[string]string{"networks": "from-mesos", "team": "a"}}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("request:\n got %+v\nwant %+v", req, want)
	}
}

func TestParseNetworkInfoErrors(t *testing.T) {
	const p = NetworkInfoPath
	tests := []struct {
		name, ni, field, msg string
	}{
		{"not json", `{`, p, "not valid JSON"},
		{"not object", `[]`, p, "must be an object"},
		{"name type", `{"name":1}`, p + ".name", "must be a string"},
		{"ip_addresses type", `{"ip_addresses":{}}`, p + ".ip_addresses", "must be an array"},
		{"ip entry type", `{"ip_addresses":["9.0.1.7"]}`, p + ".ip_addresses[0]", "must be an object"},
		{"bad address", `{"ip_addresses":[{"protocol":"IPv4"},{"protocol":"IPv4","ip_address":"9.0.1.256"}]}`, p + ".ip_addresses[1].ip_address", "not an IP address"},
		{"address with prefix", `{"ip_addresses":[{"ip_address":"9.0.1.7/24"}]}`, p + ".ip_addresses[0].ip_address", "without a prefix length"},
		{"address with zone", `{"ip_addresses":[{"ip_address":"fe80::1%eth0"}]}`, p + ".ip_addresses[0].ip_address", "zone"},
		{"protocol mismatch", `{"ip_addresses":[{"protocol":"IPv6","ip_address":"9.0.1.7"}]}`, p + ".ip_addresses[0].ip_address", "protocol is IPv6"},
		{"wrong protocol", `{"ip_addresses":[{"protocol":"IPv5"}]}`, p + ".ip_addresses[0].protocol", "must be IPv4 or IPv6"},
		{"wrong protocol number", `{"ip_addresses":[{"protocol":3}]}`, p + ".ip_addresses[0].protocol", "must be IPv4 or IPv6"},
		{"protocol type", `{"ip_addresses":[{"protocol":true}]}`, p + ".ip_addresses[0].protocol", "must be a string"},
		{"labels type", `{"labels":"networks=blue"}`, p + ".labels", "must be an object"},
		{"label list type", `{"labels":{"labels":{}}}`, p + ".labels.labels", "must be an array"},
		{"label key type", `{"labels":{"labels":[{"key":1}]}}`, p + ".labels.labels[0].key", "must be a string"},
		{"label value type", `{"labels":{"labels":[{"key":"a","value":2}]}}`, p + ".labels.labels[0].value", "must be a string"},
		{"networks two names", `{"labels":` + labelsJSON("networks", "a,b") + `}`, p + ".labels.labels[0].value", "more than one network"},
		{"networks bad fq", `{"labels":` + labelsJSON("networks", "d::n") + `}`, p + ".labels.labels[0].value", "fq_name"},
		{"networks four parts", `{"labels":` + labelsJSON("networks", "a:b:c:d") + `}`, p + ".labels.labels[0].value", "fq_name"},
		{"domain with colon", `{"labels":` + labelsJSON("x", "y", "domain-name", "a:b") + `}`, p + ".labels.labels[1].value", "domain name"},
		{"project contradicts domain", `{"labels":` + labelsJSON("domain-name", "a", "project-name", "b:web") + `}`, p + ".labels.labels[1].value", "contradicts"},
		{"project three parts", `{"labels":` + labelsJSON("project-name", "a:b:c") + `}`, p + ".labels.labels[0].value", "domain:project"},
		{"subnet not cidr", `{"labels":` + labelsJSON("network-subnets", "5.5.5.0") + `}`, p + ".labels.labels[0].value", "not a CIDR"},
		{"subnet host bits", `{"labels":` + labelsJSON("network-subnets", "5.5.5.1/24") + `}`, p + ".labels.labels[0].value", "did you mean 5.5.5.0/24"},
		{"security group empty part", `{"labels":` + labelsJSON("security-groups", "d::sg") + `}`, p + ".labels.labels[0].value", "fq_name"},
		{"groups type", `{"groups":"prod"}`, p + ".groups", "must be an array"},
		{"port mapping port", `{"port_mappings":[{"host_port":"80","container_port":80}]}`, p + ".port_mappings[0].host_port", "must be an integer"},
		{"port mapping range", `{"port_mappings":[{"host_port":31845,"container_port":70000}]}`, p + ".port_mappings[0].container_port", "not a port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNetworkInfo([]byte(tt.ni))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Errorf("error field=%q msg=%q, want field %q msg containing %q", fe.Field, fe.Msg, tt.field, tt.msg)
			}
		})
	}
}

func TestNetworkInfoRoundTrip(t *testing.T) {
	in := `{"groups":["prod"],"ip_addresses":[{"protocol":"IPv4"},{"ip_address":"fd00::7","protocol":"IPv6"}],"labels":{"labels":[{"key":"networks","value":"blue"}]},"name":"dcos","port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}`
	ni, err := ParseNetworkInfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(ni)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal([]byte(in), &a)
	_ = json.Unmarshal(out, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip:\n in %s\nout %s", in, out)
	}
}
