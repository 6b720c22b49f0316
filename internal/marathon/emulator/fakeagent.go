package emulator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/mesos"
	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

// FakeAgentConfig configures a FakeAgent.
type FakeAgentConfig struct {
	// ID is the agent id (default "fake-S0").
	ID string
	// Hostname is reported in /state terms; the scheduler uses
	// AgentConfig.Hostname (default "fake").
	Hostname string
	// IP is the agent's address, reported for host-network tasks
	// (default "198.18.0.1").
	IP string
	// ContainerSubnet is the first three octets of the addresses given
	// to containers on named networks (default "10.99.0": 10.99.0.2,
	// 10.99.0.3, …).
	ContainerSubnet string
	// Now is the clock of status timestamps (default time.Now).
	Now func() time.Time
}

// FakeAgent is an in-memory Agent for tests: a launch succeeds at once
// with TASK_STARTING then TASK_RUNNING, reporting one address per named
// NetworkInfo (copied from the request with ip_addresses replaced, as the
// network/cni isolator does) or the agent's address for host networking;
// a kill reports TASK_KILLED. Hooks make launches fail or block, and end
// tasks by themselves.
type FakeAgent struct {
	cfg FakeAgentConfig

	mu         sync.Mutex
	containers map[string]*mesosemu.Container
	addrs      map[string]map[int]string // container id → NetworkInfo index → address
	order      []string
	nextCID    int
	nextIP     int
	failure    string
	reject     error
	gate       <-chan struct{}
	changed    chan struct{}
	launches   int
	kills      int
}

// NewFakeAgent returns a fake agent.
func NewFakeAgent(cfg FakeAgentConfig) *FakeAgent {
	if cfg.ID == "" {
		cfg.ID = "fake-S0"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "fake"
	}
	if cfg.IP == "" {
		cfg.IP = "198.18.0.1"
	}
	if cfg.ContainerSubnet == "" {
		cfg.ContainerSubnet = "10.99.0"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &FakeAgent{cfg: cfg, containers: map[string]*mesosemu.Container{}, addrs: map[string]map[int]string{}, nextIP: 2, changed: make(chan struct{})}
}

// FailLaunches makes the following launches fail with Mesos' message
// "Failed to launch container: <message>"; "" makes them succeed again.
func (f *FakeAgent) FailLaunches(message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failure = message
}

// RejectLaunches makes Launch return err (the agent does not take the
// task); nil undoes it.
func (f *FakeAgent) RejectLaunches(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reject = err
}

// HoldLaunches makes Launch wait until gate is closed (or its context
// ends); nil undoes it.
func (f *FakeAgent) HoldLaunches(gate <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = gate
}

// notifyLocked wakes Watch callers; f.mu must be held.
func (f *FakeAgent) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *FakeAgent) addStatus(c *mesosemu.Container, state mesos.TaskState, source, reason, message string, withContainer bool) {
	st := mesos.TaskStatus{TaskID: c.Task.TaskID, State: state, Message: message, Source: source, Reason: reason,
		AgentID: f.cfg.ID, ExecutorID: c.Task.TaskID, Timestamp: float64(f.cfg.Now().UnixNano()) / 1e9}
	if withContainer {
		st.ContainerStatus = &mesos.ContainerStatus{ContainerID: &mesos.ContainerID{Value: c.ID}, NetworkInfos: f.networkInfos(c)}
	}
	c.Statuses = append(c.Statuses, st)
	c.Status = st
	c.State = state
}

// networkInfos reports the container's addresses like the isolator:
// named networks with their addresses, else the agent's address.
func (f *FakeAgent) networkInfos(c *mesosemu.Container) []mesos.NetworkInfo {
	var out []mesos.NetworkInfo
	for i, n := range c.Task.NetworkInfos {
		if n.Name == "" {
			continue
		}
		n.IPAddresses = []mesos.IPAddress{{Protocol: mesos.IPv4, IPAddress: f.addrs[c.ID][i]}}
		out = append(out, n)
	}
	if len(out) == 0 {
		out = []mesos.NetworkInfo{{IPAddresses: []mesos.IPAddress{{Protocol: mesos.IPv4, IPAddress: f.cfg.IP}}}}
	}
	return out
}

