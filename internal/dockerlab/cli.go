//go:build linux

package dockerlab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
)

// RunOptions describe a container for Run.
type RunOptions struct {
	Name    string     // optional container name
	Image   string     // "" means DefaultImage
	Network string     // Docker network to attach to; "" means the engine's default
	IP      netip.Addr // optional fixed IPv4 address on Network
	Cmd     []string   // "" means sleep for a day
}

// docker runs the docker CLI against the daemon and returns its standard
// output; a failure carries the CLI's standard error.
func (d *Daemon) docker(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cli, err := dockerCLI()
	if err != nil {
		return "", fmt.Errorf("dockerlab: find the docker client (install docker.io): %w", err)
	}
	cmd := exec.CommandContext(ctx, cli, append([]string{"--host", d.Socket()}, args...)...)
	cmd.Env = append(daemonEnv(), "DOCKER_CONFIG="+filepath.Join(d.dir, "cli"))
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// Run starts a detached container and returns its ID. Containers stop
// within a second (--stop-timeout 1), so that stopping the daemon is quick
// even for a sleeping pid 1 that ignores SIGTERM.
func Run(ctx context.Context, d *Daemon, o RunOptions) (string, error) {
	args := []string{"run", "--detach", "--stop-timeout", "1"}
	if o.Name != "" {
		args = append(args, "--name", o.Name)
	}
	if o.Network != "" {
		args = append(args, "--network", o.Network)
	}
	if o.IP.IsValid() {
		args = append(args, "--ip", o.IP.String())
	}
	image := o.Image
	if image == "" {
		image = DefaultImage
	}
	args = append(args, image)
	if len(o.Cmd) == 0 {
		args = append(args, "sleep", "86400")
	}
	args = append(args, o.Cmd...)
	out, err := d.docker(ctx, nil, args...)
	if err != nil {
		return "", fmt.Errorf("dockerlab: %w", err)
	}
	return strings.TrimSpace(out), nil
}

// Exec runs cmd in the container and returns its combined output; a
// non-zero exit is an error that holds the output too.
func Exec(ctx context.Context, d *Daemon, id string, cmd ...string) (string, error) {
	if len(cmd) == 0 {
		return "", fmt.Errorf("dockerlab: exec in %s: no command", id)
	}
	cli, err := dockerCLI()
	if err != nil {
		return "", fmt.Errorf("dockerlab: find the docker client (install docker.io): %w", err)
	}
	c := exec.CommandContext(ctx, cli, append([]string{"--host", d.Socket(), "exec", id}, cmd...)...)
	c.Env = append(daemonEnv(), "DOCKER_CONFIG="+filepath.Join(d.dir, "cli"))
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("dockerlab: exec %q in %.12s: %w: %s", cmd, id, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ContainerIP returns the container's IPv4 address on a network.
func ContainerIP(ctx context.Context, d *Daemon, id, network string) (netip.Addr, error) {
	tmpl := fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, network)
	out, err := d.docker(ctx, nil, "container", "inspect", "--format", tmpl, id)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dockerlab: %w", err)
	}
	s := strings.TrimSpace(out)
	if s == "" {
		return netip.Addr{}, fmt.Errorf("dockerlab: container %.12s has no address on %s", id, network)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dockerlab: container %.12s on %s: %w", id, network, err)
	}
	return a, nil
}

// Remove force-removes the container; a missing one is fine.
func Remove(ctx context.Context, d *Daemon, id string) error {
	_, err := d.docker(ctx, nil, "rm", "--force", id)
	if err != nil && strings.Contains(err.Error(), "No such container") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dockerlab: %w", err)
	}
	return nil
}
