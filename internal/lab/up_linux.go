//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weft-sdn/weft/internal/mesos/emulator"
	"github.com/weft-sdn/weft/internal/netns"
)

// Up creates the lab described by opts. What it makes is recorded in the
// state file step by step; on failure it tears down what it made. A state
// dir that already holds a lab is refused (run Down first).
func Up(ctx context.Context, opts Options) (l *Lab, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(opts.StateDir, stateFile)); err == nil {
		return nil, fmt.Errorf("lab: %s already holds a lab; run `weft lab down --state-dir %s` first", opts.StateDir, opts.StateDir)
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	dir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	if left, _ := netns.List(opts.Prefix); len(left) > 0 {
		return nil, fmt.Errorf("lab: namespaces with prefix %q exist already (%v); another lab runs, or one was not taken down", opts.Prefix, left)
	}
	l = &Lab{dir: dir, log: opts.Log}
	l.Prefix = opts.Prefix
	l.BinDir = opts.BinDir
	l.Fabric = opts.Prefix + "fabric"
	if err := l.save(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := l.Down(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, fmt.Errorf("tear down after failure: %w", derr))
			}
		}
	}()

	// Topology: record the names first, so a crash leaves them known.
	topo, err := netns.NewLab(opts.Prefix, 0)
	if err != nil {
		return l, err
	}
	l.Namespaces = append(l.Namespaces, topo.Fabric)
	for i := range opts.Nodes {
		l.Namespaces = append(l.Namespaces, fmt.Sprintf("%snode%d", opts.Prefix, i+1))
	}
	if err := l.save(); err != nil {
		return l, err
	}
	for range opts.Nodes {
		if _, err := topo.AddNode(); err != nil {
			return l, err
		}
	}
	l.log.Info("namespaces created", "fabric", topo.Fabric, "nodes", opts.Nodes)

	// Controller.
	l.ControllerURL = "http://" + opts.ControllerListen
	l.ControllerSocket = filepath.Join(dir, "controller.sock")
	weft := filepath.Join(opts.BinDir, "weft")
	ctlArgs := []string{weft, "controller",
		"--listen", opts.ControllerListen, "--listen-unix", l.ControllerSocket,
		"--data-dir", filepath.Join(dir, "controller"), "--etcd-listen", "http://127.0.0.1:0",
		"--quarantine", opts.Quarantine.String(), "--node-grace", opts.NodeGrace.String(), "--log-level", opts.LogLevel}
	switch {
	case opts.OverlayConfig != "":
		ctlArgs = append(ctlArgs, "--overlay-config", opts.OverlayConfig)
	case !opts.NoOverlay:
		ctlArgs = append(ctlArgs, "--dcos-overlay")
	}
	l.Controller, err = l.start("controller", ctlArgs)
	if err != nil {
		return l, err
	}
	if err := l.save(); err != nil {
		return l, err
	}
	cli := l.Client()
	if err := waitFor(ctx, "controller", l.Controller, 60*time.Second, func() bool {
		_, err := cli.Version(ctx)
		return err == nil
	}); err != nil {
		return l, err
	}
	l.log.Info("controller ready", "url", l.ControllerURL)

	// Agents, inside their nodes' namespaces. nsenter enters only the
	// network namespace: `ip netns exec` would also give the agent a
	// private mount namespace, where the router namespaces it mounts would
	// vanish with it.
	for i, tn := range topo.Nodes {
		name := "node" + strconv.Itoa(i+1)
		n := NodeState{
			Name: name, Netns: tn.Name, Underlay: tn.Underlay.Addr().String(),
			StateDir:     filepath.Join(dir, name),
			AgentSocket:  filepath.Join(dir, name, "agent.sock"),
			RouterPrefix: fmt.Sprintf("%sn%d-", opts.Prefix, i+1),
		}
		n.CNIConfigDir = filepath.Join(n.StateDir, "cni", "net.d")
		n.CNIPluginsDir = filepath.Join(n.StateDir, "cni", "bin")
		n.EmulatorSocket = filepath.Join(n.StateDir, "mesos-agent.sock")
		n.EmulatorRoot = filepath.Join(n.StateDir, "mesos", "isolators", "network", "cni")
		if err := writeCNIConfig(n, opts.BinDir); err != nil {
			return l, err
		}
		n.Agent, err = l.start(name+"-agent", []string{"nsenter", "--net=" + tn.Path, weft, "agent",
			"--node-name", name, "--underlay-ip", n.Underlay,
			"--controller", "unix://" + l.ControllerSocket,
			"--state-dir", filepath.Join(n.StateDir, "agent"), "--socket", n.AgentSocket,
			"--port-api-listen", "", "--router-ns-prefix", n.RouterPrefix,
			"--cni-dir", n.CNIConfigDir, "--cni-data-dir", filepath.Join(n.StateDir, "cni", "networks"),
			"--overlay-cni", opts.OverlayCNI, "--overlay-check-interval", "1s",
			"--docker-host", "unix://" + n.DockerSocket(),
			"--spares", strconv.Itoa(opts.Spares), "--log-level", opts.LogLevel})
		if err != nil {
			return l, err
		}
		l.Nodes = append(l.Nodes, n)
		if err := l.save(); err != nil {
			return l, err
		}
		// The node's Mesos agent emulator, in the node's namespace too.
		l.Nodes[i].Emulator, err = l.startEmulator(l.Nodes[i], opts.LogLevel)
		if err != nil {
			return l, err
		}
		if err := l.save(); err != nil {
			return l, err
		}
	}
	for _, n := range l.Nodes {
		if err := waitFor(ctx, n.Name+" agent", n.Agent, 60*time.Second, func() bool {
			st, err := n.AgentStatus(ctx)
			return err == nil && st.Ready
		}); err != nil {
			return l, err
		}
		if err := waitEmulator(ctx, n, n.Emulator); err != nil {
			return l, err
		}
	}
	l.log.Info("agents ready", "nodes", len(l.Nodes))
	if opts.NoMarathon {
		return l, nil
	}

	// Marathon, scheduling onto every node's Mesos agent emulator.
	var agentsFlag []string
	for _, n := range l.Nodes {
		agentsFlag = append(agentsFlag, n.Name+"=unix:"+n.EmulatorSocket)
	}
	l.MarathonURL = "http://" + opts.MarathonListen
	l.Marathon, err = l.start("marathon", []string{weft, "lab", "marathon", "--listen", opts.MarathonListen,
		"--agents", strings.Join(agentsFlag, ","), "--heartbeat", "2s", "--agent-poll", "100ms", "--log-level", opts.LogLevel})
	if err != nil {
		return l, err
	}
	if err := l.save(); err != nil {
		return l, err
	}
	if err := waitFor(ctx, "marathon emulator", l.Marathon, 30*time.Second, answersOK(ctx, l.MarathonURL+"/ping")); err != nil {
		return l, err
	}
	l.log.Info("marathon ready", "url", l.MarathonURL)

	// The mesos-manager, following Marathon for the controller.
	if l.Manager, err = l.startManager(opts.ManagerListen, opts.LogLevel, "manager"); err != nil {
		return l, err
	}
	l.ManagerURL = "http://" + opts.ManagerListen
	if err := l.save(); err != nil {
		return l, err
	}
	if err := waitFor(ctx, "mesos-manager", l.Manager, 30*time.Second, answersOK(ctx, l.ManagerURL+"/")); err != nil {
		return l, err
	}
	return l, nil
}

