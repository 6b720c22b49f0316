package emulator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// Main runs a Marathon emulator until ctx is done and returns the exit
// code (0, 1 on failure, 2 on bad usage). Wire it as
// `weft lab marathon <flags>`. Agents are Mesos agent emulators on unix
// sockets (--agents name=unix:/path,...): the name is the agent's
// hostname for Marathon, its id is read from the agent's /state.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("marathon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		agents, users      listFlag
		advertise, level   string
		cfg                Config
		agentTimeout, poll time.Duration
	)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "HTTP address: host:port, unix:<path> or an absolute socket path")
	fs.StringVar(&advertise, "advertise", "", "host:port this node reports as leader (default: the Host of each request)")
	fs.Var(&agents, "agents", "Mesos agent emulators as name=unix:/path/to/agent.sock (repeatable or comma-separated)")
	fs.StringVar(&cfg.FrameworkID, "framework-id", mesosemu.DefaultFrameworkID, "Mesos framework id of Marathon's tasks")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", DefaultHeartbeat, "event stream heartbeat interval")
	fs.IntVar(&cfg.MaxOutstanding, "event-stream-max-outstanding", DefaultMaxOutstanding, "per-stream backlog that disconnects a slow consumer")
	fs.BoolVar(&cfg.DropSlowEvents, "drop-slow-events", false, "drop events for slow consumers instead of disconnecting them (Marathon <= 1.7)")
	fs.StringVar(&cfg.LeaderURL, "leader-url", "", "run as a standby of the leader at this URL (http://host:port)")
	fs.Var(&users, "basic-auth", "user:pass accepted with HTTP Basic auth (repeatable)")
	fs.StringVar(&cfg.Token, "token", "", "token accepted as 'Authorization: token=<t>'")
	fs.StringVar(&cfg.DefaultNetworkName, "default-network-name", "", "network of container networks without a name")
	fs.StringVar(&cfg.MesosBridgeName, "mesos-bridge-name", DefaultMesosBridgeName, "CNI network of container/bridge networking")
	fs.DurationVar(&agentTimeout, "agent-timeout", 30*time.Second, "how long to wait for each agent's /state at start")
	fs.DurationVar(&poll, "agent-poll", DefaultPollInterval, "how often to poll each agent's containers")
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "marathon: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "marathon: --log-level: %v\n", err)
		return 2
	}
	if len(users) > 0 {
		cfg.BasicAuth = map[string]string{}
		for _, u := range users {
			user, pass, ok := strings.Cut(u, ":")
			if !ok || user == "" {
				fmt.Fprintf(stderr, "marathon: --basic-auth %q: want user:pass\n", u)
				return 2
			}
			cfg.BasicAuth[user] = pass
		}
	}
	type agentFlag struct{ name, socket string }
	var parsed []agentFlag
	for _, a := range agents {
		name, socket, ok := strings.Cut(a, "=")
		if !ok || name == "" || strings.TrimPrefix(socket, "unix:") == "" {
			fmt.Fprintf(stderr, "marathon: --agents %q: want name=unix:/path/to/agent.sock\n", a)
			return 2
		}
		parsed = append(parsed, agentFlag{name, socket})
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv})).With("component", "marathon")
	cfg.Log = log
	cfg.Advertise = advertise
	if cfg.LeaderURL == "" {
		for _, a := range parsed {
			ha := NewHTTPAgent(a.socket, log.With("agent", a.name))
			ha.SetPollInterval(poll)
			info, err := describeWithRetry(ctx, ha, agentTimeout)
			if err != nil {
				fmt.Fprintf(stderr, "marathon: agent %s: %v\n", a.name, err)
				return 1
			}
			cfg.Agents = append(cfg.Agents, AgentConfig{Hostname: a.name, ID: info.ID, Agent: ha})
		}
	}
	s, err := New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "marathon: %v\n", err)
		return 2
	}
	ln, err := mesosemu.Listen(cfg.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "marathon: %v\n", err)
		return 1
	}
	role := "leader"
	if s.Standby() {
		role = "standby of " + cfg.LeaderURL
	}
	fmt.Fprintf(stdout, "marathon emulator (%s) listening on %s\n", role, ln.Addr())
	if err := s.Serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "marathon: %v\n", err)
		return 1
	}
	return 0
}

// describeWithRetry asks an agent for its id until it answers or the
// timeout passes.
func describeWithRetry(ctx context.Context, a *HTTPAgent, timeout time.Duration) (AgentInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		info, err := a.Describe(ctx)
		if err == nil {
			return info, nil
		}
		select {
		case <-ctx.Done():
			return AgentInfo{}, fmt.Errorf("no answer from the agent: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
