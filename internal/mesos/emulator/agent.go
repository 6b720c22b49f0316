package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/mesos"
)

// Errors of the Agent API.
var (
	// ErrNotFound is returned for an unknown container id.
	ErrNotFound = errors.New("container not found")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("agent closed")
)

// maxCompleted bounds the destroyed containers kept for /state (Mesos'
// --max_completed_executors_per_framework default).
const maxCompleted = 150

// Agent emulates one Mesos agent with the network/cni isolator.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	root      string
	configs   *configStore
	dnsPerNet map[string]mesos.DNS
	dnsGlobal *mesos.DNS
	agentIP   string
	startTime time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	containers map[string]*container
	completed  []*container
	subs       map[*Subscription]struct{}
}

// New validates cfg like the isolator's create() (root permissions, both
// CNI flags, an existing config directory), creates the root directory,
// makes it a shared mount in its own peer group and loads the CNI
// configurations. Call Recover before launching tasks when the root
// directory may hold containers of an earlier run.
func New(cfg Config) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dnsInfo, err := parseDefaultContainerDNS(cfg.DefaultContainerDNS)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.RootDir, 0o755); err != nil {
		return nil, fmt.Errorf("Failed to create CNI network information root directory at '%s': %w", cfg.RootDir, err)
	}
	root, err := filepath.Abs(cfg.RootDir)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, fmt.Errorf("Failed to determine canonical path of CNI network information root directory '%s': %w", cfg.RootDir, err)
	}
	if err := ensureSharedRoot(root); err != nil {
		return nil, err
	}
	configs, err := newConfigStore(cfg.NetworkCNIConfigDir, cfg.NetworkCNIPluginsDir, cfg.Log)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:        cfg,
		log:        cfg.Log,
		root:       root,
		configs:    configs,
		startTime:  cfg.Now(),
		containers: map[string]*container{},
		subs:       map[*Subscription]struct{}{},
	}
	a.dnsPerNet, a.dnsGlobal = dnsInfo.CNIDefaults()
	a.agentIP = cfg.AgentIP
	if a.agentIP == "" {
		a.agentIP = detectIPv4(cfg.NetNS)
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.log.Info("mesos agent emulator started", "agent_id", cfg.AgentID, "root", root,
		"networks", len(configs.names()), "ip", a.agentIP)
	return a, nil
}

// detectIPv4 returns the first global unicast IPv4 address of the
// network namespace at path (the current one when empty).
func detectIPv4(path string) string {
	var out string
	find := func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				out = ipn.IP.String()
				return nil
			}
		}
		return nil
	}
	_ = inNetns(path, find)
	return out
}

// Root returns the isolator root directory (canonical path).
func (a *Agent) Root() string { return a.root }

// Config returns the effective configuration.
func (a *Agent) Config() Config { return a.cfg }

// Launch runs a task the way a Mesos agent with the network/cni isolator
// does: validate its networks, start the process in new network, UTS and
// mount namespaces, bind-mount its netns, run every CNI plugin's ADD in
// parallel, write hostname, hosts and resolv.conf, and only then let the
// command run. On failure everything attached is torn down (DEL) and the
// error carries Mesos' message (for example "Unknown CNI network 'x'" or
// "The CNI plugin '…' failed to attach container … to CNI network '…':
// stdout='…', stderr='…'"); the returned Container then has a TASK_FAILED
// status.
func (a *Agent) Launch(ctx context.Context, spec TaskSpec) (Container, error) {
	if spec.TaskID == "" {
		return Container{}, errors.New("task_id is required")
	}
	if spec.Name == "" {
		spec.Name = spec.TaskID
	}
	if spec.FrameworkID == "" {
		spec.FrameworkID = a.cfg.FrameworkID
	}
	if len(spec.Command) == 0 {
		spec.Command = []string{"sleep", "infinity"}
	}
	if spec.Role == "" {
		spec.Role = "*"
	}
	cid, err := newUUID()
	if err != nil {
		return Container{}, err
	}
	c := &container{id: cid, spec: spec, hostname: spec.Hostname, launched: make(chan struct{}), exited: make(chan struct{})}
	if c.hostname == "" {
		c.hostname = cid
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return Container{}, ErrClosed
	}
	for _, o := range a.containers {
		if o.spec.TaskID == spec.TaskID && o.spec.FrameworkID == spec.FrameworkID && !o.terminal() {
			a.mu.Unlock()
			return Container{}, fmt.Errorf("task %s is already running in container %s", spec.TaskID, o.id)
		}
	}
	a.containers[cid] = c
	a.mu.Unlock()

	err = a.launch(ctx, c)
	if err != nil {
		a.log.Error("failed to launch container", "container", cid, "task", spec.TaskID, "err", err)
		c.mu.Lock()
		c.errMsg = err.Error()
		c.mu.Unlock()
		if derr := a.destroy(a.ctx, c); derr != nil {
			a.log.Error("failed to destroy container after a failed launch", "container", cid, "err", derr)
		}
		a.addStatus(c, mesos.TaskStatus{State: mesos.TaskFailed, Source: mesos.SourceAgent,
			Reason: mesos.ReasonContainerLaunchFailed, Message: "Failed to launch container: " + err.Error()}, false)
		close(c.launched)
		return c.snapshot(), err
	}
	a.addStatus(c, mesos.TaskStatus{State: mesos.TaskStarting, Source: mesos.SourceExecutor}, true)
	a.addStatus(c, mesos.TaskStatus{State: mesos.TaskRunning, Source: mesos.SourceExecutor}, true)
	a.startWatcher(c)
	close(c.launched)
	return c.snapshot(), nil
}

