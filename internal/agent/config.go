package agent

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/config"
	"github.com/weft-sdn/weft/internal/overlay"
)

// Config of `weft agent`: defaults, then an optional JSON file (--config),
// then flags. ParseConfig completes it (hostname, underlay address) and
// validates it once.
type Config struct {
	// NodeName is the node's name in the controller; default the hostname.
	NodeName string `json:"node_name"`
	// UnderlayIP is the node's address on the fabric, the source of its
	// VXLAN packets; empty takes the source address of the default route.
	UnderlayIP string `json:"underlay_ip"`
	// Controller is the base URL of the controller API.
	Controller string `json:"controller"`
	// StateDir holds the journal of attachments (<state>/ports/).
	StateDir string `json:"state_dir"`
	// Socket is the unix socket of the local API the CNI plugin calls.
	Socket string `json:"socket"`
	// PortAPIListen is the address of the Contrail-style port API; empty
	// disables it.
	PortAPIListen string `json:"port_api_listen"`
	// MetricsListen is the address of /metrics; empty serves /metrics on
	// the port API listener (and nowhere when that is disabled too).
	MetricsListen string `json:"metrics_listen,omitempty"`
	// NodeNetns is the path of the node's network namespace; empty is the
	// agent's own namespace.
	NodeNetns string `json:"node_netns,omitempty"`
	// RouterNSPrefix prefixes the names of the per-network router
	// namespaces.
	RouterNSPrefix string `json:"router_ns_prefix"`
	// VXLANPort is the UDP port of VXLAN on the underlay.
	VXLANPort int `json:"vxlan_port"`
	// Spares is how many addresses the agent keeps reserved ahead of need
	// per virtual network and family, so that an attach makes no
	// controller call (overlay attachments allocate locally).
	Spares int `json:"spares"`
	// HeartbeatInterval is how often the agent tells the controller it is
	// alive.
	HeartbeatInterval Duration `json:"heartbeat_interval"`
	// ResyncInterval is how often the whole data plane is synced again to
	// repair drift.
	ResyncInterval Duration `json:"resync_interval"`
	// DNS is handed to containers in attach results, when set.
	DNS api.DNSConfig `json:"dns,omitzero"`
	// OverlayConfig is a DC/OS overlay agent configuration file (the
	// agent module's agent_config); its cni_dir, cni_data_dir and
	// network_config replace CNIDir, CNIDataDir, OverlayMTU, OverlayIPv6,
	// OverlayRole and DockerTimeout (command_timeout).
	OverlayConfig string `json:"overlay_config,omitempty"`
	// CNIDir is where a CNI configuration per overlay is written
	// (<cni_dir>/<overlay>.conf, Mesos' --network_cni_config_dir); empty
	// writes none.
	CNIDir string `json:"cni_dir,omitempty"`
	// CNIDataDir is host-local's dataDir in those configurations.
	CNIDataDir string `json:"cni_data_dir,omitempty"`
	// OverlayCNI selects the plugins of the overlay CNI configurations:
	// "bridge" (Debian's bridge + host-local, DC/OS's layout) or "weft"
	// (weft-cni, which asks this agent).
	OverlayCNI string `json:"overlay_cni"`
	// OverlayMTU is the MTU of overlay bridges and Docker networks.
	OverlayMTU int `json:"overlay_mtu"`
	// OverlayIPv6 enables the IPv6 side of the overlays on this node.
	OverlayIPv6 bool `json:"overlay_ipv6"`
	// OverlayRole is what the node asks of the overlays (DC/OS
	// network_config: allocate_subnet, mesos_bridge, docker_bridge).
	OverlayRole api.OverlayRole `json:"overlay_role"`
	// OverlayCheckInterval is how often the overlays are checked (the
	// Docker engine above all) when nothing changes.
	OverlayCheckInterval Duration `json:"overlay_check_interval"`
	// DockerHost is the Docker Engine API (unix:///path); empty disables
	// Docker networks.
	DockerHost string `json:"docker_host"`
	// DockerTimeout bounds each Docker Engine API call (DC/OS's
	// command_timeout).
	DockerTimeout Duration `json:"docker_timeout"`
	// MaxProcs is how many CPUs the agent's Go code runs on at once
	// (GOMAXPROCS), set by the weft command at start; 0 leaves Go's
	// default (the GOMAXPROCS environment variable, else every CPU). The
	// agent's work is mostly the kernel's, serialized by its RTNL lock:
	// more Ps only add threads that spin looking for work and switch, at
	// the cost of the node's tasks.
	MaxProcs int `json:"max_procs"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// Duration is a time.Duration written as "5s" in config files.
type Duration = config.Duration

// Defaults.
const (
	DefaultController     = "http://127.0.0.1:8082"
	DefaultStateDir       = "/var/lib/weft/agent"
	DefaultSocket         = "/run/weft/agent.sock"
	DefaultPortAPIListen  = ":9091"
	DefaultRouterNSPrefix = "weft-"
	DefaultVXLANPort      = 4789
	DefaultSpares         = 8
	DefaultHeartbeat      = 5 * time.Second
	DefaultResync         = 30 * time.Second
	DefaultOverlayMTU     = 1420
	DefaultOverlayCheck   = 5 * time.Second
	DefaultDockerHost     = "unix:///var/run/docker.sock"
	DefaultDockerTimeout  = 15 * time.Second
	DefaultMaxProcs       = 1
)

// DefaultConfig returns the defaults; NodeName is the hostname.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:             host,
		Controller:           DefaultController,
		StateDir:             DefaultStateDir,
		Socket:               DefaultSocket,
		PortAPIListen:        DefaultPortAPIListen,
		RouterNSPrefix:       DefaultRouterNSPrefix,
		VXLANPort:            DefaultVXLANPort,
		Spares:               DefaultSpares,
		HeartbeatInterval:    Duration(DefaultHeartbeat),
		MaxProcs:             DefaultMaxProcs,
		ResyncInterval:       Duration(DefaultResync),
		OverlayCNI:           "bridge",
		OverlayMTU:           DefaultOverlayMTU,
		OverlayIPv6:          true,
		OverlayRole:          api.DefaultOverlayRole,
		OverlayCheckInterval: Duration(DefaultOverlayCheck),
		DockerHost:           DefaultDockerHost,
		DockerTimeout:        Duration(DefaultDockerTimeout),
		LogLevel:             "info",
	}
}

// ParseConfig builds the configuration from args (without the program and
// subcommand names): defaults, the --config file, then the flags. It fills
// the underlay address from the default route when none is given, and
// validates the result. Usage goes to out.
func ParseConfig(args []string, out io.Writer) (Config, error) {
	cfg, err := config.Load(args, DefaultConfig, func(c *Config, file *string) *flag.FlagSet { return c.flagSet(file, out) })
	if err != nil {
		return cfg, err
	}
	if err := cfg.applyOverlayConfig(); err != nil {
		return cfg, err
	}
	if cfg.UnderlayIP == "" && cfg.NodeNetns == "" {
		a, err := DefaultRouteSource()
		if err != nil {
			return cfg, fmt.Errorf("underlay-ip: not given and %w", err)
		}
		cfg.UnderlayIP = a.String()
	}
	return cfg, cfg.Validate()
}

func (c *Config) flagSet(file *string, out io.Writer) *flag.FlagSet {
	fs := config.NewFlagSet("weft agent", out)
	fs.StringVar(file, "config", "", "optional JSON config file; flags override it")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "name of this node in the controller")
	fs.StringVar(&c.UnderlayIP, "underlay-ip", c.UnderlayIP, "underlay (fabric) address of the node; empty takes the default route's source")
	fs.StringVar(&c.Controller, "controller", c.Controller, "controller API: http(s) URL, or unix:///path of its socket")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "directory of the agent's durable state (journal of ports)")
	fs.StringVar(&c.Socket, "socket", c.Socket, "unix socket of the local API served to the CNI plugin")
	fs.StringVar(&c.PortAPIListen, "port-api-listen", c.PortAPIListen, "address of the Contrail-style port API (empty disables it)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "address of /metrics (empty: on the port API listener)")
	fs.StringVar(&c.NodeNetns, "node-netns", c.NodeNetns, "path of the node's network namespace (empty: the agent's own)")
	fs.StringVar(&c.RouterNSPrefix, "router-ns-prefix", c.RouterNSPrefix, "name prefix of the per-network router namespaces")
	fs.IntVar(&c.VXLANPort, "vxlan-port", c.VXLANPort, "UDP port of VXLAN")
	fs.IntVar(&c.Spares, "spares", c.Spares, "addresses reserved ahead of need per virtual network and family")
	fs.Var(config.DurationFlag(&c.HeartbeatInterval), "heartbeat-interval", "interval of heartbeats to the controller")
	fs.Var(config.DurationFlag(&c.ResyncInterval), "resync-interval", "interval of full data-plane syncs that repair drift")
	fs.Var(config.ListFlag(&c.DNS.Nameservers), "dns-nameserver", "nameserver handed to containers (repeatable)")
	fs.StringVar(&c.DNS.Domain, "dns-domain", c.DNS.Domain, "DNS domain handed to containers")
	fs.Var(config.ListFlag(&c.DNS.Search), "dns-search", "DNS search domain handed to containers (repeatable)")
	fs.StringVar(&c.OverlayConfig, "overlay-config", c.OverlayConfig, "DC/OS overlay agent configuration file (agent_config); replaces --cni-dir, --cni-data-dir, --overlay-mtu, --overlay-ipv6, the --overlay-*-bridge and --overlay-allocate-subnet flags and --docker-timeout")
	fs.StringVar(&c.CNIDir, "cni-dir", c.CNIDir, "directory for a CNI configuration per overlay (Mesos' --network_cni_config_dir); empty writes none")
	fs.StringVar(&c.CNIDataDir, "cni-data-dir", c.CNIDataDir, "host-local dataDir of the overlay CNI configurations")
	fs.StringVar(&c.OverlayCNI, "overlay-cni", c.OverlayCNI, "plugins of the overlay CNI configurations: bridge (bridge + host-local) or weft (weft-cni)")
	fs.IntVar(&c.OverlayMTU, "overlay-mtu", c.OverlayMTU, "MTU of overlay bridges and Docker networks")
	fs.BoolVar(&c.OverlayIPv6, "overlay-ipv6", c.OverlayIPv6, "configure the IPv6 side of the overlays")
	fs.BoolVar(&c.OverlayRole.AllocateSubnet, "overlay-allocate-subnet", c.OverlayRole.AllocateSubnet, "ask for a subnet of each overlay")
	fs.BoolVar(&c.OverlayRole.MesosBridge, "overlay-mesos-bridge", c.OverlayRole.MesosBridge, "bridge the Mesos half of each overlay subnet (m-<overlay>)")
	fs.BoolVar(&c.OverlayRole.DockerBridge, "overlay-docker-bridge", c.OverlayRole.DockerBridge, "create the Docker network of the Docker half (d-<overlay>)")
	fs.Var(config.DurationFlag(&c.OverlayCheckInterval), "overlay-check-interval", "how often the overlays and the Docker engine are checked")
	fs.StringVar(&c.DockerHost, "docker-host", c.DockerHost, "Docker Engine API (unix:///path); empty disables Docker networks")
	fs.Var(config.DurationFlag(&c.DockerTimeout), "docker-timeout", "bound of each Docker Engine API call")
	fs.IntVar(&c.MaxProcs, "max-procs", c.MaxProcs, "CPUs the agent's Go code runs on at once (GOMAXPROCS; its data-plane work is serialized by the kernel's RTNL lock anyway); 0 leaves Go's default")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: weft agent [flags]\n\nRuns the Weft node agent: registers the node with the controller, programs\nthe node's data planes (virtual networks and DC/OS-style overlays: VTEP,\nbridges, CNI configurations, Docker networks), and serves the CNI plugin on a\nunix socket and the Contrail-style port API (with /overlay-agent/overlay).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// Validate checks the configuration once, at start.
func (c Config) Validate() error {
	var errs []error
	if err := api.ValidName(c.NodeName); err != nil {
		errs = append(errs, fmt.Errorf("node-name: %w", err))
	}
	if c.UnderlayIP == "" {
		errs = append(errs, errors.New("underlay-ip: is required when --node-netns is set"))
	} else if _, err := api.ParseAddr(c.UnderlayIP); err != nil {
		errs = append(errs, fmt.Errorf("underlay-ip: %w", err))
	}
	if path, ok := strings.CutPrefix(c.Controller, "unix://"); ok {
		if !filepath.IsAbs(path) {
			errs = append(errs, fmt.Errorf("controller: %q: a unix socket path must be absolute", c.Controller))
		}
	} else if u, err := url.Parse(c.Controller); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("controller: %q is neither an http(s) URL nor unix:///path", c.Controller))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state-dir: is required"))
	}
	if c.Socket == "" {
		errs = append(errs, errors.New("socket: is required"))
	} else if len(c.Socket) > 107 {
		errs = append(errs, fmt.Errorf("socket: %q is longer than a unix socket path may be (107)", c.Socket))
	}
	for name, addr := range map[string]string{"port-api-listen": c.PortAPIListen, "metrics-listen": c.MetricsListen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", name, addr))
		}
	}
	if c.NodeNetns != "" && !filepath.IsAbs(c.NodeNetns) {
		errs = append(errs, fmt.Errorf("node-netns: %q is not an absolute path", c.NodeNetns))
	}
	if c.RouterNSPrefix == "" || strings.ContainsAny(c.RouterNSPrefix, "/ \t") || len(c.RouterNSPrefix) > 32 {
		errs = append(errs, fmt.Errorf("router-ns-prefix: %q must be a short name without '/' or spaces", c.RouterNSPrefix))
	}
	if c.VXLANPort < 1 || c.VXLANPort > 65535 {
		errs = append(errs, fmt.Errorf("vxlan-port: %d is not a UDP port", c.VXLANPort))
	}
	if c.Spares < 0 || c.Spares > 1024 {
		errs = append(errs, fmt.Errorf("spares: %d is out of range (0-1024)", c.Spares))
	}
	if c.MaxProcs < 0 || c.MaxProcs > 1024 {
		errs = append(errs, fmt.Errorf("max-procs: %d is out of range (0-1024)", c.MaxProcs))
	}
	if c.HeartbeatInterval <= 0 {
		errs = append(errs, errors.New("heartbeat-interval: must be positive"))
	}
	if c.ResyncInterval <= 0 {
		errs = append(errs, errors.New("resync-interval: must be positive"))
	}
	for i, ns := range c.DNS.Nameservers {
		if _, err := api.ParseAddr(ns); err != nil {
			errs = append(errs, fmt.Errorf("dns-nameserver[%d]: %w", i, err))
		}
	}
	if c.CNIDir != "" && !filepath.IsAbs(c.CNIDir) {
		errs = append(errs, fmt.Errorf("cni-dir: %q is not an absolute path", c.CNIDir))
	}
	if c.OverlayCNI != "bridge" && c.OverlayCNI != "weft" {
		errs = append(errs, fmt.Errorf("overlay-cni: %q is neither bridge nor weft", c.OverlayCNI))
	}
	if c.OverlayMTU < 552 || c.OverlayMTU > 65535 {
		errs = append(errs, fmt.Errorf("overlay-mtu: %d is out of range (552-65535)", c.OverlayMTU))
	}
	if c.OverlayCheckInterval <= 0 {
		errs = append(errs, errors.New("overlay-check-interval: must be positive"))
	}
	if c.DockerHost != "" {
		if path, ok := strings.CutPrefix(c.DockerHost, "unix://"); !ok || !filepath.IsAbs(path) {
			errs = append(errs, fmt.Errorf("docker-host: %q is not unix:///absolute/path", c.DockerHost))
		}
	}
	if c.DockerTimeout <= 0 {
		errs = append(errs, errors.New("docker-timeout: must be positive"))
	}
	if _, err := config.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// applyOverlayConfig takes the DC/OS agent configuration file, when one
// is given, over the overlay settings.
func (c *Config) applyOverlayConfig() error {
	if c.OverlayConfig == "" {
		return nil
	}
	data, err := os.ReadFile(c.OverlayConfig)
	if err != nil {
		return fmt.Errorf("overlay-config: %w", err)
	}
	ac, err := overlay.ParseAgentConfig(data)
	if err != nil {
		return fmt.Errorf("overlay-config %s: %w", c.OverlayConfig, err)
	}
	c.CNIDir, c.CNIDataDir = ac.CNIDir, ac.CNIDataDir
	nc := ac.NetworkConfig
	c.OverlayMTU, c.OverlayIPv6 = nc.OverlayMTU, nc.EnableIPv6
	c.OverlayRole = api.OverlayRole{AllocateSubnet: nc.AllocateSubnet, MesosBridge: nc.MesosBridge, DockerBridge: nc.DockerBridge}
	c.DockerTimeout = Duration(nc.CommandTimeoutDuration())
	return nil
}

// Level is the configured slog level.
func (c Config) Level() slog.Level {
	lvl, _ := config.ParseLevel(c.LogLevel)
	return lvl
}

// ErrNoDefaultRoute is returned by DefaultRouteSource when the namespace has
// no IPv4 default route.
var ErrNoDefaultRoute = errors.New("no IPv4 default route")

// DefaultRouteSource returns the source address the kernel picks for the
// IPv4 default route of the current network namespace.
func DefaultRouteSource() (netip.Addr, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read routes: %w", err)
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		fields := strings.Fields(sc.Text())
		if len(fields) >= 8 && fields[1] == "00000000" && fields[7] == "00000000" {
			found = true
			break
		}
	}
	if !found {
		return netip.Addr{}, ErrNoDefaultRoute
	}
	// Connecting a UDP socket sends nothing; it only asks the kernel for
	// the route, and with it the source address. TEST-NET-2 has no route
	// of its own, so the default route answers.
	conn, err := net.Dial("udp4", "198.51.100.1:9")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find the default route's source: %w", err)
	}
	defer conn.Close()
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find the default route's source: %w", err)
	}
	return ap.Addr().Unmap(), nil
}
