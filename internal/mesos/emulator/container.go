package emulator

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/weft-sdn/weft/internal/mesos"
)

// TaskSpec is what a framework (the lab's Marathon emulator, or a test)
// asks the agent to run: the fields of a TaskInfo that matter to the
// network/cni isolator and to /state.
type TaskSpec struct {
	// TaskID is required and unique among the agent's live tasks.
	TaskID string `json:"task_id"`
	// Name defaults to TaskID.
	Name string `json:"name,omitempty"`
	// FrameworkID defaults to Config.FrameworkID.
	FrameworkID string `json:"framework_id,omitempty"`
	// Command is the task's argv (default ["sleep", "infinity"]), run
	// with PATH lookup once its networks are attached.
	Command []string `json:"command,omitempty"`
	// NetworkInfos are the ContainerInfo's network_infos (protobuf JSON).
	NetworkInfos []mesos.NetworkInfo `json:"network_infos,omitempty"`
	// Hostname is ContainerInfo.hostname; the container id when empty.
	Hostname string `json:"hostname,omitempty"`
	// Labels, Resources, Role (default "*"), User and Discovery (a
	// DiscoveryInfo in protobuf JSON) only appear in /state.
	Labels    *mesos.Labels   `json:"labels,omitempty"`
	Resources mesos.Resources `json:"resources"`
	Role      string          `json:"role,omitempty"`
	User      string          `json:"user,omitempty"`
	Discovery json.RawMessage `json:"discovery,omitempty"`
}

// Network is a CNI network a container joined, with its interface.
type Network struct {
	Name   string `json:"name"`
	IfName string `json:"ifname"`
}

// Container is a snapshot of one container of the agent.
type Container struct {
	ID          string           `json:"container_id"`
	Task        TaskSpec         `json:"task"`
	FrameworkID string           `json:"framework_id"`
	PID         int              `json:"pid,omitempty"`
	Networks    []Network        `json:"networks,omitempty"`
	State       mesos.TaskState  `json:"state"`
	Status      mesos.TaskStatus `json:"status"`
	// Statuses is the task's status history, oldest first.
	Statuses []mesos.TaskStatus `json:"statuses"`
	// Error is the last launch or cleanup failure, in Mesos' words.
	Error string `json:"error,omitempty"`
	// Recovered marks a container found alive by Recover.
	Recovered bool `json:"recovered,omitempty"`
	// Destroyed is set once the container's networks are detached and its
	// directory removed.
	Destroyed bool `json:"destroyed,omitempty"`
}

// StatusUpdate is a task status update, as the agent forwards it to the
// framework.
type StatusUpdate struct {
	FrameworkID string           `json:"framework_id"`
	ContainerID string           `json:"container_id"`
	Status      mesos.TaskStatus `json:"status"`
}

// containerNetwork is one CNI network of a container (the isolator's
// ContainerNetwork).
type containerNetwork struct {
	name   string
	ifName string
	// info is the NetworkInfo the framework asked for (zero for an
	// unknown orphan).
	info mesos.NetworkInfo
	// result is the parsed plugin output, nil before ADD succeeded or
	// when network.info is missing.
	result *mesos.CNIResult
}

// container is the agent's record of a container.
type container struct {
	id       string
	spec     TaskSpec
	hostname string
	// networks are ordered by interface (eth0 first). They are set once,
	// before isolation; mu guards them for snapshot readers.
	networks  []*containerNetwork
	recovered bool

	// launched is closed once Launch (or Recover) is done with it.
	launched chan struct{}

	// destroyMu serialises destroy; recMu serialises record writes.
	destroyMu sync.Mutex
	recMu     sync.Mutex

	mu            sync.Mutex
	proc          *taskProc
	watcher       *procWatcher
	exited        chan struct{}
	exitOnce      sync.Once
	killRequested bool
	statuses      []mesos.TaskStatus
	errMsg        string
	destroyed     bool
}

// taskProc identifies a task process across pid reuse and reboots.
type taskProc struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	BootID    string `json:"boot_id"`
}

// exitInfo describes how a task process ended.
type exitInfo struct {
	known    bool
	code     int
	signaled bool
	signal   syscall.Signal
}

// procWatcher waits for a task process to exit.
type procWatcher struct {
	p *taskProc
	f *os.File
}

// record is the emulator-private checkpoint of a container, kept next to
// the isolator's files as <root>/<cid>/.emulator.json (a file, so the
// isolator's directory scan ignores it).
type record struct {
	ContainerID string             `json:"container_id"`
	Proc        *taskProc          `json:"proc"`
	Task        TaskSpec           `json:"task"`
	Hostname    string             `json:"hostname"`
	Statuses    []mesos.TaskStatus `json:"statuses,omitempty"`
}

const recordFile = ".emulator.json"

func (c *container) snapshot() Container {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Container{
		ID:          c.id,
		Task:        c.spec,
		FrameworkID: c.spec.FrameworkID,
		Statuses:    append([]mesos.TaskStatus(nil), c.statuses...),
		Error:       c.errMsg,
		Recovered:   c.recovered,
		Destroyed:   c.destroyed,
	}
	if c.proc != nil {
		out.PID = c.proc.PID
	}
	for _, n := range c.networks {
		out.Networks = append(out.Networks, Network{Name: n.name, IfName: n.ifName})
	}
	if len(c.statuses) > 0 {
		out.Status = c.statuses[len(c.statuses)-1]
		out.State = out.Status.State
	} else {
		out.State = mesos.TaskStaging
	}
	return out
}

// terminal reports whether the task reached a terminal state.
func (c *container) terminal() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.statuses) > 0 && c.statuses[len(c.statuses)-1].State.Terminal()
}

// writeFileAtomic writes data to path through a temporary file in the
// same directory, like Mesos' state::checkpoint.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// newUUID returns a random (version 4) UUID, the form of Mesos container
// ids.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("uuid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
