package overlay

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"
)

// Defaults of the agent module configuration (dcos/dcos-mesos-modules
// overlay/messages.proto, AgentNetworkConfig and AgentConfig).
const (
	// DefaultOverlayMTU is the MTU of the bridges and container
	// interfaces: 1500 minus the 54 bytes of VXLAN overhead, rounded down.
	DefaultOverlayMTU = 1420
	// DefaultCommandTimeout is the timeout of the module's docker, ipset
	// and iptables commands, in milliseconds.
	DefaultCommandTimeout = 15000
	// DefaultMaxConfigurationAttempts is how many rounds the agent
	// configures its overlays before registering with errors.
	DefaultMaxConfigurationAttempts = 4
	// MaxCommandTimeout bounds command_timeout (ms): one hour.
	MaxCommandTimeout = 3600 * 1000
	// MaxConfigurationAttempts bounds max_configuration_attempts.
	MaxConfigurationAttempts = 1000
)

// Names and parameter keys of the DC/OS overlay modules in a Mesos
// --modules file.
const (
	// MasterModule is the overlay master module.
	MasterModule = "com_mesosphere_mesos_OverlayMasterManager"
	// AgentModule is the overlay agent module (also loaded on masters).
	AgentModule = "com_mesosphere_mesos_OverlayAgentManager"
	// MasterConfigKey is the master module's parameter: the path of its
	// config file (master.json).
	MasterConfigKey = "master_config"
	// AgentConfigKey is the agent module's parameter: the path of its
	// config file (agent.json, or agent-master.json on masters).
	AgentConfigKey = "agent_config"
)

// AgentConfig is the DC/OS overlay agent module's configuration
// (/opt/mesosphere/etc/overlay/config/agent.json). Keys are rendered in
// alphabetical order.
type AgentConfig struct {
	// CNIDataDir is host-local's dataDir; empty leaves host-local's
	// default (/var/lib/cni/networks). DC/OS: /var/run/dcos/cni/networks.
	CNIDataDir string `json:"cni_data_dir,omitempty"`
	// CNIDir is where <name>.conf is written; it must be Mesos'
	// --network_cni_config_dir. Required, absolute.
	CNIDir string `json:"cni_dir"`
	// Master locates the Mesos master (host:port, zk://, file://). Weft
	// accepts and ignores it: it finds its controller otherwise.
	Master string `json:"master,omitempty"`
	// MaxConfigurationAttempts is how many configuration rounds run before
	// the agent registers with erroneous overlays (default 4).
	MaxConfigurationAttempts int `json:"max_configuration_attempts"`
	// NetworkConfig says what the agent sets up.
	NetworkConfig AgentNetworkConfig `json:"network_config"`
}

// AgentNetworkConfig is what an agent sets up, sent to the master when it
// registers.
type AgentNetworkConfig struct {
	// AllocateSubnet asks the master for agent subnets (default true).
	AllocateSubnet bool `json:"allocate_subnet"`
	// CommandTimeout is the shell-out timeout in milliseconds (default
	// 15000).
	CommandTimeout int `json:"command_timeout"`
	// DockerBridge sets up the d-<name> Docker network (default true;
	// false on masters).
	DockerBridge bool `json:"docker_bridge"`
	// EnableIPv6 configures the IPv6 parts (default true).
	EnableIPv6 bool `json:"enable_ipv6"`
	// MesosBridge writes the m-<name> CNI network (default true; false on
	// masters).
	MesosBridge bool `json:"mesos_bridge"`
	// OverlayMTU is the bridges' and containers' MTU (default 1420).
	OverlayMTU int `json:"overlay_mtu"`
}

// DefaultAgentNetworkConfig returns the defaults of AgentNetworkConfig.
func DefaultAgentNetworkConfig() AgentNetworkConfig {
	return AgentNetworkConfig{
		AllocateSubnet: true,
		CommandTimeout: DefaultCommandTimeout,
		DockerBridge:   true,
		EnableIPv6:     true,
		MesosBridge:    true,
		OverlayMTU:     DefaultOverlayMTU,
	}
}

// CommandTimeoutDuration returns CommandTimeout as a duration.
func (n AgentNetworkConfig) CommandTimeoutDuration() time.Duration {
	return time.Duration(n.CommandTimeout) * time.Millisecond
}

// IsMaster reports whether the config is a master's: neither bridge.
func (n AgentNetworkConfig) IsMaster() bool { return !n.MesosBridge && !n.DockerBridge }

