package mesos

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// fixtures is shared/fixtures, read-only test data.
const fixtures = "../../../shared/fixtures/"

// bridgeOutput returns the "Bridge Output" section of the Contrail
// cni.info fixture: a CNI 0.2.0 result as the bridge plugin prints it.
func bridgeOutput(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(fixtures + "contrail/contrail-controller/cni.info")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "Bridge Output\n------------\n")
	if !ok {
		t.Fatal("cni.info: no Bridge Output section")
	}
	return []byte(strings.TrimSpace(after))
}

func TestParseCNIResult(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *CNIResult
		wantErr string
		addrs   []IPAddress
		addrErr string
	}{
		{
			name: "0.2.0 bridge output (fixture)",
			in:   "fixture",
			want: &CNIResult{
				IP4: &IPConfig{IP: "10.10.0.36/16", Gateway: "10.10.0.1", Routes: []Route{{Dst: "0.0.0.0/0", GW: "10.10.0.1"}}},
				DNS: &DNS{},
			},
			addrs: []IPAddress{{Protocol: IPv4, IPAddress: "10.10.0.36"}},
		},
		{
			name: "dual stack keeps the IPv6 prefix",
			in:   `{"cniVersion":"0.2.0","ip4":{"ip":"9.0.1.7/25"},"ip6":{"ip":"fd01:b::1:8000:2/80","gateway":"fd01:b::1"},"dns":{"nameservers":["9.0.0.1"],"search":["a.b"]}}`,
			want: &CNIResult{
				IP4: &IPConfig{IP: "9.0.1.7/25"},
				IP6: &IPConfig{IP: "fd01:b::1:8000:2/80", Gateway: "fd01:b::1"},
				DNS: &DNS{Nameservers: []string{"9.0.0.1"}, Search: []string{"a.b"}},
			},
			addrs: []IPAddress{{Protocol: IPv4, IPAddress: "9.0.1.7"}, {Protocol: IPv6, IPAddress: "fd01:b::1:8000:2/80"}},
		},
		{
			name:  "0.3.1 result parses but yields no IP",
			in:    `{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}`,
			want:  &CNIResult{DNS: &DNS{}},
			addrs: nil,
		},
		{
			name:  "1.0.0 result parses but yields no IP",
			in:    `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.1.0.5/24","interface":0}]}`,
			want:  &CNIResult{},
			addrs: nil,
		},
		{
			name:    "bare ip4.ip parses but cannot be reported",
			in:      `{"ip4":{"ip":"10.0.0.5"}}`,
			want:    &CNIResult{IP4: &IPConfig{IP: "10.0.0.5"}},
			addrErr: "Unable to parse the IP address 10.0.0.5 for the container: Unexpected number of '/' detected: 1",
		},
		{
			name:    "IPv6 in ip4",
			in:      `{"ip4":{"ip":"fd00::1/64"}}`,
			want:    &CNIResult{IP4: &IPConfig{IP: "fd00::1/64"}},
			addrErr: "Unable to parse the IP address fd00::1/64 for the container: Failed to parse the IP address: Failed to parse IPv4: fd00::1",
		},
		{
			name:    "ip4 without ip",
			in:      `{"ip4":{"gateway":"10.0.0.1"}}`,
			wantErr: "Protobuf parse failed: Missing required fields: ip4.ip",
		},
		{
			name:    "route without dst",
			in:      `{"ip4":{"ip":"10.0.0.5/24","routes":[{"dst":"0.0.0.0/0"},{"gw":"10.0.0.1"}]},"ip6":{}}`,
			wantErr: "Protobuf parse failed: Missing required fields: ip4.routes[1].dst, ip6.ip",
		},
		{
			name:    "wrong type",
			in:      `{"ip4":{"ip":5}}`,
			wantErr: "Protobuf parse failed: Not expecting a JSON number for field 'ip'",
		},
		{
			name:    "array for a message",
			in:      `{"ip4":[{"ip":"10.0.0.5/24"}]}`,
			wantErr: "Protobuf parse failed: Not expecting a JSON array for field 'ip4'",
		},
		{
			name: "null is unset, a single nameserver is a list",
			in:   `{"ip4":null,"dns":{"nameservers":"8.8.8.8","domain":null}}`,
			want: &CNIResult{DNS: &DNS{Nameservers: []string{"8.8.8.8"}}},
		},
		{
			name:    "CNI error output",
			in:      `{"cniVersion":"0.3.0","code":11,"msg":"boom"}`,
			want:    &CNIResult{},
			wantErr: "",
		},
		{
			name:    "not JSON",
			in:      `error: no agent`,
			wantErr: "JSON parse failed: ",
		},
		{
			name:    "not an object",
			in:      `[]`,
			wantErr: "JSON parse failed: Unexpected JSON type parsed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.in == "fixture" {
				in = bridgeOutput(t)
			}
			got, err := ParseCNIResult(in)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			addrs, err := got.IPAddresses()
			if tt.addrErr != "" {
				if err == nil || err.Error() != tt.addrErr {
					t.Fatalf("IPAddresses err = %v, want %q", err, tt.addrErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(addrs, tt.addrs) {
				t.Errorf("IPAddresses = %+v, want %+v", addrs, tt.addrs)
			}
		})
	}
}

