package lab

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	marathonemu "github.com/weft-sdn/weft/internal/marathon/emulator"
	"github.com/weft-sdn/weft/internal/mesos/emulator"
)

// DefaultStateDir is where `weft lab` keeps its state unless told.
const DefaultStateDir = "/var/lib/weft/lab"

const usage = `Usage: weft lab <command> [flags]

Brings up a whole Weft cluster on this machine (root): node namespaces on an
underlay bridge (198.18.0.0/24), a controller, a Weft agent and a Mesos agent
emulator per node, a Marathon emulator and a mesos-manager.

Commands:
  up       create the lab          [--nodes N] [--controller-listen ADDR] [--marathon-listen ADDR] [--manager-listen ADDR]
                                   [--no-overlay | --overlay-config FILE] [--overlay-cni bridge|weft] [--node-grace D]
           every node joins DC/OS's default overlays dcos (9.0.0.0/8, /24 per node)
           and dcos6 (fd01:b::/64, /80 per node) unless --no-overlay
  status   show nodes, overlays, networks and tasks [-o table|json]
  down     remove everything the lab made (also after a crash of up)
  task run NAME --node NODE [--network NET]... [--ip ADDR] [--ipv6] [--label K=V]... [-- CMD...]
           launch a task through the node's Mesos agent emulator (one
           interface per --network: eth0, eth1, ...; default network if none)
  task run NAME --node NODE --overlay dcos|dcos6 [-- CMD...]
           launch a task on an overlay (the CNI network the node's agent wrote)
  task list [-o table|json]        tasks with their nodes, states and addresses
  task kill NAME                   kill a task (its networks are detached, CNI DEL)
  exec NAME -- CMD...              run a command inside a task's network namespace
  matrix [-o table|json]           a TCP connection from every task interface to every other
                                   task's addresses, answered by name: who reaches whom
  mesos-agent [flags]              run a Mesos agent emulator (lab up starts one per node)
  marathon [flags]                 run the Marathon API emulator (lab up starts one)
  responder --name NAME            answer TCP :7777 with NAME (the default command of lab tasks)

Every command but mesos-agent, marathon and responder takes --state-dir DIR,
before or after the command (default $WEFT_LAB_STATE_DIR, else /var/lib/weft/lab).

Run 'weft lab <command> --help' for its flags.
`

// stateDirDefault is the --state-dir default of every subcommand: a
// leading `--state-dir DIR` (before the subcommand), else
// $WEFT_LAB_STATE_DIR, else DefaultStateDir.
func stateDirDefault(args []string) (string, []string) {
	dir := os.Getenv("WEFT_LAB_STATE_DIR")
	if dir == "" {
		dir = DefaultStateDir
	}
	for len(args) > 0 {
		switch a := args[0]; {
		case (a == "--state-dir" || a == "-state-dir") && len(args) > 1:
			dir, args = args[1], args[2:]
		case strings.HasPrefix(a, "--state-dir="), strings.HasPrefix(a, "-state-dir="):
			_, dir, _ = strings.Cut(a, "=")
			args = args[1:]
		default:
			return dir, args
		}
	}
	return dir, args
}

var defaultStateDir = DefaultStateDir

