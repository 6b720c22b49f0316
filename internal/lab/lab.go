// Package lab brings up a whole Weft cluster on one Linux machine: node
// namespaces joined by an underlay bridge in a fabric namespace, a
// controller, and one agent per node running inside its node's namespace.
// Everything it makes is recorded in a state file as it is made, so that
// Down removes it all, also after a crash half-way through Up. It is the
// base of `weft lab`, the end-to-end tests and the bench harness.
//
// The controller runs in the host namespace on loopback and also serves a
// unix socket; agents in node namespaces reach it through that socket, so
// the host namespace never gets an address or route toward a lab prefix.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
)

// Options of Up.
type Options struct {
	// Nodes is the number of nodes (default 3).
	Nodes int
	// StateDir holds the state file, logs, sockets and data (required).
	StateDir string
	// BinDir holds the weft binary (default: the directory of the running
	// executable).
	BinDir string
	// Prefix starts the name of every namespace of the lab (default
	// "weftlab-").
	Prefix string
	// ControllerListen is the controller's TCP address on the host's
	// loopback (default 127.0.0.1:8082).
	ControllerListen string
	// MarathonListen is the Marathon emulator's address on the host's
	// loopback (default 127.0.0.1:8080).
	MarathonListen string
	// ManagerListen is the mesos-manager's introspect address (default
	// 127.0.0.1:8109).
	ManagerListen string
	// NoMarathon leaves out the Marathon emulator and the mesos-manager
	// (the CNI benchmark measures the attach path alone).
	NoMarathon bool
	// Quarantine of released addresses (default 10s in the lab).
	Quarantine time.Duration
	// Spares per network and family on each agent (default 8).
	Spares int
	// NoOverlay leaves out DC/OS's default overlays (dcos, dcos6), which
	// every lab node joins otherwise.
	NoOverlay bool
	// OverlayConfig is a DC/OS overlay configuration file used instead of
	// DC/OS's defaults.
	OverlayConfig string
	// OverlayCNI is the plugin choice of the overlay CNI configurations
	// the agents write: "bridge" (default) or "weft".
	OverlayCNI string
	// NodeGrace is how long a node may miss heartbeats before the
	// controller frees its VTEP, subnets and addresses (default 1h).
	NodeGrace time.Duration
	// LogLevel of the daemons (default info).
	LogLevel string
	// Log receives progress records; nil discards them.
	Log *slog.Logger
}

// State is what a lab made, kept in <state-dir>/lab.json.
type State struct {
	Prefix           string      `json:"prefix"`
	BinDir           string      `json:"bin_dir"`
	Fabric           string      `json:"fabric"`
	Namespaces       []string    `json:"namespaces"`
	ControllerURL    string      `json:"controller_url"`
	ControllerSocket string      `json:"controller_socket"`
	Controller       Process     `json:"controller"`
	Nodes            []NodeState `json:"nodes"`
	// The Marathon API emulator scheduling onto the nodes' Mesos agent
	// emulators.
	MarathonURL string  `json:"marathon_url,omitempty"`
	Marathon    Process `json:"marathon"`
	// The mesos-manager following Marathon, and its introspect address.
	ManagerURL string  `json:"manager_url,omitempty"`
	Manager    Process `json:"manager"`
}

// NodeState is one lab node.
type NodeState struct {
	Name          string  `json:"name"`
	Netns         string  `json:"netns"`
	Underlay      string  `json:"underlay"`
	AgentSocket   string  `json:"agent_socket"`
	RouterPrefix  string  `json:"router_prefix"`
	Agent         Process `json:"agent"`
	StateDir      string  `json:"state_dir"`
	CNIConfigDir  string  `json:"cni_config_dir"`
	CNIPluginsDir string  `json:"cni_plugins_dir"`
	// The node's Mesos agent emulator: its API socket and the root of
	// the network/cni isolator's files.
	Emulator       Process `json:"emulator"`
	EmulatorSocket string  `json:"emulator_socket"`
	EmulatorRoot   string  `json:"emulator_root"`
}

// Process is a daemon the lab started: its pid and the start time the
// kernel gives it, so that a reused pid is never mistaken for it.
type Process struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	Log   string `json:"log"`
}

const stateFile = "lab.json"

// Lab is a running (or half-made) lab.
type Lab struct {
	State
	dir string
	log *slog.Logger
}

