package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/weft-sdn/weft/internal/api"
)

// SupportedVersions are the CNI specification versions the plugin speaks.
var SupportedVersions = []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// Program names the plugin is installed under.
const (
	ProgramName         = "weft-cni"
	ContrailProgramName = "contrail-cni-plugin"
)

// maxStdin bounds the configuration read from stdin.
const maxStdin = 4 << 20

// Invocation is one run of the plugin: the name it was started as, its
// environment and its standard streams. Zero fields take the process's.
type Invocation struct {
	// Program is the base name of argv[0]; it only appears in logs and in
	// the usage text (the contrail object is honoured under any name).
	Program string
	Getenv  func(string) string
	Stdin   io.Reader
	// Stdout receives the result or the CNI error, nothing else.
	Stdout io.Writer
	// Stderr receives the usage text and log-file problems.
	Stderr io.Writer
}

// withDefaults fills zero fields from the process.
func (inv Invocation) withDefaults() Invocation {
	if inv.Program == "" {
		inv.Program = filepath.Base(os.Args[0])
	}
	if inv.Getenv == nil {
		inv.Getenv = os.Getenv
	}
	if inv.Stdin == nil {
		inv.Stdin = os.Stdin
	}
	if inv.Stdout == nil {
		inv.Stdout = os.Stdout
	}
	if inv.Stderr == nil {
		inv.Stderr = os.Stderr
	}
	return inv
}

// Main runs the CNI command named by CNI_COMMAND and returns the process
// exit status: 0 after printing the result (ADD, VERSION) or nothing, 1
// after printing a CNI error JSON on stdout.
//
// It is its own dispatcher rather than the CNI library's skel, because skel
// links github.com/vishvananda/netns (to compare the plugin's netns with
// CNI_NETNS); this binary must link no netlink code, and the netns is the
// agent's business.
func Main(ctx context.Context, inv Invocation) int {
	r := &runner{inv: inv.withDefaults(), log: slog.New(slog.DiscardHandler), closeLog: func() {}, errVersion: version.Current()}
	defer func() { r.closeLog() }()
	if err := r.run(ctx); err != nil {
		r.log.Error("cni command failed", "command", r.cmd, "code", err.Code, "msg", err.Msg, "details", err.Details)
		if perr := err.PrintTo(r.inv.Stdout, r.errVersion); perr != nil {
			fmt.Fprintf(r.inv.Stderr, "%s: %v\n", r.inv.Program, perr)
		}
		return 1
	}
	return 0
}

// runner is the state of one Main.
type runner struct {
	inv        Invocation
	cmd        string
	log        *slog.Logger
	closeLog   func()
	errVersion string
}

// cniEnv is the CNI_* environment of a command.
type cniEnv struct {
	ContainerID string
	Netns       string
	IfName      string
}

func (r *runner) run(ctx context.Context) *Error {
	r.cmd = r.inv.Getenv("CNI_COMMAND")
	switch r.cmd {
	case "":
		fmt.Fprintf(r.inv.Stderr, "%s: Weft CNI plugin for the Mesos network/cni isolator; it asks the local weft agent to attach containers.\n", r.inv.Program)
		fmt.Fprintf(r.inv.Stderr, "CNI protocol versions supported: %s\n", strings.Join(SupportedVersions, ", "))
		return nil
	case "VERSION":
		if err := version.PluginSupports(SupportedVersions...).Encode(r.inv.Stdout); err != nil {
			return newError(CodeIOFailure, err, "cannot write the version information")
		}
		return nil
	case "ADD", "DEL", "CHECK", "GC", "STATUS":
	default:
		return newError(CodeInvalidEnv, nil, "unknown CNI_COMMAND %q: want ADD, DEL, CHECK, GC, STATUS or VERSION", r.cmd)
	}

	env, eerr := r.environment()
	if eerr != nil {
		return eerr
	}
	data, err := io.ReadAll(io.LimitReader(r.inv.Stdin, maxStdin+1))
	if err != nil {
		return newError(CodeIOFailure, err, "cannot read the network configuration from stdin")
	}
	if len(data) > maxStdin {
		return newError(CodeInvalidConfig, nil, "network configuration on stdin is larger than %d bytes", maxStdin)
	}

	var conf *NetConf
	if r.cmd == "ADD" || r.cmd == "CHECK" {
		conf, err = ParseConfig(data)
	} else {
		conf, err = parseLenient(data)
	}
	if err != nil {
		r.guessVersion(data)
		// Log the refusal where the operator looks, if the log settings
		// themselves are readable.
		if lc, lerr := parseLenient(data); lerr == nil {
			r.log, r.closeLog = openLog(lc, r.inv.Program, r.inv.Stderr)
		}
		return configError(err)
	}
	if slices.Contains(SupportedVersions, conf.CNIVersion) {
		r.errVersion = resultVersion(conf.CNIVersion)
	}
	if verr := r.checkVersion(conf.CNIVersion); verr != nil {
		return verr
	}
	r.log, r.closeLog = openLog(conf, r.inv.Program, r.inv.Stderr)
	for _, w := range conf.Warnings {
		r.log.Warn("ignoring a bad configuration value", "command", r.cmd, "error", w)
	}

	ctx, cancel := context.WithTimeout(ctx, conf.Timeout)
	defer cancel()
	start := time.Now()
	log := r.log.With("command", r.cmd, "network", conf.Name, "container", env.ContainerID, "ifname", env.IfName)
	client := NewAgentClient(conf.Socket)
	var cerr *Error
	switch r.cmd {
	case "ADD":
		cerr = r.add(ctx, log, client, conf, env)
	case "DEL":
		cerr = r.del(ctx, log, client, conf, env)
	case "CHECK":
		if err := client.Check(ctx, conf.DetachRequest(env.ContainerID, env.IfName, env.Netns)); err != nil {
			cerr = agentFailure(r.cmd, client.Socket(), conf.Timeout, err)
		}
	case "GC":
		req := conf.GCRequest()
		log.Debug("asking the agent to collect garbage", "valid", len(req.Valid))
		if err := client.GC(ctx, req); err != nil {
			cerr = agentFailure(r.cmd, client.Socket(), conf.Timeout, err)
		}
	case "STATUS":
		cerr = r.status(ctx, client, conf)
	}
	if cerr == nil {
		log.Info("cni command done", "duration", time.Since(start))
	}
	return cerr
}

