package overlay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
)

// CNIMode selects what MesosCNIConfig renders.
type CNIMode string

// The CNI modes.
const (
	// CNIModeBridge renders DC/OS's delegate config (bridge plugin on the
	// m-<name> bridge, host-local IPAM on the Mesos half), run directly.
	CNIModeBridge CNIMode = "bridge"
	// CNIModeWeft renders a weft-cni config: the Weft agent attaches the
	// container to the Weft network of the overlay.
	CNIModeWeft CNIMode = "weft"
)

// Constants of the rendered CNI configs.
const (
	// WeftCNIType is the plugin type of CNIModeWeft configs.
	WeftCNIType = "weft-cni"
	// WeftCNIVersion is the cniVersion of CNIModeWeft configs: weft-cni
	// answers 0.1.0/0.2.0 configs with the 0.2.0 ip4/ip6 result, the only
	// shape Mesos reads an address from.
	WeftCNIVersion = "0.2.0"
	// DefaultWeftProject is the domain:project where CNIModeWeft looks up
	// the overlay's Weft network when CNIOptions.Network is empty.
	DefaultWeftProject = "default-domain:default-project"
)

// ErrNoMesosNetwork is wrapped by MesosCNIConfig's error when, in bridge
// mode, the overlay has nothing for a Mesos CNI network: no Mesos bridge (a
// master, or mesos_bridge disabled) or no address on it. The DC/OS agent
// logs and skips such an overlay; so should callers.
var ErrNoMesosNetwork = errors.New("no mesos cni network for this overlay")

// CNIOptions are the inputs of MesosCNIConfig.
type CNIOptions struct {
	// Mode is CNIModeBridge (also for "") or CNIModeWeft.
	Mode CNIMode
	// Overlay is the overlay on this agent as the master allocated it;
	// bridge mode uses its Info.Name and MesosBridge, weft mode its name.
	Overlay AgentOverlayInfo
	// MTU is the bridge's and containers' MTU (agent overlay_mtu). Bridge
	// mode: 0 means DefaultOverlayMTU. Weft mode: rendered as weft.mtu
	// only when set; 0 keeps the Weft network's MTU.
	MTU int
	// DataDir is host-local's dataDir (agent cni_data_dir); empty omits
	// the key. Bridge mode only.
	DataDir string
	// DisableIPv6 leaves out the IPv6 half (agent enable_ipv6 = false).
	// Bridge mode only.
	DisableIPv6 bool
	// Socket is the Weft agent's socket (weft.socket); empty omits it,
	// keeping weft-cni's default. Weft mode only.
	Socket string
	// Network is the Weft network (weft.network), a name or fq_name; empty
	// means DefaultWeftProject + ":" + the overlay name. Weft mode only.
	Network string
	// Type is the plugin type; empty means WeftCNIType. Weft mode only.
	Type string
}

// AgentCNIOptions returns the bridge-mode options an agent with config ac
// uses for overlay ov.
func AgentCNIOptions(ac AgentConfig, ov AgentOverlayInfo) CNIOptions {
	return CNIOptions{
		Mode:        CNIModeBridge,
		Overlay:     ov,
		MTU:         ac.NetworkConfig.OverlayMTU,
		DataDir:     ac.CNIDataDir,
		DisableIPv6: !ac.NetworkConfig.EnableIPv6,
	}
}

// CNIFileName returns the file name of overlay name's CNI config in the
// agent's cni_dir: name + ".conf".
func CNIFileName(name string) string { return name + ".conf" }

// bridgeConf is the bridge plugin's config, keys in DC/OS's order.
type bridgeConf struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Bridge      string   `json:"bridge"`
	IsGateway   bool     `json:"isGateway"`
	IPMasq      bool     `json:"ipMasq"`
	HairpinMode bool     `json:"hairpinMode"`
	MTU         int      `json:"mtu"`
	IPAM        ipamConf `json:"ipam"`
}

