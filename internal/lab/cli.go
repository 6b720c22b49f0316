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
)

// DefaultStateDir is where `weft lab` keeps its state unless told.
const DefaultStateDir = "/var/lib/weft/lab"

const usage = `Usage: weft lab <command> [flags]

Brings up a whole Weft cluster on this machine (root): node namespaces on an
underlay bridge (198.18.0.0/15), a controller, one agent per node.

Commands:
  up       create the lab          [--nodes N] [--state-dir DIR] [--controller-listen ADDR]
  status   show nodes and networks [--state-dir DIR] [-o table|json]
  down     remove everything the lab made (also after a crash of up) [--state-dir DIR]

Run 'weft lab <command> --help' for its flags.
`

// Main runs `weft lab` with args (after "lab").
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
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
	dir := fs.String("state-dir", DefaultStateDir, "directory of the lab's state, logs and sockets")
	return fs, dir
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
	binDir := fs.String("bin-dir", "", "directory of weft and weft-cni (default: this binary's)")
	logLevel := fs.String("log-level", "info", "log level of the lab's daemons")
	prefix := fs.String("prefix", "weftlab-", "name prefix of every namespace the lab makes")
	if err := parse(fs, args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab creates network namespaces: run it as root")
	}
	start := time.Now()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := Up(ctx, Options{Nodes: *nodes, StateDir: *dir, BinDir: *binDir, Prefix: *prefix, ControllerListen: *listen, LogLevel: *logLevel, Log: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lab up in %.1fs: %d nodes, controller %s (state in %s)\n", time.Since(start).Seconds(), len(l.Nodes), l.ControllerURL, l.Dir())
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
}

// NodeStatus is one node in the status.
type NodeStatus struct {
	Name     string `json:"name"`
	Netns    string `json:"netns"`
	Underlay string `json:"underlay"`
	VTEP     string `json:"vtep,omitempty"`
	Agent    string `json:"agent"`
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
		}
		if st, err := n.AgentStatus(ctx); err == nil {
			ns.Agent = "ready"
			if !st.Ready {
				ns.Agent = "not ready: " + st.Reason
			}
		}
		r.Nodes = append(r.Nodes, ns)
	}
	return r, nil
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dir := newFlags("status", stderr)
	out := fs.String("o", "table", "output: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out != "table" && *out != "json" {
		return usageError{fmt.Errorf("-o %q: want table or json", *out)}
	}
	l, err := Load(*dir)
	if err != nil {
		return fmt.Errorf("%w (is a lab up? `weft lab up --state-dir %s`)", err, *dir)
	}
	r, err := l.Status(ctx)
	if err != nil {
		return err
	}
	if *out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tUNDERLAY\tVTEP\tAGENT\n")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.Underlay, n.VTEP, n.Agent)
	}
	fmt.Fprintf(tw, "\nNETWORK\tVNI\tSUBNETS\t\n")
	for _, n := range r.Networks {
		var subs []string
		for _, s := range n.Subnets {
			subs = append(subs, s.CIDR)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", n.Name, n.VNI, strings.Join(subs, ","))
	}
	return tw.Flush()
}