// ParseAgentConfig parses and validates an agent module configuration,
// applying the defaults. Unknown keys are ignored; an explicit null is
// taken for absence. cni_dir is required; it and cni_data_dir must be
// absolute and are cleaned (filepath.Clean). Errors are *FieldError
// naming the JSON path.
func ParseAgentConfig(data []byte) (AgentConfig, error) {
	top, err := decodeTop(data, "agent config")
	if err != nil {
		return AgentConfig{}, err
	}
	c := AgentConfig{MaxConfigurationAttempts: DefaultMaxConfigurationAttempts, NetworkConfig: DefaultAgentNetworkConfig()}
	for _, f := range []struct {
		key string
		dst *string
	}{{"master", &c.Master}, {"cni_dir", &c.CNIDir}, {"cni_data_dir", &c.CNIDataDir}} {
		if _, err := top.str(f.key, "", f.dst); err != nil {
			return AgentConfig{}, err
		}
	}
	if _, err := top.integer("max_configuration_attempts", "", &c.MaxConfigurationAttempts); err != nil {
		return AgentConfig{}, err
	}
	nc, err := decodeObject(top["network_config"], "network_config")
	if err != nil {
		return AgentConfig{}, err
	}
	n := &c.NetworkConfig
	for _, f := range []struct {
		key string
		dst *bool
	}{
		{"allocate_subnet", &n.AllocateSubnet}, {"mesos_bridge", &n.MesosBridge},
		{"docker_bridge", &n.DockerBridge}, {"enable_ipv6", &n.EnableIPv6},
	} {
		if _, err := nc.boolean(f.key, "network_config", f.dst); err != nil {
			return AgentConfig{}, err
		}
	}
	for _, f := range []struct {
		key string
		dst *int
	}{{"overlay_mtu", &n.OverlayMTU}, {"command_timeout", &n.CommandTimeout}} {
		if _, err := nc.integer(f.key, "network_config", f.dst); err != nil {
			return AgentConfig{}, err
		}
	}
	if err := c.Validate(); err != nil {
		return AgentConfig{}, err
	}
	c.CNIDir = filepath.Clean(c.CNIDir)
	if c.CNIDataDir != "" {
		c.CNIDataDir = filepath.Clean(c.CNIDataDir)
	}
	return c, nil
}

// Validate checks the config as ParseAgentConfig does. Errors are
// *FieldError.
func (c AgentConfig) Validate() error {
	switch {
	case c.CNIDir == "":
		return fieldErrorf("cni_dir", "is required; set Mesos' --network_cni_config_dir, e.g. \"/opt/mesosphere/etc/dcos/network/cni\"")
	case !filepath.IsAbs(c.CNIDir):
		return fieldErrorf("cni_dir", "%q is not an absolute path; set Mesos' --network_cni_config_dir", c.CNIDir)
	case c.CNIDataDir != "" && !filepath.IsAbs(c.CNIDataDir):
		return fieldErrorf("cni_data_dir", "%q is not an absolute path; set an absolute directory (DC/OS: /var/run/dcos/cni/networks) or remove the key", c.CNIDataDir)
	case c.MaxConfigurationAttempts < 0 || c.MaxConfigurationAttempts > MaxConfigurationAttempts:
		return fieldErrorf("max_configuration_attempts", "%d is out of range; set 0-%d (default %d)", c.MaxConfigurationAttempts, MaxConfigurationAttempts, DefaultMaxConfigurationAttempts)
	}
	n := c.NetworkConfig
	switch {
	case n.OverlayMTU < MinMTU || n.OverlayMTU > MaxMTU:
		return fieldErrorf("network_config.overlay_mtu", "%d is out of range; set %d-%d (default %d, the VXLAN overhead taken off 1500)", n.OverlayMTU, MinMTU, MaxMTU, DefaultOverlayMTU)
	case n.CommandTimeout < 1 || n.CommandTimeout > MaxCommandTimeout:
		return fieldErrorf("network_config.command_timeout", "%d is out of range; set 1-%d milliseconds (default %d)", n.CommandTimeout, MaxCommandTimeout, DefaultCommandTimeout)
	}
	return nil
}

// ModuleConfigPaths reads a Mesos --modules JSON file
// ({"libraries":[{"file":...,"modules":[{"name":...,"parameters":[{"key":...,"value":...}]}]}]})
// and returns, for each module with a master_config or agent_config
// parameter, the module name → the path of its config file. An operator
// migrating from the DC/OS modules runs it on the master's and the agents'
// --modules files to find the configs to hand to Weft. Other modules and
// parameters are ignored; a module configured twice is an error.
func ModuleConfigPaths(data []byte) (map[string]string, error) {
	type param struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	var doc struct {
		Libraries []struct {
			File    string `json:"file"`
			Name    string `json:"name"`
			Modules []struct {
				Name       string  `json:"name"`
				Parameters []param `json:"parameters"`
			} `json:"modules"`
		} `json:"libraries"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse mesos modules file: %w", err)
	}
	out := map[string]string{}
	for i, lib := range doc.Libraries {
		for j, m := range lib.Modules {
			for k, p := range m.Parameters {
				if p.Key != MasterConfigKey && p.Key != AgentConfigKey {
					continue
				}
				field := fmt.Sprintf("libraries[%d].modules[%d].parameters[%d].value", i, j, k)
				if p.Value == "" {
					return nil, fieldErrorf(field, "%s of module %s is empty; set the path of its config file", p.Key, m.Name)
				}
				if prev, dup := out[m.Name]; dup {
					return nil, fieldErrorf(field, "module %s is configured twice (%s and %s); keep one", m.Name, prev, p.Value)
				}
				out[m.Name] = p.Value
			}
		}
	}
	return out, nil
}
