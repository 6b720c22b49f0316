package overlay

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Agent configs with the values DC/OS generates (reference §2.2; written
// here from that table, not copied from a DC/OS node): agents, and masters
// without bridges.
const (
	dcosAgentJSON = `{"master":"zk://zk-1.zk:2181,zk-2.zk:2181/mesos","cni_dir":"/opt/mesosphere/etc/dcos/network/cni",
  "cni_data_dir":"/var/run/dcos/cni/networks","network_config":{"allocate_subnet":true,"mesos_bridge":true,
  "docker_bridge":true,"overlay_mtu":1420,"enable_ipv6":true},"max_configuration_attempts":4}`
	dcosAgentMasterJSON = `{"master":"zk://zk-1.zk:2181,zk-2.zk:2181/mesos","cni_dir":"/opt/mesosphere/etc/dcos/network/cni",
  "cni_data_dir":"/var/run/dcos/cni/networks","network_config":{"allocate_subnet":true,"mesos_bridge":false,
  "docker_bridge":false,"overlay_mtu":1420,"enable_ipv6":true},"max_configuration_attempts":4}`
)

func TestParseAgentConfig(t *testing.T) {
	c, err := ParseAgentConfig([]byte(dcosAgentJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := AgentConfig{
		Master: "zk://zk-1.zk:2181,zk-2.zk:2181/mesos", CNIDir: "/opt/mesosphere/etc/dcos/network/cni",
		CNIDataDir: "/var/run/dcos/cni/networks", MaxConfigurationAttempts: 4,
		NetworkConfig: DefaultAgentNetworkConfig(),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	if c.NetworkConfig.IsMaster() || c.NetworkConfig.CommandTimeoutDuration() != 15*time.Second {
		t.Errorf("agent: %+v", c.NetworkConfig)
	}
	m, err := ParseAgentConfig([]byte(dcosAgentMasterJSON))
	if err != nil || !m.NetworkConfig.IsMaster() {
		t.Errorf("master config: %+v, %v", m, err)
	}

	// Defaults: only cni_dir given. Unknown keys and nulls are ignored.
	d, err := ParseAgentConfig([]byte(`{"cni_dir":"/etc/cni/../cni/net.d/","unknown":1,"master":null,"network_config":{"x":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	want = AgentConfig{CNIDir: "/etc/cni/net.d", MaxConfigurationAttempts: 4, NetworkConfig: DefaultAgentNetworkConfig()}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("defaults: got %+v\nwant %+v", d, want)
	}
	n := d.NetworkConfig
	if !n.AllocateSubnet || !n.MesosBridge || !n.DockerBridge || !n.EnableIPv6 || n.OverlayMTU != 1420 || n.CommandTimeout != 15000 {
		t.Errorf("network defaults %+v", n)
	}
	out, _ := json.Marshal(d)
	const golden = `{"cni_dir":"/etc/cni/net.d","max_configuration_attempts":4,"network_config":{"allocate_subnet":true,"command_timeout":15000,"docker_bridge":true,"enable_ipv6":true,"mesos_bridge":true,"overlay_mtu":1420}}`
	if string(out) != golden {
		t.Errorf("marshal:\n got %s\nwant %s", out, golden)
	}
	// Explicit values other than the defaults.
	e, err := ParseAgentConfig([]byte(`{"cni_dir":"/c","max_configuration_attempts":0,"network_config":{"allocate_subnet":false,"enable_ipv6":false,"overlay_mtu":552,"command_timeout":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.MaxConfigurationAttempts != 0 || e.NetworkConfig.AllocateSubnet || e.NetworkConfig.EnableIPv6 || e.NetworkConfig.OverlayMTU != 552 || e.NetworkConfig.CommandTimeout != 1 {
		t.Errorf("explicit values: %+v", e)
	}
}

func TestParseAgentConfigErrors(t *testing.T) {
	tests := []struct{ name, in, field, msg string }{
		{"not json", `{`, "", "not a JSON object"},
		{"null", `null`, "", "null"},
		{"cni_dir missing", `{}`, "cni_dir", "is required"},
		{"cni_dir relative", `{"cni_dir":"etc/cni"}`, "cni_dir", "not an absolute path"},
		{"cni_dir type", `{"cni_dir":1}`, "cni_dir", "must be a string"},
		{"cni_data_dir relative", `{"cni_dir":"/c","cni_data_dir":"run"}`, "cni_data_dir", "not an absolute path"},
		{"master type", `{"cni_dir":"/c","master":5050}`, "master", "must be a string"},
		{"attempts negative", `{"cni_dir":"/c","max_configuration_attempts":-1}`, "max_configuration_attempts", "out of range"},
		{"attempts huge", `{"cni_dir":"/c","max_configuration_attempts":100000}`, "max_configuration_attempts", "out of range"},
		{"attempts type", `{"cni_dir":"/c","max_configuration_attempts":"4"}`, "max_configuration_attempts", "must be an integer"},
		{"network_config type", `{"cni_dir":"/c","network_config":[]}`, "network_config", "must be a JSON object"},
		{"bool type", `{"cni_dir":"/c","network_config":{"mesos_bridge":"true"}}`, "network_config.mesos_bridge", "true or false"},
		{"mtu small", `{"cni_dir":"/c","network_config":{"overlay_mtu":551}}`, "network_config.overlay_mtu", "out of range"},
		{"mtu large", `{"cni_dir":"/c","network_config":{"overlay_mtu":65536}}`, "network_config.overlay_mtu", "out of range"},
		{"mtu zero", `{"cni_dir":"/c","network_config":{"overlay_mtu":0}}`, "network_config.overlay_mtu", "out of range"},
		{"timeout zero", `{"cni_dir":"/c","network_config":{"command_timeout":0}}`, "network_config.command_timeout", "out of range"},
		{"timeout float", `{"cni_dir":"/c","network_config":{"command_timeout":1.5}}`, "network_config.command_timeout", "must be an integer"},
		{"timeout huge", `{"cni_dir":"/c","network_config":{"command_timeout":3600001}}`, "network_config.command_timeout", "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAgentConfig([]byte(tt.in))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(err.Error(), tt.msg) || !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q: want field %q and %q", err, tt.field, tt.msg)
			}
		})
	}
}

// TestModuleConfigPaths reads the module-loading JSON of the DC/OS overlay
// modules: this is how an operator finds, on a DC/OS node, the config files
// to hand to Weft.
func TestModuleConfigPaths(t *testing.T) {
	tests := []struct {
		file string
		want map[string]string
	}{
		{"agent_modules.json.in", map[string]string{AgentModule: "/var/lib/mesos/overlay-agent-config.json"}},
		{"master_modules.json.in", map[string]string{
			MasterModule: "/var/lib/mesos/overlay-config.json",
			AgentModule:  "/var/lib/mesos/overlay-agent-master-config.json",
		}},
	}
	for _, tt := range tests {
		data, err := os.ReadFile(fixtures + "overlay/dcos-mesos-modules/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ModuleConfigPaths(data)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.file, got, tt.want)
		}
	}

	// Other modules are ignored; a module configured twice or an empty path
	// is an error; so is a file that is not a modules file.
	other := `{"libraries":[{"name":"metrics","modules":[{"name":"com_mesosphere_dcos_MetricsIsolatorModule","parameters":[{"key":"dcos_metrics_service_network","value":"tcp"}]}]}]}`
	if got, err := ModuleConfigPaths([]byte(other)); err != nil || len(got) != 0 {
		t.Errorf("other modules: %v, %v", got, err)
	}
	twice := `{"libraries":[{"modules":[{"name":"m","parameters":[{"key":"agent_config","value":"/a"},{"key":"agent_config","value":"/b"}]}]}]}`
	if _, err := ModuleConfigPaths([]byte(twice)); err == nil || !strings.Contains(err.Error(), "configured twice") {
		t.Errorf("twice: %v", err)
	}
	empty := `{"libraries":[{"modules":[{"name":"m","parameters":[{"key":"master_config","value":""}]}]}]}`
	var fe *FieldError
	if _, err := ModuleConfigPaths([]byte(empty)); !errors.As(err, &fe) || fe.Field != "libraries[0].modules[0].parameters[0].value" {
		t.Errorf("empty: %v", err)
	}
	for _, bad := range []string{`{`, `[]`, `{"libraries":{}}`} {
		if _, err := ModuleConfigPaths([]byte(bad)); err == nil {
			t.Errorf("no error for %s", bad)
		}
	}
}
