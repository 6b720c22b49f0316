// Package weftctl is the command-line client of the Weft controller API:
// it creates, lists, shows and deletes networks, allocates and releases
// addresses, and lists ports and nodes, printing aligned tables or JSON.
//
// cmd/weftctl is a thin main around Run, which takes its arguments,
// output streams and environment as parameters so that tests drive it
// like the real binary.
package weftctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
)

// Version is the client's version, set at link time with
// -ldflags "-X github.com/weft-sdn/weft/internal/weftctl.Version=v1.2.3".
// When empty, the main module's version from the build info is used.
var Version = ""

// DefaultServer is the controller address used when neither --server nor
// WEFT_SERVER is set.
const DefaultServer = "http://127.0.0.1:8082"

// Output formats of -o.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// runFunc runs one command with its positional arguments, after its flags
// have been parsed.
type runFunc func(ctx context.Context, c *cli, args []string) error

// command is one leaf of the command tree, e.g. "network create".
type command struct {
	path     string // words after "weftctl"
	synopsis string // arguments and main flags, for usage
	summary  string
	minArgs  int
	maxArgs  int // -1: no limit
	// setup defines the command's own flags on fs and returns the function
	// that runs the command with them.
	setup func(fs *flag.FlagSet) runFunc
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct {
	cmd string // command path whose --help to suggest; "" for top level
	msg string // "" when the usage has already been printed
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// cli is the state of one Run.
type cli struct {
	stdout, stderr io.Writer
	server         string // --server
	output         string // -o
	client         *client.Client
}

// Run runs weftctl with args (without the program name), writing results
// to stdout and diagnostics to stderr, reading WEFT_SERVER through env (nil
// for an empty environment). It returns the exit status: 0 on success, 1
// when a call failed, 2 for a usage error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	c := &cli{stdout: stdout, stderr: stderr, server: env("WEFT_SERVER"), output: outputTable}
	if c.server == "" {
		c.server = DefaultServer
	}
	err := c.run(ctx, args)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.msg == "" {
			return 2 // the usage has been printed
		}
		fmt.Fprintf(stderr, "weftctl: %s\n", ue.msg)
		if ue.cmd != "" {
			fmt.Fprintf(stderr, "Run 'weftctl %s --help' for usage.\n", ue.cmd)
		} else {
			fmt.Fprintf(stderr, "Run 'weftctl --help' for usage.\n")
		}
		return 2
	}
	fmt.Fprintf(stderr, "weftctl: %s\n", errorText(err))
	return 1
}

// errorText renders err for the user; a controller error about one field
// reads "field <path>: <message>".
func errorText(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Field != "" {
		return strings.Replace(err.Error(), ae.Error(), "field "+ae.Field+": "+ae.Message, 1)
	}
	return err.Error()
}

// run dispatches args to a command. Help requested with -h, --help or
// "help" is printed on stdout and returns flag.ErrHelp.
func (c *cli) run(ctx context.Context, args []string) error {
	top := c.flagSet("weftctl")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(c.stdout)
			return err
		}
		return usagef("", "%v", err)
	}
	args = top.Args()
	if len(args) == 0 {
		c.printUsage(c.stderr)
		return &usageError{}
	}
	if args[0] == "help" {
		return c.help(args[1:])
	}
	group := args[0]
	if !isGroup(group) {
		if cmd := findCommand(group); cmd != nil {
			return c.runCommand(ctx, cmd, args[1:])
		}
		return usagef("", "unknown command %q", group)
	}
	// A group such as "network": global flags may sit between it and its
	// subcommand.
	gfs := c.flagSet("weftctl " + group)
	if err := gfs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printGroupUsage(c.stdout, group)
			return err
		}
		return usagef(group, "%v", err)
	}
	rest := gfs.Args()
	if len(rest) == 0 {
		c.printGroupUsage(c.stderr, group)
		return &usageError{cmd: group}
	}
	cmd := findCommand(group + " " + rest[0])
	if cmd == nil {
		return usagef(group, "unknown command %q", group+" "+rest[0])
	}
	return c.runCommand(ctx, cmd, rest[1:])
}

// help prints the usage of the top level, a group or a command.
func (c *cli) help(words []string) error {
	path := strings.Join(words, " ")
	switch {
	case path == "":
		c.printUsage(c.stdout)
	case isGroup(path):
		c.printGroupUsage(c.stdout, path)
	case findCommand(path) != nil:
		c.printCommandUsage(c.stdout, findCommand(path))
	default:
		return usagef("", "unknown command %q", path)
	}
	return flag.ErrHelp
}

