package overlay

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/cni"
	"github.com/weft-sdn/weft/internal/kerneltest"
)

// dcosPortMapperConf is the CNI file the DC/OS agent module writes for agent
// subnet 9.0.1.0/24 (reference §4.2), verbatim.
const dcosPortMapperConf = `{"name":"dcos","type":"mesos-cni-port-mapper","excludeDevices":["m-dcos"],"chain":"M-DCOS","delegate":{"type":"bridge","bridge":"m-dcos","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1420,"ipam":{"type":"host-local","dataDir":"/var/run/dcos/cni/networks","subnet":"9.0.1.0/25","routes":[{"dst":"0.0.0.0/0"}]}}}`

func dcosAgentOverlay(t *testing.T, i int, s4, s6 string) AgentOverlayInfo {
	t.Helper()
	cfg := DefaultDCOS()
	p4, p6 := mustPrefixOrZero(s4), mustPrefixOrZero(s6)
	return BuildAgentOverlay(cfg, cfg.Overlays[i], mustAddr("44.128.0.2"), mustAddr("fd01:a::2"), nil, p4, p6, true, true)
}

func mustPrefixOrZero(s string) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	return mustPrefix(s)
}

func TestMesosCNIConfigBridgeGolden(t *testing.T) {
	ao := dcosAgentOverlay(t, 0, "9.0.1.0/24", "")
	got, err := MesosCNIConfig(CNIOptions{Overlay: ao, DataDir: "/var/run/dcos/cni/networks", MTU: 1420})
	if err != nil {
		t.Fatal(err)
	}
	// The DC/OS delegate, byte for byte, with the network name in front.
	var outer struct {
		Delegate json.RawMessage `json:"delegate"`
	}
	if err := json.Unmarshal([]byte(dcosPortMapperConf), &outer); err != nil {
		t.Fatal(err)
	}
	want := `{"name":"dcos",` + string(outer.Delegate[1:])
	if string(got) != want {
		t.Errorf("bridge config:\n got %s\nwant %s", got, want)
	}
	const golden = `{"name":"dcos","type":"bridge","bridge":"m-dcos","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1420,"ipam":{"type":"host-local","dataDir":"/var/run/dcos/cni/networks","subnet":"9.0.1.0/25","routes":[{"dst":"0.0.0.0/0"}]}}`
	if string(got) != golden {
		t.Errorf("golden:\n got %s\nwant %s", got, golden)
	}
	if CNIFileName("dcos") != "dcos.conf" {
		t.Error("CNIFileName")
	}
}

func TestMesosCNIConfigBridge(t *testing.T) {
	dual := BuildAgentOverlay(DefaultDCOS(), OverlayInfo{Name: "ds", Subnet: "10.0.0.0/8", Prefix: 24, Subnet6: "fd02::/64", Prefix6: 80},
		mustAddr("44.128.0.2"), netip.Addr{}, nil, mustPrefix("10.0.3.0/24"), mustPrefix("fd02:0:0:0:3::/80"), true, true)
	tests := []struct {
		name string
		opts CNIOptions
		want string
	}{
		{"no dataDir, default mtu", CNIOptions{Overlay: dcosAgentOverlay(t, 0, "9.0.0.0/24", "")},
			`{"name":"dcos","type":"bridge","bridge":"m-dcos","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1420,"ipam":{"type":"host-local","subnet":"9.0.0.0/25","routes":[{"dst":"0.0.0.0/0"}]}}`},
		{"ipv6 only", CNIOptions{Mode: CNIModeBridge, Overlay: dcosAgentOverlay(t, 1, "", "fd01:b:0:0:1::/80"), MTU: 1380, DataDir: "/run/cni"},
			`{"name":"dcos6","type":"bridge","bridge":"m-dcos6","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1380,"ipam":{"type":"host-local","dataDir":"/run/cni","ranges":[[{"subnet":"fd01:b:0:0:1::/81"}]],"routes":[{"dst":"::/0"}]}}`},
		{"dual stack", CNIOptions{Overlay: dual},
			`{"name":"ds","type":"bridge","bridge":"m-ds","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1420,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.3.0/25"}],[{"subnet":"fd02::3:0:0:0/81"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}`},
		{"dual stack, ipv6 disabled", CNIOptions{Overlay: dual, DisableIPv6: true},
			`{"name":"ds","type":"bridge","bridge":"m-ds","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1420,"ipam":{"type":"host-local","subnet":"10.0.3.0/25","routes":[{"dst":"0.0.0.0/0"}]}}`},
		{"data dir with html characters", CNIOptions{Overlay: dcosAgentOverlay(t, 0, "9.0.0.0/24", ""), DataDir: "/run/a&b<c>"},
			`{"name":"dcos","type":"bridge","bridge":"m-dcos","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1420,"ipam":{"type":"host-local","dataDir":"/run/a&b<c>","subnet":"9.0.0.0/25","routes":[{"dst":"0.0.0.0/0"}]}}`},
	}
	for _, tt := range tests {
		got, err := MesosCNIConfig(tt.opts)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", tt.name, got, err, tt.want)
		}
	}
}

