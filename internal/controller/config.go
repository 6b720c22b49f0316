package controller

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/config"
	"github.com/weft-sdn/weft/internal/overlay"
)

// Config of `weft controller`: defaults, then an optional JSON file
// (--config), then flags. Validated once by Validate.
type Config struct {
	// Listen is the API address.
	Listen string `json:"listen"`
	// ListenUnix is an optional unix socket serving the same API, for
	// clients in other network namespaces (the lab's agents).
	ListenUnix string `json:"listen_unix,omitempty"`
	// DataDir holds the embedded etcd's data.
	DataDir string `json:"data_dir"`
	// EtcdEndpoints selects an external etcd cluster; empty runs an
	// embedded single-node etcd.
	EtcdEndpoints []string `json:"etcd_endpoints,omitempty"`
	// EtcdListen is the client URL of the embedded etcd.
	EtcdListen string `json:"etcd_listen"`
	// Quarantine is how long a released address rests before automatic
	// allocation may hand it out again.
	Quarantine Duration `json:"quarantine"`
	// TaskSubnets are the subnets of mesos-default-pod-task when the
	// controller creates it.
	TaskSubnets []string `json:"task_subnets"`
	// FabricSubnets are the subnets of ip-fabric when the controller
	// creates it.
	FabricSubnets []string `json:"fabric_subnets"`
	// VTEPSubnet is where node VTEP addresses come from (at least /8).
	VTEPSubnet string `json:"vtep_subnet"`
	// VTEPMACOUI is the OUI of VTEP MACs (xx:xx:xx:00:00:00).
	VTEPMACOUI string `json:"vtep_mac_oui"`
	// OverlayConfig is a DC/OS overlay configuration file (the master
	// module's master_config, or its "network" object alone). Its
	// vtep_subnet and vtep_mac_oui replace VTEPSubnet and VTEPMACOUI.
	OverlayConfig string `json:"overlay_config,omitempty"`
	// DCOSOverlay configures DC/OS's default overlays when OverlayConfig
	// is empty.
	DCOSOverlay bool `json:"dcos_overlay,omitempty"`
	// NodeGrace is how long a node may miss heartbeats before it is
	// deleted and its VTEP, overlay subnets and addresses are freed; 0
	// keeps nodes until they are deleted.
	NodeGrace Duration `json:"node_grace"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// ShutdownTimeout bounds the graceful shutdown on SIGTERM.
	ShutdownTimeout Duration `json:"shutdown_timeout"`
}

// Duration is a time.Duration written as "60s" in config files.
type Duration = config.Duration

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:          ":8082",
		DataDir:         "/var/lib/weft/controller",
		EtcdListen:      "http://127.0.0.1:12379",
		Quarantine:      Duration(60 * time.Second),
		TaskSubnets:     []string{"10.32.0.0/12"},
		FabricSubnets:   []string{"10.64.0.0/12"},
		VTEPSubnet:      "44.128.0.0/20",
		VTEPMACOUI:      "70:B3:D5:00:00:00",
		NodeGrace:       Duration(time.Hour),
		LogLevel:        "info",
		ShutdownTimeout: Duration(10 * time.Second),
	}
}

// ParseConfig builds the configuration from args (without the program and
// subcommand names). Usage goes to out.
func ParseConfig(args []string, out io.Writer) (Config, error) {
	cfg, err := config.Load(args, DefaultConfig, func(c *Config, file *string) *flag.FlagSet { return c.flagSet(file, out) })
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func (c *Config) flagSet(file *string, out io.Writer) *flag.FlagSet {
	fs := config.NewFlagSet("weft controller", out)
	fs.StringVar(file, "config", "", "optional JSON config file; flags override it")
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the HTTP API")
	fs.StringVar(&c.ListenUnix, "listen-unix", c.ListenUnix, "optional unix socket serving the same API (reachable from other network namespaces)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded etcd's data")
	fs.Var(config.ListFlag(&c.EtcdEndpoints), "etcd-endpoints", "external etcd cluster (comma-separated client URLs); empty runs an embedded etcd")
	fs.StringVar(&c.EtcdListen, "etcd-listen", c.EtcdListen, "client URL of the embedded etcd (port 0 picks a free port)")
	fs.Var(config.DurationFlag(&c.Quarantine), "quarantine", "how long a released address rests before it is handed out again")
	fs.Var(config.ListFlag(&c.TaskSubnets), "task-subnet", "subnet of the default task network mesos-default-pod-task (repeatable; IPv4 and IPv6)")
	fs.Var(config.ListFlag(&c.FabricSubnets), "fabric-subnet", "subnet of the ip-fabric network (repeatable)")
	fs.StringVar(&c.VTEPSubnet, "vtep-subnet", c.VTEPSubnet, "IPv4 subnet of node VTEP addresses (at least /8)")
	fs.StringVar(&c.VTEPMACOUI, "vtep-mac-oui", c.VTEPMACOUI, "OUI of VTEP MACs; the low 3 bytes come from the VTEP address")
	fs.StringVar(&c.OverlayConfig, "overlay-config", c.OverlayConfig, "DC/OS overlay configuration file (master_config, or its \"network\" object); its vtep_subnet and vtep_mac_oui replace --vtep-subnet and --vtep-mac-oui")
	fs.BoolVar(&c.DCOSOverlay, "dcos-overlay", c.DCOSOverlay, "configure DC/OS's default overlays (dcos 9.0.0.0/8 /24, dcos6 fd01:b::/64 /80, VTEPs 44.128.0.0/20 and fd01:a::/64) when --overlay-config is not given")
	fs.Var(config.DurationFlag(&c.NodeGrace), "node-grace", "how long a node may miss heartbeats before it is deleted and its VTEP, subnets and addresses are freed (0: never)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.Var(config.DurationFlag(&c.ShutdownTimeout), "shutdown-timeout", "bound of the graceful shutdown")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: weft controller [flags]\n\nRuns the Weft controller: the resource API, the IPAM server, the\nwatch stream and the DC/OS-compatible overlay master, with state in etcd (embedded unless --etcd-endpoints).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// Validate checks the configuration once, at start.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port", c.Listen))
	}
	if len(c.EtcdEndpoints) == 0 && c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: is required for the embedded etcd"))
	}
	if c.Quarantine < 0 {
		errs = append(errs, errors.New("quarantine: must not be negative"))
	}
	for name, subnets := range map[string][]string{"task-subnet": c.TaskSubnets, "fabric-subnet": c.FabricSubnets} {
		if len(subnets) == 0 {
			errs = append(errs, fmt.Errorf("%s: at least one subnet is required", name))
		}
		n := &api.Network{Meta: api.Meta{Kind: api.KindNetwork, FQName: "d:p:n"}, Subnets: toSubnets(subnets)}
		if err := api.Validate(n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if _, err := ParseVTEPPool(c.VTEPSubnet, c.VTEPMACOUI); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Overlay(); err != nil {
		errs = append(errs, err)
	}
	if c.NodeGrace < 0 {
		errs = append(errs, errors.New("node-grace: must not be negative"))
	}
	if _, err := config.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func toSubnets(cidrs []string) []api.Subnet {
	out := make([]api.Subnet, len(cidrs))
	for i, c := range cidrs {
		out[i] = api.Subnet{CIDR: c}
	}
	return out
}

// Level is the configured slog level.
func (c Config) Level() slog.Level {
	lvl, _ := config.ParseLevel(c.LogLevel)
	return lvl
}

// Overlay returns the overlay configuration: the file's, DC/OS's defaults
// with DCOSOverlay, or nil when no overlay is configured.
func (c Config) Overlay() (*overlay.NetworkConfig, error) {
	switch {
	case c.OverlayConfig != "":
		data, err := os.ReadFile(c.OverlayConfig)
		if err != nil {
			return nil, fmt.Errorf("overlay-config: %w", err)
		}
		nc, err := overlay.ParseNetworkConfig(data)
		if err != nil {
			return nil, fmt.Errorf("overlay-config %s: %w", c.OverlayConfig, err)
		}
		return &nc, nil
	case c.DCOSOverlay:
		nc := overlay.DefaultDCOS()
		return &nc, nil
	}
	return nil, nil
}