// ipamConf is host-local's config.
type ipamConf struct {
	Type    string        `json:"type"`
	DataDir string        `json:"dataDir,omitempty"`
	Subnet  string        `json:"subnet,omitempty"`
	Ranges  [][]rangeConf `json:"ranges,omitempty"`
	Routes  []routeConf   `json:"routes"`
}

// rangeConf is one host-local range.
type rangeConf struct {
	Subnet string `json:"subnet"`
}

// routeConf is one CNI route.
type routeConf struct {
	Dst string `json:"dst"`
}

// weftConf is weft-cni's config (internal/cni).
type weftConf struct {
	CNIVersion string      `json:"cniVersion"`
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Weft       weftSection `json:"weft"`
}

// weftSection is the "weft" object of a weft-cni config.
type weftSection struct {
	Network string `json:"network"`
	Socket  string `json:"socket,omitempty"`
	MTU     int    `json:"mtu,omitempty"`
}

// MesosCNIConfig renders the CNI network config an agent writes to
// <cni_dir>/<name>.conf for one overlay, as one compact line (no trailing
// newline, as DC/OS writes it).
//
// Bridge mode renders what the DC/OS agent module hands as the delegate
// of mesos-cni-port-mapper, but as the top-level config: the port-mapper
// wrapper ships with Mesos and is not in Debian's plugins, so Weft writes
// the delegate itself and it runs on Debian's bridge and host-local:
//
//	{"name":"dcos","type":"bridge","bridge":"m-dcos","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1420,"ipam":{"type":"host-local","dataDir":"/var/run/dcos/cni/networks","subnet":"9.0.1.0/25","routes":[{"dst":"0.0.0.0/0"}]}}
//
// There is no cniVersion, so the plugins answer with the 0.1.0 ip4/ip6
// result that Mesos parses; a 0.3.0 or later result would parse but give
// Mesos no address. An IPv4-only half uses host-local's flat "subnet", byte
// for byte as DC/OS. Unlike DC/OS (which writes no CNI file for dcos6),
// an IPv6 half gets a network too: host-local "ranges", one range set per
// family, with routes ::/0 (and 0.0.0.0/0 for dual stack). Debian's
// plugins (containernetworking-plugins 1.1.1) return ip6 (and ip4) in the
// 0.1.0 result for such a config without cniVersion, so no version is
// needed there either.
//
// Weft mode renders a weft-cni config, which internal/cni parses:
//
//	{"cniVersion":"0.2.0","name":"dcos","type":"weft-cni","weft":{"network":"default-domain:default-project:dcos"}}
//
// Bad options are *FieldError; an overlay without a Mesos network in
// bridge mode is an error wrapping ErrNoMesosNetwork.
func MesosCNIConfig(opts CNIOptions) ([]byte, error) {
	name := opts.Overlay.Info.Name
	if err := validateName(name, "info.name"); err != nil {
		return nil, err
	}
	switch opts.Mode {
	case CNIModeBridge, "":
		return bridgeConfig(name, opts)
	case CNIModeWeft:
		return weftConfig(name, opts)
	}
	return nil, fieldErrorf("mode", "%q is not a CNI mode; use %q or %q", opts.Mode, CNIModeBridge, CNIModeWeft)
}

