package emulator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Main runs a Mesos agent emulator with Mesos-style flags until ctx is
// done: it recovers the root directory, then serves the HTTP API. It
// returns the process exit code (0, 1 on failure, 2 on bad usage). Wire
// it as `weft lab mesos-agent <flags>`.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mesos-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var level string
	fs.StringVar(&cfg.NetworkCNIConfigDir, "network_cni_config_dir", "", "directory of CNI network configuration files (required)")
	fs.StringVar(&cfg.NetworkCNIPluginsDir, "network_cni_plugins_dir", "", "colon-separated search path of CNI plugins (required)")
	fs.StringVar(&cfg.RootDir, "root", DefaultRootDir, "root directory of the network/cni isolator")
	fs.StringVar(&cfg.Listen, "listen", "", "HTTP API address: unix:<path>, an absolute socket path, or host:port (required)")
	fs.StringVar(&cfg.Hostname, "hostname", "", "agent hostname (default: the host's)")
	fs.StringVar(&cfg.AgentID, "agent_id", "", "agent id (default: random <uuid>-S0)")
	fs.StringVar(&cfg.AgentIP, "ip", "", "agent address reported for host-network tasks (default: first global IPv4)")
	fs.StringVar(&cfg.AgentIP6, "ip6", "", "agent IPv6 address reported for host-network tasks")
	fs.StringVar(&cfg.NetNS, "netns", "", "network namespace path in which plugins and tasks start (default: current)")
	fs.StringVar(&cfg.DefaultContainerDNS, "default_container_dns", "", "ContainerDNSInfo JSON (or file://<path>) for CNI networks")
	fs.StringVar(&cfg.FrameworkID, "framework_id", DefaultFrameworkID, "framework of tasks launched without one")
	fs.StringVar(&cfg.FrameworkName, "framework_name", DefaultFrameworkName, "name of that framework in /state")
	fs.StringVar(&level, "log_level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mesos-agent: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if cfg.Listen == "" {
		fmt.Fprintln(stderr, "mesos-agent: --listen is required")
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "mesos-agent: --log_level: %v\n", err)
		return 2
	}
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv})).With("component", "mesos-agent")
	a, err := New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mesos-agent: %v\n", err)
		return 1
	}
	defer a.Close()
	if err := a.Recover(ctx); err != nil {
		fmt.Fprintf(stderr, "mesos-agent: recovery failed: %v\n", err)
		return 1
	}
	ln, err := Listen(cfg.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "mesos-agent: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "mesos agent emulator %s listening on %s\n", a.Config().AgentID, ln.Addr())
	if err := a.Serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "mesos-agent: %v\n", err)
		return 1
	}
	return 0
}
