//go:build linux

package dockerlab

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/docker"
)

// Options configure a Daemon.
type Options struct {
	// Netns is the path of the network namespace to run in, such as
	// /var/run/netns/foo.
	Netns string
	// Dir is the daemon's state root: data-root, exec-root, socket, pid
	// file, daemon.json and dockerd.log all live under it. It is created
	// if missing; the same Dir after a Stop keeps images and networks.
	Dir string
	// Log, if set, also receives dockerd's (and containerd's) output,
	// which always goes to Dir/dockerd.log.
	Log io.Writer
	// Logger gets the package's own progress messages; nil discards them.
	Logger *slog.Logger
	// Dockerd is the dockerd binary; "" means /usr/sbin/dockerd, or
	// dockerd on PATH.
	Dockerd string
	// StartTimeout bounds the wait for the engine's first ping; 0 means
	// 60s. The context of Start may end it earlier.
	StartTimeout time.Duration
}

// Daemon is a dockerd started by Start.
type Daemon struct {
	opts    Options
	dir     string // absolute
	dockerd string

	mu   sync.Mutex
	proc *proc         // the running dockerd, nil when stopped
	done chan struct{} // closed when the started dockerd was reaped
	seen map[proc]bool // every process of this daemon ever seen
}

// Socket returns the engine's address, unix://<Dir>/docker.sock.
func (d *Daemon) Socket() string { return "unix://" + d.SocketPath() }

// SocketPath returns the engine's socket file.
func (d *Daemon) SocketPath() string { return filepath.Join(d.dir, "docker.sock") }

// Dir returns the daemon's state root.
func (d *Daemon) Dir() string { return d.dir }

// Netns returns the path of the daemon's network namespace.
func (d *Daemon) Netns() string { return d.opts.Netns }

// LogPath returns the file dockerd writes its log to.
func (d *Daemon) LogPath() string { return filepath.Join(d.dir, "dockerd.log") }

// Client returns an Engine API client for the daemon.
func (d *Daemon) Client() (*docker.Client, error) {
	return docker.NewClient(d.Socket(), 0)
}

func (d *Daemon) dataRoot() string { return filepath.Join(d.dir, "data") }
func (d *Daemon) execRoot() string { return filepath.Join(d.dir, "exec") }
func (d *Daemon) pidFile() string  { return filepath.Join(d.dir, "docker.pid") }

// cgroupParent is the cgroup (under every hierarchy) holding this daemon's
// containers: unique per Dir, stable across restarts.
func (d *Daemon) cgroupParent() string {
	sum := sha256.Sum256([]byte(d.dir))
	return "weft-dockerlab-" + hex.EncodeToString(sum[:6])
}

func (d *Daemon) log() *slog.Logger {
	if d.opts.Logger != nil {
		return d.opts.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// findDockerd picks the dockerd binary: Debian's /usr/sbin/dockerd first.
func findDockerd(want string) (string, error) {
	if want != "" {
		return exec.LookPath(want)
	}
	if _, err := os.Stat("/usr/sbin/dockerd"); err == nil {
		return "/usr/sbin/dockerd", nil
	}
	return exec.LookPath("dockerd")
}

// dockerCLI picks the docker client: Debian's /usr/bin/docker (the 20.10
// client matching the engine) before whatever else is on PATH.
func dockerCLI() (string, error) {
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker", nil
	}
	return exec.LookPath("docker")
}
