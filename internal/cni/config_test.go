package cni

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/weft-sdn/weft/internal/api"
)

// Fixtures (read-only, shared with other packages).
const (
	fixtureContrailConf = "../../../shared/fixtures/contrail/contrail-controller/mesos-contrail-cni.conf"
	fixtureCNIInfo      = "../../../shared/fixtures/contrail/contrail-controller/cni.info"
	fixtureUCRBridge    = "../../../shared/fixtures/mesos/mesos-mini/ucr-default-bridge.json"
)

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// injectMesosArgs does what the Mesos isolator does to a config file:
// args["org.apache.mesos"] = {"network_info": ni}, keys sorted, compact.
func injectMesosArgs(t testing.TB, conf []byte, networkInfo string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatalf("config: %v", err)
	}
	args, _ := m["args"].(map[string]any)
	if args == nil {
		args = map[string]any{}
	}
	if _, ok := args[MesosArgsKey]; ok {
		t.Fatalf("'org.apache.mesos' in 'args' should not be set in CNI network configuration file. It is reserved by Mesos")
	}
	args[MesosArgsKey] = map[string]any{"network_info": json.RawMessage(networkInfo)}
	m["args"] = args
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setKeys sets top-level keys of a JSON config.
func setKeys(t testing.TB, conf []byte, kv map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatalf("config: %v", err)
	}
	for k, v := range kv {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseConfigFixtures(t *testing.T) {
	t.Run("contrail mesos conf", func(t *testing.T) {
		conf, err := ParseConfig(readFixture(t, fixtureContrailConf))
		if err != nil {
			t.Fatal(err)
		}
		if conf.CNIVersion != "0.2.0" || conf.Name != "contrail" || conf.Type != "contrail" {
			t.Errorf("version/name/type = %q/%q/%q", conf.CNIVersion, conf.Name, conf.Type)
		}
		want := &ContrailConf{
			VRouterIP: "10.204.217.210", VRouterPort: 9091, PollTimeout: 1, PollRetries: 3,
			ConfigDir: "/var/lib/contrail/ports/vm", LogLevel: "4", Mode: "mesos", VifType: "veth",
		}
		if !reflect.DeepEqual(conf.Contrail, want) {
			t.Errorf("contrail = %+v, want %+v", conf.Contrail, want)
		}
		// poll-timeout 1 s × poll-retries 3 = 3 s; "4" is debug; log-dir
		// (unknown) ignored; the socket is Weft's.
		if conf.Timeout != 3*time.Second || conf.LogLevel != slog.LevelDebug || conf.Socket != DefaultSocket {
			t.Errorf("timeout/level/socket = %v/%v/%q", conf.Timeout, conf.LogLevel, conf.Socket)
		}
		if conf.NetworkInfo != nil || conf.Project != DefaultProject || conf.Network != "" {
			t.Errorf("unexpected defaults: %+v", conf)
		}
	})
	t.Run("ucr default bridge", func(t *testing.T) {
		// No cniVersion: 0.1.0; port-mapper keys ignored.
		conf, err := ParseConfig(readFixture(t, fixtureUCRBridge))
		if err != nil {
			t.Fatal(err)
		}
		if conf.CNIVersion != "0.1.0" || conf.Name != "mesos-bridge" || conf.Type != "mesos-cni-port-mapper" {
			t.Errorf("version/name/type = %q/%q/%q", conf.CNIVersion, conf.Name, conf.Type)
		}
		if conf.Timeout != DefaultTimeout || conf.Contrail != nil || conf.LogFile != "" {
			t.Errorf("unexpected settings: %+v", conf)
		}
	})
	t.Run("ucr default bridge with mesos args", func(t *testing.T) {
		ni := `{"ip_addresses":[{"protocol":"IPv4"}],"name":"mesos-bridge","port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}`
		conf, err := ParseConfig(injectMesosArgs(t, readFixture(t, fixtureUCRBridge), ni))
		if err != nil {
			t.Fatal(err)
		}
		if conf.NetworkInfo == nil || conf.NetworkInfo.Name != "mesos-bridge" ||
			!reflect.DeepEqual(conf.NetworkInfo.PortMappings, []PortMapping{{HostPort: 31845, ContainerPort: 80, Protocol: "tcp"}}) {
			t.Errorf("network info = %+v", conf.NetworkInfo)
		}
		req := conf.AttachRequest("cid", "eth0", "/ns")
		if !reflect.DeepEqual(req.Families, []string{"ipv4"}) || req.Network != "" || req.Project != DefaultProject {
			t.Errorf("request = %+v", req)
		}
	})
	t.Run("cni.info stdin", func(t *testing.T) {
		// The k8s stdin of cni.info: bridge keys, no cniVersion.
		text := string(readFixture(t, fixtureCNIInfo))
		start := strings.Index(text, "{\n    \"name\": \"mynet\"")
		end := strings.Index(text[start:], "\n}\n")
		if start < 0 || end < 0 {
			t.Fatal("stdin not found in cni.info")
		}
		conf, err := ParseConfig([]byte(text[start : start+end+2]))
		if err != nil {
			t.Fatal(err)
		}
		if conf.Name != "mynet" || conf.CNIVersion != "0.1.0" {
			t.Errorf("name/version = %q/%q", conf.Name, conf.CNIVersion)
		}
	})
}

// specContrailStdin is the sample stdin of contrail-mesos.md §2.1 (SPEC).
const specContrailStdin = `{"args":{"org.apache.mesos":{"network_info":{"ip_addresses":[{"protocol":"IPv4"}],
   "labels":{"labels":[{"key":"networks","value":"blue-network"},{"key":"network-subnets","value":"5.5.5.0/24"},
                       {"key":"project-name","value":"default"},{"key":"domain-name","value":"default-domain"}]},
   "name":"contrail-cni-plugin"}}},
 "cniVersion":"0.2.0",
 "contrail":{"cluster-name":"b2s27","config-dir":"/var/lib/contrail/ports/vm","log-level":"info",
             "poll-retries":5,"poll-timeout":15,"vrouter-ip":"10.84.22.27","vrouter-port":9091},
 "name":"contrail-cni-plugin","type":"contrail-cni-plugin"}`

// dcosOverlayStdin is the stdin example of mesos-cni.md §3.1.
const dcosOverlayStdin = `{"args":{"org.apache.mesos":{"network_info":{"ip_addresses":[{"protocol":"IPv4"}],
 "labels":{"labels":[{"key":"networks","value":"blue"}]},"name":"dcos",
 "port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}}},
 "chain":"M-DCOS","delegate":{"bridge":"m-dcos","hairpinMode":true,"ipMasq":false,"isGateway":true,"mtu":1420,
 "ipam":{"dataDir":"/var/run/dcos/cni/networks","routes":[{"dst":"0.0.0.0/0"}],"subnet":"9.0.1.0/25","type":"host-local"},
 "type":"bridge"},"excludeDevices":["m-dcos"],"name":"dcos","type":"mesos-cni-port-mapper"}`

func TestParseConfigReferenceExamples(t *testing.T) {
	tests := []struct {
		name    string
		stdin   string
		want    api.AttachRequest
		timeout time.Duration
	}{
		{
			name:  "contrail spec sample",
			stdin: specContrailStdin,
			want: api.AttachRequest{
				ContainerID: "cid", IfName: "eth0", Netns: "/ns", CNINetwork: "contrail-cni-plugin",
				Network: "blue-network", Project: "default-domain:default", Subnets: []string{"5.5.5.0/24"},
				Families: []string{"ipv4"},
				Labels: map[string]string{"networks": "blue-network", "network-subnets": "5.5.5.0/24",
					"project-name": "default", "domain-name": "default-domain"},
			},
			// 15 s × 5 = 75 s, capped.
			timeout: MaxContrailTimeout,
		},
		{
			name:  "dcos overlay",
			stdin: dcosOverlayStdin,
			want: api.AttachRequest{
				ContainerID: "cid", IfName: "eth0", Netns: "/ns", CNINetwork: "dcos",
				Network: "blue", Project: DefaultProject, Families: []string{"ipv4"},
				Labels: map[string]string{"networks": "blue"},
			},
			timeout: DefaultTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := ParseConfig([]byte(tt.stdin))
			if err != nil {
				t.Fatal(err)
			}
			got := conf.AttachRequest("cid", "eth0", "/ns")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("request:\n got %+v\nwant %+v", got, tt.want)
			}
			if conf.Timeout != tt.timeout {
				t.Errorf("timeout = %v, want %v", conf.Timeout, tt.timeout)
			}
		})
	}
}