// launch starts the task process held by its gate, isolates it and
// releases it.
func (a *Agent) launch(ctx context.Context, c *container) error {
	nets, err := a.prepare(c.spec)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.networks = nets
	c.mu.Unlock()
	dir := a.containerDir(c.id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("Failed to create the container directory at '%s': %w", dir, err)
	}
	stdout, err := os.OpenFile(joinPath(dir, ".stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(joinPath(dir, ".stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stderr.Close()
	isolated := len(nets) > 0
	env := []string{
		"PATH=" + agentPATH(),
		"MESOS_TASK_ID=" + c.spec.TaskID,
		"MESOS_FRAMEWORK_ID=" + c.spec.FrameworkID,
		"MESOS_AGENT_ID=" + a.cfg.AgentID,
		"MESOS_CONTAINER_ID=" + c.id,
	}
	if isolated {
		env = append(env, "LIBPROCESS_IP=0.0.0.0")
	}
	proc, gate, err := startTask(a.cfg.NetNS, c.spec.Command, env, isolated, stdout, stderr)
	if err != nil {
		return err
	}
	defer gate.Close()
	c.mu.Lock()
	c.proc = proc
	c.mu.Unlock()
	if err := a.writeRecord(c); err != nil {
		return fmt.Errorf("checkpoint container: %w", err)
	}
	if isolated {
		if err := a.isolate(ctx, c, proc.PID); err != nil {
			return err
		}
	}
	if err := release(gate); err != nil {
		return fmt.Errorf("start task command: %w", err)
	}
	return nil
}

// writeRecord checkpoints the emulator-private record of c.
func (a *Agent) writeRecord(c *container) error {
	c.recMu.Lock()
	defer c.recMu.Unlock()
	c.mu.Lock()
	rec := record{ContainerID: c.id, Proc: c.proc, Task: c.spec, Hostname: c.hostname,
		Statuses: append([]mesos.TaskStatus(nil), c.statuses...)}
	c.mu.Unlock()
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(joinPath(a.containerDir(c.id), recordFile), data)
}

func readRecord(path string) (*record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &rec, nil
}

// addStatus records and publishes a status update of c's task. With
// withContainer, the container's status (network_infos) is attached.
func (a *Agent) addStatus(c *container, st mesos.TaskStatus, withContainer bool) {
	st.TaskID = c.spec.TaskID
	st.AgentID = a.cfg.AgentID
	st.ExecutorID = c.spec.TaskID
	st.Timestamp = float64(a.cfg.Now().UnixNano()) / 1e9
	if withContainer {
		st.ContainerStatus = a.containerStatus(c)
	}
	c.mu.Lock()
	c.statuses = append(c.statuses, st)
	destroyed := c.destroyed
	c.mu.Unlock()
	if !destroyed {
		if _, err := os.Stat(a.containerDir(c.id)); err == nil {
			if err := a.writeRecord(c); err != nil {
				a.log.Warn("failed to checkpoint container", "container", c.id, "err", err)
			}
		}
	}
	a.log.Info("status update", "task", st.TaskID, "state", st.State, "container", c.id, "message", st.Message)
	a.publish(StatusUpdate{FrameworkID: c.spec.FrameworkID, ContainerID: c.id, Status: st})
}

// startWatcher starts the goroutine that notices the task's exit.
func (a *Agent) startWatcher(c *container) {
	c.mu.Lock()
	proc := c.proc
	c.mu.Unlock()
	w, err := watch(proc)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		if w != nil {
			w.close()
		}
		return
	}
	a.wg.Add(1)
	if err != nil {
		// The process is already gone.
		go func() {
			defer a.wg.Done()
			a.onExit(c)
		}()
		return
	}
	c.mu.Lock()
	c.watcher = w
	c.mu.Unlock()
	go func() {
		defer a.wg.Done()
		if w.wait() {
			a.onExit(c)
		}
	}()
}

// onExit handles the end of a task process: reap it, report the
// terminal status and, unless Kill is already doing it, destroy the
// container.
func (a *Agent) onExit(c *container) {
	c.mu.Lock()
	proc := c.proc
	killed := c.killRequested
	c.mu.Unlock()
	info := proc.reap()
	var st mesos.TaskStatus
	switch {
	case killed:
		st = mesos.TaskStatus{State: mesos.TaskKilled, Message: "Command terminated with signal Killed"}
	case !info.known:
		st = mesos.TaskStatus{State: mesos.TaskFailed, Reason: mesos.ReasonExecutorTerminated, Message: "Abnormal executor termination: exit status unknown"}
	case info.signaled:
		st = mesos.TaskStatus{State: mesos.TaskFailed, Message: "Command terminated with signal " + info.signal.String()}
	case info.code == 0:
		st = mesos.TaskStatus{State: mesos.TaskFinished, Message: "Command exited with status 0"}
	default:
		st = mesos.TaskStatus{State: mesos.TaskFailed, Message: fmt.Sprintf("Command exited with status %d", info.code)}
	}
	st.Source = mesos.SourceExecutor
	a.addStatus(c, st, true)
	c.exitOnce.Do(func() { close(c.exited) })
	if !killed {
		if err := a.destroy(a.ctx, c); err != nil {
			a.log.Error("failed to destroy container of an exited task", "container", c.id, "err", err)
		}
	}
}

// Kill kills a container's task process (SIGKILL, reaped) and cleans its
// networks up: DEL per network, then the netns handle is unmounted and
// the container directory removed. A failing DEL returns Mesos' "The CNI
// plugin '…' failed to detach container … from CNI network '…': …" error
// and leaves the container in place; calling Kill again retries.
func (a *Agent) Kill(ctx context.Context, cid string) (Container, error) {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return Container{}, ErrClosed
	}
	c := a.lookup(cid)
	if c == nil {
		return Container{}, fmt.Errorf("%w: %s", ErrNotFound, cid)
	}
	select {
	case <-c.launched:
	case <-ctx.Done():
		return c.snapshot(), ctx.Err()
	}
	c.mu.Lock()
	if c.watcher != nil && c.proc != nil {
		select {
		case <-c.exited:
		default:
			c.killRequested = true
		}
	}
	c.mu.Unlock()
	err := a.destroy(ctx, c)
	return c.snapshot(), err
}