func (c *cli) runCommand(ctx context.Context, cmd *command, args []string) error {
	fs := c.flagSet("weftctl " + cmd.path)
	run := cmd.setup(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printCommandUsage(c.stdout, cmd)
			return err
		}
		return usagef(cmd.path, "%v", err)
	}
	if c.output != outputTable && c.output != outputJSON {
		return usagef(cmd.path, "-o %q: want table or json", c.output)
	}
	if len(pos) < cmd.minArgs || cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs {
		return usagef(cmd.path, "%s: %s", cmd.path, argCountText(cmd, len(pos)))
	}
	c.client = client.New(c.server, nil)
	return run(ctx, c, pos)
}

func argCountText(cmd *command, got int) string {
	switch {
	case cmd.minArgs == cmd.maxArgs && cmd.maxArgs == 0:
		return fmt.Sprintf("takes no arguments, got %d", got)
	case cmd.minArgs == cmd.maxArgs:
		return fmt.Sprintf("want %d argument(s), got %d", cmd.minArgs, got)
	case cmd.maxArgs < 0:
		return fmt.Sprintf("want at least %d argument(s), got %d", cmd.minArgs, got)
	default:
		return fmt.Sprintf("want %d to %d arguments, got %d", cmd.minArgs, cmd.maxArgs, got)
	}
}

// flagSet returns a flag set that reports errors instead of printing them
// and exiting, with the global flags defined.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c.globalFlags(fs)
	return fs
}

func (c *cli) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", c.server, "controller `URL`; WEFT_SERVER sets the default")
	fs.StringVar(&c.output, "o", c.output, "output `FORMAT`: table or json")
}

// parseInterspersed parses flags anywhere among the positional arguments,
// which the flag package alone stops at, and returns the positionals in
// order. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func isGroup(word string) bool {
	for i := range commands {
		if strings.HasPrefix(commands[i].path, word+" ") {
			return true
		}
	}
	return false
}

func findCommand(path string) *command {
	for i := range commands {
		if commands[i].path == path {
			return &commands[i]
		}
	}
	return nil
}

func (c *cli) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: weftctl [--server URL] [-o table|json] COMMAND [ARGS] [FLAGS]\n\n")
	fmt.Fprintf(w, "weftctl is the command-line client of the Weft controller API.\n\nCommands:\n")
	for i := range commands {
		fmt.Fprintf(w, "  weftctl %s\n", usageLine(&commands[i]))
		fmt.Fprintf(w, "        %s\n", commands[i].summary)
	}
	fmt.Fprintf(w, "\nGlobal flags (also accepted after the command):\n")
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	c.globalFlags(fs)
	printFlags(w, fs)
	fmt.Fprintf(w, "\nA network is named by NAME (in --project, default %s),\n", api.DefaultProject)
	fmt.Fprintf(w, "by DOMAIN:PROJECT:NAME, or by UUID. Flags may come before or after\n")
	fmt.Fprintf(w, "arguments. Run 'weftctl COMMAND --help' for the flags of a command.\n")
}

func (c *cli) printGroupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: weftctl %s COMMAND [ARGS] [FLAGS]\n\nCommands:\n", group)
	for i := range commands {
		if strings.HasPrefix(commands[i].path, group+" ") {
			fmt.Fprintf(w, "  weftctl %s\n", usageLine(&commands[i]))
			fmt.Fprintf(w, "        %s\n", commands[i].summary)
		}
	}
	fmt.Fprintf(w, "\nRun 'weftctl %s COMMAND --help' for the flags of a command,\n", group)
	fmt.Fprintf(w, "'weftctl --help' for the global flags.\n")
}

func (c *cli) printCommandUsage(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: weftctl %s\n\n%s\n", usageLine(cmd), cmd.summary)
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	cmd.setup(fs)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		printFlags(w, fs)
	}
	fmt.Fprintf(w, "\nGlobal flags: --server URL, -o table|json (see 'weftctl --help').\n")
}

func usageLine(cmd *command) string {
	if cmd.synopsis == "" {
		return cmd.path
	}
	return cmd.path + " " + cmd.synopsis
}

// printFlags prints the flags of fs as "--name VALUE  usage (default x)",
// aligned; one-letter flags take a single dash.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		arg := dash + f.Name
		if name != "" {
			arg += " " + name
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", arg, usage)
	})
	tw.Flush()
}

// clientVersion is the version weftctl reports for itself.
func clientVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// intList is a repeatable integer flag.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	*l = append(*l, n)
	return nil
}

var goVersion = runtime.Version()