// Main runs `weft lab` with args (after "lab").
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	defaultStateDir, args = stateDirDefault(args)
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "up":
		err = cmdUp(ctx, args[1:], stdout, stderr)
	case "down":
		err = cmdDown(ctx, args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(ctx, args[1:], stdout, stderr)
	case "task":
		err = cmdTask(ctx, args[1:], stdout, stderr)
	case "exec":
		return cmdExec(ctx, args[1:], stdout, stderr)
	case "matrix":
		err = cmdMatrix(ctx, args[1:], stdout, stderr)
	case "mesos-agent":
		return emulator.Main(ctx, args[1:], stdout, stderr)
	case "marathon":
		return marathonemu.Main(ctx, args[1:], stdout, stderr)
	case "responder":
		return responderMain(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "weft lab: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "weft lab %s: %v\n", args[0], err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "weft lab %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

type usageError struct{ error }

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("weft lab "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("state-dir", defaultStateDir, "directory of the lab's state, logs and sockets (or $WEFT_LAB_STATE_DIR)")
	return fs, dir
}

// outputFlag defines -o on fs; the function it returns, called after
// parsing, reports whether JSON was asked for.
func outputFlag(fs *flag.FlagSet) func() (bool, error) {
	out := fs.String("o", "table", "output: table or json")
	return func() (bool, error) {
		switch *out {
		case "table":
			return false, nil
		case "json":
			return true, nil
		}
		return false, usageError{fmt.Errorf("-o %q: want table or json", *out)}
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dir := newFlags("up", stderr)
	nodes := fs.Int("nodes", 3, "number of nodes")
	listen := fs.String("controller-listen", "127.0.0.1:8082", "controller API address on the host's loopback")
	marathon := fs.String("marathon-listen", "127.0.0.1:8080", "Marathon emulator address on the host's loopback")
	manager := fs.String("manager-listen", "127.0.0.1:8109", "mesos-manager introspect address on the host's loopback")
	binDir := fs.String("bin-dir", "", "directory of weft and weft-cni (default: this binary's)")
	logLevel := fs.String("log-level", "info", "log level of the lab's daemons")
	prefix := fs.String("prefix", "weftlab-", "name prefix of every namespace the lab makes")
	noOverlay := fs.Bool("no-overlay", false, "leave out DC/OS's default overlays (dcos 9.0.0.0/8, dcos6 fd01:b::/64)")
	overlayConfig := fs.String("overlay-config", "", "DC/OS overlay configuration file instead of DC/OS's defaults")
	overlayCNI := fs.String("overlay-cni", "bridge", "plugins of the overlay CNI configurations: bridge (bridge + host-local) or weft")
	nodeGrace := fs.Duration("node-grace", time.Hour, "how long a node may miss heartbeats before its VTEP and subnets are freed")
	if err := parse(fs, args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab creates network namespaces: run it as root")
	}
	start := time.Now()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := Up(ctx, Options{Nodes: *nodes, StateDir: *dir, BinDir: *binDir, Prefix: *prefix, ControllerListen: *listen, MarathonListen: *marathon, ManagerListen: *manager, LogLevel: *logLevel, Log: log,
		NoOverlay: *noOverlay, OverlayConfig: *overlayConfig, OverlayCNI: *overlayCNI, NodeGrace: *nodeGrace})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lab up in %.1fs: %d nodes, controller %s, marathon %s, mesos-manager %s (state in %s)\n",
		time.Since(start).Seconds(), len(l.Nodes), l.ControllerURL, l.MarathonURL, l.ManagerURL, l.Dir())
	return nil
}

func cmdDown(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dir := newFlags("down", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	l, err := Load(*dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "no lab in %s\n", *dir)
		return nil
	}
	if err != nil {
		return err
	}
	if err := l.Down(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lab down: removed %d nodes and their namespaces, stopped all lab processes\n", len(l.Nodes))
	return nil
}

// StatusReport is the JSON form of `weft lab status`.
type StatusReport struct {
	Controller string        `json:"controller"`
	Nodes      []NodeStatus  `json:"nodes"`
	Networks   []api.Network `json:"networks"`
	Tasks      []Task        `json:"tasks"`
}

// NodeStatus is one node in the status.
type NodeStatus struct {
	Name     string `json:"name"`
	Netns    string `json:"netns"`
	Underlay string `json:"underlay"`
	VTEP     string `json:"vtep,omitempty"`
	Agent    string `json:"agent"`
	// Overlays are the node's overlay subnets and their status.
	Overlays []api.NodeOverlay `json:"overlays,omitempty"`
}

// Status gathers the lab's status from its state, the controller and the
// agents.
func (l *Lab) Status(ctx context.Context) (StatusReport, error) {
	r := StatusReport{Controller: l.ControllerURL}
	cli := l.Client()
	nets, err := cli.ListNetworks(ctx)
	if err != nil {
		return r, fmt.Errorf("controller %s: %w", l.ControllerURL, err)
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].FQName < nets[j].FQName })
	r.Networks = nets
	for _, n := range l.Nodes {
		ns := NodeStatus{Name: n.Name, Netns: n.Netns, Underlay: n.Underlay, Agent: "down"}
		var node api.Node
		if err := cli.GetByFQName(ctx, "nodes", n.Name, &node); err == nil {
			ns.VTEP = node.VTEPIP + " " + node.VTEPMAC
			ns.Overlays = node.Overlays
		}
		if st, err := n.AgentStatus(ctx); err == nil {
			ns.Agent = "ready"
			if !st.Ready {
				ns.Agent = "not ready: " + st.Reason
			}
		}
		r.Nodes = append(r.Nodes, ns)
	}
	tasks, err := l.Tasks(ctx)
	if err != nil {
		return r, err
	}
	r.Tasks = tasks
	return r, nil
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dir := newFlags("status", stderr)
	asJSON := outputFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	jsonOut, err := asJSON()
	if err != nil {
		return err
	}
	l, err := Load(*dir)
	if err != nil {
		return fmt.Errorf("%w (is a lab up? `weft lab up --state-dir %s`)", err, *dir)
	}
	r, err := l.Status(ctx)
	if err != nil {
		return err
	}
	if jsonOut {
		return writeJSON(stdout, r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tUNDERLAY\tVTEP\tAGENT\n")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.Underlay, n.VTEP, n.Agent)
	}
	overlayHeader := false
	for _, n := range r.Nodes {
		for _, o := range n.Overlays {
			if !overlayHeader {
				fmt.Fprintf(tw, "\nOVERLAY\tNODE\tSUBNET\tMESOS HALF\tDOCKER HALF\tSTATUS\n")
				overlayHeader = true
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.Name, n.Name, orDash(join2(o.Subnet, o.Subnet6)),
				orDash(bridgeHalf(o.MesosBridge)), orDash(bridgeHalf(o.DockerBridge)), overlayStatus(o))
		}
	}
	fmt.Fprintf(tw, "\nNETWORK\tVNI\tSUBNETS\t\n")
	for _, n := range r.Networks {
		var subs []string
		for _, s := range n.Subnets {
			subs = append(subs, s.CIDR)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", n.Name, n.VNI, strings.Join(subs, ","))
	}
	writeTasks(tw, r.Tasks)
	return tw.Flush()
}

func join2(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "," + b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bridgeHalf(b *api.OverlayBridge) string {
	if b == nil {
		return ""
	}
	return join2(b.IP, b.IP6)
}

func overlayStatus(o api.NodeOverlay) string {
	if o.Error != "" {
		return o.Status + " (" + firstLine(o.Error) + ")"
	}
	return o.Status
}

func writeTasks(tw *tabwriter.Writer, tasks []Task) {
	fmt.Fprintf(tw, "\nTASK\tNODE\tSTATE\tIPS\tNETWORKS\n")
	for _, t := range tasks {
		state := strings.TrimPrefix(t.State, "TASK_")
		if t.Error != "" {
			state += " (" + firstLine(t.Error) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Node, state, strings.Join(t.IPs, ","), strings.Join(t.Networks, ","))
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// splitDashDash separates a command after "--" from the flags before it.
func splitDashDash(args []string) (before, after []string) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:]
		}
	}
	return args, nil
}

// interspersed moves positional arguments (a task name) out of the flags,
// so they may come first as in `task run web --node node1`.
func interspersed(args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
			if !strings.Contains(a, "=") && a != "--ipv6" && a != "-ipv6" && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	return flags, positional
}

func cmdTask(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("task: say run, list or kill")}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, "Usage: weft lab task run NAME --node NODE [flags] [-- CMD...]\n       weft lab task list [-o table|json]\n       weft lab task kill NAME\n\nRun 'weft lab task run --help' for the flags of run.\n")
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	rest, cmd := splitDashDash(rest)
	flags, pos := interspersed(rest)
	fs, dir := newFlags("task "+sub, stderr)
	switch sub {
	case "run":
		var req TaskRequest
		var nets, labels multiFlag
		fs.StringVar(&req.Node, "node", "", "node to run the task on (required)")
		fs.Var(&nets, "network", "Weft network of the next interface (repeatable)")
		fs.StringVar(&req.IP, "ip", "", "explicit address of the first interface")
		fs.BoolVar(&req.IPv6, "ipv6", false, "also ask for an IPv6 address")
		fs.StringVar(&req.Overlay, "overlay", "", "run on this DC/OS-style overlay (dcos, dcos6) instead of Weft networks")
		fs.Var(&labels, "label", "NetworkInfo label K=V (repeatable)")
		if err := parse(fs, flags); err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{errors.New("task run: give exactly one task NAME")}
		}
		if req.Node == "" {
			return usageError{errors.New("task run: --node is required")}
		}
		req.Name, req.Networks, req.Command = pos[0], nets, cmd
		req.Labels = map[string]string{}
		for _, kv := range labels {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usageError{fmt.Errorf("--label %q: want K=V", kv)}
			}
			req.Labels[k] = v
		}
		l, err := Load(*dir)
		if err != nil {
			return err
		}
		t, err := l.RunTask(ctx, req)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "task %s running on %s: %s (%s)\n", t.Name, t.Node, strings.Join(t.IPs, ", "), strings.Join(t.Networks, ", "))
		return nil
	case "list":
		asJSON := outputFlag(fs)
		if err := parse(fs, flags); err != nil {
			return err
		}
		jsonOut, err := asJSON()
		if err != nil {
			return err
		}
		l, err := Load(*dir)
		if err != nil {
			return err
		}
		ts, err := l.Tasks(ctx)
		if err != nil {
			return err
		}
		if jsonOut {
			return writeJSON(stdout, ts)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		writeTasks(tw, ts)
		return tw.Flush()
	case "kill":
		if err := parse(fs, flags); err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{errors.New("task kill: give exactly one task NAME")}
		}
		l, err := Load(*dir)
		if err != nil {
			return err
		}
		if err := l.KillTask(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "task %s killed\n", pos[0])
		return nil
	}
	return usageError{fmt.Errorf("task %q: say run, list or kill", sub)}
}

// cmdExec runs a command in a task's network namespace, with the caller's
// standard streams, and returns its exit code.
func cmdExec(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	rest, cmd := splitDashDash(args)
	flags, pos := interspersed(rest)
	fs, dir := newFlags("exec", stderr)
	if err := parse(fs, flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "weft lab exec: %v\n", err)
		return 2
	}
	if len(pos) != 1 || len(cmd) == 0 {
		fmt.Fprintln(stderr, "usage: weft lab exec NAME -- CMD...")
		return 2
	}
	l, err := Load(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "weft lab exec: %v\n", err)
		return 1
	}
	code, err := l.Exec(ctx, pos[0], cmd, os.Stdin, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "weft lab exec: %v\n", err)
		return 1
	}
	return code
}

func cmdMatrix(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dir := newFlags("matrix", stderr)
	asJSON := outputFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	jsonOut, err := asJSON()
	if err != nil {
		return err
	}
	l, err := Load(*dir)
	if err != nil {
		return err
	}
	tasks, probes, err := l.Matrix(ctx)
	if err != nil {
		return err
	}
	if jsonOut {
		return writeJSON(stdout, probes)
	}
	return WriteMatrix(stdout, tasks, probes)
}