func TestMesosCNIConfigErrors(t *testing.T) {
	master := BuildAgentOverlay(DefaultDCOS(), DefaultDCOS().Overlays[0], mustAddr("44.128.0.1"), netip.Addr{}, nil, mustPrefix("9.0.0.0/24"), netip.Prefix{}, false, false)
	ipv6Only := dcosAgentOverlay(t, 1, "", "fd01:b::/80")
	noAddr := dcosAgentOverlay(t, 0, "", "")
	noAddr.MesosBridge = &BridgeInfo{Name: "m-dcos"}
	badIP := dcosAgentOverlay(t, 0, "9.0.0.0/24", "")
	badIP.MesosBridge.IP = "9.0.0.1/25"
	badIP6 := dcosAgentOverlay(t, 1, "", "fd01:b::/80")
	badIP6.MesosBridge.IP6 = "9.0.0.0/25"
	badBridge := dcosAgentOverlay(t, 0, "9.0.0.0/24", "")
	badBridge.MesosBridge.Name = "m-a/b"
	badName := dcosAgentOverlay(t, 0, "9.0.0.0/24", "")
	badName.Info.Name = "host"
	ok := dcosAgentOverlay(t, 0, "9.0.0.0/24", "")

	for _, tt := range []struct {
		name string
		opts CNIOptions
		want error
	}{
		{"master", CNIOptions{Overlay: master}, ErrNoMesosNetwork},
		{"ipv6 only with ipv6 disabled", CNIOptions{Overlay: ipv6Only, DisableIPv6: true}, ErrNoMesosNetwork},
		{"no address", CNIOptions{Overlay: noAddr}, ErrNoMesosNetwork},
	} {
		if _, err := MesosCNIConfig(tt.opts); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	for _, tt := range []struct {
		name, field string
		opts        CNIOptions
	}{
		{"mode", "mode", CNIOptions{Mode: "port-mapper", Overlay: ok}},
		{"name", "info.name", CNIOptions{Overlay: badName}},
		{"bridge name", "mesos_bridge.name", CNIOptions{Overlay: badBridge}},
		{"ip host bits", "mesos_bridge.ip", CNIOptions{Overlay: badIP}},
		{"ip6 family", "mesos_bridge.ip6", CNIOptions{Overlay: badIP6}},
		{"mtu", "overlay_mtu", CNIOptions{Overlay: ok, MTU: 100}},
		{"data dir", "cni_data_dir", CNIOptions{Overlay: ok, DataDir: "run/cni"}},
		{"weft network", "network", CNIOptions{Mode: CNIModeWeft, Overlay: ok, Network: "a:b"}},
		{"weft network chars", "network", CNIOptions{Mode: CNIModeWeft, Overlay: ok, Network: "a b"}},
		{"weft socket", "socket", CNIOptions{Mode: CNIModeWeft, Overlay: ok, Socket: "weft.sock"}},
		{"weft mtu", "overlay_mtu", CNIOptions{Mode: CNIModeWeft, Overlay: ok, MTU: 70000}},
		{"weft type", "type", CNIOptions{Mode: CNIModeWeft, Overlay: ok, Type: "../weft-cni"}},
	} {
		_, err := MesosCNIConfig(tt.opts)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: %v, want a *FieldError on %s", tt.name, err, tt.field)
		}
	}
}

// TestMesosCNIConfigWeft renders weft-cni configs and parses them with
// weft-cni's own parser.
func TestMesosCNIConfigWeft(t *testing.T) {
	ao := dcosAgentOverlay(t, 0, "9.0.1.0/24", "")
	got, err := MesosCNIConfig(CNIOptions{Mode: CNIModeWeft, Overlay: ao})
	if err != nil {
		t.Fatal(err)
	}
	const golden = `{"cniVersion":"0.2.0","name":"dcos","type":"weft-cni","weft":{"network":"default-domain:default-project:dcos"}}`
	if string(got) != golden {
		t.Errorf("weft config:\n got %s\nwant %s", got, golden)
	}
	conf, err := cni.ParseConfig(got)
	if err != nil {
		t.Fatalf("weft-cni refuses the config: %v", err)
	}
	if conf.Name != "dcos" || conf.Type != WeftCNIType || conf.CNIVersion != WeftCNIVersion ||
		conf.Network != "default-domain:default-project:dcos" || conf.Socket != cni.DefaultSocket || conf.MTU != 0 {
		t.Errorf("parsed %+v", conf)
	}
	// Explicit socket, network, MTU and type; the weft-cni needs no Mesos
	// bridge, so a master's overlay works too.
	master := BuildAgentOverlay(DefaultDCOS(), DefaultDCOS().Overlays[1], mustAddr("44.128.0.1"), netip.Addr{}, nil, netip.Prefix{}, mustPrefix("fd01:b::/80"), false, false)
	got, err = MesosCNIConfig(CNIOptions{Mode: CNIModeWeft, Overlay: master, Socket: "/run/weft//agent.sock", Network: "overlay6", MTU: 1400, Type: "contrail-cni-plugin"})
	if err != nil {
		t.Fatal(err)
	}
	const golden2 = `{"cniVersion":"0.2.0","name":"dcos6","type":"contrail-cni-plugin","weft":{"network":"overlay6","socket":"/run/weft/agent.sock","mtu":1400}}`
	if string(got) != golden2 {
		t.Errorf("weft config:\n got %s\nwant %s", got, golden2)
	}
	conf, err = cni.ParseConfig(got)
	if err != nil {
		t.Fatalf("weft-cni refuses the config: %v", err)
	}
	if conf.Network != "overlay6" || conf.Socket != "/run/weft/agent.sock" || conf.MTU != 1400 || conf.Type != "contrail-cni-plugin" {
		t.Errorf("parsed %+v", conf)
	}
}

