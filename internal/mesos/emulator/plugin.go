package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// pluginRun is the outcome of one plugin execution.
type pluginRun struct {
	stdout, stderr []byte
	// exitCode is the exit status; -1 when the plugin was killed by a
	// signal (Mesos only distinguishes zero from non-zero).
	exitCode int
}

// runPlugin executes plugin the way libprocess' subprocess does for the
// isolator: argv = [plugin], stdin = the file at stdinPath, stdout and
// stderr captured, and an environment of exactly env (no inherited
// variables). It runs in the agent's network namespace (netnsPath when
// set). Cancelling ctx kills the plugin.
func runPlugin(ctx context.Context, netnsPath, plugin string, env map[string]string, stdinPath string) (pluginRun, error) {
	in, err := os.Open(stdinPath)
	if err != nil {
		return pluginRun{}, err
	}
	defer in.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, plugin)
	cmd.Args = []string{plugin}
	cmd.Env = envList(env)
	cmd.Stdin = in
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := startIn(netnsPath, cmd); err != nil {
		return pluginRun{}, err
	}
	err = cmd.Wait()
	run := pluginRun{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		run.exitCode = exitErr.ExitCode()
		if run.exitCode == 0 {
			run.exitCode = -1
		}
	default:
		return run, err
	}
	if ctx.Err() != nil && run.exitCode != 0 {
		return run, fmt.Errorf("plugin %s: %w", filepath.Base(plugin), ctx.Err())
	}
	return run, nil
}

// envList renders env sorted by name, the order of the std::map Mesos
// builds the plugin environment from.
func envList(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// agentPATH is the PATH given to plugins: the agent's own when it has
// one (even empty), else the host default path.
func agentPATH() string {
	if p, ok := os.LookupEnv("PATH"); ok {
		return p
	}
	return hostDefaultPath
}