// Launch implements Agent.
func (f *FakeAgent) Launch(ctx context.Context, spec mesosemu.TaskSpec) (mesosemu.Container, error) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return mesosemu.Container{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reject != nil {
		return mesosemu.Container{}, f.reject
	}
	if spec.TaskID == "" {
		return mesosemu.Container{}, errors.New("task_id is required")
	}
	for _, c := range f.containers {
		if c.Task.TaskID == spec.TaskID && !c.State.Terminal() {
			return mesosemu.Container{}, fmt.Errorf("task %s is already running in container %s", spec.TaskID, c.ID)
		}
	}
	if spec.Name == "" {
		spec.Name = spec.TaskID
	}
	f.launches++
	f.nextCID++
	c := &mesosemu.Container{ID: fmt.Sprintf("%s-c%d", f.cfg.ID, f.nextCID), Task: spec, FrameworkID: spec.FrameworkID, PID: 1000 + f.nextCID}
	f.containers[c.ID] = c
	f.order = append(f.order, c.ID)
	if f.failure != "" {
		c.Error = f.failure
		c.Destroyed = true
		f.addStatus(c, mesos.TaskFailed, mesos.SourceAgent, mesos.ReasonContainerLaunchFailed, "Failed to launch container: "+f.failure, false)
		f.notifyLocked()
		return cloneContainer(c), nil
	}
	addrs := map[int]string{}
	for i, n := range spec.NetworkInfos {
		if n.Name == "" {
			continue
		}
		c.Networks = append(c.Networks, mesosemu.Network{Name: n.Name, IfName: fmt.Sprintf("eth%d", len(c.Networks))})
		addrs[i] = fmt.Sprintf("%s.%d", f.cfg.ContainerSubnet, f.nextIP)
		f.nextIP++
	}
	f.addrs[c.ID] = addrs
	f.addStatus(c, mesos.TaskStarting, mesos.SourceExecutor, "", "", true)
	f.addStatus(c, mesos.TaskRunning, mesos.SourceExecutor, "", "", true)
	f.notifyLocked()
	return cloneContainer(c), nil
}

// Kill implements Agent.
func (f *FakeAgent) Kill(_ context.Context, containerID string) (mesosemu.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[containerID]
	if !ok {
		return mesosemu.Container{}, fmt.Errorf("kill %s: %w", containerID, ErrContainerNotFound)
	}
	f.kills++
	if !c.State.Terminal() {
		f.addStatus(c, mesos.TaskKilled, mesos.SourceExecutor, "", "Command terminated with signal Killed", true)
		c.Destroyed = true
		f.notifyLocked()
	}
	return cloneContainer(c), nil
}

// Containers implements Agent.
func (f *FakeAgent) Containers(context.Context) ([]mesosemu.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mesosemu.Container
	for _, id := range f.order {
		if c := f.containers[id]; !c.Destroyed {
			out = append(out, cloneContainer(c))
		}
	}
	return out, nil
}

// Watch implements Agent.
func (f *FakeAgent) Watch(ctx context.Context, fn func(mesosemu.Container)) error {
	delivered := map[string]int{}
	for {
		f.mu.Lock()
		ch := f.changed
		var snaps []mesosemu.Container
		for _, id := range f.order {
			c := f.containers[id]
			if n, ok := delivered[id]; !ok || len(c.Statuses) > n {
				delivered[id] = len(c.Statuses)
				snaps = append(snaps, cloneContainer(c))
			}
		}
		f.mu.Unlock()
		for _, c := range snaps {
			fn(c)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
	}
}

// End makes a task end by itself with a terminal state (for example
// TASK_FAILED with "Command exited with status 1"), or report any other
// state.
func (f *FakeAgent) End(taskID string, state mesos.TaskState, message string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.order) - 1; i >= 0; i-- {
		c := f.containers[f.order[i]]
		if c.Task.TaskID != taskID {
			continue
		}
		if c.State.Terminal() {
			return fmt.Errorf("task %s already ended (%s)", taskID, c.State)
		}
		f.addStatus(c, state, mesos.SourceExecutor, "", message, true)
		if state.Terminal() {
			c.Destroyed = true
		}
		f.notifyLocked()
		return nil
	}
	return fmt.Errorf("task %s: %w", taskID, ErrContainerNotFound)
}

// Launched returns every container the agent launched, destroyed ones
// included, in launch order.
func (f *FakeAgent) Launched() []mesosemu.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]mesosemu.Container, 0, len(f.order))
	for _, id := range f.order {
		out = append(out, cloneContainer(f.containers[id]))
	}
	return out
}

// Counts returns how many launches and kills the agent received.
func (f *FakeAgent) Counts() (launches, kills int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.launches, f.kills
}

// String prints the agent's containers, one a line: container id, task
// id, state and addresses.
func (f *FakeAgent) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "agent %s (%s)\n", f.cfg.ID, f.cfg.IP)
	for _, id := range f.order {
		c := f.containers[id]
		var addrs []string
		for i := range c.Task.NetworkInfos {
			if a, ok := f.addrs[c.ID][i]; ok {
				addrs = append(addrs, c.Task.NetworkInfos[i].Name+"="+a)
			}
		}
		fmt.Fprintf(&b, "  %s %s %s [%s]\n", c.ID, c.Task.TaskID, c.State, strings.Join(addrs, " "))
	}
	return b.String()
}

func cloneContainer(c *mesosemu.Container) mesosemu.Container {
	out := *c
	out.Statuses = append([]mesos.TaskStatus(nil), c.Statuses...)
	out.Networks = append([]mesosemu.Network(nil), c.Networks...)
	return out
}