func TestParseIPv4Network(t *testing.T) {
	tests := []struct {
		in      string
		addr    string
		prefix  int
		wantErr string
	}{
		{"10.10.0.36/16", "10.10.0.36", 16, ""},
		{"10.0.0.1/0", "10.0.0.1", 0, ""},
		{"10.0.0.1/0x18", "10.0.0.1", 24, ""},
		{"10.0.0.1/+8", "10.0.0.1", 8, ""},
		{"10.0.0.1", "", 0, "Unexpected number of '/' detected: 1"},
		{"10.0.0.1/8/9", "", 0, "Unexpected number of '/' detected: 3"},
		{"", "", 0, "Unexpected number of '/' detected: 1"},
		{"10.0.0/8", "", 0, "Failed to parse the IP address: Failed to parse IPv4: 10.0.0"},
		{"010.0.0.1/8", "", 0, "Failed to parse the IP address: Failed to parse IPv4: 010.0.0.1"},
		{"10.0.0.1/x", "", 0, "Subnet prefix is not a number"},
		{"10.0.0.1/ 8", "", 0, "Subnet prefix is not a number"},
		{"10.0.0.1/-1", "", 0, "Subnet prefix is negative"},
		{"10.0.0.1/33", "", 0, "IPv4 subnet prefix is larger than 32"},
	}
	for _, tt := range tests {
		addr, prefix, err := ParseIPv4Network(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseIPv4Network(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || addr.String() != tt.addr || prefix != tt.prefix {
			t.Errorf("ParseIPv4Network(%q) = %v, %d, %v; want %s, %d", tt.in, addr, prefix, err, tt.addr, tt.prefix)
		}
	}
}

// TestResolvConf mirrors Mesos' CniSpecTest.GenerateResolverConfig.
func TestResolvConf(t *testing.T) {
	tests := []struct {
		dns  DNS
		want string
	}{
		{DNS{}, ""},
		{DNS{Domain: "m.a.org"}, "domain m.a.org\n"},
		{DNS{Nameservers: []string{"1.1.1.1", "2.2.2.2"}}, "nameserver 1.1.1.1\nnameserver 2.2.2.2\n"},
		{DNS{Search: []string{"a.m.a.org", "b.m.a.org"}}, "search a.m.a.org b.m.a.org\n"},
		{DNS{Options: []string{"debug", "ndots:2"}}, "options debug ndots:2\n"},
		{DNS{Nameservers: []string{"9.0.0.1"}, Domain: "d", Search: []string{"s"}, Options: []string{"o"}},
			"domain d\nsearch s\noptions o\nnameserver 9.0.0.1\n"},
	}
	for _, tt := range tests {
		if got := tt.dns.ResolvConf(); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.dns, got, tt.want)
		}
	}
	var d DNS
	d.Merge(DNS{Nameservers: []string{"a"}, Domain: "x"})
	d.Merge(DNS{Nameservers: []string{"b"}, Search: []string{"s"}})
	if want := (DNS{Nameservers: []string{"a", "b"}, Domain: "x", Search: []string{"s"}}); !reflect.DeepEqual(d, want) {
		t.Errorf("Merge = %+v, want %+v", d, want)
	}
}