func bridgeConfig(name string, opts CNIOptions) ([]byte, error) {
	mb := opts.Overlay.MesosBridge
	if mb == nil {
		return nil, fmt.Errorf("overlay %s has no mesos bridge (a master, or mesos_bridge disabled): %w", name, ErrNoMesosNetwork)
	}
	if msg := checkIfName(mb.Name, MaxIfNameLen); msg != "" {
		return nil, fieldErrorf("mesos_bridge.name", "%q %s", mb.Name, msg)
	}
	var v4, v6 netip.Prefix
	var err error
	if mb.IP != "" {
		if v4, err = parseSubnet("mesos_bridge.ip", mb.IP, false, "9.0.1.0/25", "ip6"); err != nil {
			return nil, err
		}
	}
	if mb.IP6 != "" && !opts.DisableIPv6 {
		if v6, err = parseSubnet("mesos_bridge.ip6", mb.IP6, true, "fd01:b::/81", "ip"); err != nil {
			return nil, err
		}
	}
	if !v4.IsValid() && !v6.IsValid() {
		return nil, fmt.Errorf("overlay %s has no address on its mesos bridge %s: %w", name, mb.Name, ErrNoMesosNetwork)
	}
	mtu := opts.MTU
	if mtu == 0 {
		mtu = DefaultOverlayMTU
	}
	if mtu < MinMTU || mtu > MaxMTU {
		return nil, fieldErrorf("overlay_mtu", "%d is out of range; set %d-%d", mtu, MinMTU, MaxMTU)
	}
	if opts.DataDir != "" && !filepath.IsAbs(opts.DataDir) {
		return nil, fieldErrorf("cni_data_dir", "%q is not an absolute path", opts.DataDir)
	}
	ipam := ipamConf{Type: "host-local", DataDir: opts.DataDir}
	switch {
	case v4.IsValid() && !v6.IsValid():
		ipam.Subnet = v4.String()
		ipam.Routes = []routeConf{{Dst: "0.0.0.0/0"}}
	default:
		if v4.IsValid() {
			ipam.Ranges = append(ipam.Ranges, []rangeConf{{Subnet: v4.String()}})
			ipam.Routes = append(ipam.Routes, routeConf{Dst: "0.0.0.0/0"})
		}
		ipam.Ranges = append(ipam.Ranges, []rangeConf{{Subnet: v6.String()}})
		ipam.Routes = append(ipam.Routes, routeConf{Dst: "::/0"})
	}
	return marshalLine(bridgeConf{
		Name: name, Type: "bridge", Bridge: mb.Name,
		IsGateway: true, IPMasq: false, HairpinMode: true, MTU: mtu, IPAM: ipam,
	})
}

func weftConfig(name string, opts CNIOptions) ([]byte, error) {
	network := opts.Network
	if network == "" {
		network = DefaultWeftProject + ":" + name
	}
	if msg := checkNetworkRef(network); msg != "" {
		return nil, fieldErrorf("network", "%q %s", network, msg)
	}
	if opts.Socket != "" && !filepath.IsAbs(opts.Socket) {
		return nil, fieldErrorf("socket", "%q is not an absolute path", opts.Socket)
	}
	if opts.MTU != 0 && (opts.MTU < MinMTU || opts.MTU > MaxMTU) {
		return nil, fieldErrorf("overlay_mtu", "%d is out of range; set %d-%d, or 0 for the Weft network's", opts.MTU, MinMTU, MaxMTU)
	}
	socket := opts.Socket
	if socket != "" {
		socket = filepath.Clean(socket)
	}
	typ := opts.Type
	if typ == "" {
		typ = WeftCNIType
	}
	if msg := checkIfName(typ, 255); msg != "" {
		return nil, fieldErrorf("type", "%q %s", typ, msg)
	}
	return marshalLine(weftConf{
		CNIVersion: WeftCNIVersion, Name: name, Type: typ,
		Weft: weftSection{Network: network, Socket: socket, MTU: opts.MTU},
	})
}

// checkNetworkRef returns what is wrong with a Weft network reference (a
// name or a domain:project:network fq_name), or "".
func checkNetworkRef(ref string) string {
	parts := bytes.Split([]byte(ref), []byte(":"))
	if len(parts) != 1 && len(parts) != 3 {
		return "must be a network name or an fq_name domain:project:network"
	}
	for _, p := range parts {
		if msg := checkIfName(string(p), 255); msg != "" {
			return "has a part that " + msg
		}
	}
	return ""
}

// marshalLine renders v compactly, without HTML escaping and, as DC/OS
// writes it, without a trailing newline.
func marshalLine(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("render cni config: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