// startManager runs a mesos-manager against the lab's Marathon and
// controller (short lease and retry times, for a lab).
func (l *Lab) startManager(listen, logLevel, name string) (Process, error) {
	return l.start(name, []string{filepath.Join(l.BinDir, "weft"), "mesos-manager",
		"--marathon", l.MarathonURL, "--controller", "unix://" + l.ControllerSocket,
		"--listen", listen, "--id", name, "--lease-ttl", "3s", "--retry-interval", "500ms",
		"--unreachable-grace", "30s", "--log-level", logLevel})
}

// StartManager starts one more mesos-manager (for HA tests); the caller
// stops it.
func (l *Lab) StartManager(listen, name string) (Process, error) {
	return l.startManager(listen, "info", name)
}

// startEmulator runs the node's Mesos agent emulator in its namespace.
func (l *Lab) startEmulator(n NodeState, logLevel string) (Process, error) {
	return l.start(n.Name+"-mesos-agent", []string{"nsenter", "--net=" + netns.Path(n.Netns), filepath.Join(l.BinDir, "weft"), "lab", "mesos-agent",
		"--network_cni_config_dir", n.CNIConfigDir, "--network_cni_plugins_dir", n.CNIPluginsDir,
		"--root", n.EmulatorRoot, "--listen", "unix:" + n.EmulatorSocket,
		"--hostname", n.Name, "--ip", n.Underlay, "--log_level", logLevel})
}