// destroy kills the task process if it runs, waits for it to be reaped,
// then cleans the container's networks up. It is idempotent.
func (a *Agent) destroy(ctx context.Context, c *container) error {
	c.destroyMu.Lock()
	defer c.destroyMu.Unlock()
	c.mu.Lock()
	destroyed, proc, w := c.destroyed, c.proc, c.watcher
	c.mu.Unlock()
	if destroyed {
		return nil
	}
	if proc != nil {
		if err := proc.kill(); err != nil {
			return fmt.Errorf("kill task process %d: %w", proc.PID, err)
		}
		// And whatever else runs in the task's namespace.
		if err := KillNetnsProcesses(a.nsPath(c.id)); err != nil {
			return err
		}
		if w != nil {
			select {
			case <-c.exited:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			if err := waitGone(ctx, proc); err != nil {
				return err
			}
			proc.reap()
		}
	}
	err := a.cleanup(ctx, c)
	c.mu.Lock()
	if err != nil {
		c.errMsg = err.Error()
	} else {
		c.destroyed = true
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	a.retire(c)
	return nil
}

// retire moves a destroyed container to the completed list.
func (a *Agent) retire(c *container) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.containers[c.id]; !ok {
		return
	}
	delete(a.containers, c.id)
	a.completed = append(a.completed, c)
	if len(a.completed) > maxCompleted {
		a.completed = a.completed[len(a.completed)-maxCompleted:]
	}
}

func (a *Agent) lookup(cid string) *container {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.containers[cid]; ok {
		return c
	}
	for _, c := range a.completed {
		if c.id == cid {
			return c
		}
	}
	return nil
}

// Container returns a snapshot of a container, live or completed.
func (a *Agent) Container(cid string) (Container, bool) {
	c := a.lookup(cid)
	if c == nil {
		return Container{}, false
	}
	return c.snapshot(), true
}

// Containers returns the containers that are not yet destroyed (running,
// launching, or waiting for a cleanup retry), by container id.
func (a *Agent) Containers() []Container {
	a.mu.Lock()
	cs := make([]*container, 0, len(a.containers))
	for _, c := range a.containers {
		cs = append(cs, c)
	}
	a.mu.Unlock()
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.snapshot())
	}
	sortContainers(out)
	return out
}

