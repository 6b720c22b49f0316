package emulator

import (
	"context"
	"errors"
	"math"
	"sort"
	"time"

	"github.com/weft-sdn/weft/internal/mesos"
	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

// Instance conditions (S:core/condition/Condition.scala).
const (
	condScheduled   = "Scheduled"
	condProvisioned = "Provisioned"
	condStaging     = "Staging"
	condStarting    = "Starting"
	condRunning     = "Running"
	condKilling     = "Killing"
	condKilled      = "Killed"
	condFinished    = "Finished"
	condFailed      = "Failed"
	condError       = "Error"
	condUnreachable = "Unreachable"
	condGone        = "Gone"
	condDropped     = "Dropped"
	condUnknown     = "Unknown"
)

// Instance goals.
const (
	goalRunning        = "Running"
	goalDecommissioned = "Decommissioned"
)

// conditionOf maps a Mesos task state to an instance condition.
func conditionOf(st mesos.TaskState) string {
	switch st {
	case mesos.TaskStaging:
		return condStaging
	case mesos.TaskStarting:
		return condStarting
	case mesos.TaskRunning:
		return condRunning
	case mesos.TaskKilling:
		return condKilling
	case mesos.TaskKilled:
		return condKilled
	case mesos.TaskFinished:
		return condFinished
	case mesos.TaskFailed:
		return condFailed
	case mesos.TaskError:
		return condError
	case mesos.TaskUnreachable, mesos.TaskLost:
		return condUnreachable
	case mesos.TaskGone:
		return condGone
	case mesos.TaskDropped:
		return condDropped
	default:
		return condUnknown
	}
}

// runSpec is an app or a pod with its version bookkeeping.
type runSpec struct {
	id                 string
	app                *App // nil for pods
	pod                *Pod // nil for apps
	version            time.Time
	lastScalingAt      time.Time
	lastConfigChangeAt time.Time
	// failures counts failed launches of the current configuration
	// (backoff); a new configuration resets it.
	failures    int
	lastFailure map[string]any
}

func (r *runSpec) isPod() bool { return r.pod != nil }

func (r *runSpec) target() int {
	if r.pod != nil {
		return r.pod.Instances
	}
	return r.app.Instances
}

// backoff returns the launch delay after the n-th consecutive failure.
func (r *runSpec) backoff(n int) time.Duration {
	base, factor, max := 1.0, 1.15, 3600.0
	if r.app != nil {
		base, factor, max = r.app.BackoffSeconds, r.app.BackoffFactor, r.app.MaxLaunchDelay
	}
	if n <= 0 || base <= 0 {
		return 0
	}
	d := base * math.Pow(factor, float64(n-1))
	return time.Duration(math.Min(d, max) * float64(time.Second))
}

func (r *runSpec) killSelection() string {
	if r.app != nil {
		return r.app.KillSelection
	}
	return "YOUNGEST_FIRST"
}

// agentState is an agent and the host ports in use on it.
type agentState struct {
	cfg  AgentConfig
	used map[int]bool
}

// allocate reserves host ports: a non-zero request is that port, zero a
// free one. It reserves nothing when a port is taken.
func (a *agentState) allocate(req []int) ([]int, bool) {
	out := make([]int, len(req))
	taken := map[int]bool{}
	for i, p := range req {
		if p != 0 {
			if a.used[p] || taken[p] {
				return nil, false
			}
			out[i], taken[p] = p, true
		}
	}
	next := a.cfg.PortMin
	for i, p := range req {
		if p != 0 {
			continue
		}
		for next <= a.cfg.PortMax && (a.used[next] || taken[next]) {
			next++
		}
		if next > a.cfg.PortMax {
			return nil, false
		}
		out[i], taken[next] = next, true
	}
	for p := range taken {
		a.used[p] = true
	}
	return out, true
}

func (a *agentState) release(ports []int) {
	for _, p := range ports {
		delete(a.used, p)
	}
}

// instance is a Marathon instance: an app instance (one task) or a pod
// instance (one Mesos task here, one Marathon task per container).
type instance struct {
	id          string
	spec        *runSpec
	app         *App // the definition the instance runs
	pod         *Pod
	version     time.Time
	seq         int64
	agent       *agentState
	goal        string
	condition   string
	incarnation int
	task        *mesosTask
	// relaunchAt is set while a terminal task waits for its relaunch.
	relaunchAt time.Time
	waiting    bool
	// since is when the condition last changed.
	since time.Time
}

// mesosTask is the Mesos task of an instance's incarnation.
type mesosTask struct {
	id          string
	inst        *instance
	agent       *agentState
	containerID string
	seen        int // statuses of the container applied
	state       mesos.TaskState
	message     string
	ips         []ipAddress
	networks    []mesos.NetworkInfo
	hostPorts   []int
	stagedAt    time.Time
	startedAt   time.Time
	killWanted  bool
	killSent    bool
	released    bool
}

func (t *mesosTask) terminal() bool { return t.state.Terminal() }

// releasePorts gives the task's host ports back to its agent, once.
func (t *mesosTask) releasePorts() {
	if !t.released {
		t.agent.release(t.hostPorts)
		t.released = true
	}
}

// stateName is the task's Mesos state as Marathon reports it.
func (t *mesosTask) stateName() string {
	if t.state == "" {
		return string(mesos.TaskStaging)
	}
	return string(t.state)
}

// ipAddress is a task address as Marathon renders it.
type ipAddress struct {
	IPAddress string `json:"ipAddress"`
	Protocol  string `json:"protocol"`
}

func ipAddressesOf(st mesos.TaskStatus) []ipAddress {
	if st.ContainerStatus == nil {
		return nil
	}
	var out []ipAddress
	for _, n := range st.ContainerStatus.NetworkInfos {
		for _, a := range n.IPAddresses {
			if a.IPAddress == "" {
				continue
			}
			p := string(a.Protocol)
			if p == "" {
				p = string(mesos.IPv4)
			}
			out = append(out, ipAddress{IPAddress: a.IPAddress, Protocol: p})
		}
	}
	return out
}

// marathonTaskIDs are the Marathon task ids of a Mesos task: the app
// task, or one per pod container.
func (t *mesosTask) marathonTaskIDs() []string {
	if t.inst.pod == nil {
		return []string{t.id}
	}
	out := make([]string, 0, len(t.inst.pod.Containers))
	for _, c := range t.inst.pod.Containers {
		out = append(out, podTaskID(t.inst.id, c.Name, t.inst.incarnation))
	}
	return out
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// instancesOf returns the instances of a run spec id in creation order.
func (s *Server) instancesOf(id string) []*instance {
	var out []*instance
	for _, i := range s.instances {
		if i.spec.id == id {
			out = append(out, i)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].seq < out[b].seq })
	return out
}

// scheduleLocked creates n instances of spec: every Scheduled event
// first, then each is placed (Provisioned) and launched.
func (s *Server) scheduleLocked(spec *runSpec, n int) []*instance {
	var out []*instance
	for range n {
		s.seq++
		inst := &instance{
			id: safePath(spec.id) + ".instance-" + s.uuids.next(s.now()), spec: spec, app: spec.app, pod: spec.pod,
			version: spec.version, seq: s.seq, goal: goalRunning,
		}
		s.instances[inst.id] = inst
		s.setConditionLocked(inst, condScheduled)
		out = append(out, inst)
	}
	for _, inst := range out {
		s.placeLocked(inst)
	}
	return out
}

// portRequest lists the host ports an instance needs, in declaration
// order (0 = any).
func portRequest(inst *instance) []int {
	var req []int
	switch {
	case inst.app != nil && inst.app.HostNetworking():
		for _, d := range inst.app.PortDefinitions {
			if inst.app.RequirePorts {
				req = append(req, d.Port)
			} else {
				req = append(req, 0)
			}
		}
	case inst.app != nil:
		for _, m := range inst.app.PortMappings {
			if m.HostPort != nil {
				req = append(req, *m.HostPort)
			}
		}
	default:
		for _, c := range inst.pod.Containers {
			for _, e := range c.Endpoints {
				if e.HostPort != nil {
					req = append(req, *e.HostPort)
				}
			}
		}
	}
	return req
}

// placeLocked picks the least loaded agent that has the ports, creates
// the instance's next task there (Provisioned) and launches it. It
// reports false when no agent fits (the instance stays Scheduled).
func (s *Server) placeLocked(inst *instance) bool {
	if len(s.agents) == 0 {
		return false
	}
	load := map[*agentState]int{}
	for _, i := range s.instances {
		if i.task != nil && !i.task.terminal() {
			load[i.task.agent]++
		}
	}
	order := make([]*agentState, 0, len(s.agents))
	for k := range s.agents {
		order = append(order, s.agents[(s.rr+k)%len(s.agents)])
	}
	sort.SliceStable(order, func(a, b int) bool { return load[order[a]] < load[order[b]] })
	req := portRequest(inst)
	for _, ag := range order {
		ports, ok := ag.allocate(req)
		if !ok {
			continue
		}
		s.rr = (s.rr + 1) % len(s.agents)
		if inst.task != nil {
			delete(s.tasks, inst.task.id)
		}
		inst.incarnation++
		inst.agent = ag
		inst.waiting = false
		t := &mesosTask{inst: inst, agent: ag, hostPorts: ports, stagedAt: s.now()}
		if inst.app != nil {
			t.id = appTaskID(inst.id, inst.incarnation)
		} else {
			t.id = podTaskID(inst.id, inst.pod.Containers[0].Name, inst.incarnation)
		}
		inst.task = t
		s.tasks[t.id] = t
		s.setConditionLocked(inst, condProvisioned)
		s.launchLocked(t)
		return true
	}
	s.log.Debug("no agent offers what the instance needs", "instance", inst.id, "ports", req)
	return false
}

// launchLocked launches t through its agent in the background.
func (s *Server) launchLocked(t *mesosTask) {
	spec := s.taskSpec(t)
	ag := t.agent
	s.spawn(func(ctx context.Context) {
		c, err := ag.cfg.Agent.Launch(ctx, spec)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil && c.ID == "" {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("launch failed", "task", spec.TaskID, "agent", ag.cfg.ID, "err", err)
			s.synthStatusLocked(t, mesos.TaskFailed, err.Error())
		} else {
			s.observeLocked(ag, c)
		}
		s.advanceLocked()
	})
}

// observeLocked applies the statuses of a container snapshot that the
// emulator has not applied yet. Containers of tasks this emulator does
// not know, named like Marathon tasks and still alive, are killed
// (Marathon kills unknown tasks on reconciliation).
func (s *Server) observeLocked(ag *agentState, c mesosemu.Container) {
	t := s.tasks[c.Task.TaskID]
	if t == nil || t.agent != ag {
		s.unknownContainerLocked(ag, c)
		return
	}
	if c.ID != "" && t.containerID == "" {
		t.containerID = c.ID
	}
	if len(c.Statuses) > t.seen {
		for _, st := range c.Statuses[t.seen:] {
			s.applyStatusLocked(t, st)
		}
		t.seen = len(c.Statuses)
	}
	s.maybeKillLocked(t)
}

func (s *Server) unknownContainerLocked(ag *agentState, c mesosemu.Container) {
	if c.ID == "" || s.unknown[c.ID] || c.FrameworkID != s.cfg.FrameworkID || !looksLikeMarathonTask(c.Task.TaskID) {
		return
	}
	if len(c.Statuses) > 0 && c.Statuses[len(c.Statuses)-1].State.Terminal() {
		return
	}
	s.unknown[c.ID] = true
	s.log.Info("killing a task of an unknown instance", "task", c.Task.TaskID, "agent", ag.cfg.ID)
	s.spawn(func(ctx context.Context) {
		if _, err := ag.cfg.Agent.Kill(ctx, c.ID); err != nil && ctx.Err() == nil {
			s.log.Warn("killing an unknown task failed", "task", c.Task.TaskID, "err", err)
		}
	})
}

// synthStatusLocked applies a status Marathon makes up (launch refused,
// task unknown to the agent).
func (s *Server) synthStatusLocked(t *mesosTask, state mesos.TaskState, message string) {
	s.applyStatusLocked(t, mesos.TaskStatus{TaskID: t.id, State: state, Message: message, Source: mesos.SourceMaster, AgentID: t.agent.cfg.ID})
}

// applyStatusLocked applies one Mesos status update: a change of state
// emits status_update_event (per Marathon task), then
// instance_changed_event if the condition changed.
func (s *Server) applyStatusLocked(t *mesosTask, st mesos.TaskStatus) {
	inst := t.inst
	if t.terminal() || s.instances[inst.id] != inst || inst.task != t {
		return
	}
	if ips := ipAddressesOf(st); len(ips) > 0 {
		t.ips = ips
		t.networks = st.ContainerStatus.NetworkInfos
	}
	if st.State == t.state {
		return
	}
	t.state, t.message = st.State, st.Message
	if st.State == mesos.TaskRunning && t.startedAt.IsZero() {
		t.startedAt = s.now()
	}
	for _, id := range t.marathonTaskIDs() {
		s.emit(s.statusUpdateEvent(t, id))
	}
	s.setConditionLocked(inst, conditionOf(st.State))
	if st.State.Terminal() {
		s.onTerminalLocked(t, st)
	}
}

// setConditionLocked changes an instance's condition, emitting
// instance_changed_event when it differs.
func (s *Server) setConditionLocked(inst *instance, cond string) {
	if inst.condition == cond {
		return
	}
	inst.condition = cond
	inst.since = s.now()
	s.emit(s.instanceChangedEvent(inst))
}

// setGoalLocked changes an instance's goal; Marathon emits
// instance_changed_event for it although the goal is not in the JSON.
func (s *Server) setGoalLocked(inst *instance, goal string) {
	if inst.goal == goal {
		return
	}
	inst.goal = goal
	s.emit(s.instanceChangedEvent(inst))
}

func (s *Server) onTerminalLocked(t *mesosTask, st mesos.TaskStatus) {
	inst := t.inst
	t.releasePorts()
	failed := !t.killWanted && st.State != mesos.TaskKilled
	if failed && inst.spec.app != nil && st.State != mesos.TaskFinished {
		inst.spec.lastFailure = map[string]any{
			"appId": inst.spec.id, "host": t.agent.cfg.Hostname, "message": st.Message, "state": string(st.State),
			"taskId": t.id, "timestamp": formatTime(s.now()), "version": formatTime(inst.version), "slaveId": t.agent.cfg.ID,
		}
	}
	if inst.goal != goalRunning {
		s.expungeLocked(inst)
		return
	}
	var delay time.Duration
	if failed {
		inst.spec.failures++
		delay = inst.spec.backoff(inst.spec.failures)
	}
	inst.waiting = true
	inst.relaunchAt = s.now().Add(delay)
	if delay == 0 {
		s.placeLocked(inst)
	}
}

// tickLocked relaunches instances whose backoff is over and retries the
// placement of instances no agent could take.
func (s *Server) tickLocked(now time.Time) {
	var due []*instance
	for _, inst := range s.instances {
		switch {
		case inst.goal != goalRunning:
		case inst.waiting && !inst.relaunchAt.After(now):
			due = append(due, inst)
		case inst.task == nil && inst.condition == condScheduled:
			due = append(due, inst)
		}
	}
	sort.Slice(due, func(a, b int) bool { return due[a].seq < due[b].seq })
	for _, inst := range due {
		s.placeLocked(inst)
	}
}

// killInstanceLocked kills an instance's task. With decommission the
// goal becomes Decommissioned (the instance is expunged once its task is
// terminal); otherwise the goal stays Running and the instance is
// relaunched.
func (s *Server) killInstanceLocked(inst *instance, decommission bool) {
	if decommission {
		s.setGoalLocked(inst, goalDecommissioned)
	}
	t := inst.task
	if t == nil || t.terminal() {
		if inst.goal != goalRunning {
			s.expungeLocked(inst)
		}
		return
	}
	t.killWanted = true
	s.maybeKillLocked(t)
}

// maybeKillLocked sends a wanted kill once the container is known.
func (s *Server) maybeKillLocked(t *mesosTask) {
	if !t.killWanted || t.killSent || t.containerID == "" || t.terminal() {
		return
	}
	t.killSent = true
	ag, cid := t.agent, t.containerID
	s.spawn(func(ctx context.Context) {
		c, err := ag.cfg.Agent.Kill(ctx, cid)
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.ID != "" {
			s.observeLocked(ag, c)
		}
		switch {
		case err == nil || t.terminal() || ctx.Err() != nil:
		case errors.Is(err, ErrContainerNotFound):
			s.synthStatusLocked(t, mesos.TaskGone, "Reconciliation: task is unknown to the agent")
		default:
			s.log.Warn("kill failed; retrying", "task", t.id, "agent", ag.cfg.ID, "err", err)
			s.spawn(func(ctx context.Context) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				t.killSent = false
				s.maybeKillLocked(t)
			})
		}
		s.advanceLocked()
	})
}

// expungeLocked forgets an instance whose goal is no longer Running and
// whose task is terminal (or never started); a run spec left short of
// its target without a deployment gets replacements.
func (s *Server) expungeLocked(inst *instance) {
	if s.instances[inst.id] != inst {
		return
	}
	delete(s.instances, inst.id)
	if t := inst.task; t != nil {
		delete(s.tasks, t.id)
		t.releasePorts()
	}
	spec := inst.spec
	if s.specs[spec.id] != spec || len(s.deploymentsOf(spec.id)) > 0 {
		return
	}
	active := 0
	for _, i := range s.instancesOf(spec.id) {
		if i.goal == goalRunning {
			active++
		}
	}
	if n := spec.target() - active; n > 0 {
		s.scheduleLocked(spec, n)
	}
}