// RestartEmulator kills a node's Mesos agent emulator (SIGKILL, as a
// crash), runs whileDown (if not nil), and starts it again; it recovers its
// containers from disk, cleaning up those whose task died meanwhile.
func (l *Lab) RestartEmulator(ctx context.Context, node string, whileDown func() error) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	_ = syscall.Kill(n.Emulator.PID, syscall.SIGKILL)
	for n.Emulator.Alive() {
		time.Sleep(20 * time.Millisecond)
	}
	if whileDown != nil {
		if err := whileDown(); err != nil {
			return err
		}
	}
	p, err := l.startEmulator(*n, "info")
	if err != nil {
		return err
	}
	n.Emulator = p
	if err := l.save(); err != nil {
		return err
	}
	return waitEmulator(ctx, *n, p)
}

// waitEmulator waits until the node's Mesos agent emulator p answers.
func waitEmulator(ctx context.Context, n NodeState, p Process) error {
	return waitFor(ctx, n.Name+" mesos agent emulator", p, 30*time.Second, func() bool {
		var h map[string]string
		return unixGet(ctx, n.EmulatorSocket, "/health", &h) == nil
	})
}

// DebianCNIDir holds Debian's containernetworking-plugins.
const DebianCNIDir = "/usr/lib/cni"

// DockerSocket is where the node's agent looks for a Docker engine (the
// lab starts none; tests start one there).
func (n NodeState) DockerSocket() string { return filepath.Join(n.StateDir, "docker", "docker.sock") }