// Recover rebuilds the agent's state from the root directory, like the
// isolator's recover(): every <root>/<cid> is read back (networks from
// the directory tree, network.info parsed when present; an unparseable
// network.info fails recovery). Containers whose task process still runs
// (checked against the pid and start time the emulator recorded) are
// kept and their status reported again; the others are unknown orphans
// and are cleaned up at once (DEL). Cleanup failures are logged, as in
// Mesos.
func (a *Agent) Recover(ctx context.Context) error {
	entries, err := os.ReadDir(a.root)
	if err != nil {
		return fmt.Errorf("Unable to list CNI network information root directory '%s': %w", a.root, err)
	}
	a.mu.Lock()
	known := make(map[string]bool, len(a.containers))
	for id := range a.containers {
		known[id] = true
	}
	a.mu.Unlock()
	var live, orphans []*container
	for _, e := range entries {
		cid := e.Name()
		if known[cid] {
			continue
		}
		dir := a.containerDir(cid)
		rec, rerr := readRecord(joinPath(dir, recordFile))
		if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			a.log.Warn("unreadable container record", "container", cid, "err", rerr)
		}
		alive := rec != nil && rec.Proc.alive()
		var infos []mesos.NetworkInfo
		if rec != nil {
			infos = rec.Task.NetworkInfos
		}
		nets, err := a.recoverNetworks(cid, infos)
		if err != nil {
			if alive {
				return fmt.Errorf("Failed to recover CNI network information for the container %s: %w", cid, err)
			}
			return fmt.Errorf("Failed to recover CNI network information for the orphaned container %s: %w", cid, err)
		}
		c := &container{id: cid, networks: nets, launched: make(chan struct{}), exited: make(chan struct{}), recovered: true}
		close(c.launched)
		if rec != nil {
			c.spec, c.hostname, c.proc, c.statuses = rec.Task, rec.Hostname, rec.Proc, rec.Statuses
		}
		if alive {
			live = append(live, c)
		} else {
			orphans = append(orphans, c)
		}
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	register := func(cs []*container) []*container {
		var out []*container
		for _, c := range cs {
			if _, dup := a.containers[c.id]; !dup {
				a.containers[c.id] = c
				out = append(out, c)
			}
		}
		return out
	}
	live, orphans = register(live), register(orphans)
	a.mu.Unlock()
	for _, c := range live {
		a.log.Info("recovered container", "container", c.id, "task", c.spec.TaskID, "pid", c.proc.PID)
		a.addStatus(c, mesos.TaskStatus{State: mesos.TaskRunning, Source: mesos.SourceExecutor}, true)
		a.startWatcher(c)
	}
	var wg sync.WaitGroup
	for _, c := range orphans {
		a.log.Info("removing unknown orphaned container", "container", c.id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.destroy(ctx, c); err != nil {
				a.log.Error("failed to cleanup unknown orphaned container", "container", c.id, "err", err)
			}
			if c.spec.TaskID != "" {
				c.mu.Lock()
				terminal := len(c.statuses) > 0 && c.statuses[len(c.statuses)-1].State.Terminal()
				c.mu.Unlock()
				if !terminal {
					a.addStatus(c, mesos.TaskStatus{State: mesos.TaskFailed, Source: mesos.SourceAgent,
						Reason: mesos.ReasonExecutorTerminated, Message: "Abnormal executor termination: task process gone after agent restart"}, false)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// Close stops the agent's goroutines and subscriptions. Tasks keep
// running (as with a Mesos agent restart); a new Agent on the same root
// recovers them.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	cs := make([]*container, 0, len(a.containers))
	for _, c := range a.containers {
		cs = append(cs, c)
	}
	subs := make([]*Subscription, 0, len(a.subs))
	for s := range a.subs {
		subs = append(subs, s)
	}
	a.mu.Unlock()
	a.cancel()
	for _, c := range cs {
		c.mu.Lock()
		w := c.watcher
		c.mu.Unlock()
		if w != nil {
			w.close()
		}
	}
	for _, s := range subs {
		s.Close()
	}
	a.wg.Wait()
	return nil
}