func TestParseNetworkConfig(t *testing.T) {
	ucr, err := os.ReadFile(fixtures + "mesos/mesos-mini/ucr-default-bridge.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		want    *NetworkConfig
		wantErr string
	}{
		{"port-mapper fixture (no top-level ipam)", string(ucr), &NetworkConfig{Name: "mesos-bridge", Type: "mesos-cni-port-mapper"}, ""},
		{"ipam and dns", `{"name":"n","type":"bridge","ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0"}],"subnet":"10.0.0.0/8"},"dns":{"nameservers":["1.1.1.1"]}}`,
			&NetworkConfig{Name: "n", Type: "bridge", IPAM: &IPAMConfig{Type: "host-local", Routes: []Route{{Dst: "0.0.0.0/0"}}}, DNS: &DNS{Nameservers: []string{"1.1.1.1"}}}, ""},
		{"conflist", `{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"bridge"}]}`, nil, "Protobuf parse failed: Missing required fields: type"},
		{"no name", `{"type":"bridge"}`, nil, "Protobuf parse failed: Missing required fields: name"},
		{"ipam without type", `{"name":"n","type":"bridge","ipam":{"subnet":"10.0.0.0/8"}}`, nil, "Protobuf parse failed: Missing required fields: ipam.type"},
		{"name not a string", `{"name":1,"type":"bridge"}`, nil, "Protobuf parse failed: Not expecting a JSON number for field 'name'"},
		{"bool for a string", `{"name":"n","type":true}`, nil, "Protobuf parse failed: Not expecting a JSON boolean for field 'type'"},
		{"garbage", `name = n`, nil, "JSON parse failed: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNetworkConfig([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestContainerDNSInfo(t *testing.T) {
	info, err := ParseContainerDNSInfo([]byte(`{"mesos":[
		{"network_mode":"CNI","network_name":"dcos","dns":{"nameservers":["198.51.100.1"]}},
		{"network_mode":"CNI","dns":{"nameservers":["8.8.8.8"],"search":["lab"]}},
		{"network_mode":"HOST","dns":{"nameservers":["1.1.1.1"]}}],
		"docker":[{"network_mode":"USER","network_name":"x","dns":{"nameservers":["9.9.9.9"]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	per, global := info.CNIDefaults()
	if want := map[string]DNS{"dcos": {Nameservers: []string{"198.51.100.1"}}}; !reflect.DeepEqual(per, want) {
		t.Errorf("per-network = %+v", per)
	}
	if global == nil || !reflect.DeepEqual(*global, DNS{Nameservers: []string{"8.8.8.8"}, Search: []string{"lab"}}) {
		t.Errorf("global = %+v", global)
	}
	if _, err := ParseContainerDNSInfo([]byte(`{"mesos":[{"network_mode":"BRIDGE"}]}`)); err == nil || err.Error() != "Failed to find enum for 'BRIDGE'" {
		t.Errorf("bad mode: %v", err)
	}
	if _, err := ParseContainerDNSInfo([]byte(`{"mesos":[{"dns":{}}]}`)); err == nil || err.Error() != "Missing required fields: mesos[0].network_mode" {
		t.Errorf("missing mode: %v", err)
	}
}