func TestAgentCNIOptions(t *testing.T) {
	ac, err := ParseAgentConfig([]byte(dcosAgentJSON))
	if err != nil {
		t.Fatal(err)
	}
	ao := dcosAgentOverlay(t, 0, "9.0.1.0/24", "")
	got, err := MesosCNIConfig(AgentCNIOptions(ac, ao))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `"dataDir":"/var/run/dcos/cni/networks"`) || !strings.Contains(string(got), `"mtu":1420`) {
		t.Errorf("config %s", got)
	}
	ac.NetworkConfig.EnableIPv6 = false
	if o := AgentCNIOptions(ac, ao); !o.DisableIPv6 || o.Mode != CNIModeBridge {
		t.Errorf("options %+v", o)
	}
}

// TestMesosCNIConfigHostLocal runs Debian's host-local IPAM plugin (it
// needs neither root nor a network namespace) on the rendered configs: no
// cniVersion must give the 0.1.0 result with ip4 and/or ip6, which is what
// Mesos reads. The bridge plugin was checked by hand in a scratch network
// namespace (see the package's cni.go).
func TestMesosCNIConfigHostLocal(t *testing.T) {
	const plugin = "/usr/lib/cni/host-local"
	if _, err := os.Stat(plugin); err != nil {
		kerneltest.Missing(t, "%s missing (CI installs containernetworking-plugins)", plugin)
	}
	dual := BuildAgentOverlay(DefaultDCOS(), OverlayInfo{Name: "ds", Subnet: "10.0.0.0/8", Prefix: 24, Subnet6: "fd02::/64", Prefix6: 80},
		mustAddr("44.128.0.2"), netip.Addr{}, nil, mustPrefix("10.0.3.0/24"), mustPrefix("fd02:0:0:0:3::/80"), true, true)
	tests := []struct {
		name   string
		ao     AgentOverlayInfo
		ip4    string
		ip6    string
		fields []string
	}{
		{"ipv4", dcosAgentOverlay(t, 0, "9.0.1.0/24", ""), "9.0.1.2/25", "", []string{"ip4"}},
		{"ipv6", dcosAgentOverlay(t, 1, "", "fd01:b:0:0:1::/80"), "", "fd01:b::1:0:0:2/81", []string{"ip6"}},
		{"dual", dual, "10.0.3.2/25", "fd02::3:0:0:2/81", []string{"ip4", "ip6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			conf, err := MesosCNIConfig(CNIOptions{Overlay: tt.ao, DataDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(plugin)
			cmd.Stdin = bytes.NewReader(conf)
			cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=/dev/null", "CNI_IFNAME=eth0", "CNI_PATH=" + filepath.Dir(plugin)}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("host-local: %v: %s", err, out)
			}
			var res struct {
				CNIVersion string `json:"cniVersion"`
				IP4        *struct {
					IP string `json:"ip"`
				} `json:"ip4"`
				IP6 *struct {
					IP string `json:"ip"`
				} `json:"ip6"`
				IPs []any `json:"ips"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("result %s: %v", out, err)
			}
			if res.CNIVersion != "0.1.0" || res.IPs != nil {
				t.Errorf("result is not in the 0.1.0 shape: %s", out)
			}
			got4, got6 := "", ""
			if res.IP4 != nil {
				got4 = res.IP4.IP
			}
			if res.IP6 != nil {
				got6 = res.IP6.IP
			}
			if got4 != tt.ip4 || got6 != tt.ip6 {
				t.Errorf("addresses %q %q, want %q %q: %s", got4, got6, tt.ip4, tt.ip6, out)
			}
		})
	}
}