// environment reads and validates the CNI_* variables the command needs.
// CNI_PATH is not required: the plugin runs no other plugin.
func (r *runner) environment() (cniEnv, *Error) {
	env := cniEnv{
		ContainerID: r.inv.Getenv("CNI_CONTAINERID"),
		Netns:       r.inv.Getenv("CNI_NETNS"),
		IfName:      r.inv.Getenv("CNI_IFNAME"),
	}
	var need []string
	switch r.cmd {
	case "ADD", "CHECK":
		need = []string{"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"}
	case "DEL":
		// CNI_NETNS is absent when the netns is gone (Mesos after a reboot).
		need = []string{"CNI_CONTAINERID", "CNI_IFNAME"}
	}
	var missing []string
	for _, name := range need {
		if r.inv.Getenv(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return env, newError(CodeInvalidEnv, nil, "required environment variables missing for %s: %s", r.cmd, strings.Join(missing, ", "))
	}
	if slices.Contains(need, "CNI_CONTAINERID") {
		if terr := utils.ValidateContainerID(env.ContainerID); terr != nil {
			return env, newError(CodeInvalidEnv, nil, "CNI_CONTAINERID %q: %s", env.ContainerID, terr.Msg)
		}
	}
	if slices.Contains(need, "CNI_IFNAME") {
		if terr := utils.ValidateInterfaceName(env.IfName); terr != nil {
			return env, newError(CodeInvalidEnv, nil, "CNI_IFNAME %q: %s", env.IfName, terr.Msg)
		}
	}
	return env, nil
}

// guessVersion sets the cniVersion of error output from stdin that failed
// to parse, when it names a supported version.
func (r *runner) guessVersion(data []byte) {
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	if json.Unmarshal(data, &v) != nil {
		return
	}
	if v.CNIVersion == "" {
		v.CNIVersion = DefaultCNIVersion
	}
	if slices.Contains(SupportedVersions, v.CNIVersion) {
		r.errVersion = resultVersion(v.CNIVersion)
	}
}

// checkVersion refuses config versions the plugin does not speak and
// commands the config's version does not have.
func (r *runner) checkVersion(v string) *Error {
	if !slices.Contains(SupportedVersions, v) {
		return newError(CodeIncompatibleVersion, nil, "incompatible CNI versions: config is %q, plugin supports %s", v, strings.Join(SupportedVersions, ", "))
	}
	minimum := map[string]string{"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}[r.cmd]
	if minimum == "" {
		return nil
	}
	ok, err := version.GreaterThanOrEqualTo(v, minimum)
	if err != nil {
		return newError(CodeIncompatibleVersion, err, "cannot compare CNI versions")
	}
	if !ok {
		return newError(CodeIncompatibleVersion, nil, "config version %q does not allow %s (needs %s or later)", v, r.cmd, minimum)
	}
	return nil
}

// add attaches the container and prints the result.
func (r *runner) add(ctx context.Context, log *slog.Logger, client *AgentClient, conf *NetConf, env cniEnv) *Error {
	req := conf.AttachRequest(env.ContainerID, env.IfName, env.Netns)
	log.Debug("asking the agent to attach", "request", req)
	res, err := client.Attach(ctx, req)
	if err != nil {
		return agentFailure(r.cmd, client.Socket(), conf.Timeout, err)
	}
	log.Info("attached", "port", res.Port, "weft_network", res.Network, "ips", res.IPs)
	result, rerr := Result(res, env.IfName, env.Netns, conf.CNIVersion, conf.DNS, conf.FallbackDNS)
	if rerr != nil {
		// The agent attached the container; the runtime's DEL after this
		// failed ADD detaches it.
		return asError(rerr)
	}
	if err := result.PrintTo(r.inv.Stdout); err != nil {
		return newError(CodeIOFailure, err, "cannot write the result to stdout")
	}
	return nil
}

// del detaches the container. An attachment the agent does not know is
// already gone: success. An agent that cannot be reached is an error (code
// 11), never a silent success: the agent owns the address release, and a
// failed DEL makes Mesos keep the container's checkpoint and retry DEL
// later (during cleanup or agent recovery).
func (r *runner) del(ctx context.Context, log *slog.Logger, client *AgentClient, conf *NetConf, env cniEnv) *Error {
	err := client.Detach(ctx, conf.DetachRequest(env.ContainerID, env.IfName, env.Netns))
	if errors.Is(err, api.ErrNotFound) {
		log.Info("attachment unknown to the agent: nothing to detach")
		return nil
	}
	if err != nil {
		return agentFailure(r.cmd, client.Socket(), conf.Timeout, err)
	}
	return nil
}

// status reports whether the agent can serve ADD.
func (r *runner) status(ctx context.Context, client *AgentClient, conf *NetConf) *Error {
	st, err := client.Status(ctx)
	if err != nil {
		return agentFailure(r.cmd, client.Socket(), conf.Timeout, err)
	}
	if !st.Ready {
		reason := st.Reason
		if reason == "" {
			reason = "no reason given"
		}
		node := ""
		if st.Node != "" {
			node = " on node " + st.Node
		}
		return &Error{Code: CodePluginNotAvailable, Msg: fmt.Sprintf("weft agent%s is not ready: %s", node, reason)}
	}
	return nil
}

// agentFailure turns an agent call error into the CNI error of command cmd.
func agentFailure(cmd, socket string, timeout time.Duration, err error) *Error {
	var ue *UnreachableError
	if errors.As(err, &ue) {
		code := CodeTryAgainLater
		if cmd == "STATUS" {
			code = CodePluginNotAvailable
		}
		var e *Error
		switch {
		case ue.Timeout:
			e = newError(code, err, "weft agent at %s did not answer within %s: check that `weft agent` is healthy on this node", socket, timeout)
		case ue.Reason == "canceled":
			e = newError(code, err, "call to the weft agent at %s was interrupted", socket)
		case ue.Reason == "permission denied":
			e = newError(code, err, "weft agent socket %s: permission denied: the plugin must run as root", socket)
		default:
			e = newError(code, err, "weft agent not reachable at %s: is `weft agent` running on this node?", socket)
		}
		if cmd == "DEL" {
			e.Msg += " (DEL must reach the agent, which releases the address; the runtime retries it)"
		}
		return e
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		what := ae.Error() // "field: message"
		verb := map[string]string{"ADD": "attach", "DEL": "detach", "CHECK": "check", "GC": "gc", "STATUS": "status"}[cmd]
		e := &Error{Field: ae.Field, Err: err, Details: fmt.Sprintf("HTTP %d from %s", ae.Code, socket)}
		switch {
		case ae.Code == 503 || ae.Code == 504 || ae.Code == 429: // unavailable, gateway timeout, too many requests
			e.Code, e.Msg = CodeTryAgainLater, "weft agent is not ready, try again later: "+what
			if cmd == "STATUS" {
				e.Code = CodePluginNotAvailable
			}
		case cmd == "CHECK":
			e.Code, e.Msg = CodeCheckFailed, "attachment check failed: "+what
		case ae.Code == 400 || ae.Code == 422: // bad request, unprocessable
			e.Code, e.Msg = CodeAgentRejected, "weft agent rejected the "+verb+" request: "+what
		case ae.Code == 404:
			e.Code, e.Msg = CodeNotFound, "weft agent: not found: "+what
		case ae.Code == 409:
			e.Code, e.Msg = CodeConflict, "weft agent refused the "+verb+" request: "+what
		default:
			e.Code, e.Msg = CodeAgentFailed, "weft agent failed the "+verb+" request: "+what
		}
		return e
	}
	return newError(CodeAgentFailed, err, "unexpected answer from the weft agent at %s", socket)
}