// Load reads the state of the lab in dir.
func Load(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	l := &Lab{dir: dir, log: slog.New(slog.DiscardHandler)}
	if err := json.Unmarshal(b, &l.State); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dir, stateFile), err)
	}
	return l, nil
}

// save writes the state atomically.
func (l *Lab) save() error {
	b, err := json.MarshalIndent(l.State, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(l.dir, stateFile))
}

// Dir is the lab's state directory.
func (l *Lab) Dir() string { return l.dir }

// Client is a controller client over the host loopback.
func (l *Lab) Client() *client.Client { return client.New(l.ControllerURL, nil) }

func (o *Options) defaults() error {
	if o.StateDir == "" {
		return errors.New("lab: a state dir is required")
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 254 {
		return fmt.Errorf("lab: --nodes %d is out of range (1-254)", o.Nodes)
	}
	if o.Prefix == "" {
		o.Prefix = "weftlab-"
	}
	if o.ControllerListen == "" {
		o.ControllerListen = "127.0.0.1:8082"
	}
	if o.ManagerListen == "" {
		o.ManagerListen = "127.0.0.1:8109"
	}
	if o.MarathonListen == "" {
		o.MarathonListen = "127.0.0.1:8080"
	}
	if o.NoOverlay && o.OverlayConfig != "" {
		return errors.New("lab: --no-overlay and --overlay-config exclude each other")
	}
	switch o.OverlayCNI {
	case "":
		o.OverlayCNI = "bridge"
	case "bridge", "weft":
	default:
		return fmt.Errorf("lab: --overlay-cni %q: want bridge or weft", o.OverlayCNI)
	}
	if o.NodeGrace == 0 {
		o.NodeGrace = time.Hour
	}
	if o.Quarantine == 0 {
		o.Quarantine = 10 * time.Second
	}
	if o.Spares == 0 {
		o.Spares = 8
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("lab: find the weft binary: %w", err)
		}
		o.BinDir = filepath.Dir(exe)
	}
	for _, b := range []string{"weft", "weft-cni"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return fmt.Errorf("lab: %s not found in %s (run make build)", b, o.BinDir)
		}
	}
	return nil
}

// procStart is the start time (clock ticks since boot) of pid, or 0.
func procStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Field 22, counted after the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// Alive reports whether the process is still the one the lab started.
func (p Process) Alive() bool {
	return p.PID > 0 && p.Start != 0 && procStart(p.PID) == p.Start
}

// start runs a daemon detached from the caller (own session, output to a
// log file), so that it outlives `weft lab up`.
func (l *Lab) start(name string, args []string) (Process, error) {
	logPath := filepath.Join(l.dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return Process{}, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Process{}, fmt.Errorf("open %s: %w", logPath, err)
	}
	defer f.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Process{}, fmt.Errorf("start %s: %w", name, err)
	}
	p := Process{PID: cmd.Process.Pid, Start: procStart(cmd.Process.Pid), Log: logPath}
	// Reap it if it dies while we are still here; after we exit, init does.
	go func() { _ = cmd.Wait() }()
	return p, nil
}

// stop ends a daemon: SIGTERM, then SIGKILL after the grace period.
func stop(p Process, grace time.Duration) {
	if !p.Alive() {
		return
	}
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	for range 40 {
		if !p.Alive() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor polls ok until it holds, the process dies, or the timeout passes.
func waitFor(ctx context.Context, what string, p Process, timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return nil
		}
		if !p.Alive() {
			return fmt.Errorf("%s exited; see %s", what, p.Log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s; see %s", what, timeout, p.Log)
}

// answersOK is a readiness check for waitFor: a GET of url answers 200.
func answersOK(ctx context.Context, url string) func() bool {
	return func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// unixHTTP is an HTTP client of the server on a unix socket (agents and
// Mesos agent emulators), whatever the request's host.
func unixHTTP(socket string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
}

// unixGet asks a unix-socket HTTP server for path.
func unixGet(ctx context.Context, socket, path string, out any) error {
	hc := unixHTTP(socket, 2*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://local"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %s", path, socket, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// AgentStatus asks a node's agent for its status.
func (n NodeState) AgentStatus(ctx context.Context) (api.AgentStatus, error) {
	var st api.AgentStatus
	err := unixGet(ctx, n.AgentSocket, "/v1/status", &st)
	return st, err
}
