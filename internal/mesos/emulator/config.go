package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/mesos"
)

// DefaultRootDir is the isolator's default root directory
// (<runtime_dir>/isolators/network/cni).
const DefaultRootDir = "/var/run/mesos/isolators/network/cni"

// hostDefaultPath is stout's os::host_default_path(), the PATH given to
// plugins when the agent has none.
const hostDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Defaults of the framework tasks belong to when their TaskSpec names
// none.
const (
	DefaultFrameworkID   = "weft-lab-marathon-0001"
	DefaultFrameworkName = "marathon"
)

// Config configures an Agent; the field comments name the Mesos agent
// flags they stand for.
type Config struct {
	// NetworkCNIConfigDir is --network_cni_config_dir: the directory of
	// CNI network configuration files. Required; it must exist.
	NetworkCNIConfigDir string
	// NetworkCNIPluginsDir is --network_cni_plugins_dir: a colon-separated
	// search path for plugin binaries, passed verbatim as CNI_PATH.
	// Required.
	NetworkCNIPluginsDir string
	// RootDir is the isolator's root directory (DefaultRootDir when
	// empty); the lab puts it under its state directory.
	RootDir string
	// AgentID is the agent's id (default: a random "<uuid>-S0").
	AgentID string
	// Hostname is the agent's hostname (default: os.Hostname).
	Hostname string
	// AgentIP is the agent's address, reported in a task's status when
	// its container returned no network_infos (host networking). Default:
	// the first global unicast IPv4 address in NetNS.
	AgentIP string
	// AgentIP6 is --ip6: also reported for such tasks when set.
	AgentIP6 string
	// NetNS is the path of the network namespace in which plugins run and
	// from which tasks are started (a lab node); empty means the current
	// one.
	NetNS string
	// DefaultContainerDNS is --default_container_dns: ContainerDNSInfo
	// JSON, or file://<path> of a file holding it. Optional.
	DefaultContainerDNS string
	// Listen is where Serve listens: "unix:<path>", an absolute path
	// (a unix socket), or a TCP host:port.
	Listen string
	// FrameworkID and FrameworkName describe the framework of tasks whose
	// TaskSpec has no FrameworkID (defaults DefaultFrameworkID and
	// DefaultFrameworkName).
	FrameworkID   string
	FrameworkName string
	// Log receives the agent's log; nil discards it.
	Log *slog.Logger
	// Now is the clock of status timestamps (default time.Now).
	Now func() time.Time
}

// withDefaults validates c like the isolator's create() and fills in
// defaults.
func (c Config) withDefaults() (Config, error) {
	if os.Geteuid() != 0 {
		return c, errors.New("The 'network/cni' isolator requires root permissions")
	}
	if c.NetworkCNIPluginsDir == "" {
		return c, errors.New("Missing required '--network_cni_plugins_dir' flag")
	}
	if c.NetworkCNIConfigDir == "" {
		return c, errors.New("Missing required '--network_cni_config_dir' flag")
	}
	if _, err := os.Stat(c.NetworkCNIConfigDir); err != nil {
		return c, fmt.Errorf("The CNI network configuration directory '%s' does not exist", c.NetworkCNIConfigDir)
	}
	if c.RootDir == "" {
		c.RootDir = DefaultRootDir
	}
	if c.AgentID == "" {
		id, err := newUUID()
		if err != nil {
			return c, err
		}
		c.AgentID = id + "-S0"
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("hostname: %w", err)
		}
		c.Hostname = h
	}
	if c.FrameworkID == "" {
		c.FrameworkID = DefaultFrameworkID
	}
	if c.FrameworkName == "" {
		c.FrameworkName = DefaultFrameworkName
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// parseDefaultContainerDNS reads --default_container_dns, which like any
// stout JSON flag may be given as file://<path>.
func parseDefaultContainerDNS(v string) (*mesos.ContainerDNSInfo, error) {
	if v == "" {
		return nil, nil
	}
	data := []byte(v)
	if p, ok := strings.CutPrefix(v, "file://"); ok {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("default_container_dns: %w", err)
		}
		data = b
	}
	info, err := mesos.ParseContainerDNSInfo(data)
	if err != nil {
		return nil, fmt.Errorf("default_container_dns: %w", err)
	}
	return info, nil
}