func TestParseConfigSettings(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		check func(t *testing.T, c *NetConf)
	}{
		{"empty cniVersion is 0.1.0", `{"cniVersion":"","name":"n"}`, func(t *testing.T, c *NetConf) {
			if c.CNIVersion != "0.1.0" {
				t.Errorf("version = %q", c.CNIVersion)
			}
		}},
		{"weft object", `{"cniVersion":"1.0.0","name":"n","type":"weft-cni","weft":{
			"socket":"/var/run/weft/a.sock","network":"red","project":"d1:p1","timeout":"2m30s",
			"log-file":"/var/log/weft/cni.log","log-level":"warn","mtu":1400,
			"dns":{"nameservers":["10.0.0.2"," fd00::2 "],"domain":"mesos","search":["a","b"],"options":["ndots:2"]}}}`,
			func(t *testing.T, c *NetConf) {
				if c.Socket != "/var/run/weft/a.sock" || c.Network != "red" || c.Project != "d1:p1" ||
					c.Timeout != 150*time.Second || c.LogFile != "/var/log/weft/cni.log" ||
					c.LogLevel != slog.LevelWarn || c.MTU != 1400 {
					t.Errorf("settings = %+v", c)
				}
				want := types.DNS{Nameservers: []string{"10.0.0.2", "fd00::2"}, Domain: "mesos", Search: []string{"a", "b"}, Options: []string{"ndots:2"}}
				if !reflect.DeepEqual(c.DNS, want) {
					t.Errorf("dns = %+v", c.DNS)
				}
			}},
		{"timeout as seconds, bare project", `{"name":"n","weft":{"timeout":2.5,"project":"ops"}}`, func(t *testing.T, c *NetConf) {
			if c.Timeout != 2500*time.Millisecond || c.Project != "default-domain:ops" {
				t.Errorf("timeout/project = %v/%q", c.Timeout, c.Project)
			}
		}},
		{"contrail keys all", `{"name":"contrail-cni-plugin","type":"contrail-cni-plugin","contrail":{
			"vrouter-ip":"10.1.1.1","vrouter-port":"9091","poll-timeout":"5","poll-retries":15,"config-dir":"/d",
			"log-file":"/var/log/contrail/cni/opencontrail.log","log-level":4,"cluster-name":"mesos","mode":"mesos",
			"mesos-ip":"127.0.0.1","mesos-port":6991,"vif-type":"macvlan","parent-interface":"eth1","mtu":1450,
			"meta-plugin":"multus","some-future-key":{"x":1}}}`,
			func(t *testing.T, c *NetConf) {
				want := &ContrailConf{VRouterIP: "10.1.1.1", VRouterPort: 9091, PollTimeout: 5, PollRetries: 15,
					ConfigDir: "/d", LogFile: "/var/log/contrail/cni/opencontrail.log", LogLevel: "4",
					ClusterName: "mesos", Mode: "mesos", MesosIP: "127.0.0.1", MesosPort: "6991", VifType: "macvlan",
					ParentInterface: "eth1", MTU: 1450, MetaPlugin: "multus"}
				if !reflect.DeepEqual(c.Contrail, want) {
					t.Errorf("contrail = %+v", c.Contrail)
				}
				// 5 × 15 = 75 s → 60 s; contrail log file, level and mtu used.
				if c.Timeout != MaxContrailTimeout || c.LogFile != want.LogFile || c.LogLevel != slog.LevelDebug || c.MTU != 1450 {
					t.Errorf("settings = %+v", c)
				}
				if c.Socket != DefaultSocket {
					t.Errorf("socket = %q: vrouter-ip must not change it", c.Socket)
				}
			}},
		{"contrail poll-retries only uses the default poll-timeout", `{"name":"n","contrail":{"poll-retries":2}}`, func(t *testing.T, c *NetConf) {
			if c.Timeout != 6*time.Second {
				t.Errorf("timeout = %v", c.Timeout)
			}
		}},
		{"weft overrides contrail", `{"name":"n","contrail":{"poll-timeout":1,"poll-retries":1,"log-file":"/a","log-level":"error","mtu":1500},
			"weft":{"timeout":"20s","log-file":"/b","log-level":"debug","mtu":9000}}`, func(t *testing.T, c *NetConf) {
			if c.Timeout != 20*time.Second || c.LogFile != "/b" || c.LogLevel != slog.LevelDebug || c.MTU != 9000 {
				t.Errorf("settings = %+v", c)
			}
		}},
		{"log levels", `{"name":"n","weft":{"log-level":"INFO"},"contrail":{"log-level":"1"}}`, func(t *testing.T, c *NetConf) {
			if c.LogLevel != slog.LevelInfo {
				t.Errorf("level = %v", c.LogLevel)
			}
		}},
		{"unknown args keys and nulls ignored", `{"name":"n","args":{"foo":{"bar":1},"cni":{"mac":"x"},"org.apache.mesos":{"other":1}},"weft":null,"contrail":null,"dns":null}`,
			func(t *testing.T, c *NetConf) {
				if c.NetworkInfo != nil || c.Contrail != nil {
					t.Errorf("conf = %+v", c)
				}
			}},
		{"top-level dns", `{"name":"n","dns":{"nameservers":["1.1.1.1"]}}`, func(t *testing.T, c *NetConf) {
			if !reflect.DeepEqual(c.FallbackDNS.Nameservers, []string{"1.1.1.1"}) {
				t.Errorf("fallback dns = %+v", c.FallbackDNS)
			}
		}},
		{"valid attachments", `{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b.c","ifname":"eth1"}]}`,
			func(t *testing.T, c *NetConf) {
				want := api.GCRequest{CNINetwork: "n", Valid: []api.DetachRequest{
					{ContainerID: "a", IfName: "eth0", CNINetwork: "n"}, {ContainerID: "b.c", IfName: "eth1", CNINetwork: "n"}}}
				if got := c.GCRequest(); !reflect.DeepEqual(got, want) {
					t.Errorf("gc = %+v", got)
				}
			}},
		{"misspelt attachments key", `{"cniVersion":"1.1.0","name":"n","cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}`,
			func(t *testing.T, c *NetConf) {
				if len(c.ValidAttachments) != 1 {
					t.Errorf("attachments = %+v", c.ValidAttachments)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.stdin))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	const ni = NetworkInfoPath
	tests := []struct {
		name  string
		stdin string
		field string // "" for a non-field error
		code  uint
		msg   string // substring of the message
	}{
		{"not json", `{"name":`, "", CodeDecodingFailure, "not a JSON object"},
		{"array", `[1]`, "", CodeDecodingFailure, "not a JSON object"},
		{"null", `null`, "", CodeDecodingFailure, "not a JSON object"},
		{"missing name", `{"cniVersion":"0.2.0"}`, "name", CodeInvalidConfig, "is missing"},
		{"bad name", `{"name":"a b"}`, "name", CodeInvalidConfig, "characters"},
		{"name type", `{"name":5}`, "name", CodeInvalidConfig, "must be a string, not a number"},
		{"cniVersion type", `{"name":"n","cniVersion":1}`, "cniVersion", CodeInvalidConfig, "must be a string"},
		{"weft not object", `{"name":"n","weft":"x"}`, "weft", CodeInvalidConfig, "must be an object"},
		{"relative socket", `{"name":"n","weft":{"socket":"agent.sock"}}`, "weft.socket", CodeInvalidConfig, "absolute"},
		{"bad timeout", `{"name":"n","weft":{"timeout":"10"}}`, "weft.timeout", CodeInvalidConfig, "not a duration"},
		{"negative timeout", `{"name":"n","weft":{"timeout":"-1s"}}`, "weft.timeout", CodeInvalidConfig, "positive"},
		{"timeout bool", `{"name":"n","weft":{"timeout":true}}`, "weft.timeout", CodeInvalidConfig, "duration"},
		{"bad log level", `{"name":"n","weft":{"log-level":"loud"}}`, "weft.log-level", CodeInvalidConfig, "debug, info"},
		{"bad mtu", `{"name":"n","weft":{"mtu":10}}`, "weft.mtu", CodeInvalidConfig, "not an MTU"},
		{"mtu string", `{"name":"n","weft":{"mtu":"1500"}}`, "weft.mtu", CodeInvalidConfig, "must be an integer"},
		{"bad project", `{"name":"n","weft":{"project":"a:b:c"}}`, "weft.project", CodeInvalidConfig, "domain:project"},
		{"bad network", `{"name":"n","weft":{"network":"a:b"}}`, "weft.network", CodeInvalidConfig, "fq_name"},
		{"bad nameserver", `{"name":"n","weft":{"dns":{"nameservers":["10.0.0.2","dns.local"]}}}`, "weft.dns.nameservers[1]", CodeInvalidConfig, "not an IP"},
		{"contrail port", `{"name":"n","contrail":{"vrouter-port":"http"}}`, "contrail.vrouter-port", CodeInvalidConfig, "integer"},
		{"contrail port range", `{"name":"n","contrail":{"vrouter-port":70000}}`, "contrail.vrouter-port", CodeInvalidConfig, "port"},
		{"contrail poll-timeout float", `{"name":"n","contrail":{"poll-timeout":1.5}}`, "contrail.poll-timeout", CodeInvalidConfig, "integer"},
		{"contrail poll-retries negative", `{"name":"n","contrail":{"poll-retries":-1}}`, "contrail.poll-retries", CodeInvalidConfig, "positive"},
		{"contrail vrouter-ip type", `{"name":"n","contrail":{"vrouter-ip":[]}}`, "contrail.vrouter-ip", CodeInvalidConfig, "must be a string"},
		{"contrail mesos-port object", `{"name":"n","contrail":{"mesos-port":{}}}`, "contrail.mesos-port", CodeInvalidConfig, "string or a number"},
		{"contrail log-level", `{"name":"n","contrail":{"log-level":"-3"}}`, "contrail.log-level", CodeInvalidConfig, "debug, info"},
		{"args not object", `{"name":"n","args":[]}`, "args", CodeInvalidConfig, "must be an object"},
		{"mesos args not object", `{"name":"n","args":{"org.apache.mesos":"x"}}`, "args.org.apache.mesos", CodeInvalidConfig, "must be an object"},
		{"network_info not object", `{"name":"n","args":{"org.apache.mesos":{"network_info":1}}}`, ni, CodeInvalidConfig, "must be an object"},
		{"bad ip_address", `{"name":"n","args":{"org.apache.mesos":{"network_info":{"ip_addresses":[{"protocol":"IPv4","ip_address":"9.0.1.x"}]}}}}`,
			ni + ".ip_addresses[0].ip_address", CodeInvalidConfig, "not an IP address"},
		{"wrong protocol", `{"name":"n","args":{"org.apache.mesos":{"network_info":{"ip_addresses":[{},{"protocol":"IPX"}]}}}}`,
			ni + ".ip_addresses[1].protocol", CodeInvalidConfig, "IPv4 or IPv6"},
		{"bad subnet", `{"name":"n","args":{"org.apache.mesos":{"network_info":{"labels":{"labels":[{"key":"networks","value":"b"},{"key":"network-subnets","value":"5.5.5.0/24, 6.6.6.0/33"}]}}}}}`,
			ni + ".labels.labels[1].value", CodeInvalidConfig, `"6.6.6.0/33" is not a CIDR`},
		{"bad args.cni ip", `{"name":"n","args":{"cni":{"ips":["10.0.0.1/24","x"]}}}`, "args.cni.ips[1]", CodeInvalidConfig, "not an IP"},
		{"bad attachments", `{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"ifname":"eth0"}]}`,
			"cni.dev/valid-attachments[0].containerID", CodeInvalidConfig, "missing"},
		{"attachments type", `{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":{}}`,
			"cni.dev/valid-attachments", CodeInvalidConfig, "must be an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.stdin))
			if err == nil {
				t.Fatal("no error")
			}
			var fe *FieldError
			if tt.field != "" {
				if !errors.As(err, &fe) || fe.Field != tt.field {
					t.Errorf("error %q: want field %q", err, tt.field)
				}
			}
			e := configError(err)
			if e.Code != tt.code {
				t.Errorf("code = %d, want %d (%v)", e.Code, tt.code, e)
			}
			if !strings.Contains(e.Msg, tt.msg) || (tt.field != "" && !strings.Contains(e.Msg, tt.field)) {
				t.Errorf("msg %q: want %q and the field %q", e.Msg, tt.msg, tt.field)
			}
		})
	}
}

func TestParseLenient(t *testing.T) {
	// A DEL gets the stdin of an ADD that failed on a bad label: it must
	// still parse, with the bad values as warnings and defaults in place.
	stdin := `{"cniVersion":"0.2.0","name":"n","weft":{"timeout":"soon","socket":"/s.sock"},"contrail":{"poll-timeout":"x"},
		"args":{"org.apache.mesos":{"network_info":{"labels":{"labels":[{"key":"network-subnets","value":"bad"}]}}}}}`
	if _, err := ParseConfig([]byte(stdin)); err == nil {
		t.Fatal("strict parse accepted bad values")
	}
	c, err := parseLenient([]byte(stdin))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 3 || c.Timeout != DefaultTimeout || c.Socket != "/s.sock" || c.Name != "n" {
		t.Errorf("conf = %+v, warnings %v", c, c.Warnings)
	}
	// Still fatal: not JSON, no name, bad valid-attachments.
	for _, s := range []string{`{`, `{"cniVersion":"1.1.0"}`, `{"name":"n","cni.dev/valid-attachments":[1]}`} {
		if _, err := parseLenient([]byte(s)); err == nil {
			t.Errorf("lenient parse accepted %s", s)
		}
	}
}