// writeCNIConfig installs the node's CNI plugins and configurations as an
// operator would for the Mesos network/cni isolator: weft-cni as itself
// and as contrail-cni-plugin (links in the node's plugin directory), the
// `weft` network, and the `contrail-cni-plugin` network in the Contrail
// configuration format.
func writeCNIConfig(n NodeState, binDir string) error {
	for _, d := range []string{n.CNIConfigDir, n.CNIPluginsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, name := range []string{"weft-cni", "contrail-cni-plugin"} {
		link := filepath.Join(n.CNIPluginsDir, name)
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join(binDir, "weft-cni"), link); err != nil {
			return err
		}
	}
	// Debian's bridge and host-local, which the overlay CNI configurations
	// use in the DC/OS layout.
	for _, name := range []string{"bridge", "host-local", "loopback"} {
		target := filepath.Join(DebianCNIDir, name)
		if _, err := os.Stat(target); err != nil {
			continue
		}
		link := filepath.Join(n.CNIPluginsDir, name)
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	confs := map[string]string{
		"weft.conf": fmt.Sprintf(`{"cniVersion":"0.2.0","name":"weft","type":"weft-cni","weft":{"socket":%q}}`+"\n", n.AgentSocket),
		"contrail-cni-plugin.conf": fmt.Sprintf(`{"cniVersion":"0.2.0","name":"contrail-cni-plugin","type":"contrail-cni-plugin",`+
			`"contrail":{"vrouter-ip":%q,"vrouter-port":9091,"poll-timeout":5,"poll-retries":3,"cluster-name":%q,"mode":"mesos","log-level":"4"},`+
			`"weft":{"socket":%q}}`+"\n", n.Underlay, n.Name, n.AgentSocket),
	}
	for name, conf := range confs {
		if err := os.WriteFile(filepath.Join(n.CNIConfigDir, name), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Down stops every process of the lab and deletes every namespace it made
// (and the router namespaces its agents made, which share its prefix),
// then the state file. It works on a half-made lab and is safe to repeat.
func (l *Lab) Down(ctx context.Context) error {
	var errs []error
	// Tasks first, through their emulators, so their networks are
	// detached as Mesos would; then whatever a dead emulator left.
	stop(l.Manager, 5*time.Second)
	stop(l.Marathon, 5*time.Second)
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	l.killAllTasks(kctx)
	cancel()
	for _, n := range l.Nodes {
		stop(n.Emulator, 5*time.Second)
		killTasks(n.EmulatorRoot)
		stop(n.Agent, 5*time.Second)
	}
	stop(l.Controller, 10*time.Second)
	// A crash of `up` between starting a daemon and recording it leaves a
	// process the state does not name; every lab daemon names the state
	// dir on its command line, so find those too.
	for _, p := range processesNaming(l.dir) {
		stop(p, 2*time.Second)
	}
	for _, p := range append(l.processes(), processesNaming(l.dir)...) {
		if p.Alive() {
			errs = append(errs, fmt.Errorf("process %d did not stop", p.PID))
		}
	}
	errs = append(errs, emulator.ReleaseRoot(l.dir))
	if l.Prefix != "" {
		names, err := netns.List(l.Prefix)
		if err != nil {
			errs = append(errs, err)
		}
		for _, name := range names {
			if err := netns.DeleteNamed(name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The daemons' data goes too (the logs stay for a post-mortem).
	for _, d := range append([]string{"controller"}, nodeDirs(l.Nodes)...) {
		if err := os.RemoveAll(filepath.Join(l.dir, d)); err != nil {
			return err
		}
	}
	for _, f := range []string{stateFile, "controller.sock"} {
		if err := os.Remove(filepath.Join(l.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func nodeDirs(nodes []NodeState) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

// processes are the lab's daemons.
func (l *Lab) processes() []Process {
	ps := []Process{l.Controller, l.Marathon, l.Manager}
	for _, n := range l.Nodes {
		ps = append(ps, n.Agent, n.Emulator)
	}
	return ps
}

// processesNaming lists the processes whose command line has an argument
// under dir (the lab's daemons all do), except this one.
func processesNaming(dir string) []Process {
	entries, _ := os.ReadDir("/proc")
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(b), "\x00") {
			if strings.Contains(arg, dir+"/") || strings.HasSuffix(arg, dir) {
				if st := procStart(pid); st != 0 {
					out = append(out, Process{PID: pid, Start: st})
				}
				break
			}
		}
	}
	return out
}

// killTasks kills task processes an emulator recorded under its root and
// that still run (the emulator was gone before it could kill them), and
// everything else running in those tasks' network namespaces.
func killTasks(root string) {
	nss, _ := filepath.Glob(filepath.Join(root, "*", "ns"))
	for _, ns := range nss {
		_ = emulator.KillNetnsProcesses(ns)
	}
	recs, _ := filepath.Glob(filepath.Join(root, "*", ".emulator.json"))
	for _, rec := range recs {
		b, err := os.ReadFile(rec)
		if err != nil {
			continue
		}
		var r struct {
			Proc *struct {
				PID   int    `json:"pid"`
				Start uint64 `json:"start_time"`
			} `json:"proc"`
		}
		if json.Unmarshal(b, &r) != nil || r.Proc == nil || r.Proc.PID <= 0 || r.Proc.Start == 0 {
			continue
		}
		p := Process{PID: r.Proc.PID, Start: r.Proc.Start}
		if p.Alive() {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
}
