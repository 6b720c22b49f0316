package mesosmanager

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/config"
)

// Defaults of Config.
const (
	DefaultController       = "http://127.0.0.1:8082"
	DefaultListen           = ":8109"
	DefaultLeaseName        = "mesos-manager"
	DefaultLeaseTTL         = 6 * time.Second
	DefaultUnreachableGrace = 5 * time.Minute
	DefaultAgentGrace       = 10 * time.Minute
	DefaultResyncInterval   = 5 * time.Minute
	DefaultRetryInterval    = 2 * time.Second
	DefaultMesosPoll        = 30 * time.Second
)

// DefaultNetworks are the Marathon network names the manager looks after
// unless told otherwise: Weft's own CNI network and the Contrail plugin's
// name, which weft-cni answers to as well.
var DefaultNetworks = []string{"weft", "contrail-cni-plugin"}

// Duration is a time.Duration written as "5s" in config files (a number
// is seconds).
type Duration = config.Duration

// Config of `weft mesos-manager`: defaults, then an optional JSON file
// (--config), then flags; ParseConfig validates the result once.
type Config struct {
	// Marathon are the Marathon base URLs, tried in order (standbys proxy
	// REST and redirect the event stream to the leader).
	Marathon []string `json:"marathon"`
	// MarathonUser and MarathonPassword are Basic credentials
	// (--http_credentials); MarathonToken is a DC/OS token. At most one
	// kind may be set.
	MarathonUser     string `json:"marathon_user,omitempty"`
	MarathonPassword string `json:"marathon_password,omitempty"`
	MarathonToken    string `json:"marathon_token,omitempty"`
	// Controller is the controller API: an http(s) URL or unix:///path.
	Controller string `json:"controller"`
	// Networks are the Marathon network names (networks[].name, or
	// ipAddress.networkName of ≤ 1.4 apps) whose tasks the manager looks
	// after.
	Networks []string `json:"networks"`
	// DefaultNetwork is Marathon's --default_network_name: the name of a
	// container network that names none. Empty: such networks are not
	// managed.
	DefaultNetwork string `json:"default_network,omitempty"`
	// Listen is the address of the introspection page and /metrics; empty
	// disables it.
	Listen string `json:"listen"`
	// ID is this replica's identity as lease holder; default
	// "<hostname>-<pid>".
	ID string `json:"id"`
	// LeaseName is the controller lease the replicas compete for.
	LeaseName string `json:"lease_name"`
	// LeaseTTL is the lease's time to live (whole seconds); the leader
	// renews every third of it.
	LeaseTTL Duration `json:"lease_ttl"`
	// UnreachableGrace is how long an UNREACHABLE, LOST or UNKNOWN task
	// keeps its ports before they are released.
	UnreachableGrace Duration `json:"unreachable_grace"`
	// ResyncInterval is the period of full resyncs besides the one after
	// every stream (re)connect.
	ResyncInterval Duration `json:"resync_interval"`
	// RetryInterval is how soon a task whose port the controller does not
	// hold yet is tried again (doubling up to a minute).
	RetryInterval Duration `json:"retry_interval"`
	// MesosMaster is the Mesos master's base URL ("http://master:5050");
	// empty disables the cleanup module and the container-id fallback.
	MesosMaster string `json:"mesos_master,omitempty"`
	// MesosSubscribe follows the master's v1 operator API SUBSCRIBE stream
	// instead of polling /master/state.
	MesosSubscribe bool `json:"mesos_subscribe,omitempty"`
	// MesosPollInterval is the period of /master/state polls.
	MesosPollInterval Duration `json:"mesos_poll_interval"`
	// AgentGrace is how long a Mesos agent must stay gone before its Weft
	// node is deleted.
	AgentGrace Duration `json:"agent_grace"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// DefaultConfig returns the defaults; ID is "<hostname>-<pid>".
func DefaultConfig() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "mesos-manager"
	}
	return Config{
		Controller:        DefaultController,
		Networks:          append([]string(nil), DefaultNetworks...),
		Listen:            DefaultListen,
		ID:                fmt.Sprintf("%s-%d", host, os.Getpid()),
		LeaseName:         DefaultLeaseName,
		LeaseTTL:          Duration(DefaultLeaseTTL),
		UnreachableGrace:  Duration(DefaultUnreachableGrace),
		ResyncInterval:    Duration(DefaultResyncInterval),
		RetryInterval:     Duration(DefaultRetryInterval),
		MesosPollInterval: Duration(DefaultMesosPoll),
		AgentGrace:        Duration(DefaultAgentGrace),
		LogLevel:          "info",
	}
}

// ParseConfig builds the configuration from args (without the program and
// subcommand names): defaults, the --config file, then the flags, and
// validates it. Usage and flag errors go to out.
func ParseConfig(args []string, out io.Writer) (Config, error) {
	cfg, err := config.Load(args, DefaultConfig, func(c *Config, file *string) *flag.FlagSet { return c.flagSet(file, out) })
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func (c *Config) flagSet(file *string, out io.Writer) *flag.FlagSet {
	fs := config.NewFlagSet("weft mesos-manager", out)
	fs.StringVar(file, "config", "", "optional JSON config file; flags override it")
	fs.Var(config.ListFlag(&c.Marathon), "marathon", "Marathon base URL(s), comma-separated or repeated")
	fs.StringVar(&c.MarathonUser, "marathon-user", c.MarathonUser, "Marathon Basic-auth user")
	fs.StringVar(&c.MarathonPassword, "marathon-password", c.MarathonPassword, "Marathon Basic-auth password")
	fs.StringVar(&c.MarathonToken, "marathon-token", c.MarathonToken, "DC/OS authentication token for Marathon")
	fs.StringVar(&c.Controller, "controller", c.Controller, "controller API: http(s) URL, or unix:///path of its socket")
	fs.Var(config.ListFlag(&c.Networks), "networks", "Marathon network names to manage, comma-separated")
	fs.StringVar(&c.DefaultNetwork, "marathon-default-network", c.DefaultNetwork, "Marathon's --default_network_name (the name of an unnamed container network)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the introspection page and /metrics (empty disables it)")
	fs.StringVar(&c.ID, "id", c.ID, "identity of this replica as lease holder")
	fs.StringVar(&c.LeaseName, "lease-name", c.LeaseName, "controller lease the replicas compete for")
	fs.Var(config.DurationFlag(&c.LeaseTTL), "lease-ttl", "leader lease TTL (whole seconds); renewed every third of it")
	fs.Var(config.DurationFlag(&c.UnreachableGrace), "unreachable-grace", "how long an UNREACHABLE/UNKNOWN task keeps its ports")
	fs.Var(config.DurationFlag(&c.ResyncInterval), "resync-interval", "period of full resyncs with Marathon")
	fs.Var(config.DurationFlag(&c.RetryInterval), "retry-interval", "first retry delay of a task whose port is not in the controller yet")
	fs.StringVar(&c.MesosMaster, "mesos-master", c.MesosMaster, "Mesos master URL; enables agent-removal cleanup (empty: off)")
	fs.BoolVar(&c.MesosSubscribe, "mesos-subscribe", c.MesosSubscribe, "follow the master's operator API SUBSCRIBE stream instead of polling /master/state")
	fs.Var(config.DurationFlag(&c.MesosPollInterval), "mesos-poll-interval", "period of /master/state polls")
	fs.Var(config.DurationFlag(&c.AgentGrace), "agent-grace", "how long a Mesos agent must be gone before its node is deleted")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: weft mesos-manager [flags]\n\nFollows Marathon (and optionally the Mesos master) and keeps the controller's\nports in step: task metadata and labels on ports, release of ports of\nfinished tasks, resync after every reconnect, node cleanup after agent\nremoval. Several replicas elect one leader through a controller lease.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// Validate checks the configuration once, at start.
func (c Config) Validate() error {
	var errs []error
	if len(c.Marathon) == 0 {
		errs = append(errs, errors.New("marathon: at least one URL is required"))
	}
	for _, raw := range c.Marathon {
		if !isHTTPURL(raw) {
			errs = append(errs, fmt.Errorf("marathon: %q is not an http(s) URL", redactURL(raw)))
		}
	}
	if c.MarathonToken != "" && (c.MarathonUser != "" || c.MarathonPassword != "") {
		errs = append(errs, errors.New("marathon-token: cannot be combined with marathon-user/marathon-password"))
	}
	if c.MarathonPassword != "" && c.MarathonUser == "" {
		errs = append(errs, errors.New("marathon-password: given without marathon-user"))
	}
	if path, ok := strings.CutPrefix(c.Controller, "unix://"); ok {
		if !filepath.IsAbs(path) {
			errs = append(errs, fmt.Errorf("controller: %q: a unix socket path must be absolute", c.Controller))
		}
	} else if !isHTTPURL(c.Controller) {
		errs = append(errs, fmt.Errorf("controller: %q is neither an http(s) URL nor unix:///path", c.Controller))
	}
	if len(c.Networks) == 0 {
		errs = append(errs, errors.New("networks: at least one Marathon network name is required"))
	}
	for _, n := range c.Networks {
		if strings.ContainsAny(n, " \t,") {
			errs = append(errs, fmt.Errorf("networks: %q is not a network name", n))
		}
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q is not host:port", c.Listen))
		}
	}
	if c.ID == "" || strings.ContainsAny(c.ID, " \t\n") {
		errs = append(errs, fmt.Errorf("id: %q must be a non-empty word", c.ID))
	}
	if err := api.ValidName(c.LeaseName); err != nil {
		errs = append(errs, fmt.Errorf("lease-name: %w", err))
	}
	ttl := time.Duration(c.LeaseTTL)
	switch {
	case ttl < time.Second || ttl > time.Hour:
		errs = append(errs, fmt.Errorf("lease-ttl: %s is out of range (1s-1h)", ttl))
	case ttl%time.Second != 0:
		errs = append(errs, fmt.Errorf("lease-ttl: %s must be whole seconds (the controller counts seconds)", ttl))
	}
	for name, d := range map[string]Duration{
		"unreachable-grace": c.UnreachableGrace, "resync-interval": c.ResyncInterval,
		"retry-interval": c.RetryInterval, "mesos-poll-interval": c.MesosPollInterval, "agent-grace": c.AgentGrace,
	} {
		if d < 0 || (d == 0 && name != "unreachable-grace" && name != "agent-grace") {
			errs = append(errs, fmt.Errorf("%s: %s must be positive", name, time.Duration(d)))
		}
	}
	if c.MesosMaster != "" {
		if !isHTTPURL(c.MesosMaster) {
			errs = append(errs, fmt.Errorf("mesos-master: %q is not an http(s) URL", redactURL(c.MesosMaster)))
		}
	} else if c.MesosSubscribe {
		errs = append(errs, errors.New("mesos-subscribe: needs --mesos-master"))
	}
	if _, err := config.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Level is the configured slog level.
func (c Config) Level() slog.Level {
	lvl, _ := config.ParseLevel(c.LogLevel)
	return lvl
}

// RenewInterval is how often the leader renews its lease: a third of the
// TTL.
func (c Config) RenewInterval() time.Duration { return time.Duration(c.LeaseTTL) / 3 }

// isHTTPURL tells whether raw is an http or https URL with a host.
func isHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// redactURL hides the password of a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}
